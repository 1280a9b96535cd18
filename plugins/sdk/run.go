package sdk

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// Environment variables Run reads when no option says otherwise.
const (
	EnvURL   = "OSPREY_NATS_URL"   // NATS server URL(s), comma separated
	EnvCreds = "OSPREY_NATS_CREDS" // NATS credentials file (osprey serve writes one per plugin)
	EnvNkey  = "OSPREY_NATS_NKEY"  // file holding an nkey seed, instead of a credentials file
)

// Defaults of the options.
const (
	// DefaultDrainTimeout is how long Run lets running jobs finish after its context ends,
	// within the usual 30 seconds an orchestrator waits between SIGTERM and SIGKILL.
	DefaultDrainTimeout = 20 * time.Second
	// DefaultBindRetry is how often Run looks again for a jobs consumer that is not there.
	DefaultBindRetry = 5 * time.Second
)

// pullWait bounds one pull request; an idle instance renews it this often.
const pullWait = 30 * time.Second

// publishTimeout bounds the wait for JetStream to store a result and confirm an ack.
const publishTimeout = 30 * time.Second

// maxErrorMessage bounds the message of a failed result built from a handler's error.
const maxErrorMessage = 2000

// Option changes how [Run] connects and behaves.
type Option func(*config)

type config struct {
	url, creds, nkey string
	tls              *tls.Config
	nc               *nats.Conn
	log              *slog.Logger
	drain, retry     time.Duration
	http             *http.Client
}

// WithURL sets the NATS server URL(s); default $OSPREY_NATS_URL, else nats://127.0.0.1:4222.
func WithURL(url string) Option { return func(c *config) { c.url = url } }

// WithCreds authenticates with a NATS credentials file (JWT and nkey seed); default
// $OSPREY_NATS_CREDS.
func WithCreds(file string) Option { return func(c *config) { c.creds = file } }

// WithNkey authenticates with the nkey seed in file; default $OSPREY_NATS_NKEY.
func WithNkey(seedFile string) Option { return func(c *config) { c.nkey = seedFile } }

// WithTLS connects over TLS with cfg (a private CA, a client certificate).
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithConn uses an established connection instead of connecting; Run leaves it open.
// URL, credentials and TLS options are then ignored. With a plugin's credentials the
// connection must use the inbox prefix protocol.InboxPrefix(name)
// (nats.CustomInboxPrefix), which is all they may subscribe to.
func WithConn(nc *nats.Conn) Option { return func(c *config) { c.nc = nc } }

// WithLogger sets the logger; default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithDrainTimeout sets how long running jobs may finish once Run's context ends; default
// [DefaultDrainTimeout]. Jobs still running then are handed back (nak) for another instance.
func WithDrainTimeout(d time.Duration) Option { return func(c *config) { c.drain = d } }

// WithBindRetry sets how often Run looks again for a missing jobs stream or consumer;
// default [DefaultBindRetry].
func WithBindRetry(d time.Duration) Option { return func(c *config) { c.retry = d } }

// WithHTTPClient sets the HTTP client of [Job.DICOMweb], for a DICOMweb endpoint behind a
// private CA, say; default a client with a five-minute timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.http = hc } }

// Run runs one instance of p until ctx ends or the connection is lost for good, and
// returns nil after a clean shutdown.
//
// It connects to NATS, registers a micro service (name p.Name, version p.Version, the
// model in its metadata), binds to the durable consumer protocol.Consumer(p.Name) on
// protocol.JobsStream(p.Name), waiting for osprey serve to create them, and runs jobs, at
// most p.Concurrency at a time. For each job it guarantees:
//
//   - the job's context ends at the job's deadline; a job already past its deadline, or
//     whose handler is still running at the deadline, gets a failed result with code
//     timeout (a handler that ignores its context is left behind, its answer dropped);
//   - while the handler runs, the job is kept alive (JetStream in-progress and a progress
//     heartbeat) at least three times per ack wait, so a long job is not redelivered;
//   - the handler's result, or its error turned into a failed or not_applicable result, is
//     completed (protocol, ids, model, timings) and checked with protocol.CheckResult and
//     the schema; an invalid result becomes a failed result with code internal, as does a
//     panic;
//   - the result is published to protocol.ResultsSubject(p.Name) with Nats-Msg-Id
//     protocol.ResultMsgID and header protocol.HeaderPluginVersion, and the job is acked
//     only once JetStream has stored the result; if publishing fails the job is nak'd;
//   - a job that cannot be decoded gets a failed invalid_input result when its id can be
//     read, and is terminated (never redelivered).
//
// When ctx ends Run stops pulling, waits up to the drain timeout for running jobs, naks the
// ones still running, stops the micro service and closes the connection it opened.
func Run(ctx context.Context, p Plugin, opts ...Option) error {
	if err := p.check(); err != nil {
		return err
	}
	if p.Concurrency == 0 {
		p.Concurrency = 1
	}
	cfg := config{log: slog.Default(), drain: DefaultDrainTimeout, retry: DefaultBindRetry}
	for _, o := range opts {
		o(&cfg)
	}
	log := cfg.log.With("plugin", p.Name, "version", p.Version)

	nc := cfg.nc
	if nc == nil {
		var err error
		if nc, err = connect(p.Name, cfg, log); err != nil {
			return err
		}
		defer func() {
			_ = nc.FlushTimeout(5 * time.Second)
			nc.Close()
		}()
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name: p.Name, Version: p.Version, Description: p.Description, Metadata: p.metadata(),
	})
	if err != nil {
		return fmt.Errorf("sdk: plugin %s: register micro service: %w", p.Name, err)
	}
	defer func() { _ = svc.Stop() }()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("sdk: plugin %s: jetstream: %w", p.Name, err)
	}
	r := &runner{p: p, cfg: cfg, nc: nc, js: js, log: log.With("instance", svc.Info().ID)}
	cons, err := r.bind(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ackWait := cons.CachedInfo().Config.AckWait
	if ackWait <= 0 || ackWait > protocol.DefaultAckWait {
		ackWait = protocol.DefaultAckWait
	}
	r.beat = ackWait / 3
	r.log.Info("sdk: plugin running", "stream", protocol.JobsStream(p.Name), "consumer", protocol.Consumer(p.Name), "concurrency", p.Concurrency)
	return r.run(ctx, cons)
}

// connect dials NATS as the options and environment say.
func connect(name string, cfg config, log *slog.Logger) (*nats.Conn, error) {
	url := cmp.Or(cfg.url, os.Getenv(EnvURL), nats.DefaultURL)
	opts := []nats.Option{
		nats.Name("osprey-plugin-" + name),
		// A plugin's credentials reach only its own inboxes (docs/plugins.md, Credentials).
		nats.CustomInboxPrefix(protocol.InboxPrefix(name)),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("sdk: nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("sdk: nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		// Permission violations arrive here: the first sign of credentials that do not fit.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Error("sdk: nats", "error", err) }),
	}
	creds, nkey := cmp.Or(cfg.creds, os.Getenv(EnvCreds)), cmp.Or(cfg.nkey, os.Getenv(EnvNkey))
	switch {
	case creds != "" && nkey != "":
		return nil, fmt.Errorf("sdk: plugin %s: both a credentials file (%s) and an nkey seed (%s): use one", name, creds, nkey)
	case creds != "":
		opts = append(opts, nats.UserCredentials(creds))
	case nkey != "":
		o, err := nats.NkeyOptionFromSeed(nkey)
		if err != nil {
			return nil, fmt.Errorf("sdk: plugin %s: nkey seed %s: %w", name, nkey, err)
		}
		opts = append(opts, o)
	}
	if cfg.tls != nil {
		opts = append(opts, nats.Secure(cfg.tls))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("sdk: plugin %s: connect to %s: %w", name, url, err)
	}
	return nc, nil
}

// runner is one running instance.
type runner struct {
	p    Plugin
	cfg  config
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	beat time.Duration
}

// bind finds the jobs consumer, waiting for the engine to create it.
func (r *runner) bind(ctx context.Context) (jetstream.Consumer, error) {
	stream, name := protocol.JobsStream(r.p.Name), protocol.Consumer(r.p.Name)
	for attempt := 0; ; attempt++ {
		cons, err := r.js.Consumer(ctx, stream, name)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var why string
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			why = fmt.Sprintf("jobs stream %s not found: is osprey serve running with plugin %s configured?", stream, r.p.Name)
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			why = fmt.Sprintf("jobs consumer %s on stream %s not found: is osprey serve running with plugin %s configured?", name, stream, r.p.Name)
		case errors.Is(err, nats.ErrConnectionClosed):
			return nil, fmt.Errorf("sdk: plugin %s: bind to %s: %w", r.p.Name, stream, err)
		default:
			why = fmt.Sprintf("cannot bind to jobs consumer %s on %s (do the credentials allow it?): %v", name, stream, err)
		}
		// The first miss is worth a warning; repeating it every few seconds is noise.
		if attempt%12 == 0 {
			r.log.Warn("sdk: "+why, "retry_in", r.cfg.retry.String())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.cfg.retry):
		}
	}
}

// run pulls and handles jobs until ctx ends, then drains.
func (r *runner) run(ctx context.Context, cons jetstream.Consumer) error {
	pullCtx, stopPull := context.WithCancel(ctx)
	defer stopPull()
	// Running jobs outlive ctx by the drain timeout; workCtx ends them.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		fatalErr error
	)
	fail := func(err error) {
		mu.Lock()
		if fatalErr == nil {
			fatalErr = err
		}
		mu.Unlock()
		stopPull()
		stopWork() // nothing can be acked any more
	}
	for range r.p.Concurrency {
		wg.Go(func() {
			if err := r.worker(pullCtx, workCtx, cons); err != nil {
				fail(err)
			}
		})
	}
	// A closed connection ends the instance: nothing could be acked or published any more,
	// and JetStream redelivers the running jobs to other instances after the ack wait.
	closed := r.nc.StatusChanged(nats.CLOSED)
	defer r.nc.RemoveStatusListener(closed)
	go func() {
		select {
		case _, ok := <-closed:
			if !ok {
				return // removed as run returns
			}
			fail(fmt.Errorf("sdk: plugin %s: %w", r.p.Name, nats.ErrConnectionClosed))
		case <-pullCtx.Done():
		}
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	<-pullCtx.Done()
	timer := time.NewTimer(r.cfg.drain)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		r.log.Warn("sdk: drain timeout: handing running jobs back", "drain_timeout", r.cfg.drain.String())
		stopWork()
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	if fatalErr != nil {
		return fatalErr
	}
	r.log.Info("sdk: plugin stopped")
	return nil
}

// worker pulls one job at a time and handles it. It returns an error only when the
// connection is gone for good.
func (r *runner) worker(pullCtx, workCtx context.Context, cons jetstream.Consumer) error {
	for pullCtx.Err() == nil {
		msg, err := r.next(pullCtx, cons)
		switch {
		case pullCtx.Err() != nil:
			if msg != nil {
				r.nak(msg, "shutting down")
			}
			return nil
		case errors.Is(err, nats.ErrConnectionClosed):
			return fmt.Errorf("sdk: plugin %s: %w", r.p.Name, err)
		case err != nil:
			r.log.Warn("sdk: pull jobs", "error", err)
			select {
			case <-pullCtx.Done():
			case <-time.After(r.cfg.retry):
			}
			continue
		case msg == nil:
			continue
		}
		r.handle(workCtx, msg)
	}
	return nil
}

// next pulls one job, or none when the pull expires.
func (r *runner) next(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, pullWait)
	defer cancel()
	batch, err := cons.Fetch(1, jetstream.FetchContext(ctx))
	if err != nil {
		return nil, err
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if err := batch.Error(); err != nil && msg == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	return msg, nil
}

func (r *runner) nak(msg jetstream.Msg, why string) {
	if err := msg.Nak(); err != nil {
		r.log.Warn("sdk: nak job", "why", why, "error", err)
	}
}

// outcome is what a handler gave back.
type outcome struct {
	res protocol.Result
	err error
}

// handle runs one job to its end: a result published and the job acked, or the job handed
// back.
func (r *runner) handle(workCtx context.Context, msg jetstream.Msg) {
	started := time.Now()
	delivery, queued := 1, time.Duration(0)
	if meta, err := msg.Metadata(); err == nil {
		delivery = int(meta.NumDelivered)
		if delivery == 1 {
			queued = started.Sub(meta.Timestamp)
		}
	}
	job, err := protocol.DecodeJob(msg.Data())
	if err == nil && job.Plugin != r.p.Name {
		err = fmt.Errorf("job for plugin %q on the jobs stream of %q", job.Plugin, r.p.Name)
	}
	if err != nil {
		r.reject(msg, err)
		return
	}
	j := &Job{
		Job: job, Delivery: delivery, msg: msg, nc: r.nc, plugin: r.p.Name, http: r.cfg.http,
		log: r.log.With("job_id", job.JobID, "attempt", job.Attempt, "delivery", delivery),
	}
	defer j.end()
	t := timing{started: started, queued: queued}
	if !started.Before(job.Deadline) {
		j.log.Warn("sdk: job received past its deadline", "deadline", job.Deadline)
		r.finish(msg, j, r.complete(j, timedOut(job), t))
		return
	}
	hctx, cancel := context.WithDeadline(workCtx, job.Deadline)
	defer cancel()
	out := make(chan outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				j.log.Error("sdk: handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				out <- outcome{err: &protocol.Error{Code: protocol.ErrCodeInternal, Message: fmt.Sprintf("handler panicked: %v", p)}}
			}
		}()
		res, err := r.p.Handle(hctx, j)
		out <- outcome{res, err}
	}()
	handBack := func() {
		j.end()
		r.nak(msg, "shut down while running")
		j.log.Info("sdk: job handed back at shutdown")
	}
	ticker := time.NewTicker(r.beat)
	defer ticker.Stop()
	for {
		select {
		case o := <-out:
			if o.err != nil && workCtx.Err() != nil {
				handBack()
				return
			}
			if o.err != nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
				o = outcome{res: timedOut(job)}
			}
			r.finish(msg, j, r.complete(j, o.result(), t))
			return
		case <-ticker.C:
			j.beat()
		case <-hctx.Done():
			if workCtx.Err() != nil {
				handBack()
				return
			}
			j.log.Warn("sdk: handler still running at the job's deadline", "deadline", job.Deadline)
			r.finish(msg, j, r.complete(j, timedOut(job), t))
			return
		}
	}
}

// timedOut is the failed result of a job whose deadline passed.
func timedOut(job protocol.Job) protocol.Result {
	return protocol.Result{Status: protocol.StatusFailed, Error: &protocol.Error{
		Code:    protocol.ErrCodeTimeout,
		Message: "the job's deadline " + job.Deadline.UTC().Format(time.RFC3339) + " passed before the plugin finished",
	}}
}

// result turns a handler's answer into a result, its error into a failed or not_applicable
// result.
func (o outcome) result() protocol.Result {
	if o.err == nil {
		return o.res
	}
	var na *notApplicable
	if errors.As(o.err, &na) {
		return protocol.Result{Status: protocol.StatusNotApplicable, Summary: na.reason}
	}
	if errors.Is(o.err, ErrNotApplicable) {
		return protocol.Result{Status: protocol.StatusNotApplicable, Summary: o.err.Error()}
	}
	e := &protocol.Error{Code: errorCode(o.err), Message: o.err.Error()}
	var pe *protocol.Error
	if errors.As(o.err, &pe) {
		e = &protocol.Error{Code: cmp.Or(pe.Code, protocol.ErrCodeInternal), Message: cmp.Or(pe.Message, pe.Code)}
	}
	e.Message = truncate(e.Message)
	return protocol.Result{Status: protocol.StatusFailed, Error: e}
}

// errorCode chooses the code of a failed result from a plain error.
func errorCode(err error) string {
	switch {
	case errors.Is(err, ErrFetch):
		return protocol.ErrCodeFetch
	case errors.Is(err, ErrMissingTag), errors.Is(err, ErrUnsupported), errors.Is(err, ErrTruncated):
		return protocol.ErrCodeInput
	case errors.Is(err, context.DeadlineExceeded):
		return protocol.ErrCodeTimeout
	}
	return protocol.ErrCodeInternal
}

type timing struct {
	started time.Time
	queued  time.Duration
}

// complete fills in what a handler may leave out and checks the result against the job; a
// result that fails the checks is replaced by a failed one naming the violations.
func (r *runner) complete(j *Job, res protocol.Result, t timing) protocol.Result {
	res.Protocol, res.JobID, res.Plugin = protocol.Version, j.JobID, r.p.Name
	if res.Status == "" {
		res.Status = protocol.StatusCompleted
	}
	if res.Model == (protocol.Model{}) && res.Status != protocol.StatusFailed {
		res.Model = r.p.Model
	}
	if res.Timings.StartedAt.IsZero() {
		res.Timings.StartedAt = t.started.UTC()
	}
	if res.Timings.FinishedAt.IsZero() {
		res.Timings.FinishedAt = time.Now().UTC()
	}
	if res.Timings.QueuedMS == 0 && t.queued > 0 {
		res.Timings.QueuedMS = t.queued.Milliseconds()
	}
	err := protocol.CheckResult(j.Job, res)
	if err == nil {
		var data []byte
		if data, err = json.Marshal(res); err == nil {
			err = protocol.ValidateResult(data)
		}
	}
	if err == nil {
		return res
	}
	j.log.Error("sdk: the handler returned an invalid result", "error", err)
	msg := truncate("the plugin produced an invalid result: " + err.Error())
	return protocol.Result{
		Protocol: protocol.Version, JobID: j.JobID, Plugin: r.p.Name, Status: protocol.StatusFailed,
		Error:   &protocol.Error{Code: protocol.ErrCodeInternal, Message: msg},
		Timings: protocol.Timings{StartedAt: res.Timings.StartedAt, FinishedAt: res.Timings.FinishedAt, QueuedMS: res.Timings.QueuedMS},
	}
}

// finish publishes res and, once JetStream has stored it, acks the job.
func (r *runner) finish(msg jetstream.Msg, j *Job, res protocol.Result) {
	j.end()
	if err := r.publish(res, j.Attempt); err != nil {
		j.log.Error("sdk: publish result; the job goes back to the queue", "error", err)
		r.nak(msg, "result not published")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		// The result is stored; a redelivery publishes it again under the same id, which the
		// results stream drops as a duplicate.
		j.log.Warn("sdk: ack job", "error", err)
		return
	}
	j.log.Info("sdk: job done", "status", res.Status)
}

func (r *runner) publish(res protocol.Result, attempt int) error {
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	m := nats.NewMsg(protocol.ResultsSubject(r.p.Name))
	m.Data = data
	m.Header.Set(protocol.HeaderPluginVersion, r.p.Version)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	_, err = r.js.PublishMsg(ctx, m,
		jetstream.WithMsgID(protocol.ResultMsgID(res.JobID, attempt)),
		jetstream.WithExpectStream(protocol.ResultsStream),
		jetstream.WithRetryAttempts(5))
	return err
}

// reject answers a job that cannot be decoded: a failed invalid_input result when its id is
// readable, then a terminate, since no redelivery can make it readable.
func (r *runner) reject(msg jetstream.Msg, cause error) {
	var head struct {
		JobID   string `json:"job_id"`
		Attempt int    `json:"attempt"`
	}
	_ = json.Unmarshal(msg.Data(), &head)
	log := r.log.With("job_id", head.JobID)
	log.Error("sdk: job rejected", "error", cause)
	if protocol.ValidJobID(head.JobID) {
		res := protocol.Result{
			Protocol: protocol.Version, JobID: head.JobID, Plugin: r.p.Name, Status: protocol.StatusFailed,
			Error: &protocol.Error{Code: protocol.ErrCodeInput, Message: "the job cannot be read: " + truncate(cause.Error())},
		}
		if err := r.publish(res, max(head.Attempt, 1)); err != nil {
			log.Error("sdk: publish the failure of an unreadable job", "error", err)
		}
	}
	if err := msg.Term(); err != nil {
		log.Warn("sdk: terminate job", "error", err)
	}
}

func truncate(s string) string {
	if len(s) > maxErrorMessage {
		return s[:maxErrorMessage] + "…"
	}
	return s
}
