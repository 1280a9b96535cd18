package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// maxBatch bounds how many writes share one transaction, so one commit never grows large
// enough to hold up readers' checkpoints for long.
const maxBatch = 64

var errWriterClosed = errors.New("store closed")

// writer group-commits writes. SQLite has one writer, so concurrent writes queue for it
// anyway; instead of one transaction each, every write waiting when the previous
// transaction ends goes into the next one. A write that fails gets its own error and the
// others still commit: the batch is then run again with each write in its own savepoint
// (see run), so a write's function may run more than once and must set whatever it
// reports from scratch each time.
// Under load (eight delivery lanes recording attempts while the processor stores messages)
// this turns dozens of commits into one.
type writer struct {
	db *sql.DB
	// The savepoint statements, prepared once on db: parsing them again for every write
	// of a shared transaction costs as much as a small write's own statements.
	savepoint, rollbackTo, release *sql.Stmt

	reqs    chan *writeReq
	quit    chan struct{}
	stopped chan struct{}
}

type writeReq struct {
	ctx  context.Context
	fn   func(*sql.Tx) error
	done chan error
}

// newWriter prepares the savepoint statements on db and starts the loop; stop ends it and
// closes them.
func newWriter(ctx context.Context, db *sql.DB) (*writer, error) {
	w := &writer{db: db, reqs: make(chan *writeReq), quit: make(chan struct{}), stopped: make(chan struct{})}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&w.savepoint, `SAVEPOINT osprey_write`},
		{&w.rollbackTo, `ROLLBACK TO osprey_write`},
		{&w.release, `RELEASE osprey_write`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("prepare %s: %w", p.sql, err)
		}
		*p.st = st
	}
	go w.loop()
	return w, nil
}

func (w *writer) closeStmts() {
	for _, st := range []*sql.Stmt{w.savepoint, w.rollbackTo, w.release} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// do runs fn in a write transaction, possibly shared with other writes, and returns once
// that transaction has committed or fn's work has been rolled back.
func (w *writer) do(ctx context.Context, fn func(*sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case w.reqs <- req:
	case <-w.quit:
		return errWriterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.done
}

// stop lets the transaction in progress finish and refuses later writes.
func (w *writer) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.stopped
	w.closeStmts()
}

func (w *writer) loop() {
	defer close(w.stopped)
	for {
		var first *writeReq
		select {
		case first = <-w.reqs:
		case <-w.quit:
			return
		}
		batch := []*writeReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		w.run(batch)
	}
}

func (w *writer) run(batch []*writeReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.done <- inTx(r.ctx, w.db, r.fn)
		return
	}
	errs := make([]error, len(batch))
	failed, err := w.runShared(batch, errs)
	if failed >= 0 {
		// One write failed and took the transaction with it. Run the others again, each
		// in its own savepoint this time, so that they still commit; the failed one keeps
		// its error rather than running twice.
		err = w.runIsolated(batch, errs, failed)
	}
	for i, r := range batch {
		if err != nil && errs[i] == nil {
			errs[i] = err // the shared transaction did not commit: none of it is written
		}
		r.done <- errs[i]
	}
}

// errBatchFailed rolls the shared transaction back when one of its writes fails.
var errBatchFailed = errors.New("a write of the batch failed")

// runShared runs the batch in one transaction with no savepoints: almost every batch
// succeeds whole, and three savepoint statements per write cost as much as a small
// write's own. It stops at the first write that fails, rolls everything back and
// returns that write's index, or -1.
func (w *writer) runShared(batch []*writeReq, errs []error) (failed int, err error) {
	failed = -1
	err = inTx(context.Background(), w.db, func(tx *sql.Tx) error {
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if err := r.fn(tx); err != nil {
				errs[i], failed = err, i
				return errBatchFailed
			}
		}
		return nil
	})
	if failed >= 0 {
		err = nil
	}
	return failed, err
}

// runIsolated runs the batch, but for the write at skip, in one transaction with a
// savepoint around each write, so that a failing write is rolled back alone and gets
// its own error while the others commit.
func (w *writer) runIsolated(batch []*writeReq, errs []error, skip int) error {
	return inTx(context.Background(), w.db, func(tx *sql.Tx) error {
		for i, r := range batch {
			if i == skip {
				continue
			}
			errs[i] = nil // from the first run, whose work was rolled back
			if err := r.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if _, err := tx.Stmt(w.savepoint).Exec(); err != nil {
				return err
			}
			if err := r.fn(tx); err != nil {
				errs[i] = err
				if _, err := tx.Stmt(w.rollbackTo).Exec(); err != nil {
					return err
				}
			}
			if _, err := tx.Stmt(w.release).Exec(); err != nil {
				return err
			}
		}
		return nil
	})
}
