package broker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
)

// pluginPermissions builds what plugins/protocol.PluginPermissions grants a plugin (the
// broker may not import that package): its own jobs consumer, its results and progress,
// inboxes and micro discovery.
func pluginPermissions(plugin string) *broker.Permissions {
	stream, consumer := "OSPREY_JOBS_"+strings.ToUpper(plugin), "plugin-"+plugin
	return &broker.Permissions{
		Publish: []string{
			"$JS.API.CONSUMER.INFO." + stream + "." + consumer,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
			"$JS.ACK." + stream + "." + consumer + ".>",
			"osprey.results." + plugin,
			"osprey.progress.>",
		},
		Subscribe:      []string{"_INBOX.>", "$SRV.>"},
		AllowResponses: true,
	}
}

// violations collects the asynchronous errors the server reports to a connection.
type violations struct {
	mu     sync.Mutex
	errs   []string
	notify chan struct{}
}

func newViolations() *violations { return &violations{notify: make(chan struct{}, 1)} }

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
	select {
	case v.notify <- struct{}{}:
	default:
	}
}

// waitFor reports whether an error containing substr (case-insensitive) arrives within d.
func (v *violations) waitFor(substr string, d time.Duration) bool {
	substr = strings.ToLower(substr)
	deadline := time.After(d)
	for {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(strings.ToLower(e), substr) {
				v.mu.Unlock()
				return true
			}
		}
		v.mu.Unlock()
		select {
		case <-v.notify:
		case <-deadline:
			return false
		}
	}
}

func (v *violations) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.errs, "; ")
}

func TestListenerRefusesAnonymous(t *testing.T) {
	s := brokertest.New(t)
	foreign := brokertest.New(t) // another server's keys: a well-formed but untrusted user
	tests := []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"user and password", []nats.Option{nats.UserInfo("admin", "admin")}},
		{"credentials of another server", []nats.Option{nats.UserCredentials(foreign.CredsFile(t, "intruder", nil))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(s.ClientURL(), append(tt.opts, nats.NoReconnect())...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect error %v, want an authorization violation", err)
			}
		})
	}
}

// setupPluginStreams creates, as an admin through the listener, what the engine creates for
// two plugins: a jobs stream and consumer each, and the shared results stream.
func setupPluginStreams(ctx context.Context, t *testing.T, js jetstream.JetStream, plugins ...string) {
	t.Helper()
	for _, p := range plugins {
		stream := "OSPREY_JOBS_" + strings.ToUpper(p)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: stream, Subjects: []string{"osprey.jobs." + p}, Retention: jetstream.WorkQueuePolicy,
		}); err != nil {
			t.Fatalf("admin creates stream %s: %v", stream, err)
		}
		if _, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: "plugin-" + p, AckPolicy: jetstream.AckExplicitPolicy,
		}); err != nil {
			t.Fatalf("admin creates consumer: %v", err)
		}
		if _, err := js.Publish(ctx, "osprey.jobs."+p, []byte("job for "+p)); err != nil {
			t.Fatalf("admin publishes job: %v", err)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OSPREY_RESULTS", Subjects: []string{"osprey.results.*"}}); err != nil {
		t.Fatalf("admin creates results stream: %v", err)
	}
}

// TestPluginCreds walks a plugin's flow with credentials limited to its own subjects, and
// checks they keep it away from another plugin's jobs and results.
func TestPluginCreds(t *testing.T) {
	ctx := testContext(t)
	s := brokertest.New(t)
	admin := s.Connect(t, "admin", nil)
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	setupPluginStreams(ctx, t, ajs, "ich", "other")

	// As the plugin runner would: a creds file written by the engine, read by the client.
	creds, err := s.Creds("ich", pluginPermissions("ich"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "creds", "ich.creds")
	if err := broker.WriteCreds(path, creds); err != nil {
		t.Fatal(err)
	}
	vlog := newViolations()
	pc, err := nats.Connect(s.ClientURL(), nats.UserCredentials(path), nats.ErrorHandler(vlog.handler))
	if err != nil {
		t.Fatalf("plugin connects with its creds: %v", err)
	}
	defer pc.Close()
	pjs, err := jetstream.New(pc)
	if err != nil {
		t.Fatal(err)
	}

	// Pull its job and ack it.
	cons, err := pjs.Consumer(ctx, "OSPREY_JOBS_ICH", "plugin-ich")
	if err != nil {
		t.Fatalf("bind to own consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var job jetstream.Msg
	for m := range batch.Messages() {
		job = m
	}
	if job == nil || string(job.Data()) != "job for ich" {
		t.Fatalf("fetched %v (batch error %v), want the ich job", job, batch.Error())
	}
	if err := job.DoubleAck(ctx); err != nil {
		t.Fatalf("ack own job: %v", err)
	}

	// Publish its result.
	ack, err := pjs.Publish(ctx, "osprey.results.ich", []byte("result"))
	if err != nil {
		t.Fatalf("publish own result: %v", err)
	}
	if ack.Stream != "OSPREY_RESULTS" {
		t.Errorf("result stored in %q, want OSPREY_RESULTS", ack.Stream)
	}

	// Reply to a request (micro discovery) without publish rights on _INBOX.>.
	sub, err := pc.Subscribe("$SRV.PING.ich", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := pc.Flush(); err != nil {
		t.Fatal(err)
	}
	reply, err := admin.Request("$SRV.PING.ich", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("request answered by the plugin: %v (violations: %v)", err, vlog)
	} else if string(reply.Data) != "pong" {
		t.Errorf("reply %q, want pong", reply.Data)
	}

	// What belongs to others is refused.
	denied := []struct {
		name string
		do   func() error
		want string
	}{
		{"publish another plugin's result", func() error { return pc.Publish("osprey.results.other", []byte("forged")) },
			`publish to "osprey.results.other"`},
		{"subscribe to another plugin's jobs", func() error { _, err := pc.SubscribeSync("osprey.jobs.other"); return err },
			`subscription to "osprey.jobs.other"`},
		{"pull another plugin's jobs", func() error {
			return pc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.OSPREY_JOBS_OTHER.plugin-other", nats.NewInbox(), []byte(`{"batch":1}`))
		}, `publish to "$JS.API.CONSUMER.MSG.NEXT.OSPREY_JOBS_OTHER.plugin-other"`},
		{"create a stream", func() error { return pc.Publish("$JS.API.STREAM.CREATE.EVIL", []byte(`{"name":"EVIL"}`)) },
			`publish to "$JS.API.STREAM.CREATE.EVIL"`},
		{"publish a job", func() error { return pc.Publish("osprey.jobs.ich", []byte("self-made job")) },
			`publish to "osprey.jobs.ich"`},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatal(err)
			}
			if err := pc.Flush(); err != nil {
				t.Fatal(err)
			}
			if !vlog.waitFor("permissions violation for "+tt.want, 10*time.Second) {
				t.Errorf("no permissions violation for %s; errors seen: %v", tt.want, vlog)
			}
		})
	}

	// Nothing that was refused reached a stream.
	for stream, want := range map[string]uint64{"OSPREY_RESULTS": 1, "OSPREY_JOBS_OTHER": 1, "OSPREY_JOBS_ICH": 0} {
		st, err := ajs.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.CachedInfo().State.Msgs; n != want {
			t.Errorf("stream %s holds %d messages, want %d", stream, n, want)
		}
	}
	if _, err := ajs.Stream(ctx, "EVIL"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream EVIL: %v, want ErrStreamNotFound", err)
	}
}

// TestPermissionsEdges: an empty list grants nothing, replies need AllowResponses, and a
// malformed subject is refused when the credentials are made.
func TestPermissionsEdges(t *testing.T) {
	s := brokertest.New(t)
	admin := s.Connect(t, "admin", nil)

	t.Run("empty publish list allows no publish", func(t *testing.T) {
		vlog := newViolations()
		nc := s.Connect(t, "reader", &broker.Permissions{Subscribe: []string{"reader.>"}}, nats.ErrorHandler(vlog.handler))
		if err := nc.Publish("anything", nil); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if !vlog.waitFor(`permissions violation for publish to "anything"`, 10*time.Second) {
			t.Errorf("publish with an empty publish list not refused; errors: %v", vlog)
		}
	})

	tests := []struct {
		name           string
		allowResponses bool
	}{
		{"reply with AllowResponses", true},
		{"reply without AllowResponses", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vlog := newViolations()
			subject := "svc." + strings.ReplaceAll(tt.name, " ", "_")
			nc := s.Connect(t, "svc", &broker.Permissions{Subscribe: []string{subject}, AllowResponses: tt.allowResponses},
				nats.ErrorHandler(vlog.handler))
			if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if tt.allowResponses {
				if _, err := admin.Request(subject, nil, 10*time.Second); err != nil {
					t.Errorf("request: %v (violations: %v)", err, vlog)
				}
				return
			}
			inbox := nats.NewInbox()
			replies, err := admin.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := admin.PublishRequest(subject, inbox, nil); err != nil {
				t.Fatal(err)
			}
			if !vlog.waitFor(`permissions violation for publish to "`+inbox+`"`, 10*time.Second) {
				t.Errorf("reply without AllowResponses not refused; errors: %v", vlog)
			}
			// The refusal came after the server dropped the reply; a round trip on the
			// requester's connection delivers anything that did get through.
			if err := admin.Flush(); err != nil {
				t.Fatal(err)
			}
			if n, _, _ := replies.Pending(); n != 0 {
				t.Errorf("%d replies got through without AllowResponses", n)
			}
		})
	}

	t.Run("malformed subject", func(t *testing.T) {
		if _, err := s.Creds("bad", &broker.Permissions{Publish: []string{"has space"}}); err == nil {
			t.Error("Creds accepted a subject with a space")
		}
	})
}

// TestCredsFile: what Creds returns is a standard .creds file for a user of the server's
// account, named and limited as asked.
func TestCredsFile(t *testing.T) {
	s := brokertest.New(t)
	creds, err := s.Creds("ich", pluginPermissions("ich"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatal(err)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Name != "ich" || !nkeys.IsValidPublicAccountKey(uc.Issuer) {
		t.Errorf("user %q issued by %q, want ich issued by an account", uc.Name, uc.Issuer)
	}
	if !uc.Pub.Allow.Contains("osprey.results.ich") || uc.Pub.Allow.Contains("osprey.results.other") {
		t.Errorf("publish allow %v", uc.Pub.Allow)
	}
	if uc.Resp == nil || uc.Resp.MaxMsgs != 1 {
		t.Errorf("response permission %+v, want one reply", uc.Resp)
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); pub != uc.Subject {
		t.Errorf("seed is for %s, JWT for %s", pub, uc.Subject)
	}
	other, err := s.Creds("ich", pluginPermissions("ich"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, creds) {
		t.Error("two calls returned the same credentials")
	}
}

func TestCredsExternal(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	b, err := broker.Start(testContext(t), broker.Config{URL: srv.ClientURL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Creds("ich", nil); !errors.Is(err, broker.ErrExternalAuth) {
		t.Errorf("Creds on an external server: %v, want ErrExternalAuth", err)
	}
}

// TestCredsSurviveRestart: with the same keys dir, a restarted server trusts the credentials
// written before, and its JetStream data is still there; with other keys, neither.
func TestCredsSurviveRestart(t *testing.T) {
	ctx := testContext(t)
	root := t.TempDir()
	cfg := broker.Config{Listen: "127.0.0.1:0", StoreDir: filepath.Join(root, "nats"), KeysDir: filepath.Join(root, "keys")}
	credsPath := filepath.Join(root, "creds", "admin.creds")

	b, err := broker.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := b.Creds("admin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.WriteCreds(credsPath, creds); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(b.ClientURL(), nats.UserCredentials(credsPath))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEPT", Subjects: []string{"kept.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		if _, err := js.Publish(ctx, "kept."+m, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	for path, want := range map[string]os.FileMode{
		cfg.KeysDir: 0o700, filepath.Join(cfg.KeysDir, "operator.nk"): 0o600, filepath.Join(cfg.KeysDir, "account.nk"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}

	t.Run("same keys", func(t *testing.T) {
		b, err := broker.Start(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		nc, err := nats.Connect(b.ClientURL(), nats.UserCredentials(credsPath))
		if err != nil {
			t.Fatalf("creds written before the restart: %v", err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, "KEPT")
		if err != nil {
			t.Fatalf("stream after restart: %v", err)
		}
		if n := st.CachedInfo().State.Msgs; n != 3 {
			t.Errorf("stream holds %d messages after restart, want 3", n)
		}
		if _, err := b.JetStream().Stream(ctx, "KEPT"); err != nil {
			t.Errorf("stream on the broker's own connection: %v", err)
		}
	})

	t.Run("other keys", func(t *testing.T) {
		other := cfg
		other.KeysDir = filepath.Join(root, "other-keys")
		var logs logBuffer
		b, err := broker.Start(ctx, other, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if nc, err := nats.Connect(b.ClientURL(), nats.UserCredentials(credsPath), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Error("credentials signed by other keys accepted")
		}
		if _, err := b.JetStream().Stream(ctx, "KEPT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream of another account: %v, want ErrStreamNotFound", err)
		}
		if !strings.Contains(logs.String(), "other than the one keys_dir signs for") {
			t.Errorf("no warning about the other account's data; log:\n%s", logs.String())
		}
	})
}

func TestKeyFileErrors(t *testing.T) {
	accSeed := func() []byte {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := kp.Seed()
		return seed
	}
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"not a seed", []byte("hello\n"), 0o600, "not an nkey seed"},
		{"wrong kind of key", accSeed(), 0o600, "want operator"},
		{"readable by others", accSeed(), 0o644, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := t.TempDir()
			path := filepath.Join(keys, "operator.nk")
			if err := os.WriteFile(path, tt.data, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			b, err := broker.Start(testContext(t), broker.Config{StoreDir: t.TempDir(), KeysDir: keys}, nil)
			if err == nil {
				b.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q, want it to name %s and contain %q", err, path, tt.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tt.data) {
				t.Error("the unusable key file was replaced")
			}
		})
	}
}

func TestWriteCreds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "creds") // does not exist yet
	path := filepath.Join(dir, "ich.creds")
	for _, content := range []string{"first", "second"} {
		if err := broker.WriteCreds(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("file holds %q, want %q", got, content)
		}
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("creds dir holds %v, want only ich.creds", names)
	}
}
