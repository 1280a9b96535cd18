package fhir_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	fhirmap "github.com/osprey-health/osprey/mappings/fhir"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// A STAT intracranial haemorrhage becomes a transaction of a Device, the ImagingStudy, an
// Observation, the DiagnosticReport and an alert to the ED team with a viewer link.
func ExampleMap() {
	model := protocol.Model{Name: "ich-detect", Version: "2.1.0", DeviceUID: "1.2.826.0.1.3680043.8.498.99"}
	a := &mappings.Analysis{
		ID: "msg-0001", Revision: 1, Status: mappings.StatusPreliminary, Priority: protocol.PriorityStat,
		Study: dicom.StudySummary{
			StudyInstanceUID: "1.2.826.0.1.3680043.8.498.1", AccessionNumber: "ACC-42",
			PatientID: "MRN123", StudyDate: "20261201", Modalities: []string{"CT"},
		},
		Findings: []mappings.Finding{{
			Finding: protocol.Finding{
				ID: "f1", Present: true, Confidence: 0.93,
				Code: protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
			},
			Plugin: "ich", JobID: "job-1", Model: model,
		}},
		Results:   []protocol.Result{{Protocol: protocol.Version, JobID: "job-1", Plugin: "ich", Status: protocol.StatusCompleted, Model: model}},
		CreatedAt: time.Date(2026, 12, 1, 22, 31, 5, 0, time.UTC),
	}
	profile := fhirmap.Profile{
		Identifiers: fhirmap.Identifiers{Patient: "http://hospital.example/mrn"},
		Recipients:  []string{"PractitionerRole/ed-team"},
		ViewerURL:   "https://viewer.example/study/{StudyInstanceUID}",
	}
	data, err := fhirmap.Map(a, profile)
	if err != nil {
		fmt.Println(err)
		return
	}
	var bundle struct {
		Entry []struct {
			Request struct{ Method, URL, IfNoneExist string }
		}
	}
	if err := json.Unmarshal(data, &bundle); err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range bundle.Entry {
		fmt.Println(e.Request.Method, e.Request.URL, e.Request.IfNoneExist)
	}
	// Output:
	// POST Device identifier=urn:dicom:uid|urn:oid:1.2.826.0.1.3680043.8.498.99
	// POST ImagingStudy identifier=urn:dicom:uid|urn:oid:1.2.826.0.1.3680043.8.498.1
	// POST Observation identifier=urn:osprey:observation|msg-0001/ich/f1
	// POST DiagnosticReport identifier=urn:osprey:diagnostic-report|msg-0001
	// POST Communication identifier=urn:osprey:communication|msg-0001/alert/1
}
