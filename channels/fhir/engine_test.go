package fhir_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/fhir"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

// freeAddr returns a loopback address nothing listens on, for a source the engine binds.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestThroughTheEngine runs source.fhir and destination.fhir in a real engine (embedded
// NATS, SQLite): a resource POSTed to Osprey is answered once committed, delivered to the
// EHR after a 503, and the EHR's OperationOutcome is stored as the attempt's reply.
func TestThroughTheEngine(t *testing.T) {
	oo := outcome("information", "informational", "created Patient/42")
	srv := newEHR(t, func(n int, r received, w http.ResponseWriter) {
		if r.Invalid != nil {
			answer(w, http.StatusBadRequest, outcome("error", "invalid", r.Invalid.Error()))
			return
		}
		if n == 1 {
			answer(w, http.StatusServiceUnavailable, outcome("error", "transient", "warming up"), "Retry-After", "0")
			return
		}
		answer(w, http.StatusCreated, oo, "Location", "Patient/42/_history/1")
	})
	addr := freeAddr(t)
	reg := engine.NewRegistry()
	// Only this package's connectors, built by the constructors its init registered.
	reg.RegisterSource(fhir.SourceSpec(), func(p *spec.Parsed, res engine.Resources) (engine.Source, error) {
		return engine.Global.NewSource("fhir", p, res)
	})
	reg.RegisterDestination(fhir.DestinationSpec(), func(p *spec.Parsed, res engine.Resources) (engine.Destination, error) {
		return engine.Global.NewDestination("fhir", p, res)
	})
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "osprey.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	path := filepath.Join(dir, "osprey.yaml")
	yaml := `channels:
  - name: ehr-feed
    source: {fhir: {address: "` + addr + `", tokens: [t0k]}}
    destinations:
      - name: ehr
        retry: {initial_backoff: 10ms, max_backoff: 50ms}
        fhir: {url: "` + srv.URL + `/fhir"}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, lints := config.Load(path, reg)
	if cfg == nil {
		t.Fatalf("config: %v", lints)
	}
	br := brokertest.New(t)
	eng := engine.New(engine.Options{Registry: reg, Broker: br.Broker, Store: st, DataDir: dir})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		eng.Shutdown(ctx)
	})
	if err := eng.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr + "/fhir"
	// The source listens once the engine has started the channel.
	var r response
	deadline := time.Now().Add(waitFor)
	for {
		req, _ := http.NewRequest(http.MethodPost, base+"/Patient", strings.NewReader(patientJSON))
		req.Header.Set("Content-Type", fhirJSON)
		req.Header.Set("Authorization", "Bearer t0k")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			r = response{status: resp.StatusCode, header: resp.Header}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source never listened: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	id := r.header.Get(fhir.HeaderMessageID)
	if r.status != http.StatusCreated || id == "" {
		t.Fatalf("status %d, message id %q", r.status, id)
	}
	// 201 means committed: the message is in the history (or about to be written from the
	// inbound stream) and is delivered.
	var d store.Detail
	deadline = time.Now().Add(waitFor)
	for {
		d, err = st.Get(context.Background(), id)
		if err == nil && d.Message.Status == store.StatusSent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered: %+v (%v)", id, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.Message.ContentType != fhir.ContentFHIR || d.Message.Source[fhir.MetaResourceType] != "Patient" {
		t.Errorf("stored message %q meta %v", d.Message.ContentType, d.Message.Source)
	}
	if len(d.Attempts) != 2 || d.Attempts[0].OK || !strings.Contains(d.Attempts[0].ReplySummary, "warming up") || !d.Attempts[1].OK {
		t.Fatalf("attempts %+v, want a failed 503 then a success", d.Attempts)
	}
	if string(d.Attempts[1].Reply) != oo || !strings.HasPrefix(d.Attempts[1].ReplySummary, "201 Created") {
		t.Errorf("reply %q (%q), want the EHR's OperationOutcome", d.Attempts[1].Reply, d.Attempts[1].ReplySummary)
	}

	// Invalid content is refused and kept, so the analyst sees what was sent and why.
	bad := do(t, http.MethodPost, base+"/Observation", "t0k", fhirJSON, observationInvalid)
	badID := bad.header.Get(fhir.HeaderMessageID)
	if bad.status != http.StatusBadRequest || badID == "" {
		t.Fatalf("invalid content: status %d, message id %q", bad.status, badID)
	}
	deadline = time.Now().Add(waitFor)
	for {
		d, err = st.Get(context.Background(), badID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invalid message %s not in the history: %v", badID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if string(d.Message.Raw) != observationInvalid || !strings.Contains(d.Message.Source[fhir.MetaInvalid], "Observation.status") {
		t.Errorf("kept %q with meta %v", d.Message.Raw, d.Message.Source)
	}
	if d.Message.Status != store.StatusRejected || !strings.Contains(d.Message.Error, "Observation.status") {
		t.Errorf("invalid content stored as %s (%q), want rejected with the validator's reason", d.Message.Status, d.Message.Error)
	}
	for _, rq := range srv.requests() {
		if rq.Invalid != nil || rq.Type != "Patient" || rq.Path != "/fhir/Patient" {
			t.Errorf("EHR got %s %q: %v", rq.Path, rq.Type, rq.Invalid)
		}
	}
}
