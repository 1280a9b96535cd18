package fhir

import (
	"fmt"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom"
	efhir "github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

func TestResourcesMatchBundle(t *testing.T) {
	p := Profile{Mode: ModeSingle, Recipients: []string{"PractitionerRole/ed-team"}, ViewerURL: viewer}
	res, err := MapResources(ichAnalysis(), p)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Map(ichAnalysis(), p)
	if err != nil {
		t.Fatal(err)
	}
	b := checkBundle(t, data)
	if len(res) != len(b.Entry) {
		t.Fatalf("%d resources, bundle has %d entries", len(res), len(b.Entry))
	}
	earlier := map[string]bool{}
	for i, r := range res {
		e := b.Entry[i]
		rt, err := efhir.Validate(r.JSON)
		if err != nil {
			t.Fatalf("resource %d: %v", i, err)
		}
		schemaValid(t, r.Type, r.JSON)
		if rt != r.Type || r.FullURL != e.FullURL || r.Method != e.Request.Method || r.URL != e.Request.URL || r.IfNoneExist != e.Request.IfNoneExist {
			t.Errorf("resource %d = {%s %s %s %s %s}, bundle entry = {%s %s %s %s}", i, r.Type, r.FullURL, r.Method, r.URL, r.IfNoneExist, e.FullURL, e.Request.Method, e.Request.URL, e.Request.IfNoneExist)
		}
		if string(compact(t, r.JSON)) != string(compact(t, e.Resource)) {
			t.Errorf("resource %d differs from its bundle entry:\n%s\n%s", i, r.JSON, e.Resource)
		}
		// Dependency order: a resource refers only to resources sent before it.
		refs, _ := efhir.References(r.JSON)
		for _, ref := range refs {
			if strings.HasPrefix(ref, "urn:uuid:") && !earlier[ref] {
				t.Errorf("%s refers to %s before it is sent", r.Type, ref)
			}
		}
		earlier[r.FullURL] = true
	}
}

// TestSendOneByOne plays a sender in single mode: each created resource gets a server id,
// and later resources have their references rewritten to it. What would be sent stays valid
// and keeps no bundle-local reference.
func TestSendOneByOne(t *testing.T) {
	res, err := MapResources(ichAnalysis(), Profile{Mode: ModeSingle, Recipients: []string{"Group/stroke"}})
	if err != nil {
		t.Fatal(err)
	}
	assigned := map[string]string{}
	for i, r := range res {
		body, err := efhir.RewriteReferences(r.JSON, assigned)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := efhir.Validate(body); err != nil {
			t.Fatalf("%s after rewriting: %v\n%s", r.Type, err, body)
		}
		if strings.Contains(string(body), "urn:uuid:") {
			t.Errorf("%s still holds a bundle-local reference: %s", r.Type, body)
		}
		assigned[r.FullURL] = fmt.Sprintf("%s/%d", r.Type, i+1)
	}
}

func TestNoAlertInSingleModeWithoutRecipients(t *testing.T) {
	res, err := MapResources(ichAnalysis(), Profile{Mode: ModeSingle, Alert: AlertNever})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Type == "Communication" {
			t.Fatal("a Communication with alert: never")
		}
	}
	// In bundle mode an alert without recipients is made: the EHR routes it by category
	// and subject.
	data, err := Map(ichAnalysis(), Profile{})
	if err != nil {
		t.Fatal(err)
	}
	cms := byType(t, checkBundle(t, data), "Communication")
	if len(cms) != 1 || cms[0].get("recipient") != nil {
		t.Errorf("bundle mode without recipients: %d Communications, recipient %v", len(cms), cms)
	}
}

func TestImagingStudyModes(t *testing.T) {
	tests := []struct {
		mode    string
		created bool
		ref     string // DiagnosticReport.imagingStudy[0].reference; "" = logical only
	}{
		{StudyCreate, true, "urn:uuid:"},
		{StudyReference, false, "ImagingStudy?identifier=urn:dicom:uid|urn:oid:" + studyUID},
		{StudyIdentifier, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			data, err := Map(ichAnalysis(), Profile{ImagingStudy: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			b := checkBundle(t, data)
			if got := len(byType(t, b, "ImagingStudy")) == 1; got != tt.created {
				t.Errorf("ImagingStudy in bundle = %v, want %v", got, tt.created)
			}
			dr := byType(t, b, "DiagnosticReport")[0]
			ref := dr.str("imagingStudy.0.reference")
			if tt.ref == "" {
				if ref != "" || dr.str("imagingStudy.0.identifier.value") != "urn:oid:"+studyUID {
					t.Errorf("want a logical reference by Study Instance UID, got %v", dr.get("imagingStudy"))
				}
			} else if !strings.HasPrefix(ref, tt.ref) {
				t.Errorf("imagingStudy reference %q, want %q…", ref, tt.ref)
			}
		})
	}
}

func TestStudyTimes(t *testing.T) {
	tests := []struct {
		name, zone, date, tm, want string
	}{
		{"no zone: date only", "", "20261201", "221530", "2026-12-01"},
		{"zone", "America/New_York", "20260701", "081500.5", "2026-07-01T08:15:00-04:00"},
		{"hours and minutes", "UTC", "20261201", "2215", "2026-12-01T22:15:00Z"},
		{"bad time: date only", "UTC", "20261201", "xx", "2026-12-01"},
		{"no date", "UTC", "", "2215", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ichAnalysis()
			a.Study.StudyDate, a.Study.StudyTime = tt.date, tt.tm
			data, err := Map(a, Profile{TimeZone: tt.zone})
			if err != nil {
				t.Fatal(err)
			}
			dr := byType(t, checkBundle(t, data), "DiagnosticReport")[0]
			if got := dr.str("effectiveDateTime"); got != tt.want {
				t.Errorf("effectiveDateTime %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModelsAndSources(t *testing.T) {
	a := ichAnalysis()
	// A second plugin with a model that has no device UID, a failed plugin, and no order.
	lvo := protocol.Model{Name: "lvo", Version: "0.9", Manufacturer: "Other"}
	f := protocol.Finding{ID: "f1", Code: protocol.Coding{System: protocol.SystemSNOMED, Code: "432504007", Display: "Cerebral infarction"}, Present: true, Confidence: 0.6}
	a.Findings = append(a.Findings, mappings.Finding{Finding: f, Plugin: "lvo", JobID: "job-2", Model: lvo})
	a.Results = append(a.Results,
		protocol.Result{Protocol: protocol.Version, JobID: "job-2", Plugin: "lvo", Status: protocol.StatusCompleted, Model: lvo, Findings: []protocol.Finding{f}},
		protocol.Result{Protocol: protocol.Version, JobID: "job-3", Plugin: "broken", Status: protocol.StatusFailed, Error: &protocol.Error{Code: "internal", Message: "oom"}},
	)
	a.Order = nil
	a.Summary = ""
	data, err := Map(a, Profile{Alert: AlertPositive})
	if err != nil {
		t.Fatal(err)
	}
	b := checkBundle(t, data)
	devs := byType(t, b, "Device")
	if len(devs) != 2 {
		t.Fatalf("%d Devices, want one per model (2)", len(devs))
	}
	if got := devs[1].str("identifier.0.system") + "|" + devs[1].str("identifier.0.value"); got != DefaultDeviceSystem+"|lvo@0.9" {
		t.Errorf("device without UID identified as %q", got)
	}
	obs := byType(t, b, "Observation")
	if len(obs) != 3 || obs[2].str("identifier.0.value") != "msg-0001/lvo/f1" {
		t.Fatalf("observations: %d, last identifier %q", len(obs), obs[len(obs)-1].str("identifier.0.value"))
	}
	if obs[2].str("device.display") != "lvo 0.9" {
		t.Errorf("the lvo finding's device is %v", obs[2].get("device"))
	}
	dr := byType(t, b, "DiagnosticReport")[0]
	if c := dr.str("conclusion"); !strings.Contains(c, "Intracranial hemorrhage (confidence 0.93)") || !strings.Contains(c, "Cerebral infarction (confidence 0.60)") {
		t.Errorf("conclusion without a summary = %q", c)
	}
	if dr.get("basedOn") != nil {
		t.Error("basedOn without an order")
	}
	if got := dr.str("code.text"); got != "AI analysis: CT HEAD W/O CONTRAST" {
		t.Errorf("report text %q", got)
	}
	if got := dr.str("subject.identifier.value"); got != "MRN123" {
		t.Errorf("subject from the study's patient id = %q", got)
	}
}

func TestIdentifierEscaping(t *testing.T) {
	a := ichAnalysis()
	a.Order.PatientID = `M|R,N$1\ &x=y`
	data, err := Map(a, Profile{Identifiers: Identifiers{Patient: "http://hospital.example/mrn"}})
	if err != nil {
		t.Fatal(err)
	}
	dr := byType(t, checkBundle(t, data), "DiagnosticReport")[0]
	want := `Patient?identifier=http://hospital.example/mrn|M%5C%7CR%5C%2CN%5C%241%5C%5C%20%26x%3Dy`
	if got := dr.str("subject.reference"); got != want {
		t.Errorf("conditional reference %q, want %q", got, want)
	}
	if got := dr.str("subject.identifier.value"); got != a.Order.PatientID {
		t.Errorf("identifier value %q, want it unescaped", got)
	}
}

func TestNameUUID(t *testing.T) {
	u := nameUUID("x")
	if len(u) != len("urn:uuid:")+36 || u[len("urn:uuid:")+14] != '5' {
		t.Errorf("%s is not a version 5 UUID", u)
	}
	if u != nameUUID("x") || u == nameUUID("y") {
		t.Error("nameUUID is not a function of its name")
	}
}

func TestNothingFound(t *testing.T) {
	a := ichAnalysis()
	a.Findings, a.Summary, a.Priority = nil, "", ""
	a.Results = []protocol.Result{{Protocol: protocol.Version, JobID: "job-1", Plugin: "ich", Status: protocol.StatusFailed, Error: &protocol.Error{Code: "timeout", Message: "late"}}}
	// A summary with gaps: a series without modality and an instance without SOP class.
	a.Study.Series[0].Modality = ""
	a.Study.Series[0].Instances = append(a.Study.Series[0].Instances, dicom.InstanceSummary{SOPInstanceUID: instanceUID + ".2"})
	data, err := Map(a, Profile{Alert: AlertPositive})
	if err != nil {
		t.Fatal(err)
	}
	b := checkBundle(t, data)
	for _, typ := range []string{"Device", "Observation", "Communication"} {
		if n := len(byType(t, b, typ)); n != 0 {
			t.Errorf("%d %s resources without findings or models", n, typ)
		}
	}
	dr := byType(t, b, "DiagnosticReport")[0]
	if got := dr.str("conclusion"); got != "No AI findings." {
		t.Errorf("conclusion %q", got)
	}
	st := byType(t, b, "ImagingStudy")[0]
	if st.str("series.0.modality.code") != "OT" || st.get("series.0.numberOfInstances") != 1.0 {
		t.Errorf("series without modality: %v", st.get("series"))
	}
}
