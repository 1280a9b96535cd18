package brokertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker/brokertest"
)

// TestCleanup: the streams a test made with its prefix are gone when it ends, on both kinds
// of server; on the shared external server other tests' streams stay.
func TestCleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outer := brokertest.External(t)
	keep := outer.Stream("KEEP")
	if _, err := outer.EnsureStream(ctx, jetstream.StreamConfig{Name: keep, Subjects: []string{outer.Subject("keep")}}); err != nil {
		t.Fatal(err)
	}
	var made string
	t.Run("inner", func(t *testing.T) {
		s := brokertest.External(t)
		if s.Prefix == outer.Prefix {
			t.Fatalf("two tests share prefix %s", s.Prefix)
		}
		made = s.Stream("GONE")
		if _, err := s.EnsureStream(ctx, jetstream.StreamConfig{Name: made, Subjects: []string{s.Subject("gone.>")}}); err != nil {
			t.Fatal(err)
		}
	})
	js := outer.JetStream()
	if _, err := js.Stream(ctx, made); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream %s after its test ended: %v, want ErrStreamNotFound", made, err)
	}
	if _, err := js.Stream(ctx, keep); err != nil {
		t.Errorf("another test's stream %s deleted: %v", keep, err)
	}
}

func TestNew(t *testing.T) {
	s := brokertest.New(t)
	if !s.Embedded() || s.ClientURL() == "" {
		t.Errorf("New: embedded %v, client URL %q; want an embedded server with a listener", s.Embedded(), s.ClientURL())
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}
