package sdk_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
	"github.com/osprey-health/osprey/plugins/sdk/sdktest"
)

const (
	seriesUID = "1.2.826.0.1.3680043.8.498.10.1"
	sop1      = "1.2.826.0.1.3680043.8.498.10.1.1"
	sop2      = "1.2.826.0.1.3680043.8.498.10.1.2"
)

var testModel = protocol.Model{Name: "test-model", Version: "0.2.0", Manufacturer: "Osprey tests", DeviceUID: "1.2.826.0.1.3680043.8.498.77"}

func plugin(name string, handle func(context.Context, *sdk.Job) (protocol.Result, error)) sdk.Plugin {
	return sdk.Plugin{
		Name: name, Version: "1.4.0", Description: "a plugin of the SDK tests", Model: testModel,
		Modalities: []string{"CT"}, BodyParts: []string{"HEAD", "BRAIN"}, Handle: handle,
	}
}

func job(id string) protocol.Job {
	return protocol.Job{
		JobID: id,
		Study: protocol.Study{StudyInstanceUID: "1.2.826.0.1.3680043.8.498.10", Modality: "CT", Series: []protocol.Series{{
			SeriesInstanceUID: seriesUID, Modality: "CT",
			Instances: []protocol.Instance{{SOPInstanceUID: sop1}, {SOPInstanceUID: sop2}},
		}}},
		Patient:  protocol.Patient{PseudoID: "p1"},
		DICOMweb: protocol.DICOMweb{BaseURL: "http://127.0.0.1:1/dicom-web", Token: "t"},
	}
}

func finding(present bool, confidence float64) protocol.Finding {
	return protocol.Finding{
		ID: "f-1", Code: protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
		Present: present, Confidence: confidence,
		References: []protocol.Reference{{SeriesInstanceUID: seriesUID, SOPInstanceUID: sop2}},
	}
}

// env starts an embedded broker and creates the plugin's streams as the engine does, with
// the consumer's AckWait set when ackWait is not zero.
func env(t *testing.T, name string, ackWait time.Duration) (*brokertest.Server, *sdktest.Env) {
	t.Helper()
	s := brokertest.New(t)
	e := sdktest.Setup(t, s.Conn(), name, func(c *jetstream.ConsumerConfig) {
		if ackWait > 0 {
			c.AckWait = ackWait
		}
	})
	return s, e
}

// pluginCreds writes credentials for plugin limited to protocol.PluginPermissions, as osprey
// serve writes them.
func pluginCreds(t *testing.T, s *brokertest.Server, plugin string) string {
	t.Helper()
	perm := protocol.PluginPermissions(plugin)
	return s.CredsFile(t, plugin, &broker.Permissions{Publish: perm.Publish, Subscribe: perm.Subscribe, AllowResponses: perm.AllowResponses})
}

// start runs p on s the way a deployed plugin runs: over the listener, with its own
// restricted credentials.
func start(t *testing.T, s *brokertest.Server, p sdk.Plugin, opts ...sdk.Option) *sdktest.Instance {
	t.Helper()
	base := []sdk.Option{quiet, sdk.WithURL(s.ClientURL()), sdk.WithCreds(pluginCreds(t, s, p.Name))}
	return sdktest.Start(t, p, append(base, opts...)...)
}

// quiet is the logger of plugins under test; WithLogger(testLogger(t)) shows their lines on
// failure instead.
var quiet = sdk.WithLogger(slog.New(slog.DiscardHandler))

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(sdktest.Wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestRunCompleted(t *testing.T) {
	s, e := env(t, "demo", 0)
	progress, err := s.Conn().SubscribeSync(protocol.ProgressSubjects)
	if err != nil {
		t.Fatal(err)
	}
	p := plugin("demo", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		j.Progress(50, "half way")
		return protocol.Result{Findings: []protocol.Finding{finding(true, 0.9)}, Summary: "found it"}, nil
	})
	start(t, s, p)
	jb := e.Publish(t, job("job-1"))
	got := e.WaitResult(t, jb)
	e.WaitJobsDone(t)

	r := got.Result
	if r.Status != protocol.StatusCompleted || r.Model != testModel || r.Summary != "found it" || len(r.Findings) != 1 {
		t.Errorf("result %s", got.Data)
	}
	if r.Timings.StartedAt.IsZero() || r.Timings.FinishedAt.Before(r.Timings.StartedAt) {
		t.Errorf("timings %+v", r.Timings)
	}
	if id := got.Header.Get(jetstream.MsgIDHeader); id != protocol.ResultMsgID("job-1", 1) {
		t.Errorf("Nats-Msg-Id %q, want %q", id, protocol.ResultMsgID("job-1", 1))
	}
	if v := got.Header.Get(protocol.HeaderPluginVersion); v != "1.4.0" {
		t.Errorf("%s %q, want 1.4.0", protocol.HeaderPluginVersion, v)
	}
	if n := len(e.Results(t)); n != 1 {
		t.Errorf("%d results stored, want 1", n)
	}
	m, err := progress.NextMsg(sdktest.Wait)
	if err != nil {
		t.Fatalf("no progress: %v", err)
	}
	pr, err := protocol.DecodeProgress(m.Data)
	if err != nil {
		t.Fatalf("progress: %v", err)
	}
	if m.Subject != protocol.ProgressSubject("job-1") || pr.Percent != 50 || pr.Message != "half way" || pr.Plugin != "demo" {
		t.Errorf("progress on %s: %+v", m.Subject, pr)
	}
}

// TestRunOutcomes runs one instance and sends it a job per case; the handler picks its
// behaviour by job id.
func TestRunOutcomes(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var calls sync.Map // job id -> *atomic.Int32
	handlers := map[string]func(context.Context, *sdk.Job) (protocol.Result, error){
		"plain-error": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, errors.New("out of memory")
		},
		"protocol-error": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, fmt.Errorf("reading: %w", &protocol.Error{Code: protocol.ErrCodeInput, Message: "slices are 8-bit"})
		},
		"fetch-error": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, fmt.Errorf("series: %w", &sdk.HTTPError{Path: "/studies/1", Status: 401})
		},
		"not-applicable": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, sdk.NotApplicable("no axial series")
		},
		"not-applicable-sentinel": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, fmt.Errorf("chest study: %w", sdk.ErrNotApplicable)
		},
		"negative": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{Findings: []protocol.Finding{finding(false, 0.97)}}, nil
		},
		"invalid-result": func(context.Context, *sdk.Job) (protocol.Result, error) {
			f := finding(true, 1.5)
			f.References[0].SOPInstanceUID = "1.2.3.9.9"
			return protocol.Result{Findings: []protocol.Finding{f}}, nil
		},
		"panic": func(context.Context, *sdk.Job) (protocol.Result, error) {
			panic("index out of range")
		},
		"deadline": func(ctx context.Context, _ *sdk.Job) (protocol.Result, error) {
			<-ctx.Done()
			return protocol.Result{}, ctx.Err()
		},
		"deadline-ignored": func(context.Context, *sdk.Job) (protocol.Result, error) {
			<-block // ignores its context: Run must answer anyway
			return protocol.Result{}, nil
		},
		"late": func(context.Context, *sdk.Job) (protocol.Result, error) {
			return protocol.Result{}, nil
		},
	}
	s, e := env(t, "outcomes", 0)
	p := plugin("outcomes", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		n, _ := calls.LoadOrStore(j.JobID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		return handlers[j.JobID](ctx, j)
	})
	p.Concurrency = 4
	start(t, s, p)

	tests := []struct {
		id       string
		deadline time.Duration // from now; 0 means a minute
		status   protocol.Status
		code     string
		mention  string // in the error message or the summary
		calls    int32
	}{
		{"plain-error", 0, protocol.StatusFailed, protocol.ErrCodeInternal, "out of memory", 1},
		{"protocol-error", 0, protocol.StatusFailed, protocol.ErrCodeInput, "slices are 8-bit", 1},
		{"fetch-error", 0, protocol.StatusFailed, protocol.ErrCodeFetch, "HTTP 401", 1},
		{"not-applicable", 0, protocol.StatusNotApplicable, "", "no axial series", 1},
		{"not-applicable-sentinel", 0, protocol.StatusNotApplicable, "", "chest study", 1},
		{"negative", 0, protocol.StatusCompleted, "", "", 1},
		{"invalid-result", 0, protocol.StatusFailed, protocol.ErrCodeInternal, "/findings/0/confidence", 1},
		{"panic", 0, protocol.StatusFailed, protocol.ErrCodeInternal, "index out of range", 1},
		{"deadline", 300 * time.Millisecond, protocol.StatusFailed, protocol.ErrCodeTimeout, "deadline", 1},
		{"deadline-ignored", 300 * time.Millisecond, protocol.StatusFailed, protocol.ErrCodeTimeout, "deadline", 1},
		{"late", -time.Second, protocol.StatusFailed, protocol.ErrCodeTimeout, "deadline", 0},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			jb := job(tt.id)
			if tt.deadline != 0 {
				jb.Deadline = time.Now().Add(tt.deadline)
			}
			jb = e.Publish(t, jb)
			r := e.WaitResult(t, jb).Result
			if r.Status != tt.status {
				t.Fatalf("status %s, want %s: %+v", r.Status, tt.status, r)
			}
			text := r.Summary
			if r.Error != nil {
				text = r.Error.Message
				if r.Error.Code != tt.code {
					t.Errorf("code %s, want %s (%s)", r.Error.Code, tt.code, r.Error.Message)
				}
			}
			if !strings.Contains(text, tt.mention) {
				t.Errorf("%q does not mention %q", text, tt.mention)
			}
			if tt.status == protocol.StatusCompleted && r.Model != testModel {
				t.Errorf("model %+v, want the plugin's", r.Model)
			}
			var n int32
			if c, ok := calls.Load(tt.id); ok {
				n = c.(*atomic.Int32).Load()
			}
			if n != tt.calls {
				t.Errorf("handler called %d times, want %d", n, tt.calls)
			}
		})
	}
	t.Run("invalid-result names every violation", func(t *testing.T) {
		r := e.ResultsFor(t, "invalid-result")[0].Result
		if !strings.Contains(r.Error.Message, `"1.2.3.9.9" is not an instance of the job's study`) {
			t.Errorf("message %q", r.Error.Message)
		}
	})
	t.Run("undecodable job is terminated with a failed result", func(t *testing.T) {
		e.PublishRaw(t, []byte(`{"protocol": "osprey.ai/v1", "job_id": "broken-1", "attempt": 2, "study": 7}`))
		e.PublishRaw(t, []byte(`not json at all`))
		jb := job("broken-1")
		jb.Protocol, jb.Plugin = protocol.Version, "outcomes"
		r := e.WaitResult(t, jb)
		if r.Result.Status != protocol.StatusFailed || r.Result.Error.Code != protocol.ErrCodeInput {
			t.Errorf("result %s", r.Data)
		}
		if id := r.Header.Get(jetstream.MsgIDHeader); id != "broken-1:2" {
			t.Errorf("Nats-Msg-Id %q", id)
		}
		e.WaitJobsDone(t) // both terminated, neither waits for redelivery
		if c := e.Consumer(t); c.NumRedelivered != 0 {
			t.Errorf("%d redelivered", c.NumRedelivered)
		}
	})
}

// TestRunHeartbeat runs a job three times as long as the consumer's ack wait: the SDK's
// in-progress acks must keep it from being redelivered.
func TestRunHeartbeat(t *testing.T) {
	const ackWait = time.Second
	s, e := env(t, "slow", ackWait)
	var calls atomic.Int32
	deliveries := make(chan int, 10)
	p := plugin("slow", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		calls.Add(1)
		deliveries <- j.Delivery
		select { // the work: longer than the ack wait, without calling Progress
		case <-time.After(3 * ackWait):
		case <-ctx.Done():
			return protocol.Result{}, ctx.Err()
		}
		return protocol.Result{Findings: []protocol.Finding{finding(false, 0.8)}}, nil
	})
	p.Concurrency = 2 // a redelivery would find a free worker here
	start(t, s, p)
	jb := e.Publish(t, job("long-1"))
	r := e.WaitResult(t, jb)
	e.WaitJobsDone(t)
	if r.Result.Status != protocol.StatusCompleted {
		t.Errorf("result %s", r.Data)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once", n)
	}
	if d := <-deliveries; d != 1 {
		t.Errorf("delivery %d, want 1", d)
	}
	if c := e.Consumer(t); c.NumRedelivered != 0 || c.Delivered.Consumer != 1 {
		t.Errorf("consumer delivered %d, redelivered %d: want 1 and 0", c.Delivered.Consumer, c.NumRedelivered)
	}
	if n := len(e.Results(t)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

// TestRunConnectionLost kills the connection of an instance in the middle of a job: the job
// comes back after the ack wait and a second instance completes it.
func TestRunConnectionLost(t *testing.T) {
	s, e := env(t, "fragile", time.Second)
	started := make(chan struct{})
	var once sync.Once
	a := plugin("fragile", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return protocol.Result{}, ctx.Err()
	})
	nc, err := nats.Connect(s.ClientURL(), nats.UserCredentials(pluginCreds(t, s, "fragile")),
		nats.CustomInboxPrefix(protocol.InboxPrefix("fragile")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ia := sdktest.Start(t, a, sdk.WithConn(nc), quiet)
	jb := e.Publish(t, job("fragile-1"))
	wait(t, started, "the first instance to take the job")
	nc.Close()
	if err := ia.Wait(t); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Run of the instance that lost its connection = %v, want ErrConnectionClosed", err)
	}

	takeOver(t, s, e, jb)
}

// takeOver starts a second instance and checks that it completes jb as the job's second
// delivery, the only result stored.
func takeOver(t *testing.T, s *brokertest.Server, e *sdktest.Env, jb protocol.Job) {
	t.Helper()
	deliveries := make(chan int, 1)
	b := plugin(e.Plugin, func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		deliveries <- j.Delivery
		return protocol.Result{Summary: "second instance"}, nil
	})
	start(t, s, b)
	if r := e.WaitResult(t, jb); r.Result.Summary != "second instance" {
		t.Errorf("result %s", r.Data)
	}
	e.WaitJobsDone(t)
	if d := <-deliveries; d != 2 {
		t.Errorf("second instance got delivery %d, want 2", d)
	}
	if n := len(e.Results(t)); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}

func TestRunConcurrency(t *testing.T) {
	const limit, jobs = 3, 9
	s, e := env(t, "parallel", 0)
	var cur, peak atomic.Int32
	gate := make(chan struct{})
	p := plugin("parallel", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return protocol.Result{}, nil
	})
	p.Concurrency = limit
	start(t, s, p)
	var published []protocol.Job
	for i := range jobs {
		published = append(published, e.Publish(t, job(fmt.Sprintf("par-%d", i))))
	}
	deadline := time.Now().Add(sdktest.Wait)
	for cur.Load() < limit {
		if time.Now().After(deadline) {
			t.Fatalf("only %d handlers running, want %d", cur.Load(), limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// All workers are busy, so none is pulling: the server must have delivered exactly limit
	// jobs, all unacknowledged, the rest still waiting for an instance (an instance that
	// prefetched would hold more than it runs).
	if c := e.Consumer(t); c.NumAckPending != limit || c.Delivered.Consumer != limit {
		t.Errorf("consumer: %d delivered, %d ack pending; want %d and %d", c.Delivered.Consumer, c.NumAckPending, limit, limit)
	}
	close(gate)
	for _, jb := range published {
		e.WaitResult(t, jb)
	}
	e.WaitJobsDone(t)
	if n := peak.Load(); n != limit {
		t.Errorf("at most %d handlers ran at once, want %d", n, limit)
	}
}

// TestRunDrain cancels an instance with a job running. Within the drain timeout the job
// finishes normally; past it, the job is nak'd and another instance takes it at once (the
// ack wait is far longer than the test may take).
func TestRunDrain(t *testing.T) {
	tests := []struct {
		name     string
		finishes bool // the handler returns after the cancel, within the drain timeout
	}{
		{"finishes within the drain timeout", true},
		{"handed back past the drain timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e := env(t, "drain", 10*time.Minute)
			started, release := make(chan struct{}), make(chan struct{})
			drain := 200 * time.Millisecond
			if tt.finishes {
				drain = sdktest.Wait
			}
			a := plugin("drain", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
				close(started)
				select {
				case <-release:
					return protocol.Result{Summary: "first instance"}, nil
				case <-ctx.Done():
					return protocol.Result{}, ctx.Err()
				}
			})
			ia := start(t, s, a, sdk.WithDrainTimeout(drain), quiet)
			jb := e.Publish(t, job("drain-1"))
			wait(t, started, "the job to start")
			ia.Cancel()
			if tt.finishes {
				close(release)
			}
			if err := ia.Wait(t); err != nil {
				t.Errorf("Run = %v, want nil after a drain", err)
			}
			if tt.finishes {
				if r := e.WaitResult(t, jb); r.Result.Summary != "first instance" {
					t.Errorf("result %s", r.Data)
				}
				e.WaitJobsDone(t)
				return
			}
			takeOver(t, s, e, jb)
		})
	}
}

func TestRunDiscovery(t *testing.T) {
	s, _ := env(t, "found", 0)
	p := plugin("found", func(context.Context, *sdk.Job) (protocol.Result, error) { return protocol.Result{}, nil })
	start(t, s, p)
	var info micro.Info
	deadline := time.Now().Add(sdktest.Wait)
	for {
		m, err := s.Conn().Request("$SRV.INFO.found", nil, time.Second)
		if err == nil {
			if err := json.Unmarshal(m.Data, &info); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no $SRV.INFO answer: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := map[string]string{
		protocol.MetaModelName: "test-model", protocol.MetaModelVersion: "0.2.0",
		protocol.MetaManufacturer: "Osprey tests", protocol.MetaDeviceUID: "1.2.826.0.1.3680043.8.498.77",
		protocol.MetaModalities: "CT", protocol.MetaBodyParts: "HEAD,BRAIN", protocol.MetaProtocol: protocol.Version,
	}
	if info.Name != "found" || info.Version != "1.4.0" || info.Description != "a plugin of the SDK tests" {
		t.Errorf("identity %+v", info.ServiceIdentity)
	}
	for k, v := range want {
		if info.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q", k, info.Metadata[k], v)
		}
	}
}

// TestRunWaitsForStreams starts a plugin before the engine created its streams: it must
// say what is missing, and start working once they exist.
func TestRunWaitsForStreams(t *testing.T) {
	s := brokertest.New(t)
	var logs sdktest.Log
	p := plugin("early", func(context.Context, *sdk.Job) (protocol.Result, error) { return protocol.Result{}, nil })
	start(t, s, p, sdk.WithBindRetry(20*time.Millisecond), sdk.WithLogger(logs.Logger()))
	logs.WaitFor(t, "jobs stream OSPREY_JOBS_EARLY not found: is osprey serve running with plugin early configured?")
	e := sdktest.Setup(t, s.Conn(), "early", nil)
	jb := e.Publish(t, job("early-1"))
	if r := e.WaitResult(t, jb); r.Result.Status != protocol.StatusCompleted {
		t.Errorf("result %s", r.Data)
	}
}

// testTLS returns a server TLS configuration for 127.0.0.1 and a client configuration
// trusting only its certificate: net/http/httptest's, which is made for loopback tests.
func testTLS(t *testing.T) (srv, client *tls.Config) {
	t.Helper()
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	defer hs.Close()
	pool := x509.NewCertPool()
	pool.AddCert(hs.Certificate())
	srv = hs.TLS.Clone()
	srv.NextProtos = nil
	return srv, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// TestRunRestrictedCredentials runs a plugin over TLS (a private CA) as a user holding
// exactly protocol.PluginPermissions, authenticated by an nkey seed file: everything Run does
// must be within them.
func TestRunRestrictedCredentials(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "plugin.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	perm := protocol.PluginPermissions("tight")
	serverTLS, clientTLS := testTLS(t)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSConfig: serverTLS, AllowNonTLS: false,
		Users: []*server.User{{Username: "engine", Password: "engine"}},
		Nkeys: []*server.NkeyUser{{Nkey: pub, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: perm.Publish},
			Subscribe: &server.SubjectPermission{Allow: perm.Subscribe},
			Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	if nc, err := nats.Connect("nats://"+srv.Addr().String(), nats.UserInfo("engine", "engine")); err == nil {
		nc.Close()
		t.Fatal("the server takes connections that do not trust its CA: the test would not show that Run used WithTLS")
	}
	url := "tls://" + srv.Addr().String()
	engine, err := nats.Connect(url, nats.UserInfo("engine", "engine"), nats.Secure(clientTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	e := sdktest.Setup(t, engine, "tight", nil)

	var logs sdktest.Log
	p := plugin("tight", func(ctx context.Context, j *sdk.Job) (protocol.Result, error) {
		j.Progress(10, "starting")
		return protocol.Result{Findings: []protocol.Finding{finding(true, 0.7)}}, nil
	})
	in := sdktest.Start(t, p, sdk.WithURL(url), sdk.WithNkey(seedFile), sdk.WithTLS(clientTLS),
		sdk.WithLogger(logs.Logger()))
	jb := e.Publish(t, job("tight-1"))
	if r := e.WaitResult(t, jb); r.Result.Status != protocol.StatusCompleted {
		t.Errorf("result %s", r.Data)
	}
	e.WaitJobsDone(t)
	if err := in.Stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	for _, line := range logs.Lines() {
		if strings.Contains(strings.ToLower(line), "permission") {
			t.Errorf("permission trouble in the log: %s", line)
		}
	}
}

func TestRunRefusesBadPlugins(t *testing.T) {
	ok := func(context.Context, *sdk.Job) (protocol.Result, error) { return protocol.Result{}, nil }
	tests := []struct {
		name    string
		p       sdk.Plugin
		mention string
	}{
		{"bad name", sdk.Plugin{Name: "Bad Name", Version: "1.0.0", Model: testModel, Handle: ok}, "plugin name"},
		{"no version", sdk.Plugin{Name: "x", Model: testModel, Handle: ok}, "version"},
		{"no handler", sdk.Plugin{Name: "x", Version: "1.0.0", Model: testModel}, "Handle"},
		{"no model", sdk.Plugin{Name: "x", Version: "1.0.0", Handle: ok}, "model"},
		{"version not semver", sdk.Plugin{Name: "x", Version: "one", Model: testModel, Handle: ok}, "micro service"},
	}
	s := brokertest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sdk.Run(context.Background(), tt.p, sdk.WithConn(s.Conn()), quiet)
			if err == nil || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Run = %v, want an error mentioning %q", err, tt.mention)
			}
		})
	}
}
