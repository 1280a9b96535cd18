package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
)

// fhirCorpus returns the FHIR directory of the test corpus (OSPREY_CORPUS, default
// testdata/corpus in this package). Without it the test skips, unless
// OSPREY_TEST_REQUIRE_SERVICES=1 says it must run.
func fhirCorpus(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OSPREY_CORPUS")
	if dir == "" {
		dir = "testdata/corpus"
	}
	dir = filepath.Join(dir, "fhir")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("FHIR corpus: %v (set OSPREY_CORPUS)", err)
		}
		t.Skipf("FHIR corpus not found at %s (set OSPREY_CORPUS): %v", dir, err)
	}
	return dir
}

// examples returns the R4 examples of the shared corpus; their file names start with the
// resource type.
func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fhirCorpus(t), "r4-examples", "*-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no FHIR examples in the corpus")
	}
	return files
}

func TestExamplesRoundTrip(t *testing.T) {
	for _, file := range examples(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.SplitN(name, "-", 2)[0]
			rt, err := Validate(data)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if rt != want {
				t.Errorf("Validate type = %q, want %q", rt, want)
			}
			if got, err := ResourceType(data); err != nil || got != want {
				t.Errorf("ResourceType = %q, %v; want %q", got, err, want)
			}
			m, err := Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got := string(m.ProtoReflect().Descriptor().Name()); got != want {
				t.Fatalf("Unmarshal gave a %s, want the inner %s", got, want)
			}
			if err := ValidateMessage(m); err != nil {
				t.Errorf("ValidateMessage: %v", err)
			}
			out, err := Marshal(m)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := Marshal(m)
			if err != nil || string(again) != string(out) {
				t.Errorf("Marshal is not deterministic")
			}
			m2, err := Unmarshal(out)
			if err != nil {
				t.Fatalf("Unmarshal of Marshal output: %v\n%s", err, out)
			}
			// The library keeps a relative reference as a URI or as a typed id depending on
			// the path it took, so protos are compared through their JSON.
			out2, err := Marshal(m2)
			if err != nil || string(out2) != string(out) {
				t.Errorf("second round trip changed the JSON (%v):\n%s\n%s", err, out, out2)
			}
			// The JSON means the same as the original, member order and spacing aside.
			var a, b any
			if err := json.Unmarshal(data, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &b); err != nil {
				t.Fatal(err)
			}
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Errorf("JSON differs after round trip:\n got %s\nwant %s", jb, ja)
			}
			pretty, err := MarshalIndent(m)
			if err != nil || !strings.Contains(string(pretty), "\n  \"") {
				t.Errorf("MarshalIndent did not indent: %v", err)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		file, rt, code, expr, diag string
	}{
		{"DR-bad-instant.json", "DiagnosticReport", "invalid", "DiagnosticReport.issued", "instant"},
		{"DR-bad-resourceType.json", "DiagnosticReportX", "invalid", "DiagnosticReportX", "unknown resource type"},
		{"DR-bad-status-code.json", "DiagnosticReport", "invalid", "DiagnosticReport.status", "code"},
		{"DR-missing-code.json", "DiagnosticReport", "required", "DiagnosticReport.code", "missing"},
		{"DR-missing-status.json", "DiagnosticReport", "required", "DiagnosticReport.status", "missing"},
		{"DR-result-not-array.json", "DiagnosticReport", "invalid", "DiagnosticReport.result", "array"},
		{"DR-unknown-prop.json", "DiagnosticReport", "structure", "DiagnosticReport.foo", `unknown element "foo"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fhirCorpus(t), "negative", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for name, run := range map[string]func() error{
				"Validate":  func() error { _, err := Validate(data); return err },
				"Unmarshal": func() error { _, err := Unmarshal(data); return err },
			} {
				err := run()
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("%s: want a *ValidationError, got %v", name, err)
				}
				if ve.ResourceType != tt.rt {
					t.Errorf("%s: ResourceType = %q, want %q", name, ve.ResourceType, tt.rt)
				}
				found := false
				for _, is := range ve.Issues {
					if is.Severity == "error" && is.Code == tt.code && slices.Contains(is.Expression, tt.expr) && strings.Contains(is.Diagnostics, tt.diag) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: no %s issue at %s mentioning %q in %v", name, tt.code, tt.expr, tt.diag, ve.Issues)
				}
				if !strings.Contains(err.Error(), tt.expr) {
					t.Errorf("%s: error text %q does not name %s", name, err, tt.expr)
				}
			}
		})
	}
}

func TestNotAResource(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `{"resourceType":`,
		"array":           `[]`,
		"no resourceType": `{"id":"x"}`,
		"empty type":      `{"resourceType":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Validate([]byte(in)); err == nil {
				t.Error("Validate accepted it")
			}
			if _, err := Unmarshal([]byte(in)); err == nil {
				t.Error("Unmarshal accepted it")
			}
			if _, err := ResourceType([]byte(in)); err == nil {
				t.Error("ResourceType accepted it")
			}
		})
	}
}

func TestValidateMessage(t *testing.T) {
	dr := &drpb.DiagnosticReport{
		Code: &dpb.CodeableConcept{Text: &dpb.String{Value: "CT head"}},
	}
	err := ValidateMessage(dr)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.ResourceType != "DiagnosticReport" {
		t.Fatalf("want a DiagnosticReport *ValidationError, got %v", err)
	}
	if len(ve.Issues) != 1 || !slices.Contains(ve.Issues[0].Expression, "DiagnosticReport.status") {
		t.Errorf("issues = %v, want one at DiagnosticReport.status", ve.Issues)
	}
	dr.Status = &drpb.DiagnosticReport_StatusCode{Value: 3} // any set enum value
	if err := ValidateMessage(dr); err != nil {
		t.Errorf("complete report: %v", err)
	}
	cr, err := Wrap(dr)
	if err != nil {
		t.Fatal(err)
	}
	if cr.GetDiagnosticReport() != dr {
		t.Error("Wrap did not put the report into the oneof")
	}
	if err := ValidateMessage(cr); err != nil {
		t.Errorf("ValidateMessage of the ContainedResource: %v", err)
	}
	if _, err := Wrap(&dpb.String{Value: "x"}); err == nil {
		t.Error("Wrap accepted a datatype")
	}
	if _, err := Marshal(&dpb.String{Value: "x"}); err == nil {
		t.Error("Marshal accepted a datatype")
	}
	if _, err := Unwrap(&ContainedResource{}); err == nil {
		t.Error("Unwrap accepted an empty ContainedResource")
	}
}

func TestOperationOutcome(t *testing.T) {
	data := NewOperationOutcome("error", "invalid", `bad <thing> & "quotes"`)
	if rt, err := Validate(data); err != nil || rt != "OperationOutcome" {
		t.Fatalf("NewOperationOutcome is not a valid OperationOutcome: %v\n%s", err, data)
	}
	o, err := ParseOperationOutcome(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Issue{Severity: "error", Code: "invalid", Diagnostics: `bad <thing> & "quotes"`}
	if len(o.Issues) != 1 || !issueEqual(o.Issues[0], want) {
		t.Errorf("issues = %v, want [%v]", o.Issues, want)
	}
	if !o.HasErrors() || o.Err() == nil {
		t.Error("an error issue must make HasErrors and Err report it")
	}
	if got := o.String(); got != `error invalid: bad <thing> & "quotes"` {
		t.Errorf("String = %q", got)
	}

	server := `{"resourceType":"OperationOutcome","text":{"status":"generated","div":"<div/>"},
	  "issue":[
	    {"severity":"warning","code":"processing","details":{"text":"coding unknown"},"location":["Observation.code"]},
	    {"severity":"error","code":"duplicate","diagnostics":"exists","expression":["DiagnosticReport.identifier[0]"]}]}`
	o, err = ParseOperationOutcome([]byte(server))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Issues) != 2 ||
		!issueEqual(o.Issues[0], Issue{Severity: "warning", Code: "processing", Diagnostics: "coding unknown", Expression: []string{"Observation.code"}}) ||
		!issueEqual(o.Issues[1], Issue{Severity: "error", Code: "duplicate", Diagnostics: "exists", Expression: []string{"DiagnosticReport.identifier[0]"}}) {
		t.Errorf("issues = %#v", o.Issues)
	}
	if got := o.String(); got != "warning processing at Observation.code: coding unknown; error duplicate at DiagnosticReport.identifier[0]: exists" {
		t.Errorf("String = %q", got)
	}

	warn, err := ParseOperationOutcome(NewOperationOutcome("information", "informational", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	if warn.HasErrors() || warn.Err() != nil {
		t.Error("an information issue is not an error")
	}
	for name, in := range map[string]string{
		"other resource": `{"resourceType":"Patient"}`,
		"not json":       `nope`,
	} {
		if _, err := ParseOperationOutcome([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOperationOutcomeOf(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fhirCorpus(t), "negative", "DR-missing-status.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, verr := Validate(data)
	out := OperationOutcomeOf(verr)
	if _, err := Validate(out); err != nil {
		t.Fatalf("OperationOutcomeOf gave an invalid OperationOutcome: %v\n%s", err, out)
	}
	o, err := ParseOperationOutcome(out)
	if err != nil || len(o.Issues) == 0 || !slices.Contains(o.Issues[0].Expression, "DiagnosticReport.status") {
		t.Errorf("outcome %s does not carry the validation issue (%v)", out, err)
	}
	plain := OperationOutcomeOf(errors.New("store down"))
	o, err = ParseOperationOutcome(plain)
	if err != nil || len(o.Issues) != 1 || o.Issues[0].Code != "exception" || o.Issues[0].Diagnostics != "store down" {
		t.Errorf("outcome of a plain error = %s (%v)", plain, err)
	}
}

func TestRewriteReferences(t *testing.T) {
	in := `{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x & <y>"},
	  "subject":{"reference":"Patient?identifier=urn:mrn|1"},
	  "result":[{"reference":"urn:uuid:1"},{"reference":"urn:uuid:2"}],
	  "extension":[{"url":"u","valueReference":{"reference":"urn:uuid:1"}}],
	  "conclusion":"urn:uuid:1","valueQuantity":{"value":0.90}}`
	out, err := RewriteReferences([]byte(in), map[string]string{"urn:uuid:1": "Observation/a", "urn:uuid:2": "Observation/b"})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := References(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Observation/a", "Observation/a", "Observation/b", "Patient?identifier=urn:mrn|1"}
	if !slices.Equal(refs, want) {
		t.Errorf("references = %v, want %v", refs, want)
	}
	s := string(out)
	for _, keep := range []string{`"conclusion":"urn:uuid:1"`, `0.90`, `x & <y>`} {
		if !strings.Contains(s, keep) {
			t.Errorf("rewrite lost %s: %s", keep, s)
		}
	}
	if _, err := RewriteReferences([]byte(`{`), nil); err == nil {
		t.Error("accepted broken JSON")
	}
}

func issueEqual(a, b Issue) bool {
	return a.Severity == b.Severity && a.Code == b.Code && a.Diagnostics == b.Diagnostics && slices.Equal(a.Expression, b.Expression)
}

// TestConcurrent shares the package's one marshaller and unmarshaller between goroutines;
// run with -race it proves they keep no per-call state.
func TestConcurrent(t *testing.T) {
	files := examples(t)
	errs := make(chan error, len(files)*4)
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					errs <- err
					continue
				}
				m, err := Unmarshal(data)
				if err != nil {
					errs <- err
					continue
				}
				if _, err := Marshal(m); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
