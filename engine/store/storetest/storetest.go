// Package storetest is the conformance suite every store.Store implementation passes, so
// SQLite and PostgreSQL answer every call the same way. An implementation's test calls
// Run with a function that opens a fresh, empty store for each subtest.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// t0 is the suite's reference instant; it has nanoseconds so truncation is exercised.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

// us is what the store keeps of an instant: UTC, microseconds.
func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Run runs the conformance suite. open must return an empty store that is closed (and
// removed) when its test ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"PutDefaults", testPutDefaults},
		{"PutFirstWriteWins", testPutFirstWriteWins},
		{"PutInvalid", testPutInvalid},
		{"Empty", testEmpty},
		{"SetStatus", testSetStatus},
		{"AddStages", testAddStages},
		{"AddStageSets", testAddStageSets},
		{"Deliveries", testDeliveries},
		{"DeliveryStates", testDeliveryStates},
		{"AddAttempt", testAddAttempt},
		{"AddAttemptIdempotent", testAddAttemptIdempotent},
		{"StatusRecomputation", testStatusRecomputation},
		{"Search", testSearch},
		{"SearchLimit", testSearchLimit},
		{"Pagination", testPagination},
		{"InvalidCursor", testInvalidCursor},
		{"DeadLetters", testDeadLetters},
		{"Prune", testPrune},
		{"PruneDuringIngest", testPruneDuringIngest},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentAttempts", testConcurrentAttempts},
		{"LargeRaw", testLargeRaw},
		{"LargePayload", testLargePayload},
		{"NotFound", testNotFound},
		{"Canceled", testCanceled},
		{"PingClose", testPingClose},
		{"Orders", testOrders},
		{"OrderMerge", testOrderMerge},
		{"PutOrders", testPutOrders},
		{"OrderByNumber", testOrderByNumber},
		{"OrderInvalid", testOrderInvalid},
		{"OrderConcurrent", testOrderConcurrent},
		{"JobPutGet", testJobPutGet},
		{"JobPutIdempotent", testJobPutIdempotent},
		{"JobPutInvalid", testJobPutInvalid},
		{"JobUpdate", testJobUpdate},
		{"JobUpdateRace", testJobUpdateRace},
		{"JobList", testJobList},
		{"JobLimit", testJobLimit},
		{"JobCursor", testJobCursor},
		{"JobExpired", testJobExpired},
		{"JobCounts", testJobCounts},
		{"Analysis", testAnalysis},
		{"JobPrune", testJobPrune},
		{"JobNotFound", testJobNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// hl7 builds a small but realistic ADT body around the given fields.
func hl7(ctrl, typ, pid, name string) []byte {
	return []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260314092653||" + typ + "|" + ctrl + "|P|2.5.1\r" +
		"PID|1||" + pid + "^^^HOSP^MR||" + name + "\r")
}

func msg(id string, at time.Time) store.Message {
	return store.Message{
		ID: id, Channel: "ris-in", ContentType: "application/hl7-v2",
		Raw: hl7("C-"+id, "ADT^A01", "P-"+id, "DOE^JOHN"), ReceivedAt: at,
		ControlID: "C-" + id, MessageType: "ADT^A01", PatientID: "P-" + id, Sender: "RIS^HOSP",
		Status: store.StatusReceived, UpdatedAt: at,
	}
}

func put(t *testing.T, s store.Store, msgs ...store.Message) {
	t.Helper()
	if err := s.PutMessages(t.Context(), msgs); err != nil {
		t.Fatalf("PutMessages: %v", err)
	}
}

func get(t *testing.T, s store.Store, id string) store.Detail {
	t.Helper()
	d, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return d
}

func putDeliveries(t *testing.T, s store.Store, ds ...store.Delivery) {
	t.Helper()
	if err := s.PutDeliveries(t.Context(), ds); err != nil {
		t.Fatalf("PutDeliveries: %v", err)
	}
}

func addAttempt(t *testing.T, s store.Store, id string, a store.Attempt, st store.DeliveryStatus) {
	t.Helper()
	if err := s.AddAttempt(t.Context(), id, a, st); err != nil {
		t.Fatalf("AddAttempt(%s, %s #%d): %v", id, a.Destination, a.Number, err)
	}
}

func delivery(t *testing.T, s store.Store, id, dest string) store.Delivery {
	t.Helper()
	d, err := s.Delivery(t.Context(), id, dest)
	if err != nil {
		t.Fatalf("Delivery(%s, %s): %v", id, dest, err)
	}
	return d
}

func ids(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// all walks every page of q and returns the ids in order.
func all(t *testing.T, s store.Store, q store.Query) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("search never ran out of pages")
		}
		p, err := s.Search(t.Context(), q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		out = append(out, ids(p.Messages)...)
		if p.Next == "" {
			return out
		}
		if len(p.Messages) == 0 {
			t.Fatal("empty page with a next cursor")
		}
		q.Cursor = p.Next
	}
}

func testPutGet(t *testing.T, s store.Store) {
	cet := time.FixedZone("CET", 3600)
	raw := append(hl7("CTRL1", "ORM^O01", "12345", "MÜLLER^HANS"), 0, 0xff, 0xfe, '\r')
	in := store.Message{
		ID: "m1", Channel: "ris-in", ContentType: "application/hl7-v2", Raw: raw,
		ReceivedAt:  t0.In(cet),
		Source:      map[string]string{"remote_addr": "10.0.0.7:40112", "listener": "mllp-main"},
		ControlID:   "CTRL1",
		MessageType: "ORM^O01",
		PatientID:   "12345",
		Accession:   "ACC-9",
		Sender:      "RIS^HOSP",
		Status:      store.StatusQueued,
		Error:       "",
		UpdatedAt:   t0.Add(time.Second).In(cet),
		ReprocessOf: "m0",
	}
	put(t, s, in)
	got := get(t, s, "m1")

	want := in
	want.ReceivedAt, want.UpdatedAt = us(in.ReceivedAt), us(in.UpdatedAt)
	if !reflect.DeepEqual(got.Message, want) {
		t.Errorf("Get message:\n got %+v\nwant %+v", got.Message, want)
	}
	if got.Message.ReceivedAt.Location() != time.UTC || got.Message.UpdatedAt.Location() != time.UTC {
		t.Errorf("times not in UTC: %v, %v", got.Message.ReceivedAt.Location(), got.Message.UpdatedAt.Location())
	}
	if !got.Message.ReceivedAt.Equal(t0.Truncate(time.Microsecond)) {
		t.Errorf("ReceivedAt = %v, want %v (microsecond precision)", got.Message.ReceivedAt, t0)
	}
	// Empty collections are empty, not null, so the API's JSON has a stable shape.
	if got.Stages == nil || got.Attempts == nil || got.Deliveries == nil {
		t.Errorf("Get of a fresh message: nil collections %v %v %v", got.Stages, got.Attempts, got.Deliveries)
	}
}

func testPutDefaults(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	put(t, s, store.Message{ID: "bare", Channel: "c"})
	m := get(t, s, "bare").Message
	if m.Status != store.StatusReceived {
		t.Errorf("default status = %q, want %q", m.Status, store.StatusReceived)
	}
	if m.ReceivedAt.Before(before) || m.UpdatedAt.Before(before) {
		t.Errorf("zero times not defaulted to now: received %v updated %v", m.ReceivedAt, m.UpdatedAt)
	}
	if len(m.Raw) != 0 || m.Source != nil {
		t.Errorf("raw %q source %v, want empty", m.Raw, m.Source)
	}
}

func testPutFirstWriteWins(t *testing.T, s store.Store) {
	first := msg("a", t0)
	put(t, s, first)

	changed := first
	changed.Raw = []byte("changed")
	changed.Status = store.StatusError
	changed.PatientID = "other"
	dup1, dup2 := msg("b", t0), msg("b", t0.Add(time.Hour))
	dup2.PatientID = "second"
	put(t, s, changed, dup1, dup2)

	if got := get(t, s, "a").Message; !bytes.Equal(got.Raw, first.Raw) || got.Status != first.Status || got.PatientID != first.PatientID {
		t.Errorf("redelivered message overwrote the first: %+v", got)
	}
	if got := get(t, s, "b").Message; got.PatientID != dup1.PatientID || !got.ReceivedAt.Equal(us(t0)) {
		t.Errorf("within one batch the first copy must win, got patient %q at %v", got.PatientID, got.ReceivedAt)
	}
	if got := all(t, s, store.Query{}); !slices.Equal(got, []string{"b", "a"}) && !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after redelivery the store holds %v, want a and b once", got)
	}
}

func testPutInvalid(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		bad  store.Message
	}{
		{"no id", store.Message{Channel: "c"}},
		{"unknown status", store.Message{ID: "x", Channel: "c", Status: "lost"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok := msg("ok-"+strings.ReplaceAll(tc.name, " ", "-"), t0)
			if err := s.PutMessages(t.Context(), []store.Message{ok, tc.bad}); err == nil {
				t.Fatal("PutMessages accepted an invalid message")
			}
			// One transaction: the valid message of the batch is not stored either.
			if _, err := s.Get(t.Context(), ok.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%s) after failed batch: %v, want ErrNotFound", ok.ID, err)
			}
		})
	}
}

func testEmpty(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.PutMessages(ctx, nil); err != nil {
		t.Errorf("PutMessages(nil): %v", err)
	}
	if err := s.PutDeliveries(ctx, nil); err != nil {
		t.Errorf("PutDeliveries(nil): %v", err)
	}
	p, err := s.Search(ctx, store.Query{})
	if err != nil || p.Messages == nil || len(p.Messages) != 0 || p.Next != "" {
		t.Errorf("Search on an empty store = %+v, %v; want an empty non-nil page", p, err)
	}
	dl, err := s.DeadLetters(ctx, store.DeadLetterQuery{})
	if err != nil || dl.Deliveries == nil || len(dl.Deliveries) != 0 || dl.Next != "" {
		t.Errorf("DeadLetters on an empty store = %+v, %v; want an empty non-nil page", dl, err)
	}
	n, err := s.Prune(ctx, "ris-in", t0, 10)
	if err != nil || n != 0 {
		t.Errorf("Prune on an empty store = %d, %v", n, err)
	}
}

func testSetStatus(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	before := time.Now().Add(-time.Second)
	if err := s.SetStatus(t.Context(), "m", store.StatusError, "transform[0]: no PID segment"); err != nil {
		t.Fatal(err)
	}
	m := get(t, s, "m").Message
	if m.Status != store.StatusError || m.Error != "transform[0]: no PID segment" {
		t.Errorf("status %q error %q", m.Status, m.Error)
	}
	if m.UpdatedAt.Before(before) {
		t.Errorf("UpdatedAt %v not advanced", m.UpdatedAt)
	}
	if err := s.SetStatus(t.Context(), "m", store.StatusQueued, ""); err != nil {
		t.Fatal(err)
	}
	if m := get(t, s, "m").Message; m.Status != store.StatusQueued || m.Error != "" {
		t.Errorf("second SetStatus: status %q error %q", m.Status, m.Error)
	}
	if err := s.SetStatus(t.Context(), "m", "bogus", ""); err == nil {
		t.Error("SetStatus accepted an unknown status")
	}
}

func testAddStages(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	ctx := t.Context()
	in := []store.Stage{
		{Seq: 2, Name: "transform[0] set", At: t0.Add(2 * time.Millisecond), Output: []byte("MSH|changed")},
		{Seq: 1, Name: "filter", At: t0.Add(time.Millisecond)},
		{Seq: 3, Name: "route", At: t0.Add(3 * time.Millisecond), Error: "no destination matched"},
	}
	if err := s.AddStages(ctx, "m", in); err != nil {
		t.Fatal(err)
	}
	// Redelivery: seq 2 again with other content is ignored; seq 4 is new.
	again := []store.Stage{
		{Seq: 2, Name: "rewritten", At: t0, Output: []byte("other")},
		{Seq: 4, Name: "route", At: t0.Add(4 * time.Millisecond)},
	}
	if err := s.AddStages(ctx, "m", again); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStages(ctx, "m", nil); err != nil {
		t.Errorf("AddStages(nil): %v", err)
	}
	got := get(t, s, "m").Stages
	want := []store.Stage{
		{Seq: 1, Name: "filter", At: us(t0.Add(time.Millisecond))},
		{Seq: 2, Name: "transform[0] set", At: us(t0.Add(2 * time.Millisecond)), Output: []byte("MSH|changed")},
		{Seq: 3, Name: "route", At: us(t0.Add(3 * time.Millisecond)), Error: "no destination matched"},
		{Seq: 4, Name: "route", At: us(t0.Add(4 * time.Millisecond))},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stages:\n got %+v\nwant %+v", got, want)
	}
}

// testAddStageSets records the stages of a processor's pass in one call: each message gets
// its own, a repeat changes nothing, and a set naming a missing message fails the call and
// writes none of it.
func testAddStageSets(t *testing.T, s store.Store) {
	put(t, s, msg("a", t0), msg("b", t0.Add(time.Second)), msg("c", t0.Add(2*time.Second)))
	ctx := t.Context()
	filter := func(at time.Time) store.Stage { return store.Stage{Seq: 1, Name: "filter", At: at} }
	set := func(at time.Time, body string) store.Stage {
		return store.Stage{Seq: 2, Name: "transform[0] set", At: at, Output: []byte(body)}
	}
	sets := []store.StageSet{
		{MessageID: "a", Stages: []store.Stage{filter(t0), set(t0, "MSH|a")}},
		{MessageID: "b"}, // filtered out before any stage: nothing to write
		{MessageID: "c", Stages: []store.Stage{filter(t0), set(t0, "MSH|c")}},
	}
	if err := s.AddStageSets(ctx, sets); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStageSets(ctx, sets); err != nil { // a redelivered pass
		t.Fatal(err)
	}
	if err := s.AddStageSets(ctx, nil); err != nil {
		t.Errorf("AddStageSets(nil): %v", err)
	}
	for id, want := range map[string][]store.Stage{
		"a": {filter(us(t0)), set(us(t0), "MSH|a")},
		"b": nil,
		"c": {filter(us(t0)), set(us(t0), "MSH|c")},
	} {
		if got := get(t, s, id).Stages; !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("stages of %s:\n got %+v\nwant %+v", id, got, want)
		}
	}

	err := s.AddStageSets(ctx, []store.StageSet{
		{MessageID: "b", Stages: []store.Stage{filter(t0)}},
		{MessageID: "gone", Stages: []store.Stage{filter(t0)}},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a set naming a missing message: %v, want ErrNotFound", err)
	}
	if got := get(t, s, "b").Stages; len(got) != 0 {
		t.Errorf("the failed call wrote stages of b: %+v", got)
	}
}

func testDeliveries(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0), msg("n", t0))
	ctx := t.Context()
	putDeliveries(t, s,
		store.Delivery{MessageID: "m", Destination: "ris-out", Status: store.DeliveryQueued, UpdatedAt: t0, Payload: []byte("ORU 1")},
		store.Delivery{MessageID: "m", Channel: "explicit", Destination: "ehr-fhir", UpdatedAt: t0, Payload: []byte(`{"resourceType":"Bundle"}`)},
	)
	d := delivery(t, s, "m", "ris-out")
	want := store.Delivery{MessageID: "m", Channel: "ris-in", Destination: "ris-out", Status: store.DeliveryQueued,
		UpdatedAt: us(t0), Payload: []byte("ORU 1")}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Delivery:\n got %+v\nwant %+v", d, want)
	}
	if d := delivery(t, s, "m", "ehr-fhir"); d.Channel != "explicit" || d.Status != store.DeliveryQueued {
		t.Errorf("explicit channel or default status lost: %+v", d)
	}
	// A delivery of the message as received keeps no copy of it; its payload is the raw bytes,
	// before and after an attempt, so a dead letter of it can be requeued.
	putDeliveries(t, s, store.Delivery{MessageID: "n", Destination: "archive", Status: store.DeliveryQueued, UpdatedAt: t0})
	if d := delivery(t, s, "n", "archive"); !bytes.Equal(d.Payload, msg("n", t0).Raw) {
		t.Errorf("delivery without its own payload: payload %q, want the message's raw bytes", d.Payload)
	}
	if err := s.AddAttempt(ctx, "n", store.Attempt{Destination: "archive", Number: 1, At: t0, Error: "refused"},
		store.DeliveryDeadLetter); err != nil {
		t.Fatal(err)
	}
	if d := delivery(t, s, "n", "archive"); d.Status != store.DeliveryDeadLetter || !bytes.Equal(d.Payload, msg("n", t0).Raw) {
		t.Errorf("dead letter without its own payload: %s, payload %q", d.Status, d.Payload)
	}

	// Replace one row.
	putDeliveries(t, s, store.Delivery{MessageID: "m", Destination: "ris-out", Status: store.DeliveryDeadLetter,
		Attempts: 3, LastError: "connection refused", UpdatedAt: t0.Add(time.Minute), Payload: []byte("ORU 2")})
	d = delivery(t, s, "m", "ris-out")
	want = store.Delivery{MessageID: "m", Channel: "ris-in", Destination: "ris-out", Status: store.DeliveryDeadLetter,
		Attempts: 3, LastError: "connection refused", UpdatedAt: us(t0.Add(time.Minute)), Payload: []byte("ORU 2")}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("replaced Delivery:\n got %+v\nwant %+v", d, want)
	}

	// Get lists them by destination, without payloads (Delivery has those).
	got := get(t, s, "m").Deliveries
	if len(got) != 2 || got[0].Destination != "ehr-fhir" || got[1].Destination != "ris-out" {
		t.Fatalf("Get deliveries = %+v", got)
	}
	if got[1].Status != store.DeliveryDeadLetter || got[1].Attempts != 3 || got[0].Payload != nil || got[1].Payload != nil {
		t.Errorf("Get deliveries = %+v", got)
	}

	// A batch naming a missing message fails as a whole.
	err := s.PutDeliveries(ctx, []store.Delivery{
		{MessageID: "n", Destination: "ris-out"},
		{MessageID: "missing", Destination: "ris-out"},
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutDeliveries for a missing message: %v, want ErrNotFound", err)
	}
	if _, err := s.Delivery(ctx, "n", "ris-out"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("partial PutDeliveries batch was written: %v", err)
	}
	if err := s.PutDeliveries(ctx, []store.Delivery{{MessageID: "m", Destination: "x", Status: "lost"}}); err == nil {
		t.Error("PutDeliveries accepted an unknown status")
	}
}

func testAddAttempt(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	ctx := t.Context()
	putDeliveries(t, s, store.Delivery{MessageID: "m", Destination: "ris-out", UpdatedAt: t0, Payload: []byte("p")})
	if err := s.SetStatus(ctx, "m", store.StatusQueued, ""); err != nil {
		t.Fatal(err)
	}

	a1 := store.Attempt{Destination: "ris-out", Number: 1, At: t0.Add(time.Second), Duration: 1500 * time.Millisecond,
		Error: "read tcp: i/o timeout"}
	addAttempt(t, s, "m", a1, store.DeliveryQueued)
	d := delivery(t, s, "m", "ris-out")
	if d.Status != store.DeliveryQueued || d.Attempts != 1 || d.LastError != a1.Error || !d.UpdatedAt.Equal(us(a1.At)) {
		t.Errorf("after failed attempt: %+v", d)
	}
	if !bytes.Equal(d.Payload, []byte("p")) {
		t.Errorf("attempt lost the payload: %q", d.Payload)
	}
	if st := get(t, s, "m").Message.Status; st != store.StatusQueued {
		t.Errorf("message status after a retryable failure = %q, want queued", st)
	}

	a2 := store.Attempt{Destination: "ris-out", Number: 2, At: t0.Add(3 * time.Second), Duration: 42 * time.Millisecond,
		OK: true, ReplySummary: "AA", Reply: []byte("MSH|...\rMSA|AA|C-m\r"), Sent: []byte("MSH|sent")}
	addAttempt(t, s, "m", a2, store.DeliverySent)
	d = delivery(t, s, "m", "ris-out")
	if d.Status != store.DeliverySent || d.Attempts != 2 || d.LastError != "" {
		t.Errorf("after successful attempt: %+v", d)
	}
	det := get(t, s, "m")
	if det.Message.Status != store.StatusSent || det.Message.Error != "" {
		t.Errorf("message after the only destination was sent: %q %q", det.Message.Status, det.Message.Error)
	}
	want1, want2 := a1, a2
	want1.At, want2.At = us(a1.At), us(a2.At)
	if !reflect.DeepEqual(det.Attempts, []store.Attempt{want1, want2}) {
		t.Errorf("attempts:\n got %+v\nwant %+v", det.Attempts, []store.Attempt{want1, want2})
	}

	// No delivery row yet: the attempt creates it, with the message's channel.
	addAttempt(t, s, "m", store.Attempt{Destination: "audit", Number: 1, At: t0, OK: true}, store.DeliverySent)
	if d := delivery(t, s, "m", "audit"); d.Channel != "ris-in" || d.Status != store.DeliverySent || d.Attempts != 1 {
		t.Errorf("delivery created by AddAttempt = %+v", d)
	}

	invalid := []struct {
		name   string
		a      store.Attempt
		status store.DeliveryStatus
	}{
		{"unknown status", store.Attempt{Destination: "ris-out", Number: 9}, "lost"},
		{"no destination", store.Attempt{Number: 9}, store.DeliverySent},
		{"number zero", store.Attempt{Destination: "ris-out"}, store.DeliverySent},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.AddAttempt(ctx, "m", tc.a, tc.status); err == nil {
				t.Error("AddAttempt accepted it")
			}
		})
	}
	if d := delivery(t, s, "m", "ris-out"); d.Attempts != 2 {
		t.Errorf("rejected attempts were counted: %+v", d)
	}
}

func testAddAttemptIdempotent(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	putDeliveries(t, s, store.Delivery{MessageID: "m", Destination: "ris-out", UpdatedAt: t0})
	first := store.Attempt{Destination: "ris-out", Number: 1, At: t0, Error: "refused"}
	addAttempt(t, s, "m", first, store.DeliveryQueued)
	// The same attempt redelivered, even with other content, changes nothing.
	replay := store.Attempt{Destination: "ris-out", Number: 1, At: t0.Add(time.Hour), OK: true, ReplySummary: "AA"}
	addAttempt(t, s, "m", replay, store.DeliverySent)
	addAttempt(t, s, "m", first, store.DeliveryQueued)

	d := delivery(t, s, "m", "ris-out")
	if d.Attempts != 1 || d.Status != store.DeliveryQueued || d.LastError != "refused" {
		t.Errorf("after replayed attempts: %+v, want 1 attempt, queued, refused", d)
	}
	det := get(t, s, "m")
	if len(det.Attempts) != 1 || det.Attempts[0].OK || !det.Attempts[0].At.Equal(us(t0)) {
		t.Errorf("attempt rows: %+v", det.Attempts)
	}
	if det.Message.Status != store.StatusReceived {
		t.Errorf("replayed attempt changed the message status to %q", det.Message.Status)
	}
}

func testStatusRecomputation(t *testing.T, s store.Store) {
	type step struct {
		dest   string
		status store.DeliveryStatus
	}
	tests := []struct {
		name      string
		dests     []string
		steps     []step
		want      store.Status
		wantError string // substring of the message error
	}{
		{"one sent", []string{"a"}, []step{{"a", store.DeliverySent}}, store.StatusSent, ""},
		{"one of two sent", []string{"a", "b"}, []step{{"a", store.DeliverySent}}, store.StatusQueued, ""},
		{"both sent", []string{"a", "b"}, []step{{"a", store.DeliverySent}, {"b", store.DeliverySent}}, store.StatusSent, ""},
		{"sent and dead", []string{"a", "b"}, []step{{"a", store.DeliverySent}, {"b", store.DeliveryDeadLetter}}, store.StatusError, "b"},
		{"dead then sent", []string{"a", "b"}, []step{{"a", store.DeliveryDeadLetter}, {"b", store.DeliverySent}}, store.StatusError, "a"},
		{"dead with one queued", []string{"a", "b"}, []step{{"a", store.DeliveryDeadLetter}}, store.StatusQueued, ""},
		{"retry keeps queued", []string{"a"}, []step{{"a", store.DeliveryQueued}}, store.StatusQueued, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("r%d", i)
			put(t, s, msg(id, t0))
			if err := s.SetStatus(t.Context(), id, store.StatusQueued, ""); err != nil {
				t.Fatal(err)
			}
			for _, d := range tc.dests {
				putDeliveries(t, s, store.Delivery{MessageID: id, Destination: d, UpdatedAt: t0})
			}
			for n, st := range tc.steps {
				a := store.Attempt{Destination: st.dest, Number: 1, At: t0.Add(time.Duration(n) * time.Second),
					OK: st.status == store.DeliverySent, Error: "err-" + st.dest}
				if a.OK {
					a.Error = ""
				}
				addAttempt(t, s, id, a, st.status)
			}
			m := get(t, s, id).Message
			if m.Status != tc.want {
				t.Errorf("status = %q, want %q", m.Status, tc.want)
			}
			if tc.wantError != "" && !strings.Contains(m.Error, tc.wantError) {
				t.Errorf("error %q does not name destination %q", m.Error, tc.wantError)
			}
			if tc.want == store.StatusSent && m.Error != "" {
				t.Errorf("sent message carries error %q", m.Error)
			}
		})
	}
}

// searchSet is a small history every filter can be checked against. No raw body holds
// '%' or '_' except where the text tests need them.
func searchSet() []store.Message {
	m := func(id, ch string, min int, typ, ctrl, pid, acc, sender string, st store.Status, raw string) store.Message {
		return store.Message{ID: id, Channel: ch, ContentType: "application/hl7-v2", Raw: []byte(raw),
			ReceivedAt: t0.Add(time.Duration(min) * time.Minute), ControlID: ctrl, MessageType: typ,
			PatientID: pid, Accession: acc, Sender: sender, Status: st, UpdatedAt: t0}
	}
	return []store.Message{
		m("s01", "ris-in", 1, "ADT^A01", "C1", "P1", "", "RIS^HOSP", store.StatusSent, "MSH|^~\\&|RIS|HOSP\rPID|1||P1||Müller^Hans\r"),
		m("s02", "ris-in", 2, "ADT^A08", "C2", "P1", "", "RIS^HOSP", store.StatusError, "MSH|^~\\&|RIS|HOSP\rNTE|1||50% dose\r"),
		m("s03", "ris-in", 3, "ORM^O01", "C3", "P2", "A100", "RIS^HOSP", store.StatusQueued, "MSH|^~\\&|RIS|HOSP\rOBR|1||a_b\r"),
		m("s04", "pacs-in", 4, "ORU^R01", "C4", "P2", "A100", "PACS^HOSP", store.StatusSent, "MSH|^~\\&|PACS|HOSP\rOBX|1|TX|axb 50x\r"),
		m("s05", "pacs-in", 5, "ADT^A01", "C1", "P3", "", "PACS^HOSP", store.StatusRejected, "MSH|^~\\&|PACS|HOSP\rPID|1||P3||MÜLLER^ANNA\r"),
		m("s06", "ris-in", 0, "ADT^A01", "C6", "P4", "", "RIS^HOSP", store.StatusReceived, "MSH|^~\\&|RIS|HOSP\rPID|1||P4||müller^eva\r"),
	}
}

func testSearch(t *testing.T, s store.Store) {
	put(t, s, searchSet()...)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	tests := []struct {
		name string
		q    store.Query
		want []string
	}{
		{"all newest first", store.Query{}, []string{"s05", "s04", "s03", "s02", "s01", "s06"}},
		{"channel", store.Query{Channel: "ris-in"}, []string{"s03", "s02", "s01", "s06"}},
		{"status", store.Query{Status: store.StatusSent}, []string{"s04", "s01"}},
		{"from inclusive", store.Query{From: at(2)}, []string{"s05", "s04", "s03", "s02"}},
		{"to exclusive", store.Query{To: at(2)}, []string{"s01", "s06"}},
		{"from and to", store.Query{From: at(2), To: at(4)}, []string{"s03", "s02"}},
		{"from in another zone", store.Query{From: at(4).In(time.FixedZone("EST", -5*3600))}, []string{"s05", "s04"}},
		{"type family prefix", store.Query{MessageType: "ADT"}, []string{"s05", "s02", "s01", "s06"}},
		{"type exact", store.Query{MessageType: "ADT^A01"}, []string{"s05", "s01", "s06"}},
		{"type partial", store.Query{MessageType: "ADT^A0"}, []string{"s05", "s02", "s01", "s06"}},
		{"type prefix is case-sensitive", store.Query{MessageType: "adt"}, nil},
		{"type percent literal", store.Query{MessageType: "A%"}, nil},
		{"type underscore literal", store.Query{MessageType: "AD_"}, nil},
		{"type star literal", store.Query{MessageType: "A*"}, nil},
		{"type question literal", store.Query{MessageType: "AD?"}, nil},
		{"control id", store.Query{ControlID: "C1"}, []string{"s05", "s01"}},
		{"patient id", store.Query{PatientID: "P2"}, []string{"s04", "s03"}},
		{"accession", store.Query{Accession: "A100"}, []string{"s04", "s03"}},
		{"sender", store.Query{Sender: "PACS^HOSP"}, []string{"s05", "s04"}},
		{"text lower", store.Query{Text: "müller"}, []string{"s05", "s01", "s06"}},
		{"text upper", store.Query{Text: "MÜLLER"}, []string{"s05", "s01", "s06"}},
		{"text mixed", store.Query{Text: "Müller^"}, []string{"s05", "s01", "s06"}},
		{"text across fields", store.Query{Text: "||p1||"}, []string{"s01"}},
		{"text percent literal", store.Query{Text: "50%"}, []string{"s02"}},
		{"text percent alone", store.Query{Text: "%"}, []string{"s02"}},
		{"text underscore literal", store.Query{Text: "a_b"}, []string{"s03"}},
		{"text underscore alone", store.Query{Text: "_"}, []string{"s03"}},
		{"text no match", store.Query{Text: "schmidt"}, nil},
		{"channel and patient", store.Query{Channel: "ris-in", PatientID: "P1"}, []string{"s02", "s01"}},
		{"channel and control id", store.Query{Channel: "pacs-in", ControlID: "C1"}, []string{"s05"}},
		{"control id and sender", store.Query{ControlID: "C1", Sender: "RIS^HOSP"}, []string{"s01"}},
		{"status and type", store.Query{Status: store.StatusSent, MessageType: "ORU"}, []string{"s04"}},
		{"text, channel and time", store.Query{Text: "MÜLLER", Channel: "ris-in", From: at(1)}, []string{"s01"}},
		{"everything", store.Query{Channel: "ris-in", Status: store.StatusQueued, From: at(3), To: at(4),
			MessageType: "ORM", ControlID: "C3", PatientID: "P2", Accession: "A100", Sender: "RIS^HOSP", Text: "A_B"},
			[]string{"s03"}},
		{"no match", store.Query{PatientID: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Search(t.Context(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Messages); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("Search(%+v) = %v, want %v", tc.q, got, tc.want)
			}
			if p.Next != "" {
				t.Errorf("Next = %q on a complete page", p.Next)
			}
			for _, m := range p.Messages {
				if len(m.Raw) != 0 {
					t.Errorf("search result %s carries its raw body", m.ID)
				}
			}
		})
	}

	// Every field but Raw comes back.
	p, err := s.Search(t.Context(), store.Query{ControlID: "C3"})
	if err != nil || len(p.Messages) != 1 {
		t.Fatalf("Search: %v %v", p, err)
	}
	want := searchSet()[2]
	want.Raw = nil
	want.ReceivedAt, want.UpdatedAt = us(want.ReceivedAt), us(want.UpdatedAt)
	got := p.Messages[0]
	got.Raw = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("search row:\n got %+v\nwant %+v", got, want)
	}
}

func testSearchLimit(t *testing.T, s store.Store) {
	const n = store.MaxLimit + 100
	batch := make([]store.Message, 0, n)
	for i := range n {
		m := msg(fmt.Sprintf("l%05d", i), t0.Add(time.Duration(i)*time.Millisecond))
		m.Raw = []byte("x")
		batch = append(batch, m)
	}
	put(t, s, batch...)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"default", 0, store.DefaultLimit},
		{"negative", -5, store.DefaultLimit},
		{"small", 7, 7},
		{"max", store.MaxLimit, store.MaxLimit},
		{"over max", 5 * store.MaxLimit, store.MaxLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Search(t.Context(), store.Query{Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Messages) != tc.want || p.Next == "" {
				t.Errorf("Limit %d: %d messages, next %q; want %d and a cursor", tc.limit, len(p.Messages), p.Next, tc.want)
			}
			if len(p.Messages) > 0 && p.Messages[0].ID != fmt.Sprintf("l%05d", n-1) {
				t.Errorf("first result %s, want the newest", p.Messages[0].ID)
			}
		})
	}
	// A page that exactly exhausts the results has no next cursor.
	p, err := s.Search(t.Context(), store.Query{Limit: 100, To: t0.Add(100 * time.Millisecond)})
	if err != nil || len(p.Messages) != 100 || p.Next != "" {
		t.Errorf("exact last page: %d messages, next %q, %v", len(p.Messages), p.Next, err)
	}
}

func testPagination(t *testing.T, s store.Store) {
	// 40 messages, five to a timestamp, ids not in insertion order, in two channels.
	var batch []store.Message
	for i := range 40 {
		m := msg(fmt.Sprintf("p%02d", (i*17)%40), t0.Add(time.Duration(i/5)*time.Second))
		if i%3 == 0 {
			m.Channel = "other"
		}
		batch = append(batch, m)
	}
	put(t, s, batch...)
	order := func(channel string) []string {
		ms := slices.Clone(batch)
		ms = slices.DeleteFunc(ms, func(m store.Message) bool { return channel != "" && m.Channel != channel })
		slices.SortFunc(ms, func(a, b store.Message) int {
			if c := b.ReceivedAt.Compare(a.ReceivedAt); c != 0 {
				return c
			}
			return strings.Compare(b.ID, a.ID)
		})
		return ids(ms)
	}
	for _, channel := range []string{"", "ris-in"} {
		for _, size := range []int{1, 3, 4, 5, 7, 40, 100} {
			t.Run(fmt.Sprintf("channel=%q/limit=%d", channel, size), func(t *testing.T) {
				got := all(t, s, store.Query{Channel: channel, Limit: size})
				if want := order(channel); !slices.Equal(got, want) {
					t.Errorf("walk:\n got %v\nwant %v", got, want)
				}
			})
		}
	}

	t.Run("stable under new messages", func(t *testing.T) {
		p1, err := s.Search(t.Context(), store.Query{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		put(t, s, msg("newer", t0.Add(time.Hour)))
		rest := all(t, s, store.Query{Limit: 10, Cursor: p1.Next})
		got := append(ids(p1.Messages), rest...)
		if want := order(""); !slices.Equal(got, want) {
			t.Errorf("walk with an insert in between:\n got %v\nwant %v", got, want)
		}
	})
}

func testInvalidCursor(t *testing.T, s store.Store) {
	put(t, s, msg("a", t0), msg("b", t0))
	putDeliveries(t, s,
		store.Delivery{MessageID: "a", Destination: "x", Status: store.DeliveryDeadLetter, UpdatedAt: t0},
		store.Delivery{MessageID: "b", Destination: "x", Status: store.DeliveryDeadLetter, UpdatedAt: t0})
	sp, err := s.Search(t.Context(), store.Query{Limit: 1})
	if err != nil || sp.Next == "" {
		t.Fatalf("Search: %+v %v", sp, err)
	}
	dp, err := s.DeadLetters(t.Context(), store.DeadLetterQuery{Limit: 1})
	if err != nil || dp.Next == "" {
		t.Fatalf("DeadLetters: %+v %v", dp, err)
	}
	for _, c := range []string{"garbage!", "e30", dp.Next} {
		if _, err := s.Search(t.Context(), store.Query{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("Search(cursor %q): %v, want ErrInvalidCursor", c, err)
		}
	}
	for _, c := range []string{"garbage!", "e30", sp.Next} {
		if _, err := s.DeadLetters(t.Context(), store.DeadLetterQuery{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("DeadLetters(cursor %q): %v, want ErrInvalidCursor", c, err)
		}
	}
}

func testDeadLetters(t *testing.T, s store.Store) {
	type dl struct{ id, ch, dest string }
	var want []dl // newest first
	var msgs []store.Message
	var ds []store.Delivery
	for i := range 12 {
		id := fmt.Sprintf("d%02d", i)
		m := msg(id, t0)
		m.Channel = []string{"ris-in", "pacs-in"}[i%2]
		msgs = append(msgs, m)
		dest := []string{"ris-out", "ehr-fhir", "pacs-sr"}[i%3]
		// Pairs of messages share an instant, to exercise the tie-break.
		upd := t0.Add(time.Duration(i/2) * time.Minute)
		ds = append(ds,
			store.Delivery{MessageID: id, Destination: dest, Status: store.DeliveryDeadLetter, Attempts: 5,
				LastError: "refused", UpdatedAt: upd, Payload: []byte("payload-" + id)},
			store.Delivery{MessageID: id, Destination: "sent-dest", Status: store.DeliverySent, UpdatedAt: upd},
			store.Delivery{MessageID: id, Destination: "queued-dest", Status: store.DeliveryQueued, UpdatedAt: upd})
	}
	put(t, s, msgs...)
	putDeliveries(t, s, ds...)
	for i := 11; i >= 0; i-- {
		want = append(want, dl{msgs[i].ID, msgs[i].Channel, ds[3*i].Destination})
	}
	filter := func(f func(dl) bool) []dl {
		var out []dl
		for _, d := range want {
			if f(d) {
				out = append(out, d)
			}
		}
		return out
	}
	tests := []struct {
		name string
		q    store.DeadLetterQuery
		want []dl
	}{
		{"all", store.DeadLetterQuery{}, want},
		{"channel", store.DeadLetterQuery{Channel: "pacs-in"}, filter(func(d dl) bool { return d.ch == "pacs-in" })},
		{"destination", store.DeadLetterQuery{Destination: "ehr-fhir"}, filter(func(d dl) bool { return d.dest == "ehr-fhir" })},
		{"both", store.DeadLetterQuery{Channel: "ris-in", Destination: "ris-out"},
			filter(func(d dl) bool { return d.ch == "ris-in" && d.dest == "ris-out" })},
		{"none", store.DeadLetterQuery{Destination: "sent-dest"}, nil},
	}
	for _, tc := range tests {
		for _, size := range []int{0, 1, 5} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, size), func(t *testing.T) {
				q := tc.q
				q.Limit = size
				var got []dl
				for pages := 0; pages < 100; pages++ {
					p, err := s.DeadLetters(t.Context(), q)
					if err != nil {
						t.Fatal(err)
					}
					for _, d := range p.Deliveries {
						if d.Status != store.DeliveryDeadLetter || d.Attempts != 5 || d.LastError != "refused" || d.Payload != nil {
							t.Errorf("dead letter row %+v", d)
						}
						got = append(got, dl{d.MessageID, d.Channel, d.Destination})
					}
					if p.Next == "" {
						break
					}
					q.Cursor = p.Next
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("dead letters:\n got %v\nwant %v", got, tc.want)
				}
			})
		}
	}
	// The payload for a requeue comes from Delivery.
	if d := delivery(t, s, "d03", ds[9].Destination); string(d.Payload) != "payload-d03" {
		t.Errorf("dead letter payload = %q", d.Payload)
	}
}

// seed puts n messages of one channel received at `at` (plus i microseconds), each with
// two stages, a delivery and an attempt.
func seed(t *testing.T, s store.Store, prefix, channel string, at time.Time, n int) {
	t.Helper()
	var batch []store.Message
	var ds []store.Delivery
	for i := range n {
		m := msg(fmt.Sprintf("%s%05d", prefix, i), at.Add(time.Duration(i)*time.Microsecond))
		m.Channel = channel
		batch = append(batch, m)
		ds = append(ds, store.Delivery{MessageID: m.ID, Destination: "out", Status: store.DeliveryDeadLetter, UpdatedAt: at})
	}
	put(t, s, batch...)
	putDeliveries(t, s, ds...)
	for _, m := range batch {
		if err := s.AddStages(t.Context(), m.ID, []store.Stage{{Seq: 1, Name: "filter", At: at}, {Seq: 2, Name: "route", At: at}}); err != nil {
			t.Fatal(err)
		}
		addAttempt(t, s, m.ID, store.Attempt{Destination: "out", Number: 1, At: at, Error: "refused"}, store.DeliveryDeadLetter)
	}
}

func testPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := t0.Add(-30 * 24 * time.Hour)
	seed(t, s, "old", "ris-in", old, 23)
	seed(t, s, "new", "ris-in", t0, 4)
	seed(t, s, "oth", "pacs-in", old, 5)

	n, err := s.Prune(ctx, "ris-in", t0, 7) // 23 rows: batches of 7, 7, 7, 2
	if err != nil || n != 23 {
		t.Fatalf("Prune = %d, %v; want 23", n, err)
	}
	for _, id := range []string{"old00000", "old00022"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%s) after prune: %v, want ErrNotFound", id, err)
		}
		if _, err := s.Delivery(ctx, id, "out"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Delivery(%s) after prune: %v, want ErrNotFound", id, err)
		}
	}
	if got := len(all(t, s, store.Query{Channel: "ris-in", Limit: 1000})); got != 4 {
		t.Errorf("ris-in keeps %d messages, want the 4 newer ones", got)
	}
	if got := len(all(t, s, store.Query{Channel: "pacs-in", Limit: 1000})); got != 5 {
		t.Errorf("pacs-in keeps %d messages, want 5 (another channel)", got)
	}
	det := get(t, s, "new00003")
	if len(det.Stages) != 2 || len(det.Attempts) != 1 || len(det.Deliveries) != 1 {
		t.Errorf("kept message lost its history: %+v", det)
	}
	dl, err := s.DeadLetters(ctx, store.DeadLetterQuery{Channel: "ris-in", Limit: 1000})
	if err != nil || len(dl.Deliveries) != 4 {
		t.Errorf("dead letters of ris-in after prune: %d, %v; want 4", len(dl.Deliveries), err)
	}
	// The cutoff is exclusive: a message received exactly at it stays.
	if n, err := s.Prune(ctx, "ris-in", t0, 0); err != nil || n != 0 {
		t.Errorf("Prune at the newest cutoff = %d, %v; want 0", n, err)
	}
	if n, err := s.Prune(ctx, "ris-in", t0.Add(time.Microsecond), 0); err != nil || n != 1 {
		t.Errorf("Prune one microsecond later = %d, %v; want 1", n, err)
	}
	if n, err := s.Prune(ctx, "pacs-in", t0, 100); err != nil || n != 5 {
		t.Errorf("Prune pacs-in in one batch = %d, %v; want 5", n, err)
	}
}

func testPruneDuringIngest(t *testing.T, s store.Store) {
	ctx := t.Context()
	const old, fresh, batch = 3000, 400, 20
	var oldMsgs []store.Message
	for i := range old {
		m := msg(fmt.Sprintf("o%05d", i), t0.Add(-time.Hour+time.Duration(i)*time.Microsecond))
		m.Raw = bytes.Repeat([]byte("x"), 512)
		oldMsgs = append(oldMsgs, m)
	}
	for i := 0; i < old; i += 500 {
		put(t, s, oldMsgs[i:i+500]...)
	}

	var wg sync.WaitGroup
	var pruned int64
	var pruneErr, putErr error
	wg.Go(func() {
		pruned, pruneErr = s.Prune(ctx, "ris-in", t0, 50)
	})
	wg.Go(func() {
		for i := 0; i < fresh; i += batch {
			var ms []store.Message
			for j := i; j < i+batch; j++ {
				m := msg(fmt.Sprintf("f%05d", j), t0.Add(time.Duration(j)*time.Microsecond))
				if j%2 == 1 {
					m.Channel = "pacs-in"
				}
				ms = append(ms, m)
			}
			if err := s.PutMessages(ctx, ms); err != nil {
				putErr = err
				return
			}
		}
	})
	wg.Wait()
	if pruneErr != nil || putErr != nil {
		t.Fatalf("prune: %v; put: %v", pruneErr, putErr)
	}
	if pruned != old {
		t.Errorf("pruned %d, want %d", pruned, old)
	}
	if got := len(all(t, s, store.Query{Channel: "ris-in", Limit: 1000})); got != fresh/2 {
		t.Errorf("ris-in holds %d messages, want the %d ingested during the prune", got, fresh/2)
	}
	if got := len(all(t, s, store.Query{Channel: "pacs-in", Limit: 1000})); got != fresh/2 {
		t.Errorf("pacs-in holds %d messages, want %d", got, fresh/2)
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, each = 8, 15
	errs := make(chan error, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%02d", w, i)
				if err := func() error {
					m := msg(id, t0.Add(time.Duration(w*each+i)*time.Millisecond))
					// Every message twice, as a redelivering source would.
					if err := s.PutMessages(ctx, []store.Message{m, m}); err != nil {
						return err
					}
					if err := s.AddStages(ctx, id, []store.Stage{{Seq: 1, Name: "filter"}, {Seq: 2, Name: "route"}}); err != nil {
						return err
					}
					if err := s.SetStatus(ctx, id, store.StatusQueued, ""); err != nil {
						return err
					}
					if err := s.PutDeliveries(ctx, []store.Delivery{{MessageID: id, Destination: "a"}, {MessageID: id, Destination: "b"}}); err != nil {
						return err
					}
					for _, d := range []string{"a", "b"} {
						if err := s.AddAttempt(ctx, id, store.Attempt{Destination: d, Number: 1, OK: true}, store.DeliverySent); err != nil {
							return err
						}
					}
					_, err := s.Search(ctx, store.Query{ControlID: "C-" + id})
					return err
				}(); err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := all(t, s, store.Query{Limit: 1000})
	if len(got) != writers*each {
		t.Fatalf("store holds %d messages, want %d", len(got), writers*each)
	}
	for _, id := range got {
		d := get(t, s, id)
		if d.Message.Status != store.StatusSent || len(d.Stages) != 2 || len(d.Attempts) != 2 || len(d.Deliveries) != 2 {
			t.Errorf("%s: status %q, %d stages, %d attempts, %d deliveries", id, d.Message.Status,
				len(d.Stages), len(d.Attempts), len(d.Deliveries))
		}
	}
}

// testConcurrentAttempts finishes the destinations of one message at the same time: the
// last one to finish must see the others and set the message status.
func testConcurrentAttempts(t *testing.T, s store.Store) {
	const dests = 8
	tests := []struct {
		name string
		dead int // how many destinations dead-letter
		want store.Status
	}{
		{"all sent", 0, store.StatusSent},
		{"one dead", 1, store.StatusError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			id := "hot-" + strings.ReplaceAll(tc.name, " ", "-")
			put(t, s, msg(id, t0))
			if err := s.SetStatus(ctx, id, store.StatusQueued, ""); err != nil {
				t.Fatal(err)
			}
			var ds []store.Delivery
			for d := range dests {
				ds = append(ds, store.Delivery{MessageID: id, Destination: fmt.Sprintf("d%d", d)})
			}
			putDeliveries(t, s, ds...)
			errs := make(chan error, 2*dests)
			var wg sync.WaitGroup
			for d := range dests {
				wg.Go(func() {
					st := store.DeliverySent
					if d < tc.dead {
						st = store.DeliveryDeadLetter
					}
					a := store.Attempt{Destination: fmt.Sprintf("d%d", d), Number: 1, OK: st == store.DeliverySent}
					for range 2 { // and each redelivered
						if err := s.AddAttempt(ctx, id, a, st); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			det := get(t, s, id)
			if det.Message.Status != tc.want {
				t.Errorf("message status %q, want %q", det.Message.Status, tc.want)
			}
			for _, d := range det.Deliveries {
				if d.Attempts != 1 {
					t.Errorf("%s counted %d attempts, want 1", d.Destination, d.Attempts)
				}
			}
		})
	}
}

func testLargeRaw(t *testing.T, s store.Store) {
	const size = 5 << 20
	raw := make([]byte, 0, size)
	raw = append(raw, "MSH|^~\\&|PACS|HOSP|OSPREY|HOSP|20260314||ORU^R01|BIG|P|2.5.1\r"...)
	line := []byte("OBX|1|ED|PDF^Report||^application^pdf^Base64^JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+Pgo=\r")
	for len(raw)+len(line) < size-64 {
		raw = append(raw, line...)
	}
	raw = append(raw, "NTE|1||Ende: Größe ÜBERPRÜFT\r"...)
	m := msg("big", t0)
	m.Raw = raw
	put(t, s, m)
	if got := get(t, s, "big").Message.Raw; !bytes.Equal(got, raw) {
		t.Errorf("5 MB raw came back as %d bytes, equal=%v", len(got), bytes.Equal(got, raw))
	}
	p, err := s.Search(t.Context(), store.Query{Text: "größe überprüft"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p.Messages), []string{"big"}) || len(p.Messages[0].Raw) != 0 {
		t.Errorf("text search in a 5 MB body: %v", ids(p.Messages))
	}
}

// testLargePayload follows large bodies through a message's life: a store may keep them
// apart from the rows whose status every stage and attempt changes, and must still give
// each back whole, whichever way the delivery's payload is later replaced.
func testLargePayload(t *testing.T, s store.Store) {
	big := func(seg string, size int) []byte {
		b := []byte("MSH|^~\\&|PACS|HOSP|RIS|HOSP|20260314||" + seg + "|BIG|P|2.5.1\r")
		for i := 0; len(b) < size; i++ {
			b = append(b, fmt.Sprintf("OBX|%d|TX|REPORT||line %d of the %s report\r", i+1, i, seg)...)
		}
		return b
	}
	m := msg("big", t0)
	m.Raw = big("ORU^R01", 300<<10)
	put(t, s, m)
	transformed := big("ORU^R01^ORU_R01", 200<<10)
	putDeliveries(t, s,
		store.Delivery{MessageID: "big", Destination: "ris-out", Status: store.DeliveryQueued, UpdatedAt: t0, Payload: transformed},
		store.Delivery{MessageID: "big", Destination: "archive", Status: store.DeliveryQueued, UpdatedAt: t0})
	addAttempt(t, s, "big", store.Attempt{Destination: "ris-out", Number: 1, At: t0.Add(time.Second), Error: "connection refused"}, store.DeliveryQueued)
	addAttempt(t, s, "big", store.Attempt{Destination: "ris-out", Number: 2, At: t0.Add(2 * time.Second), OK: true, ReplySummary: "AA"}, store.DeliverySent)
	addAttempt(t, s, "big", store.Attempt{Destination: "archive", Number: 1, At: t0.Add(2 * time.Second), OK: true, ReplySummary: "AA"}, store.DeliverySent)

	same := func(what string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d (equal prefix %v)", what, len(got), len(want),
				bytes.HasPrefix(want, got[:min(len(got), 64)]))
		}
	}
	d := delivery(t, s, "big", "ris-out")
	if d.Status != store.DeliverySent || d.Attempts != 2 {
		t.Errorf("ris-out after two attempts: %s, %d attempts", d.Status, d.Attempts)
	}
	same("ris-out payload after its attempts", d.Payload, transformed)
	same("archive payload, the message as received", delivery(t, s, "big", "archive").Payload, m.Raw)
	got := get(t, s, "big").Message
	same("raw after the deliveries", got.Raw, m.Raw)
	if got.Status != store.StatusSent {
		t.Errorf("message status %s, want sent", got.Status)
	}

	requeue := func(payload []byte) {
		t.Helper()
		putDeliveries(t, s, store.Delivery{MessageID: "big", Destination: "ris-out", Status: store.DeliveryQueued,
			UpdatedAt: t0.Add(time.Minute), Payload: payload})
	}
	requeue(transformed)
	same("requeued with its payload", delivery(t, s, "big", "ris-out").Payload, transformed)
	requeue(nil)
	same("requeued without a payload of its own", delivery(t, s, "big", "ris-out").Payload, m.Raw)
	requeue([]byte("small"))
	same("requeued with a small payload", delivery(t, s, "big", "ris-out").Payload, []byte("small"))
	other := big("ORM^O01", 100<<10)
	requeue(other)
	same("requeued with another large payload", delivery(t, s, "big", "ris-out").Payload, other)

	if n, err := s.Prune(t.Context(), "ris-in", t0.Add(time.Hour), 0); err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	if _, err := s.Delivery(t.Context(), "big", "ris-out"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delivery after prune: %v, want ErrNotFound", err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	put(t, s, msg("exists", t0))
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, "missing"); return err }},
		{"Delivery of missing message", func() error { _, err := s.Delivery(ctx, "missing", "out"); return err }},
		{"Delivery of missing destination", func() error { _, err := s.Delivery(ctx, "exists", "out"); return err }},
		{"SetStatus", func() error { return s.SetStatus(ctx, "missing", store.StatusSent, "") }},
		{"AddStages", func() error { return s.AddStages(ctx, "missing", []store.Stage{{Seq: 1, Name: "filter"}}) }},
		{"AddAttempt", func() error {
			err := s.AddAttempt(ctx, "missing", store.Attempt{Destination: "out", Number: 1}, store.DeliverySent)
			if err == nil {
				// A store that records attempts ahead of its tables (sqlite's attempt log)
				// learns only later that the message is not there, and drops the attempt:
				// it must not have made a delivery row of it.
				_, err = s.Delivery(ctx, "missing", "out")
			}
			return err
		}},
		{"PutDeliveries", func() error {
			return s.PutDeliveries(ctx, []store.Delivery{{MessageID: "missing", Destination: "out"}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("error %v, want ErrNotFound", err)
			}
		})
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"PutMessages", func() error { return s.PutMessages(ctx, []store.Message{msg("c", t0)}) }},
		{"Search", func() error { _, err := s.Search(ctx, store.Query{}); return err }},
		{"Get", func() error { _, err := s.Get(ctx, "c"); return err }},
		{"Prune", func() error { _, err := s.Prune(ctx, "ris-in", t0, 10); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
		})
	}
	if _, err := s.Get(t.Context(), "c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled PutMessages stored the message: %v", err)
	}
}

func testPingClose(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func testDeliveryStates(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0), msg("n", t0), msg("o", t0))
	ctx := t.Context()
	putDeliveries(t, s,
		store.Delivery{MessageID: "m", Destination: "ris-out", Status: store.DeliveryQueued, UpdatedAt: t0, Payload: []byte("ORU 1")},
		store.Delivery{MessageID: "n", Destination: "ris-out", Status: store.DeliverySent, Attempts: 2, UpdatedAt: t0, Payload: []byte("ORU 2")},
		store.Delivery{MessageID: "o", Destination: "ehr-fhir", Status: store.DeliveryQueued, UpdatedAt: t0},
	)
	got, err := s.DeliveryStates(ctx, "ris-out", []string{"m", "n", "o", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["m"].Status != store.DeliveryQueued || got["n"].Status != store.DeliverySent || got["n"].Attempts != 2 {
		t.Fatalf("DeliveryStates = %+v, want m queued and n sent with 2 attempts only", got)
	}
	if got["m"].Payload != nil || got["m"].Channel != "ris-in" {
		t.Errorf("state of m = %+v: want no payload and the message's channel", got["m"])
	}
	many := make([]string, 1200) // more than one statement's worth of parameters
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	many[1100] = "n"
	if got, err := s.DeliveryStates(ctx, "ris-out", many); err != nil || len(got) != 1 || got["n"].Status != store.DeliverySent {
		t.Errorf("DeliveryStates over 1200 ids = %+v, %v", got, err)
	}
	if got, err := s.DeliveryStates(ctx, "ris-out", nil); err != nil || len(got) != 0 {
		t.Errorf("DeliveryStates of no ids = %+v, %v", got, err)
	}
}
