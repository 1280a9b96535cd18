// Package brokertest gives each test a NATS JetStream broker of its own: an embedded server
// with a temporary store (New), or the external server named by OSPREY_TEST_NATS with stream
// and subject names no other test uses (External).
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/osprey-health/osprey/engine/broker"
)

// DefaultExternalURL is the external server External uses when OSPREY_TEST_NATS is unset.
const DefaultExternalURL = "nats://127.0.0.1:4222"

// Server is a broker for one test. Build stream names with Stream and subjects with Subject:
// on a shared external server they keep tests apart, and External deletes the streams whose
// names carry the prefix when the test ends.
type Server struct {
	*broker.Broker
	Prefix string // unique per test, e.g. "T3F9A0C12"
}

// Stream returns a stream name unique to the test, e.g. "T3F9A0C12_IN".
func (s *Server) Stream(name string) string { return s.Prefix + "_" + name }

// Subject returns a subject unique to the test, e.g. "t3f9a0c12.in.adt".
func (s *Server) Subject(name string) string { return strings.ToLower(s.Prefix) + "." + name }

// Option changes how New and External start the broker.
type Option func(*options)

type options struct {
	cfg func(*broker.Config)
	log *slog.Logger
}

// WithConfig lets the test adjust the broker configuration before it starts.
func WithConfig(f func(*broker.Config)) Option { return func(o *options) { o.cfg = f } }

// WithLogger sets the broker's logger; by default logs are discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func apply(opts []Option) options {
	o := options{cfg: func(*broker.Config) {}, log: slog.New(slog.DiscardHandler)}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// New starts an embedded server with sync always, a store in t.TempDir() and a listener on a
// random loopback port, and closes it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := apply(opts)
	cfg := broker.Config{
		Listen:   "127.0.0.1:0",
		StoreDir: t.TempDir(),
		Name:     t.Name(),
	}
	o.cfg(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, cfg, o.log)
	if err != nil {
		t.Fatalf("brokertest: start embedded server: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("brokertest: close: %v", err)
		}
	})
	return &Server{Broker: b, Prefix: newPrefix()}
}

// CredsFile writes credentials for a new user of the embedded server, limited to p (nil:
// everything), to a file in a temporary directory and returns its path, for
// nats.UserCredentials or a --creds flag. On an external server it fails the test: there the
// cluster issues credentials.
func (s *Server) CredsFile(t testing.TB, user string, p *broker.Permissions) string {
	t.Helper()
	creds, err := s.Creds(user, p)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	path := filepath.Join(t.TempDir(), user+".creds")
	if err := broker.WriteCreds(path, creds); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return path
}

// Connect opens a client connection to the embedded server's listener as a new user limited
// to p (nil: everything), the way a plugin or tool connects, and closes it when the test
// ends. It fails the test on an external server.
func (s *Server) Connect(t testing.TB, user string, p *broker.Permissions, opts ...nats.Option) *nats.Conn {
	t.Helper()
	creds := s.CredsFile(t, user, p)
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.Name(user), nats.UserCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatalf("brokertest: connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// External connects to OSPREY_TEST_NATS (default DefaultExternalURL). When that server is
// unreachable or has no JetStream the test is skipped, or fails when
// OSPREY_TEST_REQUIRE_SERVICES=1. When the test ends, the streams whose names contain the
// test's prefix are deleted and the connection is closed.
func External(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := apply(opts)
	url := os.Getenv("OSPREY_TEST_NATS")
	if url == "" {
		url = DefaultExternalURL
	}
	cfg := broker.Config{URL: url, Name: t.Name()}
	o.cfg(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, cfg, o.log)
	if err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("brokertest: external NATS required (OSPREY_TEST_REQUIRE_SERVICES=1): %v", err)
		}
		t.Skipf("brokertest: no external NATS with JetStream at OSPREY_TEST_NATS=%s (%v); start one or set OSPREY_TEST_NATS", url, err)
	}
	s := &Server{Broker: b, Prefix: newPrefix()}
	t.Cleanup(func() {
		s.deleteStreams(t)
		if err := b.Close(); err != nil {
			t.Errorf("brokertest: close: %v", err)
		}
	})
	return s
}

// Each runs f as two subtests, "embedded" on New and "external" on External (which skips
// when no external server is there), so one test body covers both deployments.
func Each(t *testing.T, f func(t *testing.T, s *Server), opts ...Option) {
	t.Helper()
	t.Run("embedded", func(t *testing.T) { f(t, New(t, opts...)) })
	t.Run("external", func(t *testing.T) { f(t, External(t, opts...)) })
}

func (s *Server) deleteStreams(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := s.JetStream()
	names := js.StreamNames(ctx)
	var mine []string
	for name := range names.Name() {
		if strings.Contains(name, s.Prefix) {
			mine = append(mine, name)
		}
	}
	if err := names.Err(); err != nil {
		t.Errorf("brokertest: list streams for cleanup: %v", err)
	}
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("brokertest: delete stream %s: %v", name, err)
		}
	}
}

func newPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails, per crypto/rand
	return "T" + strings.ToUpper(hex.EncodeToString(b[:]))
}
