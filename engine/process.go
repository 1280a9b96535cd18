package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
)

// processor consumes a channel's inbound stream one record (one group commit) at a time:
// it stores every message, runs filter and transforms, and fans the result out to each
// destination's queue. A record is acknowledged only after all of that is durable, so a
// crash anywhere means the record comes back and is processed again; every write on the
// way is idempotent by message id, so a second pass changes nothing that the first made.
type processor struct {
	ch   *channel
	cons jetstream.Consumer
}

func (ch *channel) newProcessor(ctx context.Context) (*processor, error) {
	cons, err := ch.e.opts.Broker.JetStream().CreateOrUpdateConsumer(ctx, inStream(ch.name), jetstream.ConsumerConfig{
		Durable:       "processor",
		Description:   "Osprey channel processor",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,           // short, so a record held by a killed process comes back soon
		MaxAckPending: maxRecordsPerPass, // fetched in order and processed in order, a pass at a time
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("inbound consumer: %w", err)
	}
	return &processor{ch: ch, cons: cons}, nil
}

func (p *processor) run(ctx context.Context) {
	for ctx.Err() == nil {
		batch := p.next(ctx)
		if len(batch) == 0 {
			continue
		}
		stop := keepAlive(batch...)
		p.handle(ctx, batch)
		stop()
	}
}

// maxRecordsPerPass bounds how many inbound records one pass takes. Records that queued
// while the previous pass was busy are processed together: one store transaction, one
// record per destination, so the work per message falls as the load rises.
const maxRecordsPerPass = 32

// next waits up to a quarter of a second for a record (short, so a stop is quick), then takes whatever else is already waiting.
func (p *processor) next(ctx context.Context) []jetstream.Msg {
	collect := func(b jetstream.MessageBatch, err error) []jetstream.Msg {
		if err != nil {
			if ctx.Err() == nil {
				p.ch.log.Warn("inbound fetch", "err", err)
				_ = sleepCtx(ctx, 100*time.Millisecond)
			}
			return nil
		}
		var out []jetstream.Msg
		for m := range b.Messages() {
			out = append(out, m)
		}
		return out
	}
	batch := collect(p.cons.Fetch(1, jetstream.FetchMaxWait(250*time.Millisecond)))
	if len(batch) == 0 {
		return nil
	}
	return append(batch, collect(p.cons.FetchNoWait(maxRecordsPerPass-1))...)
}

// ackWait is how long JetStream waits for an ack before it hands a record to another
// consumer instance; after a crash, that is how long the records in flight wait. Work that
// takes longer (retries against a store that is down) keeps its record with in-progress
// acks, so the wait can stay short.
const ackWait = 15 * time.Second

// keepAlive sends in-progress acks for ms until the returned function is called.
func keepAlive(ms ...jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range ms {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// consume pulls messages until ctx ends and hands each to fn, in order.
func consume(ctx context.Context, cons jetstream.Consumer, log interface{ Warn(string, ...any) }, max int, fn func(jetstream.Msg)) {
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(max))
		if err != nil {
			log.Warn("consumer: pull", "err", err)
			if sleepCtx(ctx, time.Second) != nil {
				return
			}
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			m, err := it.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && ctx.Err() == nil {
					log.Warn("consumer: next", "err", err)
				}
				break
			}
			fn(m)
		}
		stop()
		it.Stop()
	}
}

// outcome is what processing decided for one message.
type outcome struct {
	rec     store.Message
	stages  []store.Stage
	entries map[*destination]broker.Entry

	// Study context (context.go).
	orders   []store.Order // order context the message carries, recorded with it
	held     *broker.Entry // a study waiting for its order: goes to the hold stream
	released bool          // a study back from the hold stream

	// The plugin layer (ai.go): the jobs a routed study makes.
	jobs []plannedJob
}

func (p *processor) handle(ctx context.Context, batch []jetstream.Msg) {
	ch := p.ch
	var outs []outcome
	var good []jetstream.Msg
	var first, last uint64
	for _, m := range batch {
		meta, _ := m.Metadata()
		entries, err := broker.DecodeRecord(m.Data())
		if err != nil {
			// Nothing in it can be read, now or later; keep it out of the way but say so loudly.
			ch.log.Error("inbound record is corrupt; terminated", "stream_seq", seqOf(meta), "err", err)
			ch.noteError("corrupt inbound record: " + err.Error())
			_ = m.Term()
			continue
		}
		if first == 0 {
			first = seqOf(meta)
		}
		last = seqOf(meta)
		good = append(good, m)
		for _, e := range entries {
			outs = append(outs, ch.process(e))
		}
	}
	if len(good) == 0 {
		return
	}
	if !ch.commitOutcomes(ctx, outs, fmt.Sprintf("%d-%d", first, last)) {
		// Stopping: hand the records back at once rather than after their ack wait, so the
		// next processor (a reload, a restart) takes them up without delay.
		for _, m := range good {
			_ = m.Nak()
		}
		return
	}
	for _, m := range good {
		if err := m.Ack(); err != nil {
			ch.log.Warn("ack inbound record", "err", err) // it comes back and is found already done
		}
	}
}

// commitOutcomes writes what processing decided: messages, stages, delivery rows, then one
// record per destination. It reports false when ctx ended first; an operation already
// started is allowed to finish, so a stop never cuts a write in half.
//
// pass names the inbound records the outcomes came from ("first-last" stream sequences); it
// makes the Nats-Msg-Id of what is published, so a pass repeated after a crash within the
// stream's duplicate window does not queue its records twice. (Beyond that, or if a repeat
// groups records differently, the delivery worker finds the message delivered in the store.)
func (ch *channel) commitOutcomes(ctx context.Context, outs []outcome, pass string) bool {
	st := ch.e.opts.Store
	recs := make([]store.Message, len(outs))
	for i, o := range outs {
		recs[i] = o.rec
	}
	op := func(f func(context.Context) error) func() error {
		return func() error {
			octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return f(octx)
		}
	}
	if !retry(ctx, ch, "store messages", op(func(c context.Context) error { return st.PutMessages(c, recs) })) {
		return false
	}
	if !ch.commitContext(ctx, outs, op) {
		return false
	}
	if !ch.commitJobs(ctx, outs, op) {
		return false
	}
	// A first pass may have got this far, and the destination may have delivered some of
	// these since. The store, not NATS, says so: JetStream's delivery count cannot tell a new
	// record from one whose ack was lost in a crash, which comes back counted as new.
	earlier := map[*destination]map[string]store.Delivery{}
	for _, d := range ch.dests {
		var ids []string
		for _, o := range outs {
			if _, ok := o.entries[d]; ok {
				ids = append(ids, o.rec.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if !retry(ctx, ch, "read deliveries", op(func(c context.Context) (err error) {
			earlier[d], err = st.DeliveryStates(c, d.name, ids)
			return err
		})) {
			return false
		}
	}
	// The pass's stages in one call, so one transaction: a channel with a filter or a
	// transform has stages for every message.
	var sets []store.StageSet
	for _, o := range outs {
		if len(o.stages) > 0 {
			sets = append(sets, store.StageSet{MessageID: o.rec.ID, Stages: o.stages})
		}
	}
	if len(sets) > 0 && !retry(ctx, ch, "store stages", op(func(c context.Context) error { return st.AddStageSets(c, sets) })) {
		return false
	}
	var deliveries []store.Delivery
	perDest := map[*destination][]broker.Entry{}
	for _, o := range outs {
		for d, e := range o.entries {
			if old, ok := earlier[d][o.rec.ID]; ok {
				if old.Status == store.DeliveryQueued {
					perDest[d] = append(perDest[d], e)
				}
				continue
			}
			deliveries = append(deliveries, store.Delivery{MessageID: o.rec.ID, Channel: ch.name, Destination: d.name,
				Status: store.DeliveryQueued, UpdatedAt: time.Now().UTC(), Payload: payloadOf(e.Body, o.rec.Raw)})
			perDest[d] = append(perDest[d], e)
		}
	}
	if len(deliveries) > 0 && !retry(ctx, ch, "store deliveries", op(func(c context.Context) error { return st.PutDeliveries(c, deliveries) })) {
		return false
	}
	for _, d := range ch.dests {
		es := perDest[d]
		if len(es) == 0 {
			continue
		}
		id := fmt.Sprintf("%s:%s:%s", ch.name, pass, d.name)
		if !retry(ctx, ch, "queue for "+d.name, op(func(c context.Context) error { return d.publish(c, id, es) })) {
			return false
		}
	}
	return true
}

// payloadOf is what a delivery row keeps of body: nothing when it is the message as
// received (no transform changed it), which the store then reads from the message.
func payloadOf(body, raw []byte) []byte {
	if bytes.Equal(body, raw) {
		return nil
	}
	return body
}

func seqOf(meta *jetstream.MsgMetadata) uint64 {
	if meta == nil {
		return 0
	}
	return meta.Sequence.Stream
}

// process runs one message through filter and transforms. It is pure apart from counters
// and, for a study, the read of its order (context.go): what it decides is written by handle.
func (ch *channel) process(e broker.Entry) outcome {
	received, _ := time.Parse(time.RFC3339Nano, e.Headers[hdrReceived])
	o := outcome{rec: store.Message{ID: e.ID, Channel: ch.name, ContentType: e.Headers[hdrContentType], Raw: e.Body,
		ReceivedAt: received, Source: metaFromHeaders(e.Headers), Status: store.StatusQueued,
		ReprocessOf: e.Headers[hdrReprocessOf], UpdatedAt: time.Now().UTC()}}
	var msg *hl7v2.Message
	if o.rec.ContentType == ContentHL7v2 {
		if parsed, err := hl7v2.Parse(e.Body); err == nil {
			msg = parsed
			keyFields(&o.rec, msg)
		}
	}
	switch e.Headers[hdrVerdict] {
	case "rejected":
		o.rec.Status, o.rec.Error = store.StatusRejected, e.Headers[hdrReason]
		return o
	case "duplicate":
		o.rec.Status, o.rec.Error = store.StatusDuplicate, "duplicate of message "+e.Headers[hdrReason]
		return o
	}
	var env rules.Env
	var study *studyInput
	haveEnv := msg != nil // filters, keys and routing run on HL7 messages and studies
	if msg != nil {
		env = rules.NewEnv(msg, ch.name, o.rec.Source)
	}
	now := func() time.Time { return time.Now().UTC() }
	fail := func(stage string, err error) outcome {
		o.stages = append(o.stages, store.Stage{Seq: len(o.stages) + 1, Name: stage, At: now(), Error: err.Error()})
		o.rec.Status, o.rec.Error = store.StatusError, stage+": "+err.Error()
		ch.errored.Add(1)
		ch.e.m.ProcessErrors.WithLabelValues(ch.name, stage).Inc()
		ch.noteError(fmt.Sprintf("message %s: %s", e.ID, o.rec.Error))
		return o
	}
	if o.rec.ContentType == ContentStudy {
		o.released = e.Headers[hdrJoin] != ""
		in, err := ch.prepareStudy(e, &o.rec)
		if err != nil {
			return fail("study", err)
		}
		in.stage.Seq = len(o.stages) + 1
		o.stages = append(o.stages, in.stage)
		if in.hold {
			hdr := map[string]string{hdrHeldAt: now().Format(time.RFC3339Nano)}
			for k, v := range e.Headers {
				hdr[k] = v
			}
			o.held = &broker.Entry{ID: e.ID, Headers: hdr, Body: e.Body}
			o.rec.Status = store.StatusReceived
			return o
		}
		env, haveEnv = in.env, true
		study = &in
	}
	if ch.filter != nil && haveEnv {
		ok, err := ch.filter.Match(env)
		if err != nil {
			return fail("filter", err)
		}
		if !ok {
			o.stages = append(o.stages, store.Stage{Seq: len(o.stages) + 1, Name: "filter", At: now(), Error: ""})
			o.rec.Status = store.StatusFiltered
			ch.filtered.Add(1)
			ch.e.m.Filtered.WithLabelValues(ch.name).Inc()
			return o
		}
	}
	body, contentType := e.Body, o.rec.ContentType
	if msg != nil && len(ch.steps) > 0 {
		for i, s := range ch.steps {
			if err := s.Apply(context.Background(), env); err != nil {
				return fail(ch.stepNames[i], err)
			}
			body = msg.Encode()
			if i == len(ch.steps)-1 {
				// A converting last step (to_fhir) replaces the message for the destinations.
				out, ct, ok, err := rules.Output(s, env)
				if err != nil {
					return fail(ch.stepNames[i], err)
				}
				if ok {
					body, contentType = out, ct
				}
			}
			o.stages = append(o.stages, store.Stage{Seq: len(o.stages) + 1, Name: ch.stepNames[i], At: now(), Output: body})
		}
	}
	if study != nil && len(ch.cfg.Routes) > 0 {
		// A routed study goes to plugins; the destinations get its analysis (dispatch.go).
		stage, err := ch.route(&o, env, &study.sum, study.order)
		if err != nil {
			return fail("route", err)
		}
		stage.Seq = len(o.stages) + 1
		o.stages = append(o.stages, stage)
		if len(o.jobs) == 0 {
			o.rec.Status = store.StatusFiltered
			ch.filtered.Add(1)
			ch.e.m.Filtered.WithLabelValues(ch.name).Inc()
		}
		return o
	}
	hdr := map[string]string{hdrReceived: e.Headers[hdrReceived], hdrContentType: contentType}
	for k, v := range e.Headers {
		// Source facts travel on to the destinations (a FHIR sender's If-None-Exist).
		if strings.HasPrefix(k, hdrMetaPrefix) {
			hdr[k] = v
		}
	}
	if ch.orderKey != nil && haveEnv {
		k, err := ch.orderKey.Eval(env)
		if err != nil {
			return fail("ordered_by", err)
		}
		hdr[hdrKey] = k
	}
	o.entries = map[*destination]broker.Entry{}
	for _, d := range ch.dests {
		if d.filter != nil && haveEnv {
			ok, err := d.filter.Match(env)
			if err != nil {
				return fail("destination "+d.name+" filter", err)
			}
			if !ok {
				continue
			}
		}
		o.entries[d] = broker.Entry{ID: e.ID, Headers: hdr, Body: body}
	}
	if msg != nil {
		// Order context is what the channel accepted, as its transforms left it.
		if o.orders = orderContext(msg, e.ID, ch.name); len(o.orders) > 0 {
			o.rec.Accession = o.orders[0].Accession
		}
	}
	if len(o.entries) == 0 {
		o.rec.Status = store.StatusFiltered
		ch.filtered.Add(1)
		ch.e.m.Filtered.WithLabelValues(ch.name).Inc()
	}
	return o
}

// keyFields copies the fields analysts search by into the store record.
func keyFields(r *store.Message, m *hl7v2.Message) {
	r.ControlID = m.ControlID()
	r.MessageType = m.Type()
	if ev := m.Event(); ev != "" {
		r.MessageType += "^" + ev
	}
	r.PatientID = m.Get("PID-3.1")
	r.Accession = firstOf(m.Get("OBR-18"), m.Get("OBR-3.1"), m.Get("ORC-3.1"))
	r.Sender = senderOf(m)
}

// senderOf identifies the sending system as MSH-3^MSH-4 (application and facility).
func senderOf(m *hl7v2.Message) string { return m.Get("MSH-3.1") + "^" + m.Get("MSH-4.1") }

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// retry runs fn until it succeeds or ctx ends, backing off; a store or NATS outage holds the
// pipeline instead of losing work. It reports whether fn succeeded.
func retry(ctx context.Context, ch *channel, what string, fn func() error) bool {
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return true
		}
		ch.log.Warn("retrying", "what", what, "err", err, "in", delay)
		ch.noteError(what + ": " + err.Error())
		if sleepCtx(ctx, delay) != nil {
			return false
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// publishRecord writes entries to subject as one or more records that each fit the server's
// max payload, each with a Nats-Msg-Id so a retried publish is not duplicated.
func publishRecord(ctx context.Context, b *broker.Broker, subject, id string, entries []broker.Entry) error {
	for part, chunk := range chunkEntries(entries, b.MaxRecord()) {
		m := nats.NewMsg(subject)
		m.Data = broker.EncodeRecord(chunk)
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%d", id, part))
		if _, err := b.JetStream().PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("publish %s: %w", subject, err)
		}
	}
	return nil
}

// chunkEntries splits entries into runs whose encoded record stays within limit; an entry
// bigger than limit travels alone (and fails to publish with a clear error).
func chunkEntries(entries []broker.Entry, limit int) [][]broker.Entry {
	var out [][]broker.Entry
	start, sum := 0, 0 // sum: the EntrySize of entries[start:i]
	for i := range entries {
		size := broker.EntrySize(&entries[i])
		if i > start && broker.RecordOverhead(i+1-start)+sum+size > limit {
			out = append(out, entries[start:i])
			start, sum = i, 0
		}
		sum += size
	}
	if start < len(entries) {
		out = append(out, entries[start:])
	}
	return out
}
