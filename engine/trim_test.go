package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker/brokertest"
)

// subjectMsgs is how many records stream holds, and how many of them on subject.
func subjectMsgs(t *testing.T, br *brokertest.Server, stream, subject string) (all, on uint64) {
	t.Helper()
	s, err := br.Broker.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Retention != jetstream.LimitsPolicy {
		t.Fatalf("%s has retention %v, want limits (trimmed)", stream, info.Config.Retention)
	}
	return info.State.Msgs, info.State.Subjects[subject]
}

// The queues are trimmed behind their consumers: what a destination has delivered leaves the
// stream, while the records of a destination that is down stay until it has them all. The
// stream names are the ones docs/operations-nats.md gives operators (engine/names.go).
func TestQueuesAreTrimmedBehindTheirConsumers(t *testing.T) {
	br := brokertest.New(t)
	h := newHarnessOn(t, br, `
  - name: feed
    source: {push: {}}
    destinations:
      - name: up
        capture: {key: up}
      - name: down
        capture: {key: down}
        retry: {max_attempts: 100000, initial_backoff: 5ms, max_backoff: 20ms}
`)
	down := h.captures["down"]
	down.setAnswer(func(string, int) error { return errors.New("connection refused") })
	const n = 30
	for i := range n {
		h.send(hl7msg("ADT^A08", fmt.Sprintf("T%02d", i), "P1"))
	}
	waitFor(t, "every message at the destination that is up", 10*time.Second, func() bool {
		return len(h.captures["up"].received()) == n
	})
	const (
		in      = "OSPREY_IN_FEED"
		out     = "OSPREY_OUT_FEED"
		upSubj  = "osprey.out.feed.up"
		dnSubj  = "osprey.out.feed.down"
		inSubj  = "osprey.in.feed"
		trimmed = 10 * time.Second // several trim intervals
	)
	waitFor(t, "the inbound queue and the delivered destination's records trimmed", trimmed, func() bool {
		inAll, _ := subjectMsgs(t, br, in, inSubj)
		_, up := subjectMsgs(t, br, out, upSubj)
		return inAll == 0 && up == 0
	})
	// Trims have run since the last records were acknowledged; the down destination's are
	// all still there, unacknowledged.
	if _, held := subjectMsgs(t, br, out, dnSubj); held == 0 {
		t.Fatal("the records of the destination that is down were trimmed before it had them")
	}
	if got := len(down.received()); got != 0 {
		t.Fatalf("down destination received %d", got)
	}
	down.setAnswer(nil)
	waitFor(t, "every message at the destination that came back", 20*time.Second, func() bool {
		return len(down.received()) == n
	})
	waitFor(t, "the destination stream empty once both have everything", trimmed, func() bool {
		all, _ := subjectMsgs(t, br, out, dnSubj)
		return all == 0
	})
}

// A data directory from an earlier version has work-queue streams, which the server will not
// turn into limits streams; the channel keeps them as they are and carries messages as before.
func TestWorkQueueStreamsOfEarlierVersionsKeepWorking(t *testing.T) {
	br := brokertest.New(t)
	ctx := context.Background()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "OSPREY_IN_FEED", Subjects: []string{"osprey.in.feed"}},
		{Name: "OSPREY_OUT_FEED", Subjects: []string{"osprey.out.feed.*"}},
	} {
		cfg.Retention, cfg.Storage = jetstream.WorkQueuePolicy, jetstream.FileStorage
		if _, err := br.Broker.JetStream().CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarnessOn(t, br, simple)
	for i := range 5 {
		h.send(hl7msg("ADT^A08", fmt.Sprintf("W%d", i), "P1"))
	}
	waitFor(t, "all delivered", 10*time.Second, func() bool { return len(h.captures["out"].received()) == 5 })
	s, err := br.Broker.JetStream().Stream(ctx, "OSPREY_IN_FEED")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Retention; r != jetstream.WorkQueuePolicy {
		t.Errorf("inbound retention %v, want the work queue it was", r)
	}
}
