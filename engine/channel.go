package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
)

// channel is one running channel: its source, the inbound processor and one delivery
// worker per destination. Data flows one way: source -> inbound stream -> processor ->
// destination streams -> destinations.
type channel struct {
	e    *Engine
	name string
	cfg  config.Channel
	hash string
	log  *slog.Logger

	source    Source
	filter    *rules.Filter
	steps     []rules.Step
	stepNames []string
	orderKey  *rules.Key
	dests     []*destination
	dedupe    *dedupe

	committer *broker.Committer

	mu        sync.Mutex // guards the fields below
	state     ChannelState
	srcCancel context.CancelFunc
	srcDone   chan struct{}
	runCancel context.CancelFunc
	runDone   sync.WaitGroup
	lastErr   string
	lastErrAt time.Time

	paused   atomic.Bool
	resumeCh chan struct{} // closed and replaced on resume; deliveries wait on it while paused

	received, rejected, filtered, errored atomic.Int64
}

// buildChannel constructs every component of c without starting anything.
func (e *Engine) buildChannel(ctx context.Context, c config.Channel) (ch *channel, err error) {
	ch = &channel{e: e, name: c.Name, cfg: c, hash: channelHash(c), state: StateStopped,
		log: e.log.With("channel", c.Name), resumeCh: make(chan struct{})}
	built := ch // the returns below set ch to nil; what was provisioned must still be closed
	defer func() {
		if err != nil {
			built.closeComponents(ctx)
		}
	}()
	res := Resources{Logger: ch.log, DataDir: e.opts.DataDir, Channel: c.Name, Broker: e.opts.Broker}
	if ch.source, err = e.opts.Registry.NewSource(c.Source.Name, c.Source.Conf, res); err != nil {
		return nil, fmt.Errorf("source %s: %w", c.Source.Name, err)
	}
	if err := provision(ctx, ch.source); err != nil {
		return nil, fmt.Errorf("source %s: %w", c.Source.Name, err)
	}
	// config.Load compiled the expressions and built the steps, so a channel that loaded
	// cannot fail here on them.
	ch.filter, ch.orderKey = c.Match, c.OrderKey
	for i, st := range c.Transform {
		ch.steps = append(ch.steps, st.Impl)
		ch.stepNames = append(ch.stepNames, fmt.Sprintf("transform[%d] %s", i, st.Name))
	}
	if c.DedupeWindow > 0 {
		ch.dedupe = newDedupe(c.DedupeWindow)
	}
	for _, dc := range c.Destinations {
		d, err := ch.buildDestination(ctx, dc)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", dc.Name, err)
		}
		ch.dests = append(ch.dests, d)
	}
	return ch, nil
}

// channelHash identifies a channel's resolved configuration; Apply rebuilds only channels
// whose hash changed.
func channelHash(c config.Channel) string { return c.Hash() }

func provision(ctx context.Context, c any) error {
	if p, ok := c.(Provisioner); ok {
		return p.Provision(ctx)
	}
	return nil
}

func closeComponent(ctx context.Context, c any) error {
	if cl, ok := c.(Closer); ok {
		return cl.Close(ctx)
	}
	return nil
}

// closeComponents releases what buildChannel provisioned (used after a failed build and at stop).
func (ch *channel) closeComponents(ctx context.Context) {
	if ch.source != nil {
		if err := closeComponent(ctx, ch.source); err != nil {
			ch.log.Warn("close source", "err", err)
		}
	}
	for _, d := range ch.dests {
		if err := closeComponent(ctx, d.dst); err != nil {
			ch.log.Warn("close destination", "destination", d.name, "err", err)
		}
	}
}

// start creates the streams and consumers if needed and starts the processor, the delivery
// workers and then the source, so that nothing is accepted before it can be carried.
func (ch *channel) start(ctx context.Context) error {
	b := ch.e.opts.Broker
	if _, err := b.EnsureStream(ctx, jetstream.StreamConfig{
		Name: inStream(ch.name), Subjects: []string{inSubject(ch.name)},
		Retention: ch.queueRetention(ctx, inStream(ch.name)), Storage: jetstream.FileStorage, // trimmed: trim.go
		Description: "Osprey inbound queue of channel " + ch.name,
	}); err != nil {
		return fmt.Errorf("inbound stream: %w", err)
	}
	if _, err := b.EnsureStream(ctx, jetstream.StreamConfig{
		Name: outStream(ch.name), Subjects: []string{outSubjects(ch.name)},
		Retention: ch.queueRetention(ctx, outStream(ch.name)), Storage: jetstream.FileStorage,
		Description: "Osprey destination queues of channel " + ch.name,
	}); err != nil {
		return fmt.Errorf("destination stream: %w", err)
	}
	if ch.dedupe != nil {
		if err := ch.dedupe.warm(ctx, ch.e.opts.Store, ch.name); err != nil {
			ch.log.Warn("dedupe window could not be loaded from history; duplicates of messages received before the restart will not be detected", "err", err)
		}
	}
	ch.committer = b.NewCommitter(inSubject(ch.name), committerOptions(ch.name))
	return ch.run(ctx)
}

// run starts processor, workers and source. The channel must be stopped.
func (ch *channel) run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	proc, err := ch.newProcessor(ctx)
	if err != nil {
		cancel()
		return err
	}
	var workers []*worker
	for _, d := range ch.dests {
		w, err := d.newWorker(ctx)
		if err != nil {
			cancel()
			return fmt.Errorf("destination %s: %w", d.name, err)
		}
		workers = append(workers, w)
	}
	hold, err := ch.newHolder(ctx) // context.go: nil unless the channel holds studies for their orders
	if err != nil {
		cancel()
		return fmt.Errorf("join: %w", err)
	}
	ch.mu.Lock()
	ch.runCancel = cancel
	ch.mu.Unlock()
	ch.runDone.Add(2 + len(workers))
	go func() { defer ch.runDone.Done(); proc.run(runCtx) }()
	go func() { defer ch.runDone.Done(); ch.trimLoop(runCtx) }()
	if hold != nil {
		ch.runDone.Add(1)
		go func() { defer ch.runDone.Done(); hold.run(runCtx) }()
	}
	for _, w := range workers {
		go func() { defer ch.runDone.Done(); w.run(runCtx) }()
	}
	ch.startSource()
	return nil
}

func (ch *channel) startSource() {
	srcCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ch.mu.Lock()
	ch.srcCancel, ch.srcDone, ch.state = cancel, done, StateRunning
	if ch.paused.Load() {
		ch.state = StatePaused
	}
	ch.mu.Unlock()
	go func() {
		defer close(done)
		if err := ch.source.Run(srcCtx, ch); err != nil && srcCtx.Err() == nil {
			ch.log.Error("source stopped", "err", err)
			ch.mu.Lock()
			ch.state, ch.lastErr, ch.lastErrAt = StateFailed, "source: "+err.Error(), time.Now()
			ch.mu.Unlock()
		}
	}()
}

// stopSource closes the source and waits until its in-flight messages are answered.
func (ch *channel) stopSource() {
	ch.mu.Lock()
	cancel, done := ch.srcCancel, ch.srcDone
	ch.srcCancel, ch.srcDone = nil, nil
	ch.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// stop drains the channel for good: source first (no new work), then the committer (every
// accepted message is on disk), then processor and workers, which hand unfinished records
// back to JetStream by not acknowledging them.
func (ch *channel) stop(ctx context.Context) {
	ch.halt(ctx)
	ch.closeComponents(ctx)
}

// halt stops source, processor and workers; resume starts them again.
func (ch *channel) halt(ctx context.Context) {
	ch.stopSource()
	if ch.committer != nil {
		if err := ch.committer.Close(ctx); err != nil {
			ch.log.Warn("close committer", "err", err)
		}
	}
	ch.mu.Lock()
	cancel := ch.runCancel
	ch.runCancel = nil
	if ch.state != StateFailed {
		ch.state = StateStopped
	}
	ch.mu.Unlock()
	if cancel != nil {
		cancel()
		ch.runDone.Wait()
	}
}

func (ch *channel) resume(ctx context.Context) error {
	if ch.paused.CompareAndSwap(true, false) {
		ch.mu.Lock()
		close(ch.resumeCh)
		ch.resumeCh = make(chan struct{})
		if ch.state == StatePaused {
			ch.state = StateRunning
		}
		ch.mu.Unlock()
	}
	ch.mu.Lock()
	running := ch.runCancel != nil
	ch.mu.Unlock()
	if running {
		return nil
	}
	// A source's Run is one-shot (it owns its listener), so a stopped channel starts a fresh one.
	src, err := ch.e.opts.Registry.NewSource(ch.cfg.Source.Name, ch.cfg.Source.Conf,
		Resources{Logger: ch.log, DataDir: ch.e.opts.DataDir, Channel: ch.name, Broker: ch.e.opts.Broker})
	if err != nil {
		return fmt.Errorf("source %s: %w", ch.cfg.Source.Name, err)
	}
	if err := provision(ctx, src); err != nil {
		return fmt.Errorf("source %s: %w", ch.cfg.Source.Name, err)
	}
	_ = closeComponent(ctx, ch.source)
	ch.source = src
	ch.committer = ch.e.opts.Broker.NewCommitter(inSubject(ch.name), committerOptions(ch.name))
	return ch.run(ctx)
}

func (ch *channel) pause() {
	ch.paused.Store(true)
	ch.mu.Lock()
	if ch.state == StateRunning {
		ch.state = StatePaused
	}
	ch.mu.Unlock()
}

// waitResumed blocks while the channel is paused.
func (ch *channel) waitResumed(ctx context.Context) error {
	for ch.paused.Load() {
		ch.mu.Lock()
		c := ch.resumeCh
		ch.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c:
		}
	}
	return nil
}

func (ch *channel) noteError(msg string) {
	ch.mu.Lock()
	ch.lastErr, ch.lastErrAt = msg, time.Now()
	ch.mu.Unlock()
}

func (ch *channel) status() ChannelStatus {
	ch.mu.Lock()
	st := ChannelStatus{Name: ch.name, State: ch.state, Source: ch.cfg.Source.Name,
		LastError: ch.lastErr, LastErrorAt: ch.lastErrAt}
	ch.mu.Unlock()
	st.Counters = Counters{Received: ch.received.Load(), Rejected: ch.rejected.Load(),
		Filtered: ch.filtered.Load(), Errored: ch.errored.Load()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st.Counters.Queued = ch.pending(ctx, inStream(ch.name), "processor")
	for _, d := range ch.dests {
		ds := d.status()
		ds.Queued = ch.pending(ctx, outStream(ch.name), d.consumerName())
		st.Counters.Sent += ds.Sent
		st.Counters.Errored += ds.Errored
		st.Counters.Queued += ds.Queued
		st.Destinations = append(st.Destinations, ds)
	}
	return st
}

// pending is how many entries wait in a consumer: records not yet delivered or not yet acked.
// It counts records, not messages; a record holds the messages of one group commit.
func (ch *channel) pending(ctx context.Context, stream, consumer string) int64 {
	c, err := ch.e.opts.Broker.JetStream().Consumer(ctx, stream, consumer)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	n := int64(info.NumPending) + int64(info.NumAckPending)
	q := "inbound"
	if consumer != "processor" {
		q = strings.TrimPrefix(consumer, "dest-")
	}
	ch.e.m.QueueDepth.WithLabelValues(ch.name, q).Set(float64(n))
	return n
}

// Accept implements Sink: the source's messages are committed to the inbound stream.
func (ch *channel) Accept(ctx context.Context, m *Message) (Receipt, error) {
	return ch.ingest(ctx, m, "")
}

// ingest decides a message's verdict and commits it, with the verdict, to the inbound stream.
// Rejected and duplicate messages are committed too: the processor stores them so that
// nothing a peer sent is lost, and skips processing them.
func (ch *channel) ingest(ctx context.Context, m *Message, reprocessOf string) (Receipt, error) {
	start := time.Now()
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = start.UTC()
	}
	if m.ContentType == "" {
		m.ContentType = ContentHL7v2
	}
	m.Channel = ch.name
	m.ID = NewID()
	rec := Receipt{ID: m.ID, Verdict: Accepted}
	hdr := map[string]string{hdrReceived: m.ReceivedAt.UTC().Format(time.RFC3339Nano), hdrContentType: m.ContentType}
	for k, v := range m.Meta {
		hdr[hdrMetaPrefix+k] = v
	}
	if reprocessOf != "" {
		hdr[hdrReprocessOf] = reprocessOf
	}
	var dupKey string
	if m.Reject != nil {
		rec.Verdict, rec.Reason = Rejected, m.Reject
	} else if m.ContentType == ContentHL7v2 {
		msg, err := hl7v2.Parse(m.Body)
		switch {
		case err != nil:
			rec.Verdict, rec.Reason = Rejected, err
		case ch.dedupe != nil && reprocessOf == "":
			dupKey = dedupeKey(msg)
			if orig, seen := ch.dedupe.check(dupKey, m.ID, m.ReceivedAt); seen {
				rec.Verdict, rec.Reason = Duplicate, fmt.Errorf("duplicate of message %s (same MSH-10 from the same sender within %s)", orig, ch.cfg.DedupeWindow)
				hdr[hdrReason] = orig
			}
		}
	}
	switch rec.Verdict {
	case Rejected:
		hdr[hdrVerdict], hdr[hdrReason] = "rejected", rec.Reason.Error()
	case Duplicate:
		hdr[hdrVerdict] = "duplicate"
	}
	err := ch.committer.Commit(ctx, broker.Entry{ID: m.ID, Headers: hdr, Body: m.Body})
	if errors.Is(err, broker.ErrTooLarge) {
		// Retrying cannot help, so the sender must hear AE, not AR; the message goes straight
		// to the history so that it is not lost to the analyst either.
		return ch.rejectTooLarge(ctx, m, reprocessOf, err)
	}
	if err != nil {
		if dupKey != "" {
			ch.dedupe.forget(dupKey, m.ID)
		}
		ch.e.m.Received.WithLabelValues(ch.name, "failed").Inc()
		return Receipt{}, fmt.Errorf("channel %s: commit: %w", ch.name, err)
	}
	ch.received.Add(1)
	if rec.Verdict == Rejected {
		ch.rejected.Add(1)
	}
	ch.e.m.Received.WithLabelValues(ch.name, rec.Verdict.String()).Inc()
	ch.e.m.AckLatency.WithLabelValues(ch.name).Observe(time.Since(start).Seconds())
	return rec, nil
}

func (ch *channel) rejectTooLarge(ctx context.Context, m *Message, reprocessOf string, cause error) (Receipt, error) {
	reason := fmt.Errorf("message of %d bytes is larger than the largest record NATS takes (%d bytes): %w",
		len(m.Body), ch.e.opts.Broker.MaxRecord(), cause)
	rec := store.Message{ID: m.ID, Channel: ch.name, ContentType: m.ContentType, Raw: m.Body, ReceivedAt: m.ReceivedAt,
		Source: m.Meta, Status: store.StatusRejected, Error: reason.Error(), ReprocessOf: reprocessOf, UpdatedAt: time.Now().UTC()}
	if msg, err := hl7v2.Parse(m.Body); err == nil {
		keyFields(&rec, msg)
	}
	if err := ch.e.opts.Store.PutMessages(ctx, []store.Message{rec}); err != nil {
		return Receipt{}, fmt.Errorf("channel %s: store oversize message: %w", ch.name, err)
	}
	ch.received.Add(1)
	ch.rejected.Add(1)
	ch.e.m.Received.WithLabelValues(ch.name, Rejected.String()).Inc()
	return Receipt{ID: m.ID, Verdict: Rejected, Reason: reason}, nil
}

// destination returns the channel's destination called name, nil when there is none.
func (ch *channel) destination(name string) *destination {
	for _, d := range ch.dests {
		if d.name == name {
			return d
		}
	}
	return nil
}

// requeue publishes a dead letter's payload to its destination queue again.
func (ch *channel) requeue(ctx context.Context, m store.Message, dest string) error {
	d := ch.destination(dest)
	if d == nil {
		return fmt.Errorf("destination %q is no longer configured: %w", dest, ErrBadRequest)
	}
	dl, err := ch.e.opts.Store.Delivery(ctx, m.ID, dest)
	if err != nil {
		return err
	}
	dl.Status, dl.LastError, dl.UpdatedAt = store.DeliveryQueued, "", time.Now().UTC()
	if err := ch.e.opts.Store.PutDeliveries(ctx, []store.Delivery{dl}); err != nil {
		return err
	}
	if err := ch.e.opts.Store.SetStatus(ctx, m.ID, store.StatusQueued, ""); err != nil {
		return err
	}
	hdr := map[string]string{hdrReceived: m.ReceivedAt.UTC().Format(time.RFC3339Nano), hdrContentType: m.ContentType, hdrRequeue: "1"}
	return d.publish(ctx, fmt.Sprintf("requeue-%s-%s-%d", m.ID, dest, time.Now().UnixNano()),
		[]broker.Entry{{ID: m.ID, Headers: hdr, Body: dl.Payload}})
}

func dedupeKey(m *hl7v2.Message) string {
	return m.Get("MSH-3") + "^" + m.Get("MSH-4") + "|" + m.ControlID()
}

// dedupe remembers (sender, control id) pairs for a window. It is rebuilt from the message
// store at start, so a restart does not forget what was received just before it.
type dedupe struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]seenAt
	sweep  time.Time
}

type seenAt struct {
	id string
	at time.Time
}

func newDedupe(w time.Duration) *dedupe { return &dedupe{window: w, seen: map[string]seenAt{}} }

// check reports whether key was seen within the window; if not, it records it for id.
func (d *dedupe) check(key, id string, now time.Time) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.sweep) > d.window {
		for k, s := range d.seen {
			if now.Sub(s.at) > d.window {
				delete(d.seen, k)
			}
		}
		d.sweep = now
	}
	if s, ok := d.seen[key]; ok && now.Sub(s.at) <= d.window {
		return s.id, true
	}
	d.seen[key] = seenAt{id, now}
	return "", false
}

// forget undoes check for a message that was never committed, so its retry is not a duplicate.
func (d *dedupe) forget(key, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[key].id == id {
		delete(d.seen, key)
	}
}

func (d *dedupe) warm(ctx context.Context, st store.Store, channel string) error {
	q := store.Query{Channel: channel, From: time.Now().Add(-d.window), Limit: 1000}
	for {
		page, err := st.Search(ctx, q)
		if err != nil {
			return err
		}
		d.mu.Lock()
		for _, m := range page.Messages {
			if m.Status == store.StatusRejected || m.Status == store.StatusDuplicate || m.ReprocessOf != "" {
				continue
			}
			key := m.Sender + "|" + m.ControlID
			if _, ok := d.seen[key]; !ok {
				d.seen[key] = seenAt{m.ID, m.ReceivedAt}
			}
		}
		d.mu.Unlock()
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// metaFromHeaders recovers the source facts from an entry's headers.
func metaFromHeaders(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if rest, ok := strings.CutPrefix(k, hdrMetaPrefix); ok {
			out[rest] = v
		}
	}
	return out
}

var _ Sink = (*channel)(nil)

// committerOptions ties the committer to the channel's inbound stream, so a subject that
// lands anywhere else fails loudly instead of acknowledging a message no processor reads.
func committerOptions(channel string) broker.CommitterOptions {
	return broker.CommitterOptions{Stream: inStream(channel)}
}
