package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A channel's inbound and destination queues are streams with limits retention, trimmed here
// behind their consumers, rather than work queues. A work queue deletes each record as it is
// acknowledged, and with sync_interval always every deletion is a tombstone written and
// fsynced on its own, under the lock the stream's new records also need: one extra fsync per
// record, on the path of every sender's ACK (measured: 7,500-8,700 ACKs/s at 32 connections
// as work queues, 10,400-11,300 trimmed). Trimming removes everything acknowledged so far in
// one operation and one fsync.
//
// Trimming only removes records at or below a consumer's acknowledgement floor, which the
// server moves only over records acknowledged by the engine after their work was stored, so
// nothing is removed that still has work. The floor the server reports may be ahead of the
// consumer state it has on disk; after a crash such a consumer starts from its older floor,
// finds those records gone, and skips ahead: they were done.

// trimInterval is how often the queues are trimmed: what is acknowledged stays on disk at
// most about this long, and each trim costs one fsync per queue.
const trimInterval = time.Second

// queueRetention is the retention for the channel's stream name. Streams made by earlier
// versions are work queues, and the server refuses to change a stream to or from a work queue;
// such a stream stays one, and works as before, until it is deleted while empty.
func (ch *channel) queueRetention(ctx context.Context, name string) jetstream.RetentionPolicy {
	s, err := ch.e.opts.Broker.JetStream().Stream(ctx, name)
	if err == nil && s.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy {
		ch.log.Info("stream is a work queue, as earlier versions made it; each acknowledgement costs an fsync. "+
			"Delete it while it is empty (nats stream rm) and the next start makes it a trimmed queue", "stream", name)
		return jetstream.WorkQueuePolicy
	}
	return jetstream.LimitsPolicy
}

// trimLoop trims the channel's queues every trimInterval until ctx ends.
func (ch *channel) trimLoop(ctx context.Context) {
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	var lastErr string
	st := trimState{floors: map[string]uint64{}, streams: map[string]jetstream.Stream{}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := ch.trim(ctx, &st)
		switch {
		case err != nil && ctx.Err() == nil && err.Error() != lastErr:
			// Once per kind of failure: a trim that fails leaves records on disk, nothing more,
			// and the next one catches up.
			ch.log.Warn("trim queues", "err", err)
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
		}
	}
}

// trimState is what trimLoop keeps between trims: the floor each queue was last trimmed to,
// so that an idle queue costs one consumer info request and no write, and the streams,
// looked up once rather than at every purge.
type trimState struct {
	floors  map[string]uint64
	streams map[string]jetstream.Stream
}

// trim removes what each consumer of the channel has acknowledged: the inbound stream up to
// the processor's floor, and each destination's subject up to its worker's.
func (ch *channel) trim(ctx context.Context, st *trimState) error {
	js := ch.e.opts.Broker.JetStream()
	var errs []error
	queue := func(stream, consumer string, opts ...jetstream.StreamPurgeOpt) {
		key := stream + "/" + consumer
		c, err := js.Consumer(ctx, stream, consumer) // fetches the consumer's info
		if err != nil {
			errs = append(errs, err)
			return
		}
		floor := c.CachedInfo().AckFloor.Stream
		if floor <= st.floors[key] {
			return
		}
		s, ok := st.streams[stream]
		if !ok {
			if s, err = js.Stream(ctx, stream); err != nil {
				errs = append(errs, err)
				return
			}
			st.streams[stream] = s
		}
		// Purging "up to" a sequence keeps that sequence: the floor itself is acknowledged.
		if err := s.Purge(ctx, append(opts, jetstream.WithPurgeSequence(floor+1))...); err != nil {
			delete(st.streams, stream) // looked up again next time, in case it was recreated
			errs = append(errs, err)
			return
		}
		st.floors[key] = floor
	}
	queue(inStream(ch.name), "processor")
	for _, d := range ch.dests {
		queue(outStream(ch.name), d.consumerName(), jetstream.WithPurgeSubject(outSubject(ch.name, d.name)))
	}
	return errors.Join(errs...)
}
