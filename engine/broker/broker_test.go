package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartCloseEmbedded(t *testing.T) {
	ctx := testContext(t)
	dir := filepath.Join(t.TempDir(), "data", "nats") // does not exist yet
	b, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !b.Embedded() {
		t.Error("Embedded() = false for an embedded server")
	}
	if got := b.ClientURL(); got != "" {
		t.Errorf("ClientURL() = %q without a listener, want \"\"", got)
	}
	if err := b.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("store dir not used by JetStream: %v", err)
	}
	srv := broker.ServerOf(b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !b.Conn().IsClosed() {
		t.Error("connection still open after Close")
	}
	if srv.Running() {
		t.Error("embedded server still running after Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestClientURL(t *testing.T) {
	ctx := testContext(t)
	s := brokertest.New(t)
	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
	}
	nc, err := nats.Connect(url, nats.UserCredentials(s.CredsFile(t, "tool", nil)))
	if err != nil {
		t.Fatalf("connect to ClientURL %s: %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Errorf("JetStream through the listener: %v", err)
	}
}

func TestStartConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  broker.Config
		want string
	}{
		{"no store dir", broker.Config{}, "store dir"},
		{"bad sync", broker.Config{StoreDir: "x", Sync: "sometimes"}, `sync "sometimes"`},
		{"bad listen", broker.Config{StoreDir: "x", Listen: "localhost"}, "listen"},
		{"bad port", broker.Config{StoreDir: "x", Listen: "127.0.0.1:http"}, "bad port"},
		{"replicas on embedded", broker.Config{StoreDir: "x", Replicas: 3}, "single node"},
		{"negative replicas", broker.Config{StoreDir: "x", Replicas: -1}, "replicas -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.StoreDir != "" {
				tt.cfg.StoreDir = filepath.Join(t.TempDir(), tt.cfg.StoreDir)
			}
			b, err := broker.Start(testContext(t), tt.cfg, nil)
			if err == nil {
				b.Close()
				t.Fatalf("Start succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestExternalWithoutJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("plain NATS server not ready")
	}
	b, err := broker.Start(testContext(t), broker.Config{URL: srv.ClientURL()}, nil)
	if err == nil {
		b.Close()
		t.Fatal("Start against a server without JetStream succeeded")
	}
	if !errors.Is(err, broker.ErrNoJetStream) {
		t.Errorf("error %v does not wrap ErrNoJetStream", err)
	}
	if !strings.Contains(err.Error(), "enable JetStream") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func TestExternalUnreachable(t *testing.T) {
	// Port 1 on loopback refuses connections.
	b, err := broker.Start(testContext(t), broker.Config{URL: "nats://user:secret@127.0.0.1:1"}, nil)
	if err == nil {
		b.Close()
		t.Fatal("Start against a closed port succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the password", err)
	}
}

func TestExternal(t *testing.T) {
	s := brokertest.External(t)
	if s.Embedded() {
		t.Error("Embedded() = true for an external server")
	}
	if s.ClientURL() == "" {
		t.Error("ClientURL() empty for an external server")
	}
	if err := s.Ping(testContext(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// logBuffer collects JSON log records.
type logBuffer struct{ bytes.Buffer }

func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestSyncModes(t *testing.T) {
	tests := []struct {
		sync       string
		syncAlways bool
		warn       bool
	}{
		{"", true, false}, // the default
		{broker.SyncAlways, true, false},
		{broker.SyncFast, false, true},
	}
	for _, tt := range tests {
		t.Run("sync="+tt.sync, func(t *testing.T) {
			var logs logBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			b, err := broker.Start(testContext(t), broker.Config{StoreDir: t.TempDir(), Sync: tt.sync}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			jsc := broker.ServerOf(b).JetStreamConfig()
			if jsc == nil {
				t.Fatal("embedded server has no JetStream config")
			}
			if jsc.SyncAlways != tt.syncAlways {
				t.Errorf("JetStream SyncAlways = %v, want %v", jsc.SyncAlways, tt.syncAlways)
			}
			if !tt.syncAlways && jsc.SyncInterval <= 0 {
				t.Errorf("fast mode SyncInterval = %v, want the server default", jsc.SyncInterval)
			}
			warned := false
			for _, r := range logs.records(t) {
				if r["level"] == "WARN" && strings.Contains(r["msg"].(string), "lost on power failure") {
					warned = true
				}
			}
			if warned != tt.warn {
				t.Errorf("power-failure warning logged = %v, want %v; log:\n%s", warned, tt.warn, logs.String())
			}
		})
	}
}

func TestEnsureStream(t *testing.T) {
	brokertest.Each(t, func(t *testing.T, s *brokertest.Server) {
		ctx := testContext(t)
		name := s.Stream("ENSURE")
		cfg := jetstream.StreamConfig{Name: name, Subjects: []string{s.Subject("ensure.>")}, Storage: jetstream.MemoryStorage}
		st, err := s.EnsureStream(ctx, cfg)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Storage != jetstream.FileStorage {
			t.Errorf("storage %v, want file", info.Config.Storage)
		}
		if info.Config.Replicas != 1 {
			t.Errorf("replicas %d, want 1", info.Config.Replicas)
		}
		cfg.MaxAge = time.Hour
		cfg.Storage = jetstream.FileStorage
		if _, err := s.EnsureStream(ctx, cfg); err != nil {
			t.Fatalf("update: %v", err)
		}
		info, err = st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxAge != time.Hour {
			t.Errorf("MaxAge %v after update, want 1h", info.Config.MaxAge)
		}
		// Same config again is a no-op, not an error.
		if _, err := s.EnsureStream(ctx, cfg); err != nil {
			t.Errorf("ensure unchanged: %v", err)
		}
		// Asynchronous persistence would break the durability promise.
		async := cfg
		async.PersistMode = jetstream.AsyncPersistMode
		if _, err := s.EnsureStream(ctx, async); err == nil || !strings.Contains(err.Error(), "persist mode") {
			t.Errorf("persist mode async: error %v, want a refusal", err)
		}
		// Retention cannot change on a live stream: the error names the stream.
		cfg.Retention = jetstream.WorkQueuePolicy
		if _, err := s.EnsureStream(ctx, cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("changing retention: error %v, want one naming %s", err, name)
		}
	})
}

// TestSyncAlwaysMatchesConfigFile: the embedded server's settings are what nats-server makes
// of `sync_interval: always` in a configuration file, the setting operators are told to use.
func TestSyncAlwaysMatchesConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream {\n  store_dir: \""+filepath.ToSlash(dir)+"\"\n  sync_interval: always\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Start(testContext(t), broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := broker.ServerOf(b).JetStreamConfig()
	if !want.SyncAlways || got.SyncAlways != want.SyncAlways || got.SyncInterval != want.SyncInterval {
		t.Errorf("embedded SyncAlways=%v SyncInterval=%v, config file gives SyncAlways=%v SyncInterval=%v",
			got.SyncAlways, got.SyncInterval, want.SyncAlways, want.SyncInterval)
	}
}
