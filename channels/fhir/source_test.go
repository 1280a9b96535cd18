package fhir_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/fhir"
	"github.com/osprey-health/osprey/channels/internal/listen/listentest"
	"github.com/osprey-health/osprey/engine"
	codec "github.com/osprey-health/osprey/engine/fhir"
)

// runSource starts a source on a free loopback port and returns its base URL.
func runSource(t *testing.T, cfg fhir.SourceConfig, sk engine.Sink) string {
	t.Helper()
	cfg.Address = "127.0.0.1:0"
	src, err := fhir.NewSource(cfg, engine.Resources{Channel: "orders"})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	listentest.Run(t, src, sk)
	base := cfg.BasePath
	if base == "" {
		base = fhir.DefaultBasePath
	}
	return "http://" + src.Addr().String() + base
}

type response struct {
	status int
	header http.Header
	body   []byte
	issues []codec.Issue
}

func do(t *testing.T, method, url, token, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	// Every answer of the source is an OperationOutcome, valid R4.
	if rt, err := codec.Validate(b); err != nil || rt != "OperationOutcome" {
		t.Fatalf("%s %s answered %d with %q, not a valid OperationOutcome: %v", method, url, resp.StatusCode, b, err)
	}
	var oo struct {
		Issue []codec.Issue `json:"issue"`
	}
	_ = json.Unmarshal(b, &oo)
	r.issues = oo.Issue
	return r
}

const fhirJSON = "application/fhir+json"

func TestSourceAcceptsResources(t *testing.T) {
	corpusPatient := func(t *testing.T) string {
		b, err := readFile(corpus(t, "fhir/r4-examples/Patient-example.json"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name       string
		path, body func(t *testing.T) string
		wantStatus int
		wantType   string
		wantID     string
		wantBundle string
	}{
		{"create at type", fixed("/Patient"), fixed(patientJSON), http.StatusCreated, "Patient", "p1", ""},
		{"corpus patient", fixed("/Patient"), corpusPatient, http.StatusCreated, "Patient", "example", ""},
		{"transaction at base", fixed(""), fixed(transactionJSON), http.StatusOK, "Bundle", "", "transaction"},
		{"resource at base", fixed("/"), fixed(patientJSON), http.StatusOK, "Patient", "p1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sk := &sink{}
			base := runSource(t, fhir.SourceConfig{}, sk)
			body := tc.body(t)
			r := do(t, http.MethodPost, base+tc.path(t), "", fhirJSON, body)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.wantStatus)
			}
			msgs := sk.messages()
			if len(msgs) != 1 {
				t.Fatalf("sink got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.ContentType != fhir.ContentFHIR || string(m.Body) != body || m.Channel != "orders" {
				t.Errorf("message %q %q on %q", m.ContentType, m.Body, m.Channel)
			}
			if m.Meta[fhir.MetaResourceType] != tc.wantType || m.Meta[fhir.MetaID] != tc.wantID || m.Meta[fhir.MetaBundleType] != tc.wantBundle {
				t.Errorf("meta %v", m.Meta)
			}
			if m.Meta[fhir.MetaInvalid] != "" || m.Meta["remote_addr"] == "" {
				t.Errorf("meta %v", m.Meta)
			}
			if m.Meta[fhir.MetaIfNoneExist] != "" {
				t.Errorf("If-None-Exist %q from nowhere", m.Meta[fhir.MetaIfNoneExist])
			}
			if r.header.Get(fhir.HeaderMessageID) != "msg-1" || len(r.issues) != 1 || !strings.Contains(r.issues[0].Diagnostics, "msg-1") {
				t.Errorf("answer does not name the message: %s %v", r.body, r.header)
			}
		})
	}
}

func fixed(s string) func(*testing.T) string { return func(*testing.T) string { return s } }

func TestSourceAnswersOnlyAfterCommit(t *testing.T) {
	sk := &sink{entered: make(chan struct{}, 1), block: make(chan struct{})}
	base := runSource(t, fhir.SourceConfig{}, sk)
	got := make(chan response, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodPost, base+"/Patient", strings.NewReader(patientJSON))
		req.Header.Set("Content-Type", fhirJSON)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- response{}
			return
		}
		resp.Body.Close()
		got <- response{status: resp.StatusCode}
	}()
	select {
	case <-sk.entered:
	case <-time.After(waitFor):
		t.Fatal("sink never called")
	}
	select {
	case r := <-got:
		t.Fatalf("answered %d before the sink returned", r.status)
	default:
	}
	close(sk.block)
	wg.Wait()
	if r := <-got; r.status != http.StatusCreated {
		t.Fatalf("status %d after commit, want 201", r.status)
	}
}

func TestSourceNotStored(t *testing.T) {
	base := runSource(t, fhir.SourceConfig{}, &sink{fail: true})
	r := do(t, http.MethodPost, base+"/Patient", "", fhirJSON, patientJSON)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
}

func TestSourceEngineRejects(t *testing.T) {
	sk := &sink{verdict: engine.Rejected, reason: errTest("no accession number")}
	base := runSource(t, fhir.SourceConfig{}, sk)
	r := do(t, http.MethodPost, base+"/Patient", "", fhirJSON, patientJSON)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "no accession number") {
		t.Fatalf("status %d %s, want 400 with the engine's reason", r.status, r.body)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestSourceInvalidContent(t *testing.T) {
	tests := []struct {
		name, path, ctype, body string
		status                  int
		stored                  bool   // handed to the sink, marked invalid
		want                    string // in the OperationOutcome
	}{
		{"missing required elements", "/Observation", fhirJSON, observationInvalid, 400, true, "Observation.status"},
		{"type differs from URL", "/Patient", fhirJSON, `{"resourceType":"Group","type":"person","actual":true}`, 400, true, "URL names Patient"},
		{"not JSON", "", fhirJSON, "MSH|^~\\&|RIS", 400, true, "invalid"},
		{"unknown element", "/Patient", fhirJSON, `{"resourceType":"Patient","colour":"blue"}`, 400, true, "colour"},
		{"empty body", "/Patient", fhirJSON, "", 400, false, "empty body"},
		{"XML", "/Patient", "application/fhir+xml", "<Patient/>", 415, false, "only JSON"},
		{"type not taken", "/Patient", fhirJSON, patientJSON, 422, true, "not accepted here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sk := &sink{}
			cfg := fhir.SourceConfig{}
			if tc.status == 422 {
				cfg.ResourceTypes = []string{"ServiceRequest"}
			}
			base := runSource(t, cfg, sk)
			r := do(t, http.MethodPost, base+tc.path, "", tc.ctype, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
			if !strings.Contains(string(r.body), tc.want) {
				t.Errorf("OperationOutcome %s lacks %q", r.body, tc.want)
			}
			if len(r.issues) == 0 || r.issues[0].Severity != "error" {
				t.Errorf("issues %v, want errors", r.issues)
			}
			msgs := sk.messages()
			if !tc.stored {
				if len(msgs) != 0 {
					t.Errorf("sink got %d messages, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("sink got %d messages, want the invalid one kept", len(msgs))
			}
			if msgs[0].Meta[fhir.MetaInvalid] == "" || string(msgs[0].Body) != tc.body {
				t.Errorf("kept message %q meta %v, want the body as sent marked invalid", msgs[0].Body, msgs[0].Meta)
			}
		})
	}
}

func TestSourceTooLarge(t *testing.T) {
	sk := &sink{}
	base := runSource(t, fhir.SourceConfig{MaxBodySize: 64}, sk)
	if r := do(t, http.MethodPost, base+"/Patient", "", fhirJSON, patientJSON); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", r.status)
	}
	if len(sk.messages()) != 0 {
		t.Error("an oversized body reached the sink")
	}
}

func TestSourceSubscriptionNotifications(t *testing.T) {
	// An R4 Subscriptions Backport notification: a history Bundle whose first entry is the
	// subscription status (Parameters) and the rest the resources that triggered it.
	payload := `{"resourceType":"Bundle","type":"history","entry":[` +
		`{"fullUrl":"urn:uuid:0c2bdf42-6d1b-4f2e-a7b6-0f6d2c0b9a11","resource":{"resourceType":"Parameters","parameter":[{"name":"subscription","valueReference":{"reference":"Subscription/sub-7"}},{"name":"type","valueCode":"event-notification"}]},"request":{"method":"GET","url":"Subscription/sub-7/$status"},"response":{"status":"200"}},` +
		`{"fullUrl":"http://ehr/fhir/ServiceRequest/sr1","resource":{"resourceType":"ServiceRequest","id":"sr1","status":"active","intent":"order","subject":{"reference":"Patient/p1"}},"request":{"method":"PUT","url":"ServiceRequest/sr1"},"response":{"status":"200"}}]}`
	serviceRequest := `{"resourceType":"ServiceRequest","id":"sr1","status":"active","intent":"order","subject":{"reference":"Patient/p1"}}`
	tests := []struct {
		name, method, path, body string
		wantCT, wantSub          string
		wantType                 string
	}{
		{"empty notification", http.MethodPost, "/subscription/ct-orders", "", fhir.ContentNotification, "ct-orders", ""},
		{"empty notification without name", http.MethodPost, "/subscription", "", fhir.ContentNotification, "", ""},
		{"backport payload bundle", http.MethodPost, "/subscription", payload, fhir.ContentFHIR, "Subscription/sub-7", "Bundle"},
		{"payload names its own url", http.MethodPost, "/subscription/ct-orders", payload, fhir.ContentFHIR, "ct-orders", "Bundle"},
		{"R4 rest-hook with resource", http.MethodPut, "/subscription/ct-orders/ServiceRequest/sr1", serviceRequest, fhir.ContentFHIR, "ct-orders", "ServiceRequest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sk := &sink{}
			base := runSource(t, fhir.SourceConfig{Tokens: []string{"hook-token"}}, sk)
			ct := fhirJSON
			if tc.body == "" {
				ct = ""
			}
			r := do(t, tc.method, base+tc.path, "hook-token", ct, tc.body)
			if r.status != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", r.status, r.body)
			}
			msgs := sk.messages()
			if len(msgs) != 1 {
				t.Fatalf("sink got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.ContentType != tc.wantCT || m.Meta[fhir.MetaSubscription] != tc.wantSub || m.Meta[fhir.MetaResourceType] != tc.wantType {
				t.Errorf("message %q meta %v", m.ContentType, m.Meta)
			}
			if tc.body == "" {
				var n fhir.Notification
				if err := json.Unmarshal(m.Body, &n); err != nil || n.Subscription != tc.wantSub || n.ReceivedAt.IsZero() {
					t.Errorf("notification body %s: %v", m.Body, err)
				}
			} else if string(m.Body) != tc.body {
				t.Errorf("body changed: %s", m.Body)
			}
		})
	}
	t.Run("heartbeat makes no message", func(t *testing.T) {
		sk := &sink{}
		base := runSource(t, fhir.SourceConfig{}, sk)
		hb := strings.Replace(payload, "event-notification", "heartbeat", 1)
		if r := do(t, http.MethodPost, base+"/subscription/x", "", fhirJSON, hb); r.status != http.StatusOK {
			t.Fatalf("status %d, want 200", r.status)
		}
		if n := len(sk.messages()); n != 0 {
			t.Errorf("a heartbeat made %d messages", n)
		}
	})
	t.Run("event notification type is kept", func(t *testing.T) {
		sk := &sink{}
		base := runSource(t, fhir.SourceConfig{}, sk)
		do(t, http.MethodPost, base+"/subscription", "", fhirJSON, payload)
		if ms := sk.messages(); len(ms) != 1 || ms[0].Meta[fhir.MetaNotificationType] != "event-notification" {
			t.Errorf("messages %v", ms)
		}
	})
	t.Run("rest-hook id differs from URL", func(t *testing.T) {
		sk := &sink{}
		base := runSource(t, fhir.SourceConfig{}, sk)
		if r := do(t, http.MethodPut, base+"/subscription/x/ServiceRequest/other", "", fhirJSON, serviceRequest); r.status != http.StatusBadRequest {
			t.Errorf("status %d, want 400", r.status)
		}
	})
}

func TestSourceAuth(t *testing.T) {
	tests := []struct {
		name, token string
		status      int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "nope", http.StatusUnauthorized},
		{"first token", "t1", http.StatusCreated},
		{"second token", "t2", http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sk := &sink{}
			base := runSource(t, fhir.SourceConfig{Tokens: []string{"t1", "t2"}, BasePath: "/r4"}, sk)
			r := do(t, http.MethodPost, base+"/Patient", tc.token, fhirJSON, patientJSON)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if tc.status == http.StatusUnauthorized {
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if len(sk.messages()) != 0 {
					t.Error("an unauthenticated request reached the sink")
				}
			}
		})
	}
	t.Run("notifications need the token too", func(t *testing.T) {
		sk := &sink{}
		base := runSource(t, fhir.SourceConfig{Tokens: []string{"t1"}}, sk)
		if r := do(t, http.MethodPost, base+"/subscription/x", "", "", ""); r.status != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", r.status)
		}
	})
}

func TestSourceUnknownRoute(t *testing.T) {
	base := runSource(t, fhir.SourceConfig{}, &sink{})
	if r := do(t, http.MethodGet, base+"/Patient/p1", "", "", ""); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Errorf("status %d, want 404 or 405", r.status)
	}
}

func TestSourceKeepsConditionalCreate(t *testing.T) {
	sk := &sink{}
	base := runSource(t, fhir.SourceConfig{}, sk)
	req, _ := http.NewRequest(http.MethodPost, base+"/Patient", strings.NewReader(patientJSON))
	req.Header.Set("Content-Type", fhirJSON)
	req.Header.Set("If-None-Exist", "identifier=urn:oid:1.2.3.4|MRN-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ms := sk.messages()
	if resp.StatusCode != http.StatusCreated || len(ms) != 1 || ms[0].Meta[fhir.MetaIfNoneExist] != "identifier=urn:oid:1.2.3.4|MRN-1" {
		t.Fatalf("status %d, messages %v", resp.StatusCode, ms)
	}
}
