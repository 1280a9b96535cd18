package fhir_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	codec "github.com/osprey-health/osprey/engine/fhir"
)

// waitFor bounds every wait: long enough never to fire on a loaded machine, short enough that
// a hang fails the test rather than the run.
const waitFor = 20 * time.Second

// Small valid R4 resources used as message bodies.
const (
	patientJSON = `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.3.4","value":"MRN-1"}],"name":[{"family":"Doe","given":["Jane"]}],"gender":"female","birthDate":"1970-01-01"}`
	// observationInvalid lacks status and code, both required.
	observationInvalid = `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p1"}}`
	transactionJSON    = `{"resourceType":"Bundle","type":"transaction","entry":[` +
		`{"fullUrl":"urn:uuid:8a1c5b0e-3b8f-4c83-9a1e-0d2f4b1a7c01","resource":{"resourceType":"Patient","name":[{"family":"Doe"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:oid:1.2.3.4|MRN-1"}},` +
		`{"resource":{"resourceType":"Encounter","status":"in-progress","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},"subject":{"reference":"urn:uuid:8a1c5b0e-3b8f-4c83-9a1e-0d2f4b1a7c01"}},"request":{"method":"POST","url":"Encounter"}}]}`
)

func batchOf(tx string) string {
	return strings.Replace(tx, `"type":"transaction"`, `"type":"batch"`, 1)
}

// outcome is an OperationOutcome with one issue, as servers answer.
func outcome(severity, code, text string) string {
	return `{"resourceType":"OperationOutcome","issue":[{"severity":"` + severity + `","code":"` + code + `","diagnostics":"` + text + `"}]}`
}

// received is one request the test EHR got.
type received struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	Type         string // resource type, when the body validated
	Invalid      error  // why the body is not valid R4
}

// ehr is an in-process FHIR server: it validates every body it receives with engine/fhir,
// as a real server would, and answers with what the test's handler says.
type ehr struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
}

func newEHR(t *testing.T, h func(n int, r received, w http.ResponseWriter)) *ehr {
	t.Helper()
	e := &ehr{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec := received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: b}
		rec.Type, rec.Invalid = codec.Validate(b)
		e.mu.Lock()
		e.reqs = append(e.reqs, rec)
		n := len(e.reqs)
		e.mu.Unlock()
		h(n, rec, w)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *ehr) requests() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.reqs...)
}

func answer(w http.ResponseWriter, status int, body string, hdr ...string) {
	for i := 0; i+1 < len(hdr); i += 2 {
		w.Header().Set(hdr[i], hdr[i+1])
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/fhir+json")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func fhirMessage(body string, meta map[string]string) *engine.Message {
	return &engine.Message{ID: "m1", Channel: "c", ContentType: "application/fhir+json", Body: []byte(body), Meta: meta}
}

// sink records the messages handed to it. fail makes Accept fail; verdict overrides the
// verdict; block, when set, makes Accept wait for it after signalling entered.
type sink struct {
	mu      sync.Mutex
	msgs    []*engine.Message
	fail    bool
	verdict engine.Verdict
	reason  error
	entered chan struct{}
	block   chan struct{}
}

func (s *sink) Accept(ctx context.Context, m *engine.Message) (engine.Receipt, error) {
	if s.block != nil {
		s.entered <- struct{}{}
		select {
		case <-s.block:
		case <-ctx.Done():
			return engine.Receipt{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return engine.Receipt{}, errors.New("engine stopping")
	}
	s.msgs = append(s.msgs, m)
	return engine.Receipt{ID: "msg-" + string(rune('0'+len(s.msgs))), Verdict: s.verdict, Reason: s.reason}, nil
}

func (s *sink) messages() []*engine.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*engine.Message(nil), s.msgs...)
}

// corpus returns the path of a file in the test corpus (engine/fhir/testdata/corpus), skipping the test when the
// corpus is not there.
func corpus(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join("..", "..", "engine", "fhir", "testdata", "corpus", rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("corpus file %s: %v", rel, err)
		}
		t.Skipf("corpus file %s not available: %v", rel, err)
	}
	return p
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
