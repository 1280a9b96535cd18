package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// runServer starts an embedded JetStream server with an admin user (everything) and one user
// per plugin restricted to PluginPermissions.
func runServer(t *testing.T, plugins ...string) *server.Server {
	t.Helper()
	users := []*server.User{{Username: "admin", Password: "admin"}}
	for _, p := range plugins {
		perm := PluginPermissions(p)
		users = append(users, &server.User{Username: p, Password: p, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: perm.Publish},
			Subscribe: &server.SubjectPermission{Allow: perm.Subscribe},
			Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}})
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("embedded nats server not ready")
	}
	return s
}

// violationLog collects the permission errors the server reports to a connection.
type violationLog struct {
	mu   sync.Mutex
	errs []string
	ch   chan struct{}
}

func (v *violationLog) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
	select {
	case v.ch <- struct{}{}:
	default:
	}
}

func (v *violationLog) all() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.errs...)
}

// waitFor waits until a reported error contains substr or the deadline passes.
func (v *violationLog) waitFor(substr string, d time.Duration) bool {
	deadline := time.After(d)
	for {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, substr) {
				v.mu.Unlock()
				return true
			}
		}
		v.mu.Unlock()
		select {
		case <-v.ch:
		case <-deadline:
			return false
		}
	}
}

func connect(t *testing.T, s *server.Server, user string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append(opts, nats.UserInfo(user, user))...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// setupStreams creates what the engine creates: a jobs stream and consumer per plugin and
// the results stream, with the names and settings docs/plugins.md states.
func setupStreams(ctx context.Context, t *testing.T, js jetstream.JetStream, plugins ...string) {
	t.Helper()
	for _, p := range plugins {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: JobsStream(p), Subjects: []string{JobsSubject(p)},
			Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateConsumer(ctx, JobsStream(p), jetstream.ConsumerConfig{
			Durable: Consumer(p), AckPolicy: jetstream.AckExplicitPolicy, AckWait: DefaultAckWait, MaxDeliver: 5,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: ResultsStream, Subjects: []string{ResultsSubjects}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
}

// TestFlowOverNATS walks the documented flow with a plugin restricted to PluginPermissions:
// discovery, pull, progress, result with de-duplication, ack; and checks the credentials
// keep it away from another plugin's jobs and results.
func TestFlowOverNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := runServer(t, "ich")

	admin := connect(t, s, "admin")
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	setupStreams(ctx, t, ajs, "ich", "other")

	vlog := &violationLog{ch: make(chan struct{}, 1)}
	pc := connect(t, s, "ich", nats.ErrorHandler(vlog.handler), nats.CustomInboxPrefix(InboxPrefix("ich")))
	pjs, err := jetstream.New(pc)
	if err != nil {
		t.Fatal(err)
	}

	// Discovery: the plugin registers a micro service; the engine finds it by $SRV.INFO.
	svc, err := micro.AddService(pc, micro.Config{Name: "ich", Version: "1.4.0", Metadata: map[string]string{
		MetaModelName: "osprey-ich-demo", MetaModelVersion: "0.3.1", MetaModalities: "CT",
		MetaBodyParts: "HEAD", MetaProtocol: Version,
	}})
	if err != nil {
		t.Fatalf("add micro service under plugin permissions: %v", err)
	}
	defer svc.Stop()
	// The service's subscriptions must reach the server before anyone can find it: a flush
	// round trip on the plugin's connection guarantees the server has processed them.
	if err := pc.Flush(); err != nil {
		t.Fatal(err)
	}
	reply, err := admin.Request("$SRV.INFO.ich", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("discover plugin: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "ich" || info.Version != "1.4.0" || info.Metadata[MetaProtocol] != Version {
		t.Errorf("discovered %+v", info.ServiceIdentity)
	}

	// The engine publishes a job and listens for progress.
	job := sampleJob()
	progress, err := admin.SubscribeSync(ProgressSubject(job.JobID))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	jobData, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, JobsSubject("ich"), jobData); err != nil {
		t.Fatal(err)
	}

	// The plugin binds, pulls, signals progress, publishes the result twice (as after a
	// crash between publish and ack) and acks.
	cons, err := pjs.Consumer(ctx, JobsStream("ich"), Consumer("ich"))
	if err != nil {
		t.Fatalf("bind to jobs consumer: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch job: %v", err)
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if batch.Error() != nil || msg == nil {
		t.Fatalf("no job fetched: %v", batch.Error())
	}
	got, err := DecodeJob(msg.Data())
	if err != nil {
		t.Fatalf("decode job: %v", err)
	}
	if err := msg.InProgress(); err != nil {
		t.Fatalf("in progress: %v", err)
	}
	p := sampleProgress()
	p.JobID = got.JobID
	pdata, _ := json.Marshal(p)
	if err := pc.Publish(ProgressSubject(got.JobID), pdata); err != nil {
		t.Fatal(err)
	}
	pm, err := progress.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("progress not received: %v", err)
	}
	if _, err := DecodeProgress(pm.Data); err != nil {
		t.Errorf("progress: %v", err)
	}

	r := sampleResult()
	r.JobID = got.JobID
	rdata, _ := json.Marshal(r)
	for i, wantDup := range []bool{false, true} {
		ack, err := pjs.Publish(ctx, ResultsSubject("ich"), rdata, jetstream.WithMsgID(ResultMsgID(got.JobID, got.Attempt)))
		if err != nil {
			t.Fatalf("publish result %d: %v", i, err)
		}
		if ack.Stream != ResultsStream || ack.Duplicate != wantDup {
			t.Errorf("publish %d: ack %+v, want stream %s duplicate %v", i, ack, ResultsStream, wantDup)
		}
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack job: %v", err)
	}

	// The job left the work queue; exactly one result is stored, valid for the job.
	jobsInfo, err := ajs.Stream(ctx, JobsStream("ich"))
	if err != nil {
		t.Fatal(err)
	}
	if n := jobsInfo.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("jobs stream holds %d messages after ack, want 0", n)
	}
	results, err := ajs.Stream(ctx, ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := results.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("results stream holds %d messages, want 1", n)
	}
	stored, err := results.GetLastMsgForSubject(ctx, ResultsSubject("ich"))
	if err != nil {
		t.Fatal(err)
	}
	sr, err := DecodeResult(stored.Data)
	if err != nil {
		t.Fatalf("stored result: %v", err)
	}
	if err := CheckResult(job, sr); err != nil {
		t.Errorf("stored result: %v", err)
	}

	// The credentials reach nothing of another plugin.
	denied := []struct {
		name    string
		do      func(ctx context.Context) error
		subject string
	}{
		{"bind another plugin's consumer", func(ctx context.Context) error {
			_, err := pjs.Consumer(ctx, JobsStream("other"), Consumer("other"))
			return err
		}, "$JS.API.CONSUMER.INFO." + JobsStream("other")},
		{"publish another plugin's results", func(ctx context.Context) error {
			_, err := pjs.Publish(ctx, ResultsSubject("other"), rdata)
			return err
		}, ResultsSubject("other")},
		{"publish a job", func(ctx context.Context) error {
			_, err := pjs.Publish(ctx, JobsSubject("ich"), jobData)
			return err
		}, JobsSubject("ich")},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			// The denied request gets no answer, so the call ends at this timeout.
			ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			if err := tt.do(ctx); err == nil {
				t.Fatal("allowed")
			} else if errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if !vlog.waitFor("Permissions Violation for Publish to \""+tt.subject, 5*time.Second) {
				t.Errorf("no permissions violation reported for %s; got %v", tt.subject, vlog.all())
			}
		})
	}
}
