package sqlite

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// attemptLog records delivery attempts in an append-only file and applies them to the
// database in bulk.
//
// A delivery worker may not send its next message until the attempt before it is on
// record (that is what bounds the repeats after a crash to one per connection), so it
// records every attempt on its own, and a destination's few connections rarely have more
// than one or two attempts to share a transaction. As its own transaction an attempt
// cost a commit, three statements and four or five WAL pages: the delivery row, the
// message row, its status index and the attempt, written again by the next attempt a
// moment later. Here it costs one write(2) of about 200 bytes, and every few milliseconds
// the attempts recorded since go into the database in one transaction, which writes each
// page once.
//
// The record survives what a committed transaction survives with synchronous=NORMAL: a
// crash of the process, not necessarily a power cut. Open applies what a crash left in
// the files. Until an attempt is applied the database does not show it, so every read of
// delivery state, and every write that changes it, applies the log first (Store.settle).
//
// Two files take turns: attempts go to the active one while the other's, already taken
// into memory, are applied; once they are committed that file is emptied and becomes the
// next to take appends. A file is therefore only emptied when all it holds is in the
// database.
type attemptLog struct {
	log *slog.Logger

	mu      sync.Mutex
	files   [2]*os.File
	sizes   [2]int64
	active  int
	pending []loggedAttempt // in files[active], in the order recorded
	broken  error           // set when a failed append could not be undone; AddAttempt then writes directly

	unapplied atomic.Int64 // recorded and not yet committed, for a cheap check in settle

	applyMu sync.Mutex      // one apply at a time, so the files take turns in order
	retry   []loggedAttempt // a batch whose apply failed, still in files[retryF]
	retryF  int

	every time.Duration // how often the applier runs
	kick  chan struct{} // wakes the applier early when enough attempts wait
	quit  chan struct{}
	done  chan struct{}
}

// loggedAttempt is one record of the log.
type loggedAttempt struct {
	ID      string               `json:"id"`
	Attempt store.Attempt        `json:"a"`
	Status  store.DeliveryStatus `json:"s"`
}

const (
	// applyEvery bounds how long an attempt waits to be applied when nothing reads: a
	// reader of delivery state applies the log itself and never waits for this.
	applyEvery = 10 * time.Millisecond
	// applyAt wakes the applier early, so that a burst never makes one huge transaction.
	applyAt = 512
	// maxUnapplied bounds what the log holds when the database cannot take it (disk full,
	// file locked by another process): past it AddAttempt applies the log itself and
	// returns the failure, so delivery waits, as it does when a direct write fails,
	// instead of memory and the files growing without end.
	maxUnapplied = 16384
	// recordHeader is the length and the CRC-32C of the payload, before it.
	recordHeader = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// attemptLogPaths are the two files beside the database.
func attemptLogPaths(dbPath string) [2]string {
	return [2]string{dbPath + "-attempts.0", dbPath + "-attempts.1"}
}

// openAttemptLog opens (creating) both files and returns what they hold, in file order:
// attempts a crash left unapplied. A torn record at the end of a file (a crash during its
// write) is dropped, with everything after it; it was never reported as recorded.
func openAttemptLog(dbPath string, log *slog.Logger, every time.Duration) (*attemptLog, []loggedAttempt, error) {
	l := &attemptLog{log: log, every: every, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	var left []loggedAttempt
	for i, p := range attemptLogPaths(dbPath) {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			l.closeFiles()
			return nil, nil, fmt.Errorf("attempt log: %w", err)
		}
		l.files[i] = f
		recs, good, err := readAttempts(f)
		if err != nil {
			l.closeFiles()
			return nil, nil, fmt.Errorf("attempt log %s: %w", p, err)
		}
		if info, err := f.Stat(); err == nil && info.Size() > good {
			log.Warn("attempt log ends in a torn record, dropped: it was being written when the process stopped",
				"file", p, "bytes", info.Size()-good)
		}
		left = append(left, recs...)
	}
	return l, left, nil
}

// readAttempts decodes records from the start of f until its end or the first record that
// is incomplete or fails its checksum, and returns them with the length of the good part.
func readAttempts(f *os.File) ([]loggedAttempt, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	r := bufio.NewReader(f)
	var out []loggedAttempt
	var good int64
	var hdr [recordHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return out, good, nil // the end, or a header cut short
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > 64<<20 {
			return out, good, nil // not a length this log writes: garbage after a crash
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return out, good, nil
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return out, good, nil
		}
		var rec loggedAttempt
		if err := json.Unmarshal(payload, &rec); err != nil {
			return out, good, nil
		}
		out = append(out, rec)
		good += recordHeader + int64(n)
	}
}

func encodeAttempt(rec loggedAttempt) ([]byte, error) {
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, recordHeader, recordHeader+len(payload))
	binary.LittleEndian.PutUint32(buf[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(payload, castagnoli))
	return append(buf, payload...), nil
}

// errLogBroken makes AddAttempt write to the database directly from then on.
var errLogBroken = errors.New("attempt log unusable")

// append records rec with one write. When the write fails it is undone, so that a later
// record never follows a torn one (replay stops at the first bad record).
func (l *attemptLog) append(rec loggedAttempt) error {
	buf, err := encodeAttempt(rec)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return errLogBroken
	}
	f := l.files[l.active]
	if n, err := f.Write(buf); err != nil {
		if n > 0 {
			if terr := f.Truncate(l.sizes[l.active]); terr != nil {
				l.broken = terr
				l.log.Error("attempt log: a failed write could not be undone; attempts are now written to the database directly",
					"file", f.Name(), "err", err, "truncate_err", terr)
				return errLogBroken
			}
		}
		return fmt.Errorf("attempt log: %w", err)
	}
	l.sizes[l.active] += int64(len(buf))
	l.pending = append(l.pending, rec)
	l.unapplied.Add(1)
	if len(l.pending) >= applyAt {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// run applies the log every l.every, or sooner when kicked, until stop.
func (l *attemptLog) run(apply func(context.Context, []loggedAttempt) error) {
	defer close(l.done)
	t := time.NewTicker(l.every)
	defer t.Stop()
	var failures failureLog
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
		case <-l.kick:
		}
		if l.unapplied.Load() == 0 {
			continue
		}
		if err := l.settle(context.Background(), apply); err != nil {
			failures.warn(l.log, "store/sqlite: attempt log: apply failed; retrying", err)
		}
	}
}

// settle applies every attempt recorded before the call. The batch is taken and the files
// swapped under mu, and applied outside it, so recording goes on meanwhile.
func (l *attemptLog) settle(ctx context.Context, apply func(context.Context, []loggedAttempt) error) error {
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	if l.retry != nil {
		// An earlier batch failed. It comes first: its file has to be emptied before it can
		// take appends again, and its attempts are older than the pending ones.
		if err := l.applyBatch(ctx, apply, l.retry, l.retryF); err != nil {
			return err
		}
		l.retry = nil
	}
	l.mu.Lock()
	batch, from := l.pending, l.active
	if len(batch) > 0 {
		l.pending = nil
		l.active ^= 1
	}
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := l.applyBatch(ctx, apply, batch, from); err != nil {
		l.retry, l.retryF = batch, from
		return err
	}
	return nil
}

func (l *attemptLog) applyBatch(ctx context.Context, apply func(context.Context, []loggedAttempt) error, batch []loggedAttempt, file int) error {
	if err := apply(ctx, batch); err != nil {
		return err
	}
	// Applied: the file holds nothing else (appends went to the other one meanwhile).
	if err := l.files[file].Truncate(0); err != nil {
		// Replaying it after a crash would only find the attempts recorded already.
		l.log.Warn("attempt log: empty file", "file", l.files[file].Name(), "err", err)
	}
	l.mu.Lock()
	l.sizes[file] = 0
	l.mu.Unlock()
	l.unapplied.Add(-int64(len(batch)))
	return nil
}

// stop ends the applier; the caller settles what is left.
func (l *attemptLog) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
}

func (l *attemptLog) closeFiles() {
	for _, f := range l.files {
		if f != nil {
			_ = f.Close()
		}
	}
}

// emptyFiles truncates both files after Open has applied what they held.
func (l *attemptLog) emptyFiles() error {
	for i, f := range l.files {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("attempt log: %w", err)
		}
		l.sizes[i] = 0
	}
	return nil
}

// replayOrder sorts attempts a crash left so that each delivery's come in attempt order
// (the files may hold a later attempt of a delivery in the file read first), keeping the
// recorded order otherwise.
func replayOrder(recs []loggedAttempt) {
	slices.SortStableFunc(recs, func(a, b loggedAttempt) int { return a.Attempt.Number - b.Attempt.Number })
}
