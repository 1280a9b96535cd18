package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

const (
	adminToken = "admin-token-0123456789abcdef"
	readToken  = "read-token-0123456789abcdef"
)

// fakeEngine records what the API asked of it and answers with the errors a test sets.
type fakeEngine struct {
	mu           sync.Mutex
	channels     []engine.ChannelStatus
	calls        []string
	controlErr   error
	reprocessErr error
	requeueErr   error
	reloadErr    error
	readyErr     error
	panicOn      string // a method name that panics, to test recovery
}

func (f *fakeEngine) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeEngine) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeEngine) Channels() []engine.ChannelStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.channels)
}

func (f *fakeEngine) Control(_ context.Context, channel, action string) error {
	f.record("control %s %s", channel, action)
	if f.panicOn == "Control" {
		panic("control exploded")
	}
	if f.controlErr != nil {
		return f.controlErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.channels {
		if f.channels[i].Name == channel {
			f.channels[i].State = map[string]engine.ChannelState{
				"start": engine.StateRunning, "stop": engine.StateStopped, "pause": engine.StatePaused}[action]
			return nil
		}
	}
	return fmt.Errorf("engine: channel %q: %w", channel, engine.ErrUnknownChannel)
}

func (f *fakeEngine) Reprocess(_ context.Context, id string) (string, error) {
	f.record("reprocess %s", id)
	if f.reprocessErr != nil {
		return "", f.reprocessErr
	}
	return id + "-r1", nil
}

func (f *fakeEngine) Requeue(_ context.Context, id, destination string) error {
	f.record("requeue %s %q", id, destination)
	return f.requeueErr
}

func (f *fakeEngine) Reload(context.Context) error {
	f.record("reload")
	return f.reloadErr
}

func (f *fakeEngine) Ready(context.Context) error { return f.readyErr }

// recStore is a real store that remembers the last query it was asked and can be told to fail.
type recStore struct {
	store.Store
	mu        sync.Mutex
	lastQuery store.Query
	lastDLQ   store.DeadLetterQuery
	searchErr error
}

func (s *recStore) Search(ctx context.Context, q store.Query) (store.Page, error) {
	s.mu.Lock()
	s.lastQuery = q
	err := s.searchErr
	s.mu.Unlock()
	if err != nil {
		return store.Page{}, err
	}
	return s.Store.Search(ctx, q)
}

func (s *recStore) DeadLetters(ctx context.Context, q store.DeadLetterQuery) (store.DeadLetterPage, error) {
	s.mu.Lock()
	s.lastDLQ = q
	s.mu.Unlock()
	return s.Store.DeadLetters(ctx, q)
}

func (s *recStore) query() store.Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastQuery
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testEnv struct {
	srv     *admin.Server
	eng     *fakeEngine
	store   *recStore
	metrics *engine.Metrics
	logs    *syncBuffer
}

// base is when the seeded messages arrive; m1 is the oldest, m5 the newest.
var base = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// newEnv builds a server over a fresh in-memory SQLite store seeded with five messages,
// two dead letters and a fake engine with three channels.
func newEnv(t *testing.T, mod ...func(*admin.Options)) *testEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Memory, sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	seed(t, st)

	env := &testEnv{
		eng: &fakeEngine{channels: []engine.ChannelStatus{
			{Name: "results", State: engine.StateRunning, Source: "source.http"},
			{Name: "adt", State: engine.StateRunning, Source: "source.mllp",
				Counters:     engine.Counters{Received: 12, Sent: 10, Errored: 2},
				Destinations: []engine.DestinationStatus{{Name: "ehr", Type: "destination.mllp", Sent: 10, DeadLetters: 1}}},
			{Name: "orders", State: engine.StatePaused, Source: "source.mllp"},
		}},
		store:   &recStore{Store: st},
		metrics: engine.NewMetrics(),
		logs:    &syncBuffer{},
	}
	opts := admin.Options{
		Engine:   env.eng,
		Store:    env.store,
		Gatherer: env.metrics.Registry,
		Tokens: []admin.Token{
			{Name: "ops", Token: adminToken, Role: admin.RoleAdmin},
			{Name: "dashboard", Token: readToken, Role: admin.RoleRead},
		},
		Logger:  slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: "v1.2.3-test",
	}
	for _, m := range mod {
		m(&opts)
	}
	env.srv = admin.New(opts)
	return env
}

func seed(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	hl7 := func(ctl, typ, pid string) []byte {
		return []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260304100000||" + typ + "|" + ctl + "|P|2.5\rPID|1||" + pid + "^^^HOSP\r")
	}
	msgs := []store.Message{
		{ID: "m1", Channel: "adt", ContentType: engine.ContentHL7v2, Raw: hl7("C1", "ADT^A01", "P1"), ReceivedAt: base.Add(1 * time.Minute),
			ControlID: "C1", MessageType: "ADT^A01", PatientID: "P1", Sender: "RIS^HOSP", Status: store.StatusSent,
			Source: map[string]string{"remote_addr": "192.0.2.10:50000"}},
		{ID: "m2", Channel: "adt", ContentType: engine.ContentHL7v2, Raw: hl7("C2", "ADT^A08", "P2"), ReceivedAt: base.Add(2 * time.Minute),
			ControlID: "C2", MessageType: "ADT^A08", PatientID: "P2", Sender: "RIS^HOSP", Status: store.StatusQueued},
		{ID: "m3", Channel: "orders", ContentType: engine.ContentHL7v2, Raw: append(hl7("C3", "ORM^O01", "P1"), "OBR|1|||CTHEAD^HEAD CT\r"...),
			ReceivedAt: base.Add(3 * time.Minute), ControlID: "C3", MessageType: "ORM^O01", PatientID: "P1", Accession: "ACC3",
			Sender: "RIS^HOSP", Status: store.StatusQueued},
		{ID: "m4", Channel: "orders", ContentType: engine.ContentHL7v2, Raw: []byte("MSH|^~\\&|LAB|HOSP\rPID|1||P3^^^HOSP||Ren\xe9e\r"),
			ReceivedAt: base.Add(4 * time.Minute), ControlID: "C4", MessageType: "ORM^O01", PatientID: "P3", Accession: "ACC4",
			Sender: "LAB^HOSP", Status: store.StatusRejected, Error: "PID-5: not valid UTF-8"},
		{ID: "m5", Channel: "results", ContentType: "application/fhir+json", Raw: []byte(`{"resourceType":"DiagnosticReport"}`),
			ReceivedAt: base.Add(5 * time.Minute), MessageType: "DiagnosticReport", PatientID: "P1", Status: store.StatusSent},
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatalf("seed messages: %v", err)
	}
	if err := st.AddStages(ctx, "m1", []store.Stage{
		{Seq: 1, Name: "filter", At: base.Add(61 * time.Second)},
		{Seq: 2, Name: "transform[0] set", At: base.Add(62 * time.Second), Output: []byte("MSH|^~\\&|OSPREY|HOSP\r")},
	}); err != nil {
		t.Fatalf("seed stages: %v", err)
	}
	if err := st.PutDeliveries(ctx, []store.Delivery{
		{MessageID: "m1", Channel: "adt", Destination: "ehr", Status: store.DeliveryQueued, UpdatedAt: base.Add(62 * time.Second), Payload: []byte("x")},
		{MessageID: "m2", Channel: "adt", Destination: "ehr", Status: store.DeliveryQueued, UpdatedAt: base.Add(2 * time.Minute), Payload: []byte("x")},
		{MessageID: "m3", Channel: "orders", Destination: "ris", Status: store.DeliveryQueued, UpdatedAt: base.Add(3 * time.Minute), Payload: []byte("x")},
	}); err != nil {
		t.Fatalf("seed deliveries: %v", err)
	}
	attempts := []struct {
		id     string
		a      store.Attempt
		status store.DeliveryStatus
	}{
		{"m1", store.Attempt{Destination: "ehr", Number: 1, At: base.Add(63 * time.Second), Duration: 1500 * time.Microsecond, OK: true,
			ReplySummary: "AA", Reply: []byte("MSH|^~\\&|EHR\rMSA|AA|C1\r")}, store.DeliverySent},
		{"m2", store.Attempt{Destination: "ehr", Number: 1, At: base.Add(121 * time.Second), Duration: time.Second, Error: "connection refused"}, store.DeliveryQueued},
		{"m2", store.Attempt{Destination: "ehr", Number: 2, At: base.Add(122 * time.Second), Duration: time.Second, Error: "connection refused"}, store.DeliveryDeadLetter},
		{"m3", store.Attempt{Destination: "ris", Number: 1, At: base.Add(181 * time.Second), Duration: time.Second, Error: "AE: unknown order",
			ReplySummary: "AE: unknown order", Reply: []byte{0xff, 0xfe, 'A', 'E'}}, store.DeliveryDeadLetter},
	}
	for _, at := range attempts {
		if err := st.AddAttempt(ctx, at.id, at.a, at.status); err != nil {
			t.Fatalf("seed attempt %s: %v", at.id, err)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request through the server's handler; token "" sends no Authorization.
func (e *testEnv) call(t *testing.T, method, target, token string) response {
	t.Helper()
	return e.callBody(t, method, target, token, nil)
}

func (e *testEnv) callBody(t *testing.T, method, target, token string, body io.Reader) response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// decode unmarshals a response body strictly into T.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, r.body, err)
	}
	return v
}

type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	Lints  []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Col     int    `json:"col"`
		Level   string `json:"level"`
		Type    string `json:"type"`
		Message string `json:"message"`
		Text    string `json:"text"`
	} `json:"lints"`
}

// wantError checks a response is the API's error shape with the status and, when given,
// a message containing want.
func wantError(t *testing.T, r response, status int, want string) errorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	b := decode[errorBody](t, r)
	if b.Status != status {
		t.Errorf("body status = %d, want %d", b.Status, status)
	}
	if !strings.Contains(b.Error, want) {
		t.Errorf("error = %q, want it to contain %q", b.Error, want)
	}
	return b
}

var errBoom = errors.New("disk on fire at /var/lib/osprey")
