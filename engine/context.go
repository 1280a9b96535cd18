package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/orders"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
)

// Study context: orders are recorded as they pass through any channel, and a study message
// joins its order by accession number before its filters run (docs/study-context.md).
//
// "Whichever came first" needs a study whose order has not arrived to wait, for at most the
// channel's join.wait. The wait is durable and does not hold up the channel:
//
//   - The processor does not keep the inbound record (the inbound consumer has one record in
//     flight, so a Nak with delay would stall every message behind the study for the whole
//     wait). It stores the study as received, with a "join" stage saying what it waits for,
//     and moves it to the channel's hold stream (OSPREY_HOLD_<CHANNEL>) in the same commit
//     step that would otherwise queue it for its destinations; only then is the inbound
//     record acknowledged.
//   - The channel's holder consumes the hold stream and keeps each held study unacknowledged
//     (JetStream redelivers it if the engine dies) while it waits for one of: a notice on
//     ordersSubject that an order with its accession was recorded, which any channel of any
//     engine on the same NATS publishes after store.PutOrder; the store answering for the
//     accession on a periodic re-check (notices are best effort); or the wait passing.
//   - It then publishes the study back to the inbound stream with the join header, and acks
//     the held copy. The processor takes it up like any message, looks the order up once
//     more and runs the filters with it, or with order.Found false. A released study is never
//     held again, and its publish carries a message id, so a repeat is dropped by JetStream.
//
// An in-memory timer alone would lose held studies in a restart; a Nak with delay on the
// hold stream would work but could not release a study the moment its order arrives.
const (
	hdrJoin   = "j"  // on a study back from the hold stream: "found" or "timeout"
	hdrHeldAt = "jh" // on a held study: when it started waiting (RFC 3339 nano)

	joinFound   = "found"
	joinTimeout = "timeout"

	// ordersSubject carries a best-effort notice (the accession) after an order is recorded.
	ordersSubject = "osprey.orders.recorded"

	holdConsumer = "join"
	// holdRecheck is how often the holder asks the store about every held study, in case a
	// notice was missed (another engine, a reconnect).
	holdRecheck = 15 * time.Second
	// lookupTimeout bounds one order lookup in the processor.
	lookupTimeout = 10 * time.Second
)

func holdStream(channel string) string  { return "OSPREY_HOLD_" + strings.ToUpper(channel) }
func holdSubject(channel string) string { return "osprey.hold." + channel }

// studyInput is what process learned about a study message.
type studyInput struct {
	env   rules.Env
	sum   dicom.StudySummary
	order *store.Order // the joined order, nil when none
	stage store.Stage  // the join stage: which order, or why none
	hold  bool         // wait for the order: move to the hold stream
}

// prepareStudy parses a study message, fills its store key fields and joins its order.
func (ch *channel) prepareStudy(e broker.Entry, rec *store.Message) (studyInput, error) {
	var sum dicom.StudySummary
	if err := json.Unmarshal(e.Body, &sum); err != nil {
		return studyInput{}, fmt.Errorf("study summary: %w", err)
	}
	view := rules.NewStudyView(sum, time.Now())
	rec.MessageType, rec.Accession, rec.PatientID = "STUDY", view.AccessionNumber, sum.PatientID
	in := studyInput{sum: sum, stage: store.Stage{Name: "join", At: time.Now().UTC()}}
	released := e.Headers[hdrJoin] != ""
	var order *rules.OrderView
	switch {
	case view.AccessionNumber == "":
		in.stage.Name += ": study has no accession number; no order to join"
	default:
		o, err := ch.lookupOrder(view.AccessionNumber)
		switch {
		case err == nil:
			order, in.order = rules.NewOrderView(o), &o
			in.stage.Name += fmt.Sprintf(": order %s (priority %q, status %q, from message %s)", o.Accession, o.Priority, o.Status, o.MessageID)
		case ch.cfg.JoinWait > 0 && !released:
			// A store outage waits like a missing order: the holder asks again.
			in.hold = true
			in.stage.Name += fmt.Sprintf(": waiting up to %s for order %s", ch.cfg.JoinWait, view.AccessionNumber)
			if !errors.Is(err, store.ErrNotFound) {
				in.stage.Error = err.Error()
			}
			return in, nil
		case errors.Is(err, store.ErrNotFound):
			in.stage.Name += fmt.Sprintf(": no order %s", view.AccessionNumber)
			if released {
				in.stage.Name += fmt.Sprintf(" after waiting %s", ch.cfg.JoinWait)
			}
		default:
			return studyInput{}, fmt.Errorf("order %s: %w", view.AccessionNumber, err)
		}
	}
	in.env = rules.NewStudyEnv(view, order, ch.name, rec.Source)
	return in, nil
}

// lookupOrder finds the order of an accession number; a RIS that keys studies by its
// order number is found through OrderByNumber.
func (ch *channel) lookupOrder(accession string) (store.Order, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	st := ch.e.opts.Store
	o, err := st.Order(ctx, accession)
	if errors.Is(err, store.ErrNotFound) {
		o, err = st.OrderByNumber(ctx, accession)
	}
	return o, err
}

// orderContext is the order context of a message the channel processed, nil for anything
// that is not an ORM or OMI with an accession number.
func orderContext(msg *hl7v2.Message, id, channel string) []store.Order {
	os := orders.All(msg)
	for i := range os {
		os[i].MessageID, os[i].Channel = id, channel
	}
	return os
}

// commitContext is the part of commitOutcomes that belongs to study context, run after the
// messages are stored: it records orders (and announces them), moves held studies to the
// hold stream, and settles the status of studies back from it. It reports false when ctx
// ended first.
func (ch *channel) commitContext(ctx context.Context, outs []outcome, op func(func(context.Context) error) func() error) bool {
	st, b := ch.e.opts.Store, ch.e.opts.Broker
	// The pass's orders in one call, so one transaction: an order feed has one for every
	// message.
	var all []store.Order
	for _, o := range outs {
		all = append(all, o.orders...)
	}
	if len(all) > 0 {
		if !retry(ctx, ch, "store orders", op(func(c context.Context) error { return st.PutOrders(c, all) })) {
			return false
		}
		for _, od := range all {
			// Best effort: a missed notice costs a held study one re-check interval.
			_ = b.Conn().Publish(ordersSubject, []byte(od.Accession))
		}
	}
	for i := range outs {
		o := &outs[i]
		if o.held != nil {
			held := *o.held
			if !retry(ctx, ch, "hold study", op(func(c context.Context) error {
				return publishRecord(c, b, holdSubject(ch.name), "hold-"+held.ID, []broker.Entry{held})
			})) {
				return false
			}
		}
		if o.released {
			// The held pass wrote the message (first write wins) and the join stage as seq 1.
			for j := range o.stages {
				o.stages[j].Seq++
			}
			var cur store.Status
			if !retry(ctx, ch, "read released study", op(func(c context.Context) error {
				d, err := st.Get(c, o.rec.ID)
				cur = d.Message.Status
				return err
			})) {
				return false
			}
			// Only the first pass over the released study sets its status; a repeat (a crash
			// before the ack) must not turn a sent study back to queued.
			if cur == store.StatusReceived {
				if !retry(ctx, ch, "set study status", op(func(c context.Context) error {
					return st.SetStatus(c, o.rec.ID, o.rec.Status, o.rec.Error)
				})) {
					return false
				}
			}
		}
	}
	return true
}

// holder keeps a channel's held studies until their orders arrive or their wait passes.
type holder struct {
	ch   *channel
	cons jetstream.Consumer

	mu   sync.Mutex
	held map[string]*heldStudy // by message id
	kick chan struct{}         // an order was recorded: look at the held studies now
	acc  map[string]bool       // accessions announced since the last look
}

type heldStudy struct {
	msg       jetstream.Msg
	entry     broker.Entry
	accession string
	heldAt    time.Time
	releasing bool // a sweep has taken it; guarded by holder.mu
}

// newHolder returns the channel's holder, or nil when the channel neither joins with a wait
// nor has studies left in a hold stream from an earlier configuration (those are released
// at once: with no wait configured, their wait has passed).
func (ch *channel) newHolder(ctx context.Context) (*holder, error) {
	b := ch.e.opts.Broker
	if ch.cfg.JoinWait <= 0 {
		if _, err := b.JetStream().Stream(ctx, holdStream(ch.name)); errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("hold stream: %w", err)
		}
	}
	if _, err := b.EnsureStream(ctx, jetstream.StreamConfig{
		Name: holdStream(ch.name), Subjects: []string{holdSubject(ch.name)},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		Description: "Osprey studies of channel " + ch.name + " waiting for their orders",
	}); err != nil {
		return nil, fmt.Errorf("hold stream: %w", err)
	}
	cons, err := b.JetStream().CreateOrUpdateConsumer(ctx, holdStream(ch.name), jetstream.ConsumerConfig{
		Durable:       holdConsumer,
		Description:   "Osprey studies waiting for their orders",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute, // kept alive with InProgress while a study waits
		MaxAckPending: 10000,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("hold consumer: %w", err)
	}
	return &holder{ch: ch, cons: cons, held: map[string]*heldStudy{}, kick: make(chan struct{}, 1), acc: map[string]bool{}}, nil
}

func (h *holder) run(ctx context.Context) {
	log := h.ch.log
	sub, err := h.ch.e.opts.Broker.Conn().Subscribe(ordersSubject, func(m *nats.Msg) {
		h.mu.Lock()
		h.acc[string(m.Data)] = true
		h.mu.Unlock()
		select {
		case h.kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		log.Warn("join: order notices unavailable; held studies are re-checked periodically", "err", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		consume(ctx, h.cons, log, 64, func(m jetstream.Msg) { h.add(ctx, m) })
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastRecheck, lastProgress := time.Now(), time.Now()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-h.kick:
			h.mu.Lock()
			announced := h.acc
			h.acc = map[string]bool{}
			h.mu.Unlock()
			h.sweep(ctx, func(s *heldStudy) bool { return announced[s.accession] })
		case now := <-tick.C:
			recheck := now.Sub(lastRecheck) >= holdRecheck
			if recheck {
				lastRecheck = now
			}
			h.sweep(ctx, func(*heldStudy) bool { return recheck })
			if now.Sub(lastProgress) >= 20*time.Second {
				lastProgress = now
				h.mu.Lock()
				for _, s := range h.held {
					_ = s.msg.InProgress()
				}
				h.mu.Unlock()
			}
		}
	}
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	wg.Wait()
	// Hand the waiting studies back at once, so the next holder (a reload, a restart) takes
	// them up without waiting for their ack wait; their wait is counted from heldAt.
	h.mu.Lock()
	for id, s := range h.held {
		_ = s.msg.Nak()
		delete(h.held, id)
	}
	h.mu.Unlock()
}

// add takes one record from the hold stream.
func (h *holder) add(ctx context.Context, m jetstream.Msg) {
	entries, err := broker.DecodeRecord(m.Data())
	if err != nil || len(entries) != 1 {
		h.ch.log.Error("held study record is corrupt; terminated", "err", err, "entries", len(entries))
		_ = m.Term()
		return
	}
	e := entries[0]
	var sum struct {
		Accession string `json:"accession_number"`
	}
	_ = json.Unmarshal(e.Body, &sum) // the processor parsed it before holding it
	heldAt, err := time.Parse(time.RFC3339Nano, e.Headers[hdrHeldAt])
	if err != nil {
		heldAt = time.Now()
	}
	s := &heldStudy{msg: m, entry: e, accession: strings.TrimSpace(sum.Accession), heldAt: heldAt}
	h.mu.Lock()
	if old, dup := h.held[e.ID]; dup {
		_ = old.msg.Ack() // a second copy (a retried hold): keep one
	}
	h.held[e.ID] = s
	h.mu.Unlock()
	// The order may have been recorded between the processor's lookup and now.
	h.sweep(ctx, func(x *heldStudy) bool { return x == s })
}

// sweep releases the held studies whose wait has passed and, among those check selects, the
// ones whose order is now in the store.
func (h *holder) sweep(ctx context.Context, check func(*heldStudy) bool) {
	now := time.Now()
	h.mu.Lock()
	var due []*heldStudy
	var why []string
	for _, s := range h.held {
		if s.releasing {
			continue
		}
		switch {
		case now.Sub(s.heldAt) >= h.ch.cfg.JoinWait:
			due, why = append(due, s), append(why, joinTimeout)
		case check(s):
			due, why = append(due, s), append(why, "")
		default:
			continue
		}
		s.releasing = true
	}
	h.mu.Unlock()
	for i, s := range due {
		if why[i] == "" {
			if _, err := h.ch.lookupOrder(s.accession); err == nil {
				why[i] = joinFound
			}
		}
		if why[i] == "" || ctx.Err() != nil || !h.release(ctx, s, why[i]) {
			// Not yet (no order, the store or NATS is down, or stopping): keep waiting.
			h.mu.Lock()
			s.releasing = false
			h.mu.Unlock()
		}
	}
}

// release sends a held study back to the inbound stream and forgets it. It reports false
// when the study could not be sent and still waits.
func (h *holder) release(ctx context.Context, s *heldStudy, why string) bool {
	e := s.entry
	hdr := make(map[string]string, len(e.Headers)+1)
	for k, v := range e.Headers {
		hdr[k] = v
	}
	hdr[hdrJoin] = why
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := publishRecord(pctx, h.ch.e.opts.Broker, inSubject(h.ch.name), "join-"+e.ID,
		[]broker.Entry{{ID: e.ID, Headers: hdr, Body: e.Body}})
	if err != nil {
		h.ch.log.Warn("join: release held study; retrying", "id", e.ID, "err", err)
		return false
	}
	if err := s.msg.Ack(); err != nil {
		// It comes back and is released again; the inbound publish is deduplicated by id.
		h.ch.log.Warn("join: ack held study", "id", e.ID, "err", err)
	}
	h.mu.Lock()
	if h.held[e.ID] == s {
		delete(h.held, e.ID)
	}
	h.mu.Unlock()
	h.ch.log.Info("join: study released", "id", e.ID, "order", why)
	return true
}
