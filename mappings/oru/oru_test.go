package oru_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/mappings/oru"
	"github.com/osprey-health/osprey/plugins/protocol"
)

var created = time.Date(2026, 3, 1, 12, 30, 15, 0, time.UTC)

const ts = "20260301123015+0000"

var model = protocol.Model{Name: "ich-detect", Version: "2.1.0", Manufacturer: "Acme"}

// analysis is an ICH result for an ED head CT with its order context: one positive finding
// with a location and two measurements, one ruled-out finding.
func analysis() *mappings.Analysis {
	return &mappings.Analysis{
		ID:       "01JD6Q7ZK3M9V4T8N2B5X0C1RA",
		Revision: 1,
		Status:   mappings.StatusPreliminary,
		Channel:  "ct-head",
		Priority: protocol.PriorityStat,
		Rules:    []string{"ich-stat", "notify-neuro"},
		Study: dicom.StudySummary{
			StudyInstanceUID: "1.2.826.0.1.3680043.8.498.1", AccessionNumber: "ACC123",
			StudyDescription: "CT HEAD WO", PatientID: "DICOM-ID", PatientName: "STUDY^NAME",
			PatientSex: "M", PatientBirthDate: "19990101",
		},
		Order: &mappings.Order{
			Accession: "ACC123", PlacerOrderNumber: "PLC77", FillerOrderNumber: "FIL88",
			PatientID: "4711", PatientName: "DOE^JANE^Q", PatientSex: "F", PatientBirthDate: "19700304",
			OrderingProvider: "1234^SMITH^JOHN", Location: "ED",
			ProcedureCode: "CTHEAD", ProcedureText: "CT head without contrast",
		},
		Findings: []mappings.Finding{
			{
				Finding: protocol.Finding{
					ID:         "f1",
					Code:       protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
					Present:    true,
					Confidence: 0.934,
					Location: protocol.Location{
						Code:       &protocol.Coding{System: protocol.SystemSNOMED, Code: "83251001", Display: "Brain stem structure"},
						Laterality: protocol.LateralityLeft,
					},
					Measurements: []protocol.Measurement{
						{Name: "Volume", Value: 12.5, Unit: "mL"},
						{Name: "Midline shift", Code: &protocol.Coding{System: protocol.SystemLOINC, Code: "00000-0", Display: "Shift"}, Value: 4, Unit: "mm"},
					},
				},
				Plugin: "ich", JobID: "job-1", Model: model,
			},
			{
				Finding: protocol.Finding{
					ID:         "f2",
					Code:       protocol.Coding{System: protocol.SystemRadLex, Code: "RID4700", Display: "Mass effect"},
					Present:    false,
					Confidence: 0.8,
				},
				Plugin: "ich", JobID: "job-1", Model: model,
			},
		},
		Results:   []protocol.Result{{Plugin: "ich", JobID: "job-1", Status: protocol.StatusCompleted, Model: model}},
		Summary:   "ich: hemorrhage 12.5 mL",
		CreatedAt: created,
	}
}

func profile(t testing.TB, name string) oru.Profile {
	t.Helper()
	p, err := oru.ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	p.ReceivingApplication, p.ReceivingFacility = "RIS", "GENERAL"
	return p
}

type mapCase struct {
	name    string
	profile string
	edit    func(a *mappings.Analysis, p *oru.Profile)
	// segments is the expected segment sequence.
	segments string
	// want maps leaf paths to their values; "" means the element is empty or absent.
	want map[string]string
}

// common are the values every message of the fixture holds, whatever the profile.
var common = map[string]string{
	"MSH-3": "OSPREY", "MSH-5": "RIS", "MSH-6": "GENERAL", "MSH-7": ts,
	"MSH-9.1": "ORU", "MSH-9.2": "R01", "MSH-11": "P",
	"PID-1": "1", "PID-3.1": "4711", "PID-3.5": "MR", "PID-5.1": "DOE", "PID-5.2": "JANE", "PID-5.3": "Q",
	"PID-7": "19700304", "PID-8": "F",
	"PV1-1": "1", "PV1-2": "U", "PV1-3.1": "ED",
	"ORC-1": "RE", "ORC-2.1": "PLC77", "ORC-3.1": "FIL88", "ORC-9": ts, "ORC-12.1": "1234", "ORC-12.2": "SMITH",
	"OBR-1": "1", "OBR-2.1": "PLC77", "OBR-3.1": "FIL88", "OBR-4.1": "CTHEAD", "OBR-4.2": "CT head without contrast",
	"OBR-7": ts, "OBR-16.2": "SMITH", "OBR-18": "ACC123", "OBR-22": ts, "OBR-25": "P",
	"NTE[1]-1": "1", "NTE[1]-2": "O", "NTE[1]-3": oru.DefaultDisclaimer,
	"NTE[2]-3": "AI model: ich-detect 2.1.0 (Acme)", "NTE[3]-3": "ich: hemorrhage 12.5 mL",
	"NTE[4]-3": "Result rules matched: ich-stat, notify-neuro",
	// Finding 1: coded finding, confidence, site, laterality, two measurements.
	"OBX[1]-1": "1", "OBX[1]-3.1": "1386000", "OBX[1]-3.2": "Intracranial hemorrhage", "OBX[1]-3.3": "SCT",
	"OBX[1]-4": "1", "OBX[1]-5.1": "52101004", "OBX[1]-5.2": "Present", "OBX[1]-5.3": "SCT",
	"OBX[1]-11": "P", "OBX[1]-14": ts,
	"OBX[2]-2": "NM", "OBX[2]-3.1": "CONFIDENCE", "OBX[2]-3.3": "99OSPREY", "OBX[2]-4": "1", "OBX[2]-5": "93.4",
	"OBX[2]-6.1": "%", "OBX[2]-6.3": "UCUM", "OBX[2]-11": "P",
	"OBX[3]-3.1": "363698007", "OBX[3]-4": "1", "OBX[3]-5.1": "83251001", "OBX[3]-5.2": "Brain stem structure", "OBX[3]-5.3": "SCT",
	"OBX[4]-3.1": "272741003", "OBX[4]-4": "1", "OBX[4]-5.1": "7771000", "OBX[4]-5.2": "Left",
	"OBX[5]-2": "NM", "OBX[5]-3.1": "Volume", "OBX[5]-3.3": "99OSPREY", "OBX[5]-4": "1", "OBX[5]-5": "12.5",
	"OBX[5]-6.1": "mL", "OBX[5]-6.2": "mL", "OBX[5]-6.3": "UCUM",
	"OBX[6]-3.1": "00000-0", "OBX[6]-3.2": "Shift", "OBX[6]-3.3": "LN", "OBX[6]-5": "4", "OBX[6]-6.1": "mm",
	// Finding 2: ruled out, RadLex.
	"OBX[7]-1": "7", "OBX[7]-3.1": "RID4700", "OBX[7]-3.3": "RADLEX", "OBX[7]-4": "2",
	"OBX[7]-5.1": "2667000", "OBX[7]-5.2": "Absent", "OBX[7]-11": "P",
	"OBX[8]-4": "2", "OBX[8]-5": "80", "OBX[8]-11": "P",
}

const obxs = "OBX OBX OBX OBX OBX OBX OBX OBX"

var cases = []mapCase{
	{
		name:     "2.5.1 TQ1 stat",
		profile:  "2.5.1-tq1",
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE TQ1 " + obxs,
		want: map[string]string{
			"MSH-9.3": "ORU_R01", "MSH-12": "2.5.1", "MSH-18": "UNICODE UTF-8",
			"TQ1-1": "1", "TQ1-9.1": "S", "TQ1-9.2": "Stat", "TQ1-9.3": "HL70485",
			"OBR-5": "", "OBR-27.6": "",
			"OBX[1]-2": "CWE", "OBX[1]-18.1": "ich-detect", "OBX[1]-18.2": "2.1.0", "OBX[8]-18.1": "ich-detect",
		},
	},
	{
		name:    "2.3 OBR-27 urgent",
		profile: "2.3-obr27",
		edit: func(a *mappings.Analysis, _ *oru.Profile) {
			a.Priority = protocol.PriorityUrgent
			a.Order.PatientName = "MÜLLER^ZOË"
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE " + obxs,
		want: map[string]string{
			"MSH-9.3": "", "MSH-12": "2.3", "MSH-18": "8859/1",
			"OBR-27.6": "A", "OBR-5": "", "TQ1-9": "",
			"PID-5.1": "MÜLLER", "PID-5.2": "ZOË", "PID-5.3": "",
			"OBX[1]-2": "CE", "OBX[3]-2": "CE", "OBX[1]-18.1": "", "OBX[1]-18.2": "",
		},
	},
	{
		name:     "2.5.1 OBR-5 routine",
		profile:  "2.5.1-obr5",
		edit:     func(a *mappings.Analysis, _ *oru.Profile) { a.Priority = protocol.PriorityRoutine },
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE " + obxs,
		want:     map[string]string{"MSH-12": "2.5.1", "OBR-5": "R", "OBR-27.6": "", "TQ1-9": "", "OBX[1]-2": "CWE"},
	},
	{
		name:     "no priority leaves the order's alone",
		profile:  "2.5.1-tq1",
		edit:     func(a *mappings.Analysis, _ *oru.Profile) { a.Priority = "" },
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE " + obxs,
		want:     map[string]string{"OBR-5": "", "OBR-27.6": "", "TQ1-1": ""},
	},
	{
		name:    "corrected",
		profile: "2.3-obr27",
		edit: func(a *mappings.Analysis, _ *oru.Profile) {
			a.Status, a.Revision = mappings.StatusCorrected, 2
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE " + obxs,
		want: map[string]string{
			"OBR-25": "C", "OBX[1]-11": "C", "OBX[2]-11": "C", "OBX[7]-11": "C", "OBX[8]-11": "C",
			"OBR-27.6": "S",
			"NTE[1]-3": oru.DefaultDisclaimer + " This message corrects the AI result sent earlier for this order.",
		},
	},
	{
		name:    "withdrawn",
		profile: "2.5.1-tq1",
		edit: func(a *mappings.Analysis, _ *oru.Profile) {
			a.Status, a.Revision, a.Priority = mappings.StatusWithdrawn, 3, ""
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE " + obxs,
		want: map[string]string{
			"OBR-25": "C", "OBX[1]-11": "W", "OBX[2]-11": "W", "OBX[5]-11": "W", "OBX[7]-11": "W", "OBX[8]-11": "W",
			"NTE[1]-3": oru.DefaultDisclaimer + " The AI result sent earlier for this order is withdrawn and must not be used.",
		},
	},
	{
		name:    "site fields",
		profile: "2.5.1-tq1",
		edit: func(_ *mappings.Analysis, p *oru.Profile) {
			p.SendingApplication, p.SendingFacility, p.ProcessingID = "AIGW", "CITY^HOSP", "T"
			p.AccessionField, p.PatientIDAuthority, p.PatientClass = "OBR-20", "HOSP", "E"
			p.ProcedureCodingSystem = "L"
			p.CodingSystems = map[string]string{protocol.SystemRadLex: "RL"}
			p.LocalCodingSystem, p.Disclaimer = "99CITY", "KI-Befund, nicht ärztlich geprüft."
			p.TimeZone = time.FixedZone("CET", 3600)
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE TQ1 " + obxs,
		want: map[string]string{
			"MSH-3": "AIGW", "MSH-4.1": "CITY^HOSP", "MSH-4.2": "", "MSH-11": "T",
			"MSH-7": "20260301133015+0100", "OBR-7": "20260301133015+0100", "OBX[1]-14": "20260301133015+0100",
			"ORC-9": "20260301133015+0100", "OBR-22": "20260301133015+0100",
			"OBR-18": "", "OBR-20": "ACC123", "PID-3.4": "HOSP", "PV1-2": "E", "OBR-4.3": "L",
			"OBX[7]-3.3": "RL", "OBX[2]-3.3": "99CITY", "OBX[5]-3.3": "99CITY",
			"NTE[1]-3": "KI-Befund, nicht ärztlich geprüft.",
		},
	},
	{
		// What the order said is what the RIS knows; the profile's values fill in only
		// where the order was silent.
		name:    "patient class and MRN authority from the order",
		profile: "2.5.1-tq1",
		edit: func(a *mappings.Analysis, p *oru.Profile) {
			a.Order.PatientClass, a.Order.PatientIDAuthority = "E", "GENHOSP"
			p.PatientIDAuthority, p.PatientClass = "HOSP", "O"
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE TQ1 " + obxs,
		want:     map[string]string{"PID-3.4": "GENHOSP", "PV1-2": "E"},
	},
	{
		name:    "no order context",
		profile: "2.5.1-tq1",
		edit: func(a *mappings.Analysis, _ *oru.Profile) {
			a.Order = nil
			a.Study.PatientName = "ROE^RICHARD^M^DR^JR=ロー^リチャード"
			a.Rules, a.Summary, a.Priority = nil, " \n", ""
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE " + obxs,
		want: map[string]string{
			"PID-3.1": "DICOM-ID", "PID-5.1": "ROE", "PID-5.2": "RICHARD", "PID-5.3": "M",
			"PID-5.4": "JR", "PID-5.5": "DR", "PID-5.6": "", "PID-7": "19990101", "PID-8": "M",
			"PV1-2": "U", "PV1-3.1": "", "ORC-2.1": "", "ORC-3.1": "ACC123", "ORC-12.1": "", "ORC-12.2": "",
			"OBR-2.1": "", "OBR-3.1": "ACC123", "OBR-4.1": "", "OBR-4.2": "CT HEAD WO", "OBR-16.2": "",
			"OBR-18": "ACC123", "NTE[3]-3": "", "NTE[4]-3": "",
		},
	},
	{
		name:    "delimiters in every text stay data",
		profile: "2.5.1-tq1",
		edit: func(a *mappings.Analysis, _ *oru.Profile) {
			f := &a.Findings[0]
			f.Code.Display = "bleed|OBX|99^x~y\\z&w"
			f.Code.Code = "13^86"
			f.Measurements[0].Name = "Vol\rOBX|9|NM"
			f.Measurements[0].Unit = "m^L"
			a.Summary = "line one\nline two|PID|1"
			a.Rules = []string{"a|b"}
			a.Order.Location = "ED~ICU"
		},
		segments: "MSH PID PV1 ORC OBR NTE NTE NTE NTE TQ1 " + obxs,
		want: map[string]string{
			"OBX[1]-3.1": "13^86", "OBX[1]-3.2": "bleed|OBX|99^x~y\\z&w", "OBX[1]-3.3": "SCT",
			"OBX[5]-3.1": "Vol\rOBX|9|NM", "OBX[5]-6.1": "m^L", "OBX[5]-6.2": "m^L", "OBX[5]-6.3": "UCUM",
			"NTE[3]-3": "line one\nline two|PID|1", "NTE[4]-3": "Result rules matched: a|b",
			"PV1-3.1": "ED~ICU",
		},
	},
}

// build runs a case: the message bytes and their strict parse.
func build(t *testing.T, c mapCase) ([]byte, *hl7v2.Message) {
	t.Helper()
	a, p := analysis(), profile(t, c.profile)
	if c.edit != nil {
		c.edit(a, &p)
	}
	out, err := oru.Map(a, p)
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	m, err := hl7v2.ParseStrict(out)
	if err != nil {
		t.Fatalf("ParseStrict: %v\n%s", err, bytes.ReplaceAll(out, []byte("\r"), []byte("\n")))
	}
	return out, m
}

// expected merges the common values with the case's own.
func (c mapCase) expected() map[string]string {
	want := map[string]string{}
	for k, v := range common {
		want[k] = v
	}
	for k, v := range c.want {
		want[k] = v
	}
	return want
}

func segmentNames(m *hl7v2.Message) string {
	var names []string
	for _, s := range m.Segments() {
		names = append(names, s.Name())
	}
	return strings.Join(names, " ")
}

func TestMap(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, m := build(t, c)
			if !bytes.HasSuffix(out, []byte("\r")) || bytes.ContainsAny(out, "\n\x0b\x1c") {
				t.Errorf("segments must be CR-terminated, without LF or MLLP framing: %q", out)
			}
			if got := segmentNames(m); got != c.segments {
				t.Errorf("segments\n got %s\nwant %s", got, c.segments)
			}
			for path, want := range c.expected() {
				if got := m.Get(path); got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			a, p := analysis(), profile(t, c.profile)
			if c.edit != nil {
				c.edit(a, &p)
			}
			if id, want := m.ControlID(), oru.ControlID(a.ID, a.Revision); id != want || len(id) > 20 {
				t.Errorf("MSH-10 %q, want %q (at most 20 characters)", id, want)
			}
		})
	}
}

func TestPriorityPlacement(t *testing.T) {
	type where struct{ tq1, obr27, obr5 string }
	for _, c := range []struct {
		profile, priority string
		want              where
	}{
		{"2.5.1-tq1", protocol.PriorityStat, where{"S", "", ""}},
		{"2.5.1-tq1", protocol.PriorityUrgent, where{"A", "", ""}},
		{"2.5.1-tq1", protocol.PriorityRoutine, where{"R", "", ""}},
		{"2.3-obr27", protocol.PriorityStat, where{"", "S", ""}},
		{"2.3-obr27", protocol.PriorityRoutine, where{"", "R", ""}},
		{"2.5.1-obr5", protocol.PriorityUrgent, where{"", "", "A"}},
		{"2.5.1-obr5", "", where{"", "", ""}},
	} {
		t.Run(c.profile+"/"+c.priority, func(t *testing.T) {
			a := analysis()
			a.Priority = c.priority
			out, err := oru.Map(a, profile(t, c.profile))
			if err != nil {
				t.Fatal(err)
			}
			m, err := hl7v2.ParseStrict(out)
			if err != nil {
				t.Fatal(err)
			}
			got := where{m.Get("TQ1-9.1"), m.Get("OBR-27.6"), m.Get("OBR-5")}
			if got != c.want {
				t.Errorf("TQ1-9.1, OBR-27.6, OBR-5 = %+v, want %+v", got, c.want)
			}
			if (m.Count("TQ1") == 1) != (c.want.tq1 != "") {
				t.Errorf("%d TQ1 segments", m.Count("TQ1"))
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	p := profile(t, "2.5.1-tq1")
	a := analysis()
	one, err := oru.Map(a, p)
	if err != nil {
		t.Fatal(err)
	}
	// The same instant in another zone, and a fresh copy: the same bytes.
	b := analysis()
	b.CreatedAt = created.In(time.FixedZone("X", -5*3600))
	two, err := oru.Map(b, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one, two) {
		t.Fatalf("two maps of the same analysis differ:\n%q\n%q", one, two)
	}
	id := func(a *mappings.Analysis) string {
		out, err := oru.Map(a, p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7v2.ParseStrict(out)
		if err != nil {
			t.Fatal(err)
		}
		return m.ControlID()
	}
	first := id(a)
	seen := map[string]bool{first: true}
	for rev := 2; rev <= 12; rev++ {
		r := analysis()
		r.Revision, r.Status = rev, mappings.StatusCorrected
		got := id(r)
		if seen[got] {
			t.Errorf("revision %d reuses control ID %q", rev, got)
		}
		seen[got] = true
		if got[:15] != first[:15] {
			t.Errorf("revision %d: %q does not share the analysis prefix of %q", rev, got, first)
		}
	}
	other := analysis()
	other.ID += "X"
	if got := id(other); got[:15] == first[:15] {
		t.Errorf("another analysis has the same control ID prefix: %q, %q", got, first)
	}
	if got := oru.ControlID(strings.Repeat("z", 300), oru.MaxRevision); len(got) != 20 {
		t.Errorf("ControlID at the highest revision: %q, %d characters", got, len(got))
	}
}

// TestInjection: text holding delimiters and segment breaks gives a message with exactly
// the structure plain text gives (segments, fields, repetitions, components), every value
// reading back as given.
func TestInjection(t *testing.T) {
	const evil = "X|Y^Z~W\\V&U\rOBX|99|ST|||\nMSH|^~\\&|\x1c\x0b\\E\\ \\.br\\"
	with := func(s string) *hl7v2.Message {
		a := analysis()
		a.Findings[0].Code.Display = s
		a.Findings[1].Code.Code = s
		a.Findings[0].Location.Code.Display = s
		a.Findings[0].Measurements[0].Name = s
		a.Findings[0].Measurements[0].Unit = s
		a.Findings[0].Model.Name = s
		a.Summary = s
		a.Rules = []string{s}
		a.Order.PatientID = s
		a.Order.ProcedureText = s
		a.Order.Location = s
		out, err := oru.Map(a, oru.Profile{SendingApplication: s, ReceivingFacility: s})
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7v2.ParseStrict(out)
		if err != nil {
			t.Fatalf("ParseStrict: %v", err)
		}
		if n := bytes.Count(out, []byte("\r")); n != len(m.Segments()) {
			t.Errorf("%d CRs for %d segments", n, len(m.Segments()))
		}
		return m
	}
	plain, m := with("x"), with(evil)
	if got, want := segmentNames(m), segmentNames(plain); got != want {
		t.Fatalf("segments\n got %s\nwant %s", got, want)
	}
	for i, ps := range plain.Segments() {
		s := m.Segments()[i]
		if s.NumFields() != ps.NumFields() {
			t.Errorf("%s %d: %d fields, plain text gives %d", s.Name(), i+1, s.NumFields(), ps.NumFields())
			continue
		}
		for f := 3; f <= s.NumFields(); f++ {
			if s.Repetitions(f) != ps.Repetitions(f) || s.Components(f, 1) != ps.Components(f, 1) || s.Subcomponents(f, 1, 1) != ps.Subcomponents(f, 1, 1) {
				t.Errorf("%s %d field %d: structure differs from plain text", s.Name(), i+1, f)
			}
		}
	}
	for _, path := range []string{"OBX[1]-3.2", "OBX[7]-3.1", "OBX[3]-5.2", "OBX[5]-3.1", "OBX[5]-3.2", "OBX[5]-6.1", "OBX[1]-18.1", "NTE[3]-3", "PID-3.1", "OBR-4.2", "PV1-3.1", "MSH-3", "MSH-6"} {
		if got := m.Get(path); got != evil {
			t.Errorf("%s = %q, want %q", path, got, evil)
		}
	}
	if got := m.Get("NTE[4]-3"); got != "Result rules matched: "+evil {
		t.Errorf("NTE[4]-3 = %q", got)
	}
}

func TestMapErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(a *mappings.Analysis, p *oru.Profile)
		is   error
		text string
	}{
		{"no id", func(a *mappings.Analysis, _ *oru.Profile) { a.ID = "" }, oru.ErrUnmappable, "no id"},
		{"revision 0", func(a *mappings.Analysis, _ *oru.Profile) { a.Revision = 0 }, oru.ErrUnmappable, "revision 0"},
		{"revision too high", func(a *mappings.Analysis, _ *oru.Profile) { a.Revision = oru.MaxRevision + 1 }, oru.ErrUnmappable, "revision 10000"},
		{"no time", func(a *mappings.Analysis, _ *oru.Profile) { a.CreatedAt = time.Time{} }, oru.ErrUnmappable, "created_at"},
		{"status", func(a *mappings.Analysis, _ *oru.Profile) { a.Status = "final" }, oru.ErrUnmappable, `status "final"`},
		{"priority", func(a *mappings.Analysis, _ *oru.Profile) { a.Priority = "S" }, oru.ErrUnmappable, `priority "S"`},
		{"no order reference", func(a *mappings.Analysis, _ *oru.Profile) {
			a.Order, a.Study.AccessionNumber = nil, ""
		}, oru.ErrUnmappable, "no accession number"},
		{"order without numbers", func(a *mappings.Analysis, _ *oru.Profile) {
			a.Study.AccessionNumber = ""
			a.Order = &mappings.Order{PatientID: "1"}
		}, oru.ErrUnmappable, "no accession number"},
		{"finding without code", func(a *mappings.Analysis, _ *oru.Profile) { a.Findings[1].Code.Code = " " }, oru.ErrUnmappable, `finding 2 ("f2"): no code`},
		{"confidence NaN", func(a *mappings.Analysis, _ *oru.Profile) { a.Findings[0].Confidence = math.NaN() }, oru.ErrUnmappable, "confidence NaN"},
		{"measurement Inf", func(a *mappings.Analysis, _ *oru.Profile) { a.Findings[0].Measurements[1].Value = math.Inf(1) }, oru.ErrUnmappable, `measurement "Midline shift"`},
		{"laterality", func(a *mappings.Analysis, _ *oru.Profile) { a.Findings[0].Location.Laterality = "up" }, oru.ErrUnmappable, `laterality "up"`},
		{"Latin-1 cannot hold it", func(a *mappings.Analysis, p *oru.Profile) {
			p.Version = oru.Version23
			a.Order.PatientName = "李^华"
		}, hl7v2.ErrCharset, "PID-5.1"},
		{"ASCII cannot hold it", func(a *mappings.Analysis, p *oru.Profile) {
			p.Charset = "ASCII"
			a.Findings[0].Code.Display = "hémorragie"
		}, hl7v2.ErrCharset, "OBX[1]-3.2"},
		{"profile version", func(_ *mappings.Analysis, p *oru.Profile) { p.Version = "2.4" }, oru.ErrProfile, `version "2.4"`},
		{"profile TQ1 in 2.3", func(_ *mappings.Analysis, p *oru.Profile) {
			p.Version, p.Priority = oru.Version23, oru.PriorityTQ1
		}, oru.ErrProfile, "no TQ1"},
		{"profile placement", func(_ *mappings.Analysis, p *oru.Profile) { p.Priority = "ORC-7.6" }, oru.ErrProfile, `"ORC-7.6"`},
		{"profile processing id", func(_ *mappings.Analysis, p *oru.Profile) { p.ProcessingID = "X" }, oru.ErrProfile, "processing id"},
		{"profile accession field", func(_ *mappings.Analysis, p *oru.Profile) { p.AccessionField = "PID-3" }, oru.ErrProfile, "accession field"},
		{"profile charset", func(_ *mappings.Analysis, p *oru.Profile) { p.Charset = "utf-8" }, oru.ErrProfile, `charset "utf-8"`},
		{"profile coding system", func(_ *mappings.Analysis, p *oru.Profile) {
			p.CodingSystems = map[string]string{"urn:x": ""}
		}, oru.ErrProfile, `"urn:x"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, p := analysis(), oru.Profile{}
			c.edit(a, &p)
			out, err := oru.Map(a, p)
			if err == nil {
				t.Fatalf("no error; message %q", out)
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.text) || !strings.HasPrefix(err.Error(), "oru: ") {
				t.Errorf("error %q: want one wrapping %v and naming %q", err, c.is, c.text)
			}
			if out != nil {
				t.Errorf("bytes returned with the error")
			}
			if errors.Is(c.is, oru.ErrProfile) && p.Validate() == nil {
				t.Errorf("Validate accepts the profile Map rejects")
			}
		})
	}
	if _, err := oru.Map(nil, oru.Profile{}); !errors.Is(err, oru.ErrUnmappable) {
		t.Errorf("nil analysis: %v", err)
	}
}

func TestProfiles(t *testing.T) {
	for _, name := range oru.ProfileNames() {
		p, err := oru.ProfileByName(name)
		if err != nil || p.Name != name || p.Validate() != nil {
			t.Errorf("%s: %+v, %v, %v", name, p, err, p.Validate())
		}
	}
	if got := strings.Join(oru.ProfileNames(), " "); got != "2.3-obr27 2.5.1-obr5 2.5.1-tq1" {
		t.Errorf("profiles %s", got)
	}
	if _, err := oru.ProfileByName("2.4"); !errors.Is(err, oru.ErrUnknownProfile) || !strings.Contains(err.Error(), "2.5.1-tq1") {
		t.Errorf("unknown profile: %v", err)
	}
	// The zero profile is 2.5.1-tq1.
	a := analysis()
	zero, err := oru.Map(a, oru.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	named, err := oru.Map(a, oru.Profile{Name: "2.5.1-tq1", Version: "2.5.1", Priority: oru.PriorityTQ1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(zero, named) {
		t.Errorf("the zero profile is not 2.5.1 with TQ1")
	}
}

// TestDoesNotModify: Map reads its input only (the engine may map one analysis for several
// destinations concurrently).
func TestDoesNotModify(t *testing.T) {
	a, b := analysis(), analysis()
	p := oru.Profile{CodingSystems: map[string]string{"urn:x": "X"}}
	if _, err := oru.Map(a, p); err != nil {
		t.Fatal(err)
	}
	if len(p.CodingSystems) != 1 {
		t.Errorf("the profile's coding systems were changed: %v", p.CodingSystems)
	}
	if a.Findings[0].Code != b.Findings[0].Code || a.Summary != b.Summary || *a.Order != *b.Order {
		t.Errorf("the analysis was changed")
	}
}
