package oru_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/mappings/oru"
	"github.com/osprey-health/osprey/plugins/protocol"
)

func Example() {
	model := protocol.Model{Name: "ich-detect", Version: "2.1.0"}
	a := &mappings.Analysis{
		ID:       "01JD6Q7ZK3M9V4T8N2B5X0C1RA",
		Revision: 1,
		Status:   mappings.StatusPreliminary,
		Priority: protocol.PriorityStat,
		Rules:    []string{"ich-stat"},
		Study:    dicom.StudySummary{AccessionNumber: "ACC123", StudyDescription: "CT HEAD WO"},
		Order: &mappings.Order{
			Accession: "ACC123", PlacerOrderNumber: "PLC77", PatientID: "4711",
			PatientName: "DOE^JANE", PatientSex: "F", PatientBirthDate: "19700304",
			Location: "ED", ProcedureCode: "CTHEAD", ProcedureText: "CT head without contrast",
		},
		Findings: []mappings.Finding{{
			Finding: protocol.Finding{
				ID:           "f1",
				Code:         protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
				Present:      true,
				Confidence:   0.93,
				Measurements: []protocol.Measurement{{Name: "Volume", Value: 12.5, Unit: "mL"}},
			},
			Plugin: "ich", Model: model,
		}},
		Results:   []protocol.Result{{Plugin: "ich", Status: protocol.StatusCompleted, Model: model}},
		CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	p, err := oru.ProfileByName("2.5.1-tq1")
	if err != nil {
		fmt.Println(err)
		return
	}
	p.ReceivingApplication = "RIS"
	msg, err := oru.Map(a, p)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.ReplaceAll(string(msg), "\r", "\n"))
	// Output:
	// MSH|^~\&|OSPREY||RIS||20260301120000+0000||ORU^R01^ORU_R01|3ZA6XNGSYSGQJKV-1|P|2.5.1||||||UNICODE UTF-8
	// PID|1||4711^^^^MR||DOE^JANE||19700304|F
	// PV1|1|U|ED
	// ORC|RE|PLC77|ACC123||||||20260301120000+0000
	// OBR|1|PLC77|ACC123|CTHEAD^CT head without contrast|||20260301120000+0000|||||||||||ACC123||||20260301120000+0000|||P
	// NTE|1|O|AI-generated result, not verified by a radiologist. It is not a diagnosis and must not be used as a report.
	// NTE|2|O|AI model: ich-detect 2.1.0
	// NTE|3|O|Result rules matched: ich-stat
	// TQ1|1||||||||S^Stat^HL70485
	// OBX|1|CWE|1386000^Intracranial hemorrhage^SCT|1|52101004^Present^SCT||||||P|||20260301120000+0000||||ich-detect^2.1.0
	// OBX|2|NM|CONFIDENCE^AI confidence^99OSPREY|1|93|%^percent^UCUM|||||P|||20260301120000+0000||||ich-detect^2.1.0
	// OBX|3|NM|Volume^Volume^99OSPREY|1|12.5|mL^mL^UCUM|||||P|||20260301120000+0000||||ich-detect^2.1.0
}
