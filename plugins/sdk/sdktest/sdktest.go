// Package sdktest runs plugins against a real NATS JetStream server in tests: it creates the
// jobs stream, the jobs consumer and the results stream exactly as osprey serve does (from
// protocol.JobsStreamConfig, JobsConsumerConfig and ResultsStreamConfig), publishes jobs as
// the engine does, and reads back the stored results with their headers.
//
// It takes a connection with full JetStream rights (the engine's, say); the plugin under test
// connects on its own.
package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
)

// Wait bounds every wait of this package: long enough never to fire on a loaded machine,
// short enough that a hang fails the test rather than the run.
const Wait = 30 * time.Second

// Env is one plugin's streams and consumer on a server. Its methods take the (sub)test
// they fail.
type Env struct {
	JS     jetstream.JetStream
	Plugin string
}

// Setup creates the jobs stream and consumer of plugin and the results stream (if absent).
// consumer, when not nil, adjusts the consumer configuration first (a short AckWait, say).
func Setup(t testing.TB, nc *nats.Conn, plugin string, consumer func(*jetstream.ConsumerConfig)) *Env {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("sdktest: jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, protocol.ResultsStreamConfig()); err != nil {
		t.Fatalf("sdktest: results stream: %v", err)
	}
	if _, err := js.CreateStream(ctx, protocol.JobsStreamConfig(plugin)); err != nil {
		t.Fatalf("sdktest: jobs stream of %s: %v", plugin, err)
	}
	cc := protocol.JobsConsumerConfig(plugin, 5, 0)
	if consumer != nil {
		consumer(&cc)
	}
	if _, err := js.CreateConsumer(ctx, protocol.JobsStream(plugin), cc); err != nil {
		t.Fatalf("sdktest: jobs consumer of %s: %v", plugin, err)
	}
	return &Env{JS: js, Plugin: plugin}
}

// Publish publishes job as the engine does, filling in the protocol, the plugin and, when
// zero, the attempt (1) and a deadline a minute away.
func (e *Env) Publish(t testing.TB, job protocol.Job) protocol.Job {
	t.Helper()
	job.Protocol, job.Plugin = protocol.Version, e.Plugin
	if job.Attempt == 0 {
		job.Attempt = 1
	}
	if job.Deadline.IsZero() {
		job.Deadline = time.Now().Add(time.Minute)
	}
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatalf("sdktest: marshal job: %v", err)
	}
	e.PublishRaw(t, data)
	return job
}

// PublishRaw publishes data, valid or not, on the plugin's jobs subject.
func (e *Env) PublishRaw(t testing.TB, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if _, err := e.JS.Publish(ctx, protocol.JobsSubject(e.Plugin), data); err != nil {
		t.Fatalf("sdktest: publish job: %v", err)
	}
}

// Stored is a result as the results stream holds it.
type Stored struct {
	Result protocol.Result
	Header nats.Header
	Data   []byte
	Seq    uint64
}

// Results returns every result of the plugin stored so far, decoded with
// protocol.DecodeResult (the schema check the engine runs): a result the schema refuses
// fails the test.
func (e *Env) Results(t testing.TB) []Stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	s, err := e.JS.Stream(ctx, protocol.ResultsStream)
	if err != nil {
		t.Fatalf("sdktest: results stream: %v", err)
	}
	var out []Stored
	subject := protocol.ResultsSubject(e.Plugin)
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("sdktest: read results: %v", err)
		}
		r, err := protocol.DecodeResult(m.Data)
		if err != nil {
			t.Fatalf("sdktest: stored result %d: %v\n%s", m.Sequence, err, m.Data)
		}
		out = append(out, Stored{Result: r, Header: m.Header, Data: m.Data, Seq: m.Sequence})
		seq = m.Sequence + 1
	}
}

// ResultsFor returns the stored results of one job.
func (e *Env) ResultsFor(t testing.TB, jobID string) []Stored {
	t.Helper()
	var out []Stored
	for _, s := range e.Results(t) {
		if s.Result.JobID == jobID {
			out = append(out, s)
		}
	}
	return out
}

// WaitResult waits for the first result of job and checks it against the job with
// protocol.CheckResult, as the engine does.
func (e *Env) WaitResult(t testing.TB, job protocol.Job) Stored {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		if rs := e.ResultsFor(t, job.JobID); len(rs) > 0 {
			if err := protocol.CheckResult(job, rs[0].Result); err != nil {
				t.Errorf("sdktest: result of %s fails the engine's checks: %v", job.JobID, err)
			}
			return rs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("sdktest: no result for job %s within %s", job.JobID, Wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Consumer returns the current state of the jobs consumer.
func (e *Env) Consumer(t testing.TB) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	c, err := e.JS.Consumer(ctx, protocol.JobsStream(e.Plugin), protocol.Consumer(e.Plugin))
	if err != nil {
		t.Fatalf("sdktest: jobs consumer: %v", err)
	}
	return c.CachedInfo()
}

// WaitJobsDone waits until the jobs stream is empty: every job acked or terminated.
func (e *Env) WaitJobsDone(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	for {
		s, err := e.JS.Stream(ctx, protocol.JobsStream(e.Plugin))
		if err != nil {
			t.Fatalf("sdktest: jobs stream: %v", err)
		}
		n := s.CachedInfo().State.Msgs
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sdktest: %d jobs still in %s after %s", n, protocol.JobsStream(e.Plugin), Wait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Instance is a plugin instance started by [Start].
type Instance struct {
	cancel context.CancelFunc
	done   chan error
}

// Start runs sdk.Run(p, opts...) in a goroutine until Stop or the end of the test.
func Start(t testing.TB, p sdk.Plugin, opts ...sdk.Option) *Instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instance{cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- sdk.Run(ctx, p, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(Wait):
			t.Errorf("sdktest: plugin %s did not stop within %s", p.Name, Wait)
		}
	})
	return in
}

// Cancel cancels the instance's context, as SIGTERM does in a plugin binary, and returns at
// once: Run then drains.
func (in *Instance) Cancel() { in.cancel() }

// Stop cancels the instance's context and returns what Run returned.
func (in *Instance) Stop(t testing.TB) error {
	t.Helper()
	in.cancel()
	return in.Wait(t)
}

// Wait waits for Run to return, without cancelling it, and returns its error.
func (in *Instance) Wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(Wait):
		t.Fatalf("sdktest: Run did not return within %s", Wait)
		return nil
	}
}

// Log records what a plugin logs, for a test to wait for a line: pass Logger() to
// sdk.WithLogger.
type Log struct {
	mu    sync.Mutex
	lines []string
}

// Logger returns a logger writing to l.
func (l *Log) Logger() *slog.Logger { return slog.New(logHandler{l: l}) }

// Lines returns the records so far, each its message followed by its attributes as
// key=value.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// WaitFor waits until a record contains substr and returns it, failing the test after Wait.
func (l *Log) WaitFor(t testing.TB, substr string) string {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		for _, line := range l.Lines() {
			if strings.Contains(line, substr) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sdktest: no log line contains %q within %s; got:\n%s", substr, Wait, strings.Join(l.Lines(), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type logHandler struct {
	l     *Log
	attrs []slog.Attr
}

func (h logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.l.mu.Lock()
	h.l.lines = append(h.l.lines, b.String())
	h.l.mu.Unlock()
	return nil
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l: h.l, attrs: append(slices.Clone(h.attrs), as...)}
}

// Groups are flattened: the records are for searching, not for parsing.
func (h logHandler) WithGroup(string) slog.Handler { return h }

// ReplaceOnce returns a copy of data with the first old replaced by new, failing the test
// when old is not there: a way to corrupt one element of a Part 10 file in place.
func ReplaceOnce(t testing.TB, data []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(old))
	if i < 0 {
		t.Fatalf("sdktest: %q not found in the data", old)
	}
	return slices.Concat(data[:i], []byte(new), data[i+len(old):])
}
