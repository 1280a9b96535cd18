package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CommitterOptions tune a Committer. Zero values take the defaults.
type CommitterOptions struct {
	// MaxEntries is the most entries in one record. Default 256.
	MaxEntries int
	// MaxBytes is the largest encoded record. Default 4 MiB; never more than the server's
	// max_payload allows.
	MaxBytes int
	// MaxInFlight is the most records published and not yet acknowledged. While they wait
	// for their fsync the next record fills up. Default 4.
	MaxInFlight int
	// AckTimeout is how long a record waits for the server's acknowledgement before its
	// commits fail. Default 10s.
	AckTimeout time.Duration
	// Stream, when set, is the stream the subject must belong to; the server refuses the
	// record otherwise (Nats-Expected-Stream), so a misrouted subject fails loudly.
	Stream string
}

const (
	defaultMaxEntries  = 256
	defaultMaxBytes    = 4 << 20
	defaultMaxInFlight = 4
	defaultAckTimeout  = 10 * time.Second

	// headerRoom is kept free in every NATS message for the record's headers.
	headerRoom = 512
)

// Committer writes entries to one subject with group commit: the entries that callers
// commit while the previous record is being written travel together as the next record, one
// JetStream message that the server fsyncs once. Commit returns when the record holding the
// entry is acknowledged, so on disk when the server syncs always.
//
// Entries appear in the stream in the order Commit calls enqueued them; one goroutine's
// sequential commits keep their order. A Committer is safe for concurrent use.
type Committer struct {
	nc       *nats.Conn // its own connection, so commits never queue behind consumers' traffic
	b        *Broker
	subject  string
	opts     CommitterOptions
	js       jetstream.JetStream
	jsErr    error
	log      *slog.Logger
	idPrefix string

	mu          sync.Mutex
	cond        sync.Cond // the loop waits on it for work or a free slot
	queue       []*waiter
	queuedBytes int // encoded size of the queue
	inFlight    int // records published and not yet resolved
	closed      bool
	lastBatch   int           // entries in the last record acknowledged
	lastFlush   time.Duration // how long the server took to acknowledge it

	inflight chan *record  // published records in order, for the acker
	done     chan struct{} // closed when every record is resolved after Close

	seq uint64 // records published; owned by the loop goroutine

	records, entries, failedRecords, failedEntries atomic.Uint64
}

// CommitterStats are a Committer's counters since it was created, for metrics.
type CommitterStats struct {
	Records       uint64 // records acknowledged
	Entries       uint64 // entries in them
	FailedRecords uint64 // records that failed (publish error, error reply, timeout)
	FailedEntries uint64 // entries in them
	Queued        int    // entries waiting for a record now
	InFlight      int    // records published and awaiting their acknowledgement now
}

// Stats returns the committer's counters. Entries/Records is the mean group size.
func (c *Committer) Stats() CommitterStats {
	c.mu.Lock()
	queued, inFlight := len(c.queue), c.inFlight
	c.mu.Unlock()
	return CommitterStats{
		Records:       c.records.Load(),
		Entries:       c.entries.Load(),
		FailedRecords: c.failedRecords.Load(),
		FailedEntries: c.failedEntries.Load(),
		Queued:        queued,
		InFlight:      inFlight,
	}
}

// waiter states.
const (
	queued int32 = iota
	taken
	abandoned
)

type waiter struct {
	e     Entry
	size  int
	state atomic.Int32
	done  chan error // capacity 1
}

type record struct {
	sent    time.Time
	id      string
	waiters []*waiter
	bytes   int
	paf     jetstream.PubAckFuture
	err     error // the publish itself failed
}

// NewCommitter returns a Committer for subject, which must belong to a stream. Close it
// before closing the broker.
func (b *Broker) NewCommitter(subject string, opts CommitterOptions) *Committer {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = defaultMaxBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = defaultMaxInFlight
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = defaultAckTimeout
	}
	c := &Committer{
		b:        b,
		subject:  subject,
		opts:     opts,
		log:      b.log.With("subject", subject),
		idPrefix: newIDPrefix(),
		inflight: make(chan *record, opts.MaxInFlight),
		done:     make(chan struct{}),
	}
	c.cond.L = &c.mu
	// A JetStream context of its own gives the Committer its own reply subscription and an
	// ack timeout, so that a lost acknowledgement frees its slot, without changing the
	// broker's shared context.
	nc, err := b.dial("committer " + subject)
	if err != nil {
		c.jsErr = fmt.Errorf("broker: committer connection: %w", err)
	} else {
		c.nc = nc
		c.js, c.jsErr = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(opts.AckTimeout))
	}
	go c.run()
	go c.ack()
	return c
}

// newIDPrefix returns a random prefix for record ids: a Nats-Msg-Id must not repeat across
// committers and restarts within the stream's duplicate window.
func newIDPrefix() string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // never fails, per crypto/rand
	return "osr-" + hex.EncodeToString(b[:]) + "-"
}

// maxPayload is the largest NATS message data the connected server takes for a record.
func (c *Committer) maxPayload() int { return c.b.MaxRecord() }

// MaxRecord is the largest record the connected server takes in one message, with room left
// for the message's headers (up to 512 bytes). It follows the server's max_payload.
func (b *Broker) MaxRecord() int { return int(b.nc.MaxPayload()) - headerRoom }

// Commit writes e and returns nil once the record holding it is acknowledged by the server.
// An error means the entry is not acknowledged: tell the sender to retry. When ctx ends
// after the entry was handed to the server, Commit returns ctx's error although the entry
// may yet be stored; consumers dedupe by Entry.ID.
func (c *Committer) Commit(ctx context.Context, e Entry) error {
	if c.jsErr != nil {
		return fmt.Errorf("broker: commit %s: %w", c.subject, c.jsErr)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: commit %s: %w", c.subject, err)
	}
	size := entrySize(&e)
	if alone, limit := singleRecordOverhead+size, c.maxPayload(); alone > limit {
		return fmt.Errorf("broker: commit %s: entry %q makes a record of %d bytes, the server takes at most %d: %w",
			c.subject, e.ID, alone, limit, ErrTooLarge)
	}
	w := &waiter{e: e, size: size, done: make(chan error, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("broker: commit %s: committer %w", c.subject, ErrClosed)
	}
	c.queue = append(c.queue, w)
	c.queuedBytes += size
	c.cond.Signal()
	c.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		select {
		case err := <-w.done: // the answer came at the same time: it wins
			return err
		default:
		}
		if w.state.CompareAndSwap(queued, abandoned) {
			return fmt.Errorf("broker: commit %s: entry %q not written: %w", c.subject, e.ID, ctx.Err())
		}
		return fmt.Errorf("broker: commit %s: entry %q sent, acknowledgement not awaited: %w", c.subject, e.ID, ctx.Err())
	}
}

// Close writes what is queued, waits until every record is acknowledged or failed, and makes
// later commits fail with ErrClosed. If ctx ends first, Close returns its error and the
// remaining commits still resolve in the background.
func (c *Committer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.cond.Signal()
	c.mu.Unlock()
	select {
	case <-c.done:
		if c.nc != nil {
			c.nc.Close()
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: close committer %s: %w", c.subject, ctx.Err())
	}
}

// run is the batching loop. It keeps at most one record in flight that is not full: while
// the server fsyncs it, every entry that arrives queues up and goes into the next record as
// soon as it is acknowledged. A second record sent at once would only split the queue in
// two, since the server writes a stream's records one after the other, each with its own
// fsync. Full records (MaxEntries or MaxBytes reached) are sent while others are in flight,
// up to MaxInFlight, because waiting would not make them bigger.
func (c *Committer) run() {
	defer close(c.inflight)
	for {
		c.mu.Lock()
		for !c.ready() {
			c.cond.Wait()
		}
		c.linger()
		if len(c.queue) == 0 { // and closed
			c.mu.Unlock()
			return
		}
		batch, bytes := c.take()
		c.inFlight++
		c.mu.Unlock()
		if len(batch) == 0 { // every queued caller gave up
			c.release()
			continue
		}
		c.inflight <- c.publish(batch, bytes)
	}
}

// maxLinger bounds how long a record waits for company.
const maxLinger = time.Millisecond

// linger holds a partial record back for a moment when the last record was bigger: the
// callers it released are about to commit again (an MLLP sender sends its next message as
// soon as it has its ACK), and without the wait the first of them would go alone in a record
// of one, costing a whole fsync, while the rest queued for the next. It waits until as many
// entries are queued as the last record had, or half the time the last record took, at most
// maxLinger. Under light load the last record had one entry and nothing waits. c.mu is held.
func (c *Committer) linger() {
	if c.inFlight != 0 || c.closed || c.lastBatch < 2 || len(c.queue) >= c.lastBatch {
		return
	}
	deadline := time.Now().Add(min(c.lastFlush/2, maxLinger))
	t := time.AfterFunc(time.Until(deadline), func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	for !c.closed && len(c.queue) < c.lastBatch && len(c.queue) < c.opts.MaxEntries && time.Now().Before(deadline) {
		c.cond.Wait()
	}
}

// ready reports whether the loop has something to do: send a record, or stop. c.mu is held.
func (c *Committer) ready() bool {
	if len(c.queue) == 0 {
		return c.closed
	}
	switch {
	case c.inFlight == 0:
		return true
	case c.inFlight >= c.opts.MaxInFlight:
		return false
	}
	return len(c.queue) >= c.opts.MaxEntries || c.queuedBytes+recordOverhead >= c.limit()
}

// limit is the largest record to send.
func (c *Committer) limit() int { return min(c.opts.MaxBytes, c.maxPayload()) }

// release frees the in-flight slot of a resolved record.
func (c *Committer) release() {
	c.mu.Lock()
	c.inFlight--
	c.cond.Signal()
	c.mu.Unlock()
}

// take removes the next record's worth of waiters from the queue. c.mu is held.
func (c *Committer) take() (batch []*waiter, bytes int) {
	limit := c.limit()
	bytes = recordOverhead
	i := 0
	for ; i < len(c.queue) && len(batch) < c.opts.MaxEntries; i++ {
		w := c.queue[i]
		if w.state.Load() == abandoned {
			c.queuedBytes -= w.size
			continue // its caller gave up before it was written
		}
		if len(batch) > 0 && bytes+w.size > limit {
			break
		}
		c.queuedBytes -= w.size
		if !w.state.CompareAndSwap(queued, taken) {
			continue // abandoned just now
		}
		batch = append(batch, w)
		bytes += w.size
	}
	clear(c.queue[:i])
	c.queue = c.queue[i:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return batch, bytes
}

func (c *Committer) publish(batch []*waiter, bytes int) *record {
	c.seq++
	r := &record{sent: time.Now(), id: c.idPrefix + strconv.FormatUint(c.seq, 10), waiters: batch, bytes: bytes}
	entries := make([]Entry, len(batch))
	for i, w := range batch {
		entries[i] = w.e
	}
	msg := &nats.Msg{Subject: c.subject, Header: nats.Header{}, Data: EncodeRecord(entries)}
	// The id lets the server drop a copy of this record should the client resend it (the
	// client retries by itself when no stream answered).
	msg.Header.Set(jetstream.MsgIDHeader, r.id)
	if c.opts.Stream != "" {
		msg.Header.Set(jetstream.ExpectedStreamHeader, c.opts.Stream)
	}
	r.paf, r.err = c.js.PublishMsgAsync(msg)
	if errors.Is(r.err, nats.ErrReconnectBufExceeded) {
		// With no reconnect buffer this is how a publish fails while disconnected.
		r.err = fmt.Errorf("%w: %w", nats.ErrDisconnected, r.err)
	}
	return r
}

// ack resolves records in publication order and frees their in-flight slots.
func (c *Committer) ack() {
	defer close(c.done)
	for r := range c.inflight {
		err := r.err
		if err == nil {
			err = c.await(r)
		}
		if err == nil {
			c.records.Add(1)
			c.entries.Add(uint64(len(r.waiters)))
			c.mu.Lock()
			c.lastBatch, c.lastFlush = len(r.waiters), time.Since(r.sent)
			c.mu.Unlock()
		} else {
			c.failedRecords.Add(1)
			c.failedEntries.Add(uint64(len(r.waiters)))
			err = fmt.Errorf("broker: commit %s: record %s of %d entries not acknowledged: %w",
				c.subject, r.id, len(r.waiters), err)
			c.log.Warn("record not acknowledged", "record", r.id, "entries", len(r.waiters), "err", err)
		}
		for _, w := range r.waiters {
			w.done <- err
		}
		c.release()
	}
}

// await waits for the record's acknowledgement. The ack timeout resolves every future; a
// closed connection does not, so it is watched too.
func (c *Committer) await(r *record) error {
	select {
	case pa := <-r.paf.Ok():
		return c.checkAck(pa)
	case err := <-r.paf.Err():
		return err
	case <-c.b.closed:
		// An acknowledgement delivered before the connection closed still counts.
		select {
		case pa := <-r.paf.Ok():
			return c.checkAck(pa)
		case err := <-r.paf.Err():
			return err
		default:
			return fmt.Errorf("connection %w", ErrClosed)
		}
	}
}

func (c *Committer) checkAck(pa *jetstream.PubAck) error {
	if c.opts.Stream != "" && pa.Stream != c.opts.Stream {
		return fmt.Errorf("acknowledged by stream %s, want %s", pa.Stream, c.opts.Stream)
	}
	return nil
}
