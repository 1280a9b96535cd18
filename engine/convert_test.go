package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/engine/store"
)

// A to_fhir step replaces the HL7 message for the destinations: they get a FHIR transaction
// Bundle, while the history keeps the HL7 as received.
func TestToFHIRStepReplacesTheMessage(t *testing.T) {
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), `
  - name: ris
    source: {push: {key: ris}}
    transform:
      - set: {path: PV1-3.1, value: ED}
      - to_fhir: {systems: {HOSP: "urn:oid:1.2.3.4"}}
    destinations:
      - name: ehr
        record: {key: ehr}
`)
	id := h.send("ris", engine.ContentHL7v2, orm("M1", "NW", "ACC9", "S", "ER"))
	waitFor(t, "delivered", 10*time.Second, func() bool { return slices.Contains(h.rec.got("ehr"), id) })
	d, err := h.st.Delivery(context.Background(), id, "ehr")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := fhir.Validate(d.Payload)
	if err != nil || rt != "Bundle" || !strings.Contains(string(d.Payload), `"ServiceRequest"`) ||
		!strings.Contains(string(d.Payload), "urn:oid:1.2.3.4") {
		t.Fatalf("delivered %s (%v), want a valid Bundle with the ServiceRequest", d.Payload, err)
	}
	m := h.detail(id)
	if m.Message.ContentType != engine.ContentHL7v2 || !strings.HasPrefix(string(m.Message.Raw), "MSH|") {
		t.Errorf("history keeps %s %.20q, want the HL7 as received", m.Message.ContentType, m.Message.Raw)
	}
	if m.Message.Status != store.StatusSent {
		t.Errorf("status %s", m.Message.Status)
	}
}

func TestToFHIRStepFailsAMessageItCannotMap(t *testing.T) {
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), `
  - name: ris
    source: {push: {key: ris}}
    transform:
      - to_fhir: {}
    destinations:
      - name: ehr
        record: {key: ehr}
`)
	id := h.send("ris", engine.ContentHL7v2, []byte("MSH|^~\\&|LAB|HOSP|OSPREY|RAD|20261201101500||ORU^R01|L1|P|2.5.1\rPID|1||MRN1\r"))
	d := h.waitStatus(id, store.StatusError, 10*time.Second)
	if !strings.Contains(d.Message.Error, "to_fhir") {
		t.Errorf("error %q does not name the step", d.Message.Error)
	}
}
