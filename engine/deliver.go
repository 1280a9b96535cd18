package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/mappings"
)

// destination is one configured destination of a channel and its delivery counters.
type destination struct {
	ch     *channel
	name   string
	typ    string
	cfg    config.Destination
	dst    Destination
	filter *rules.Filter

	sent, errored, dead atomic.Int64
	mu                  sync.Mutex
	lastErr             string
	lastErrAt           time.Time
}

func (ch *channel) buildDestination(ctx context.Context, dc config.Destination) (*destination, error) {
	d := &destination{ch: ch, name: dc.Name, typ: dc.Component.Name, cfg: dc}
	res := Resources{Logger: ch.log.With("destination", dc.Name), DataDir: ch.e.opts.DataDir, Channel: ch.name, Broker: ch.e.opts.Broker}
	var err error
	if d.dst, err = ch.e.opts.Registry.NewDestination(dc.Component.Name, dc.Component.Conf, res); err != nil {
		return nil, err
	}
	if err := provision(ctx, d.dst); err != nil {
		return nil, err
	}
	if dc.Mapping.Name != "" {
		m, err := ch.e.opts.Registry.NewMapping(dc.Mapping.Name, dc.Mapping.Conf)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", dc.Mapping.Name, err)
		}
		d.dst = mapped{Destination: d.dst, m: m}
	}
	d.filter = dc.Match
	return d, nil
}

// mapped is a destination whose analyses go through a mapping first. The delivery row keeps
// the analysis, and every attempt maps it again: mappings are pure, so each attempt sends
// the same bytes (the receiver's idempotency keys depend on it).
type mapped struct {
	Destination
	m Mapping
}

func (d mapped) Send(ctx context.Context, msg *Message) (Reply, error) {
	if msg.ContentType != mappings.ContentType {
		return d.Destination.Send(ctx, msg)
	}
	var a mappings.Analysis
	if err := json.Unmarshal(msg.Body, &a); err != nil {
		return Reply{}, fmt.Errorf("%w: analysis: %v", ErrUndeliverable, err)
	}
	body, ct, err := d.m.Map(&a)
	if errors.Is(err, ErrNothingToSend) {
		return Reply{Summary: "not sent: " + err.Error()}, nil
	}
	if err != nil {
		// The same analysis maps the same way next time: retrying cannot help.
		return Reply{}, fmt.Errorf("%w: mapping: %v", ErrUndeliverable, err)
	}
	out := *msg
	out.Body, out.ContentType = body, ct
	reply, err := d.Destination.Send(ctx, &out)
	reply.Sent = body
	return reply, err
}

// Close and Parallelism reach the wrapped destination (it was provisioned before wrapping).
func (d mapped) Close(ctx context.Context) error { return closeComponent(ctx, d.Destination) }

func (d mapped) Parallelism() int {
	if p, ok := d.Destination.(Parallel); ok {
		return p.Parallelism()
	}
	return 0
}

func (d *destination) consumerName() string { return "dest-" + d.name }

func (d *destination) publish(ctx context.Context, id string, entries []broker.Entry) error {
	return publishRecord(ctx, d.ch.e.opts.Broker, outSubject(d.ch.name, d.name), id, entries)
}

func (d *destination) status() DestinationStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return DestinationStatus{Name: d.name, Type: d.typ, Sent: d.sent.Load(), Errored: d.errored.Load(),
		DeadLetters: d.dead.Load(), LastError: d.lastErr, LastErrorAt: d.lastErrAt}
}

// Delivery lanes: an ordered channel has one, so messages go out strictly in arrival order,
// a failing one holding the rest until it is delivered or dead-lettered. ordered_by hashes
// the key to a lane, keeping order per key while keys proceed in parallel. Unordered
// channels spread messages over all lanes.
const parallelLanes = 8

// worker delivers one destination's queue.
type worker struct {
	d     *destination
	cons  jetstream.Consumer
	lanes []chan job

	mu       sync.Mutex
	inFlight map[*tracker]struct{}
	queued   map[string]int // message id -> copies in the lanes

	// unrecorded holds a token from just before a send until its attempt is in the store:
	// that window is what a crash can repeat, so it is kept to one message per connection.
	unrecorded chan struct{}
}

type job struct {
	entry    broker.Entry
	t        *tracker
	attempts int  // attempts recorded before this pass
	recheck  bool // another copy of this message is in the lanes: read its state before sending
}

// tracker acknowledges a record once every entry in it is finished.
type tracker struct {
	msg     jetstream.Msg
	pending atomic.Int32
}

func (d *destination) newWorker(ctx context.Context) (*worker, error) {
	lanes := parallelLanes
	maxAck := 64
	if d.ch.cfg.Ordered {
		lanes = 1
	}
	cons, err := d.ch.e.opts.Broker.JetStream().CreateOrUpdateConsumer(ctx, outStream(d.ch.name), jetstream.ConsumerConfig{
		Durable:       d.consumerName(),
		Description:   "Osprey delivery to " + d.name,
		FilterSubject: outSubject(d.ch.name, d.name),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait, // kept alive with InProgress while retries back off
		MaxAckPending: maxAck,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	par := 1
	if p, ok := d.dst.(Parallel); ok && p.Parallelism() > 0 {
		par = p.Parallelism()
	}
	w := &worker{d: d, cons: cons, inFlight: map[*tracker]struct{}{}, queued: map[string]int{}, unrecorded: make(chan struct{}, par)}
	for range lanes {
		w.lanes = append(w.lanes, make(chan job, 256))
	}
	return w, nil
}

func (w *worker) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, lane := range w.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range lane {
				if w.deliver(ctx, j) {
					w.finish(j.t)
				}
			}
		}()
	}
	hbDone := make(chan struct{})
	go w.heartbeat(ctx, hbDone)
	consume(ctx, w.cons, w.d.ch.log, 16, func(m jetstream.Msg) { w.dispatch(ctx, m) })
	for _, lane := range w.lanes {
		close(lane)
	}
	wg.Wait()
	<-hbDone
	// Records not finished are handed back at once, not after their ack wait, so a reload's
	// new worker carries on where this one stopped.
	w.mu.Lock()
	for t := range w.inFlight {
		_ = t.msg.Nak()
	}
	w.mu.Unlock()
}

func (w *worker) dispatch(ctx context.Context, m jetstream.Msg) {
	entries, err := broker.DecodeRecord(m.Data())
	if err != nil {
		w.d.ch.log.Error("destination record is corrupt; terminated", "destination", w.d.name, "err", err)
		w.d.note("corrupt record: " + err.Error())
		_ = m.Term()
		return
	}
	// What an earlier pass already did is in the store, one query per record: a record whose
	// ack was lost in a crash comes back from JetStream looking new.
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	var states map[string]store.Delivery
	if !retry(ctx, w.d.ch, "read deliveries of "+w.d.name, func() error {
		var err error
		states, err = w.d.ch.e.opts.Store.DeliveryStates(ctx, w.d.name, ids)
		return err
	}) {
		return // stopping; the record is not acked and comes back
	}
	t := &tracker{msg: m}
	t.pending.Store(int32(len(entries)))
	w.mu.Lock()
	w.inFlight[t] = struct{}{}
	w.mu.Unlock()
	for i, e := range entries {
		st, known := states[e.ID]
		if known && st.Status != store.DeliveryQueued {
			w.finish(t) // delivered or dead-lettered by an earlier pass
			continue
		}
		j := job{entry: e, t: t, attempts: st.Attempts}
		w.mu.Lock()
		// The same message twice in this worker's lanes at once can only be a repeat after a
		// crash; the second copy asks the store again right before it would be sent.
		j.recheck = w.queued[e.ID] > 0
		w.queued[e.ID]++
		w.mu.Unlock()
		lane := 0
		if len(w.lanes) > 1 {
			key := e.Headers[hdrKey]
			if key == "" && w.d.ch.orderKey == nil {
				key = e.ID
			}
			h := fnv.New32a()
			h.Write([]byte(key))
			lane = int(h.Sum32() % uint32(len(w.lanes)))
		}
		select {
		case w.lanes[lane] <- j:
		case <-ctx.Done():
			// The rest of this record is not handed out; the record is not acked and comes back.
			t.pending.Add(-int32(len(entries) - i))
			return
		}
	}
}

func (w *worker) finish(t *tracker) {
	if t.pending.Add(-1) != 0 {
		return
	}
	w.mu.Lock()
	delete(w.inFlight, t)
	w.mu.Unlock()
	if err := t.msg.Ack(); err != nil {
		w.d.ch.log.Warn("ack destination record", "destination", w.d.name, "err", err)
	}
}

// heartbeat tells JetStream that records waiting on slow retries are still being worked on.
func (w *worker) heartbeat(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.mu.Lock()
			for tr := range w.inFlight {
				_ = tr.msg.InProgress()
			}
			w.mu.Unlock()
		}
	}
}

// maxSendTime bounds one attempt even if a destination ignores its own timeouts.
const maxSendTime = 5 * time.Minute

// deliver sends one message until the peer confirms it or the retry policy gives up. It
// returns false only when ctx ended first: the record is then not acknowledged and the
// message is delivered after the restart. An attempt already started is allowed to finish
// (with its own timeout), so a graceful stop does not cause a repeat.
func (w *worker) deliver(ctx context.Context, j job) bool {
	d, st := w.d, w.d.ch.e.opts.Store
	e := j.entry
	defer func() {
		w.mu.Lock()
		if w.queued[e.ID]--; w.queued[e.ID] <= 0 {
			delete(w.queued, e.ID)
		}
		w.mu.Unlock()
	}()
	n := j.attempts + 1
	if j.recheck {
		if old, err := st.Delivery(ctx, e.ID, d.name); err == nil {
			if old.Status != store.DeliveryQueued {
				return true // the other copy delivered it
			}
			n = old.Attempts + 1
		}
	}
	received, _ := time.Parse(time.RFC3339Nano, e.Headers[hdrReceived])
	msg := &Message{ID: e.ID, Channel: d.ch.name, ContentType: e.Headers[hdrContentType], Body: e.Body, ReceivedAt: received,
		Meta: metaFromHeaders(e.Headers)}
	pol := d.cfg.Retry
	first := n // a requeued dead letter gets a fresh retry budget; attempt numbers continue
	for ; ; n++ {
		if d.ch.waitResumed(ctx) != nil {
			return false
		}
		if ctx.Err() != nil {
			return false
		}
		select {
		case w.unrecorded <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		start := time.Now()
		sendCtx, cancel := context.WithTimeout(context.Background(), maxSendTime)
		reply, err := d.dst.Send(sendCtx, msg)
		cancel()
		took := time.Since(start)
		d.ch.e.m.DeliveryTime.WithLabelValues(d.ch.name, d.name).Observe(took.Seconds())
		a := store.Attempt{Destination: d.name, Number: n, At: start.UTC(), Duration: took, OK: err == nil,
			ReplySummary: reply.Summary, Reply: reply.Body, Sent: reply.Sent}
		status := store.DeliverySent
		if err != nil {
			a.Error = err.Error()
			rejected := errors.Is(err, ErrRejected)
			kind := "transport"
			if rejected {
				kind = "rejected"
			}
			d.ch.e.m.Failed.WithLabelValues(d.ch.name, d.name, kind).Inc()
			d.errored.Add(1)
			d.note(fmt.Sprintf("message %s attempt %d: %v", e.ID, n, err))
			status = store.DeliveryQueued
			if errors.Is(err, ErrUndeliverable) || (rejected && d.cfg.OnReject == "dead_letter") ||
				(pol.MaxAttempts > 0 && n-first+1 >= pol.MaxAttempts) {
				status = store.DeliveryDeadLetter
			}
		}
		// The attempt must be on record before anything else happens, or a restart would send again.
		retry(context.Background(), d.ch, "record attempt", func() error { return st.AddAttempt(context.Background(), e.ID, a, status) })
		<-w.unrecorded
		switch status {
		case store.DeliverySent:
			d.sent.Add(1)
			d.ch.e.m.Sent.WithLabelValues(d.ch.name, d.name).Inc()
			if !received.IsZero() {
				d.ch.e.m.EndToEnd.WithLabelValues(d.ch.name, d.name).Observe(time.Since(received).Seconds())
			}
			return true
		case store.DeliveryDeadLetter:
			d.dead.Add(1)
			d.ch.e.m.DeadLetters.WithLabelValues(d.ch.name, d.name).Inc()
			d.ch.log.Warn("dead-lettered", "destination", d.name, "id", e.ID, "attempts", n, "err", a.Error)
			return true
		}
		wait := backoff(pol, n)
		var ra RetryAfter
		if errors.As(err, &ra) && ra.RetryAfter() > wait {
			wait = ra.RetryAfter() // the destination bounds what a peer may ask for
		}
		if sleepCtx(ctx, wait) != nil {
			return false
		}
	}
}

// backoff is the wait after the n-th failed attempt: exponential with a little jitter so
// many failing messages do not retry in lockstep against a recovering peer.
func backoff(p config.Retry, n int) time.Duration {
	return time.Duration(float64(p.Backoff(n)) * (0.9 + 0.2*rand.Float64()))
}

func (d *destination) note(msg string) {
	d.mu.Lock()
	d.lastErr, d.lastErrAt = msg, time.Now()
	d.mu.Unlock()
}
