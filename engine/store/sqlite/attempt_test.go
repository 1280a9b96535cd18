package sqlite

import (
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// AddAttempt updates the delivery row and recomputes the message in two statements tuned
// for one destination whose first attempt succeeds; these are the other cases.
func TestAddAttemptCases(t *testing.T) {
	t0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	type step struct {
		dest   string
		ok     bool
		err    string
		status store.DeliveryStatus
		reset  bool // PutDeliveries replaces the row (queued, no attempts) before the attempt
	}
	tests := []struct {
		name      string
		dests     []string
		steps     []step
		status    store.Status
		msgErr    string
		dest      string // whose delivery row to check
		attempts  int
		lastError string
	}{
		{name: "first dead letter by destination", dests: []string{"c", "a", "b"},
			steps: []step{{dest: "c", err: "late", status: store.DeliveryDeadLetter},
				{dest: "b", ok: true, status: store.DeliverySent},
				{dest: "a", err: "refused", status: store.DeliveryDeadLetter}},
			status: store.StatusError, msgErr: "dead letter: a: refused", dest: "c", attempts: 1, lastError: "late"},
		{name: "dead letter without error", dests: []string{"b", "a"},
			steps:  []step{{dest: "a", ok: true, status: store.DeliverySent}, {dest: "b", status: store.DeliveryDeadLetter}},
			status: store.StatusError, msgErr: "dead letter: b", dest: "b", attempts: 1},
		{name: "replaced between attempts", dests: []string{"a"},
			steps: []step{{dest: "a", err: "timeout", status: store.DeliveryQueued},
				{dest: "a", ok: true, status: store.DeliverySent, reset: true}},
			status: store.StatusSent, dest: "a", attempts: 2},
		{name: "failure without text keeps the last error", dests: []string{"a"},
			steps:  []step{{dest: "a", err: "timeout", status: store.DeliveryQueued}, {dest: "a", status: store.DeliveryQueued}},
			status: store.StatusQueued, dest: "a", attempts: 2, lastError: "timeout"},
		{name: "success clears the last error", dests: []string{"a", "b"},
			steps:  []step{{dest: "a", err: "timeout", status: store.DeliveryQueued}, {dest: "a", ok: true, status: store.DeliverySent}},
			status: store.StatusQueued, dest: "a", attempts: 2},
		{name: "no delivery row", dests: nil,
			steps:  []step{{dest: "x", ok: true, status: store.DeliverySent}},
			status: store.StatusSent, dest: "x", attempts: 1},
		{name: "sent after a dead letter was retried", dests: []string{"a"},
			steps: []step{{dest: "a", err: "refused", status: store.DeliveryDeadLetter},
				{dest: "a", ok: true, status: store.DeliverySent}},
			status: store.StatusSent, dest: "a", attempts: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openFile(t)
			ctx := t.Context()
			if err := s.PutMessages(ctx, []store.Message{{ID: "m", Channel: "ch", Raw: []byte("MSH|"), Status: store.StatusQueued}}); err != nil {
				t.Fatal(err)
			}
			for _, d := range tc.dests {
				if err := s.PutDeliveries(ctx, []store.Delivery{{MessageID: "m", Destination: d, UpdatedAt: t0}}); err != nil {
					t.Fatal(err)
				}
			}
			numbers := map[string]int{}
			for i, st := range tc.steps {
				if st.reset {
					if err := s.PutDeliveries(ctx, []store.Delivery{{MessageID: "m", Destination: st.dest, UpdatedAt: t0}}); err != nil {
						t.Fatal(err)
					}
				}
				numbers[st.dest]++
				a := store.Attempt{Destination: st.dest, Number: numbers[st.dest], At: t0.Add(time.Duration(i+1) * time.Second),
					OK: st.ok, Error: st.err}
				if err := s.AddAttempt(ctx, "m", a, st.status); err != nil {
					t.Fatal(err)
				}
			}
			det, err := s.Get(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			if det.Message.Status != tc.status || det.Message.Error != tc.msgErr {
				t.Errorf("message: %q %q, want %q %q", det.Message.Status, det.Message.Error, tc.status, tc.msgErr)
			}
			d, err := s.Delivery(ctx, "m", tc.dest)
			if err != nil {
				t.Fatal(err)
			}
			if d.Channel != "ch" || d.Attempts != tc.attempts || d.LastError != tc.lastError {
				t.Errorf("delivery %s: channel %q, %d attempts, last error %q; want ch, %d, %q",
					tc.dest, d.Channel, d.Attempts, d.LastError, tc.attempts, tc.lastError)
			}
		})
	}
}
