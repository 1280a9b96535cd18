package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
)

// Checkpoint tuning; checkpointConfig carries them so tests can shrink them.
const (
	// A tick is cheap (a stat of the -wal file and a read of the writer's counter), and
	// 200ms keeps the WAL within a few MB of the point where a checkpoint is due even at
	// the writer's full rate (about 50 MB/s of frames on this kind of machine).
	checkpointEvery = 200 * time.Millisecond
	// 4096 frames (16 MiB of 4 KiB pages) is one hash table of the WAL index, so readers
	// look pages up in at most a couple of tables, while a checkpoint, with its two
	// fsyncs, comes at most a few times a second and copies each page rewritten in the
	// meantime (the ends of the indexes, written by every commit) once instead of once
	// per 1000 frames as SQLite's automatic checkpoint did.
	checkpointFrames = 4096
	// A quiet store still gets its last frames copied into the database file, so the
	// file on disk (and a backup of it) is never far behind.
	checkpointMaxAge = 10 * time.Second
	// A reader that keeps an old snapshot stops the writer from starting the WAL over,
	// and the WAL file grows. Past this size the checkpointer waits (briefly, blocking
	// the writer) for a TRUNCATE checkpoint, which waits for the readers.
	walLimit = 64 << 20
	// How long a TRUNCATE checkpoint waits for the readers, and so about the longest it
	// stalls the writer. A long read (a full-text search) makes it fail; it is tried
	// again after a back-off that doubles up to walRetryMax, so such a read cannot keep
	// the writer stalled.
	truncateBusy = 250 * time.Millisecond
	walRetryMax  = 30 * time.Second
	// Failures of background work are logged at most this often, with a count of those
	// in between (failureLog).
	checkpointLogEvery = time.Minute
	// How often the WAL's new frames are handed to the disk (startWriteback). A
	// checkpoint begins with an fsync of the WAL; left to itself the kernel keeps the
	// frames in memory until then, and that fsync writes megabytes at once, during which
	// every other fsync on the disk waits: measured at 1,000 HL7 messages/s, JetStream's
	// fsyncs behind a WAL fsync of 34 ms took up to 31 ms, the senders' ACKs with them.
	// Started every 20 ms, the writes go out in pieces of a few hundred KB.
	writebackEvery = 20 * time.Millisecond
)

type checkpointConfig struct {
	every   time.Duration
	frames  int
	maxAge  time.Duration
	limit   int64
	busy    time.Duration
	retry   time.Duration // the first back-off after a failed TRUNCATE
	retryTo time.Duration
}

var defaultCheckpoints = checkpointConfig{every: checkpointEvery, frames: checkpointFrames,
	maxAge: checkpointMaxAge, limit: walLimit, busy: truncateBusy, retry: time.Second, retryTo: walRetryMax}

// checkpointer copies the WAL's frames into the database file, from a goroutine and a
// connection of its own, so that the writer (whose automatic checkpoint is off) never
// stalls inside a commit for a checkpoint's copying and fsyncs.
type checkpointer struct {
	cfg     checkpointConfig
	db      *sql.DB // its own connection
	w       *sql.DB // the writer's, for its count of frames written
	walPath string
	dbPath  string
	log     *slog.Logger

	quit, done chan struct{}
	wbDone     chan struct{} // closed when writebackLoop has ended
	wbFailed   atomic.Bool   // a writeback failed; logged once
	ticks      atomic.Int64  // completed ticks, so tests can wait for one

	// Owned by the loop.
	written    int64     // the writer's frames written, at the last completed checkpoint
	last       time.Time // of the last completed checkpoint
	truncateAt time.Time // no TRUNCATE before, after one failed
	backoff    time.Duration
	failures   failureLog
}

func newCheckpointer(path string, w *sql.DB, cfg checkpointConfig, log *slog.Logger) *checkpointer {
	// The busy timeout matters only to TRUNCATE: PASSIVE never waits.
	v := url.Values{"_pragma": {"busy_timeout(" + strconv.FormatInt(cfg.busy.Milliseconds(), 10) + ")",
		"synchronous(NORMAL)"}}
	db := sql.OpenDB(connector{dsn: path + "?" + v.Encode()})
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{cfg: cfg, db: db, w: w, walPath: path + "-wal", dbPath: path, log: log, wbDone: make(chan struct{}),
		quit: make(chan struct{}), done: make(chan struct{}), last: time.Now()}
	go c.loop()
	go c.writebackLoop()
	return c
}

// stop ends the loops, letting a checkpoint in progress finish, and closes the connection.
func (c *checkpointer) stop() error {
	close(c.quit)
	<-c.done
	<-c.wbDone
	return c.db.Close()
}

// writebackLoop starts the writing of the WAL's and the database file's dirty pages every
// writebackEvery (see there). It runs beside loop, so the pages a checkpoint copies into the
// database file go out while it copies, rather than all at its closing fsync.
func (c *checkpointer) writebackLoop() {
	defer close(c.wbDone)
	t := time.NewTicker(writebackEvery)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		for _, p := range []string{c.walPath, c.dbPath} {
			if err := startWriteback(p); err != nil && c.wbFailed.CompareAndSwap(false, true) {
				// Nothing is lost: the checkpoint's fsync still writes everything, in one go.
				c.log.Warn("store/sqlite: cannot start writeback; checkpoints will write in bursts", "file", p, "err", err)
			}
		}
	}
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		if err := c.tick(); err != nil {
			c.failed(err)
		}
		c.ticks.Add(1)
	}
}

func (c *checkpointer) tick() error {
	ctx := context.Background()
	now := time.Now()
	fi, err := os.Stat(c.walPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat wal: %w", err)
	}
	if err == nil && fi.Size() > c.cfg.limit && !now.Before(c.truncateAt) {
		return c.truncate(ctx, now)
	}
	var written int64
	if err := c.holdWriter(ctx, func(n int64) error { written = n; return nil }); err != nil {
		return err
	}
	if written < c.written {
		c.written = 0 // a new writer connection counts from zero
	}
	fresh := written - c.written
	if fresh == 0 || (fresh < int64(c.cfg.frames) && now.Sub(c.last) < c.cfg.maxAge) {
		return nil
	}
	// The bulk of the copying, beside the writer. It cannot catch up with a writer that
	// keeps committing, and the writer starts the WAL over only when it begins a
	// transaction with every frame copied; otherwise the WAL file grows for ever. So the
	// few frames committed meanwhile are copied with the writer held between two
	// transactions, a pause of a small copy and two fsyncs.
	if _, _, _, err := c.checkpoint(ctx, "PASSIVE"); err != nil {
		return err
	}
	return c.holdWriter(ctx, func(written int64) error {
		busy, log, done, err := c.checkpoint(ctx, "PASSIVE")
		if err != nil {
			return err
		}
		// A reader on an older snapshot leaves frames behind: try again next tick (a
		// PASSIVE checkpoint with nothing it may copy costs no fsync) until they are.
		if busy == 0 && done == log {
			c.written, c.last = written, now
		}
		return nil
	})
}

// truncate runs a TRUNCATE checkpoint, which waits for the readers to let it copy every
// frame and start the WAL file over from zero bytes. It holds the writer between two
// transactions meanwhile: waiting for the writer inside SQLite would mean polling for a
// lock the writer takes again at once, and rarely getting it.
func (c *checkpointer) truncate(ctx context.Context, now time.Time) error {
	err := c.holdWriter(ctx, func(written int64) error {
		busy, log, done, err := c.checkpoint(ctx, "TRUNCATE")
		if err == nil && busy != 0 {
			err = fmt.Errorf("wal checkpoint(TRUNCATE): busy after %d of %d frames", done, log)
		}
		if err == nil {
			c.written, c.last = written, now
		}
		return err
	})
	if err != nil {
		c.backoff = min(max(2*c.backoff, c.cfg.retry), c.cfg.retryTo)
		c.truncateAt = now.Add(c.backoff)
		return err
	}
	c.backoff, c.truncateAt = 0, time.Time{}
	return nil
}

// checkpoint runs PRAGMA wal_checkpoint(mode) and returns its busy flag and the frames in
// the WAL and copied.
func (c *checkpointer) checkpoint(ctx context.Context, mode string) (busy, log, done int64, err error) {
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done); err != nil {
		return 0, 0, 0, fmt.Errorf("wal checkpoint(%s): %w", mode, err)
	}
	return busy, log, done, nil
}

// holdWriter takes the writer's connection, so that no write transaction is open, and
// runs fn with the number of frames that connection has appended to the WAL since it
// opened. Taking it waits for the transaction in progress, a few milliseconds at most;
// writes queue meanwhile.
func (c *checkpointer) holdWriter(ctx context.Context, fn func(written int64) error) error {
	conn, err := c.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("hold writer: %w", err)
	}
	defer conn.Close()
	var n int
	err = conn.Raw(func(dc any) error {
		st, ok := dc.(sqlite.DBStatus)
		if !ok {
			return fmt.Errorf("driver connection %T has no DBStatus", dc)
		}
		var err error
		n, _, err = st.Status(sqlite.DBStatusCacheWrite, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("writer frames: %w", err)
	}
	return fn(int64(n))
}

// failed logs err, or only counts it when a failure was logged less than a minute ago;
// the next tick tries again, and until a checkpoint succeeds the frames simply stay in
// the WAL, where readers and recovery find them.
func (c *checkpointer) failed(err error) {
	c.failures.warn(c.log, "store/sqlite: checkpoint failed; retrying", err)
}

// failureLog logs a failure of background work that retries on its own at most once per
// checkpointLogEvery, counting those in between, so that a database that stays unwritable
// does not fill the log. It belongs to one goroutine.
type failureLog struct {
	n        int // since the last line
	loggedAt time.Time
}

func (f *failureLog) warn(log *slog.Logger, msg string, err error) {
	f.n++
	if now := time.Now(); now.Sub(f.loggedAt) >= checkpointLogEvery {
		log.Warn(msg, "err", err, "failures", f.n)
		f.n, f.loggedAt = 0, now
	}
}
