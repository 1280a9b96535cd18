package fhir

import (
	"strings"
	"testing"
)

const txBundle = `{"resourceType":"Bundle","type":"transaction","entry":[
 {"fullUrl":"urn:uuid:0b8e7d4e-0000-5000-8000-000000000001","resource":{"resourceType":"Observation","status":"preliminary","code":{"text":"ICH"}},
  "request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:x|1"}},
 {"fullUrl":"urn:uuid:0b8e7d4e-0000-5000-8000-000000000002","resource":{"resourceType":"DiagnosticReport","status":"preliminary","code":{"text":"CT"},
  "result":[{"reference":"urn:uuid:0b8e7d4e-0000-5000-8000-000000000001"}]},
  "request":{"method":"PUT","url":"DiagnosticReport?identifier=urn:x|2"}},
 {"request":{"method":"DELETE","url":"Communication?identifier=urn:x|3"}}]}`

func TestEntries(t *testing.T) {
	es, err := Entries([]byte(txBundle))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	want := []Entry{
		{FullURL: "urn:uuid:0b8e7d4e-0000-5000-8000-000000000001", ResourceType: "Observation", Method: "POST", URL: "Observation", IfNoneExist: "identifier=urn:x|1"},
		{FullURL: "urn:uuid:0b8e7d4e-0000-5000-8000-000000000002", ResourceType: "DiagnosticReport", Method: "PUT", URL: "DiagnosticReport?identifier=urn:x|2"},
		{Method: "DELETE", URL: "Communication?identifier=urn:x|3"},
	}
	for i, w := range want {
		g := es[i]
		if g.FullURL != w.FullURL || g.ResourceType != w.ResourceType || g.Method != w.Method || g.URL != w.URL || g.IfNoneExist != w.IfNoneExist {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	if _, err := Validate(es[1].Resource); err != nil {
		t.Errorf("entry resource is not valid on its own: %v", err)
	}
	if es[2].Resource != nil {
		t.Error("a DELETE entry has a resource")
	}
	if _, err := Entries([]byte(`{"resourceType":"Patient"}`)); err == nil || !strings.Contains(err.Error(), "Bundle") {
		t.Errorf("Entries of a Patient: %v", err)
	}
	if _, err := Entries([]byte(`{"resourceType":"Bundle"}`)); err == nil {
		t.Error("Entries accepted a Bundle without type")
	}
}

func TestParseBundleResponse(t *testing.T) {
	resp := `{"resourceType":"Bundle","type":"transaction-response","entry":[
	  {"response":{"status":"201 Created","location":"Observation/7/_history/1","etag":"W/\"1\""}},
	  {"response":{"status":"200 OK","location":"DiagnosticReport/9/_history/2",
	    "outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"updated"}]}}}]}`
	rs, err := ParseBundleResponse([]byte(resp))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Status != "201 Created" || rs[0].Location != "Observation/7/_history/1" || rs[0].ETag != `W/"1"` || rs[0].Outcome != nil {
		t.Errorf("first response %+v", rs)
	}
	if rs[1].Outcome == nil || rs[1].Outcome.HasErrors() || rs[1].Outcome.Issues[0].Diagnostics != "updated" {
		t.Errorf("second response outcome %+v", rs[1].Outcome)
	}
	for name, in := range map[string]string{
		"request bundle": txBundle,
		"not a bundle":   `{"resourceType":"OperationOutcome"}`,
		"not json":       `<html>`,
	} {
		if _, err := ParseBundleResponse([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
