// Package sqlite is the embedded message store: one SQLite file in the data directory,
// through modernc.org/sqlite (pure Go, no cgo), so a laptop install needs nothing else.
//
// The file runs in WAL mode so searches never wait for ingest, with synchronous=NORMAL:
// a power cut can lose the last transactions but never corrupts the file. That is the
// right trade here because the store is history, not the durable copy of work in flight;
// JetStream holds that (fsynced on every write) and redelivers whatever the store had not
// recorded, and every write is idempotent, so the replay fills the gap without duplicates.
//
// SQLite allows one writer at a time. Writes therefore go through a pool of exactly one
// connection, which queues them in Go instead of letting them spin on SQLITE_BUSY, and
// begin IMMEDIATE so a transaction never has to upgrade a read lock. Reads use a
// separate pool of query-only connections that see a consistent snapshot beside the
// writer. A background checkpointer on a connection of its own copies the WAL into the
// database file (see checkpointer), so that the writer never does it inside a commit.
// Delivery attempts, one per message sent, are appended to an attempt log beside the
// database and applied in bulk before anything reads them (see attemptLog).
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/migrate"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

// Memory is the path that opens a private in-memory database, for tests. It lives as long
// as the Store and runs on a single connection.
const Memory = ":memory:"

// Options tunes a Store. The zero value is good for production.
type Options struct {
	// ReadConns is the size of the read pool; zero means max(4, GOMAXPROCS).
	ReadConns int
	// BusyTimeout is how long a connection waits for a lock held by another process (a
	// backup, the sqlite3 shell) before failing; zero means 5s.
	BusyTimeout time.Duration
	// Logger receives the rare failures of background work (checkpoints); nil means
	// slog.Default().
	Logger *slog.Logger

	checkpoints checkpointConfig // zero means defaultCheckpoints; tests shrink it
	applyEvery  time.Duration    // zero means applyEvery; tests stretch it
	maxLogged   int64            // zero means maxUnapplied; tests shrink it
	// schema is the migration to stop at; zero means all. Tests of a migration build the
	// database an earlier version left with it. The hot statements, some of which need the
	// latest schema, are then prepared only when first used.
	schema int
}

// Store is a store.Store on one SQLite database, and a store.JobStore.
type Store struct {
	w  *sql.DB       // the single writer connection
	r  *sql.DB       // the read pool; the same as w for Memory
	wr *writer       // group commit on w
	ck *checkpointer // nil for Memory
	al *attemptLog   // nil for Memory: attempts are then written directly
	// maxLogged is how many attempts the log may hold unapplied before AddAttempt waits
	// for the database (see maxUnapplied).
	maxLogged int64
	log       *slog.Logger

	stmts map[string]*sql.Stmt // prepared once on w at Open and read-only after: see prep

	dsMu    sync.Mutex
	dsStmts map[int]*sql.Stmt // on r, by number of ids: see deliveryStatesStmt

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.JobStore = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrations embed.FS

// drv is this package's own driver instance, so the search function it registers reaches
// only Osprey's connections, not every "sqlite" database in the process.
var drv = newDriver()

func newDriver() *sqlite.Driver {
	d := &sqlite.Driver{}
	// osprey_contains(raw, needle) reports whether query.Fold(raw) contains needle, which
	// the caller has folded already. SQLite's own lower() and LIKE fold ASCII only, so
	// "MÜLLER" would not find "Müller".
	d.MustRegisterDeterministicScalarFunction("osprey_contains", 2,
		func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			needle, _ := args[1].(string)
			var found bool
			switch v := args[0].(type) {
			case []byte:
				found = query.ContainsFold(v, needle)
			case string:
				found = strings.Contains(query.FoldString(v), needle)
			}
			if found {
				return int64(1), nil
			}
			return int64(0), nil
		})
	return d
}

// connector opens connections to one DSN with drv.
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) { return drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return drv }

// Open opens (creating it when missing, with mode 0600 since it holds PHI) the database at
// path and brings its schema up to date. path may be Memory.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.checkpoints == (checkpointConfig{}) {
		opts.checkpoints = defaultCheckpoints
	}
	if opts.applyEvery <= 0 {
		opts.applyEvery = applyEvery
	}
	if opts.maxLogged <= 0 {
		opts.maxLogged = maxUnapplied
	}
	busy := "busy_timeout(" + strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) + ")"

	s := &Store{log: opts.Logger, maxLogged: opts.maxLogged}
	if path == Memory {
		v := url.Values{"_pragma": {busy, "foreign_keys(1)"}}
		s.w = sql.OpenDB(connector{dsn: Memory + "?" + v.Encode()})
		// One connection, never recycled: closing it would drop the database.
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		s.w.SetConnMaxLifetime(0)
		s.w.SetConnMaxIdleTime(0)
		s.r = s.w
	} else {
		if path == "" || strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("store/sqlite: open: invalid path %q", path)
		}
		if err := prepareFile(path); err != nil {
			return nil, fmt.Errorf("store/sqlite: open %s: %w", path, err)
		}
		// The checkpointer, not a commit of the writer, copies the WAL into the file.
		wv := url.Values{
			"_pragma": {busy, "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)",
				"wal_autocheckpoint(0)"},
			"_txlock": {"immediate"},
		}
		s.w = sql.OpenDB(connector{dsn: path + "?" + wv.Encode()})
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		s.w.SetConnMaxLifetime(0)
		s.w.SetConnMaxIdleTime(0)
		rv := url.Values{"_pragma": {busy, "query_only(1)"}}
		s.r = sql.OpenDB(connector{dsn: path + "?" + rv.Encode()})
		s.r.SetMaxOpenConns(opts.ReadConns)
		s.r.SetMaxIdleConns(opts.ReadConns)
	}
	var err error
	s.wr, err = newWriter(ctx, s.w)
	if err == nil {
		err = s.migrate(ctx, opts.schema)
	}
	if err == nil && opts.schema == 0 {
		err = s.prepareHot(ctx) // after migrate: the statements need the tables
	}
	if err == nil && path != Memory {
		s.ck = newCheckpointer(path, s.w, opts.checkpoints, opts.Logger)
		err = s.openAttemptLog(ctx, path, opts.applyEvery)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store/sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// openAttemptLog applies what a crash left in the attempt log, then starts it.
func (s *Store) openAttemptLog(ctx context.Context, path string, every time.Duration) error {
	al, left, err := openAttemptLog(path, s.log, every)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		replayOrder(left)
		for chunk := range slices.Chunk(left, 1000) {
			if err := s.applyAttempts(ctx, chunk); err != nil {
				al.closeFiles()
				return fmt.Errorf("apply the attempt log: %w", err)
			}
		}
		s.log.Info("applied the attempts a stop left in the attempt log", "attempts", len(left))
	}
	if err := al.emptyFiles(); err != nil {
		al.closeFiles()
		return err
	}
	s.al = al
	go al.run(s.applyAttempts)
	return nil
}

// applyAttempts writes logged attempts in one transaction. An attempt whose message is
// gone (pruned while it was being delivered) has nothing left to update and is dropped.
func (s *Store) applyAttempts(ctx context.Context, recs []loggedAttempt) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, r := range recs {
			err := s.addAttemptTx(ctx, tx, r.ID, r.Attempt, r.Status)
			if errors.Is(err, store.ErrNotFound) {
				s.log.Warn("attempt for a message no longer stored, dropped", "id", r.ID, "destination", r.Attempt.Destination)
				continue
			}
			if err != nil {
				return fmt.Errorf("message %s: %w", r.ID, err)
			}
		}
		return nil
	})
}

// settle applies the attempt log, so that what follows sees every attempt recorded before
// it. Every read of delivery state or message status calls it first, and so does every
// write that changes them, so that an attempt applied later cannot undo the change.
func (s *Store) settle(ctx context.Context) error {
	if s.al == nil || s.al.unapplied.Load() == 0 {
		return nil
	}
	return s.al.settle(ctx, s.applyAttempts)
}

// prepareFile creates the directory and an empty database file with owner-only access;
// SQLite gives its -wal and -shm files the same mode.
func prepareFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, all in
// one IMMEDIATE transaction so two processes opening the same file cannot both apply one.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	if upTo > 0 && upTo < len(ms) {
		ms = ms[:upTo]
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			applied_at INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade osprey", have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.Version, query.Micros(time.Now())); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// prep returns query bound to tx: prepared once at Open on the writer connection when it is
// one of the statements run for every delivery (parsing SQL is a large part of such a small
// write), otherwise prepared on tx for this transaction. The writer pool has one connection,
// which a transaction holds, so nothing may be prepared on the pool while one is open.
func (s *Store) prep(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, query)
}

// hotStatements are prepared at Open; see prep.
var hotStatements = []string{sqlMessageChannel, sqlInsertMessage, sqlInsertStage, sqlPutDelivery, sqlPutBody,
	sqlInsertAttempt, sqlUpdateDelivery, sqlUpsertDelivery, sqlAttemptMessageSent, sqlAttemptMessageStatus, sqlInsertJob, sqlJob, sqlUpdateJob}

func (s *Store) prepareHot(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range hotStatements {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// exec runs a cached statement in tx.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.prep(ctx, tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// write runs fn in a write transaction on the writer connection, possibly shared with other
// writes that were waiting at the same time (see writer); fn's own failure undoes only fn.
// fn may run more than once (when another write of its batch fails), each time in a fresh
// transaction, so it must not keep results of an earlier run.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.wr.do(ctx, fn)
}

// read runs fn in a read transaction, so multi-query reads see one snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	return inTx(ctx, s.r, fn)
}

func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error from fn is the one worth reporting
		return err
	}
	return tx.Commit()
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store/sqlite: %s: %w", op, err)
}

func notFound(id string) error { return fmt.Errorf("message %s: %w", id, store.ErrNotFound) }

// missingMessage turns the foreign key failure of a row that names message id into
// notFound(id); other errors pass unchanged.
func missingMessage(err error, id string) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return notFound(id)
	}
	return err
}

// nullBytes keeps an empty optional blob NULL rather than a zero-length value.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func encodeSource(src map[string]string) (any, error) {
	if len(src) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(src)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeSource(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("decode source: %w", err)
	}
	return m, nil
}

// PutMessages implements store.Store.
func (s *Store) PutMessages(ctx context.Context, msgs []store.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	now := time.Now()
	rows := make([]store.Message, len(msgs))
	for i, m := range msgs {
		if err := query.Message(&m, now); err != nil {
			return wrap("put messages", fmt.Errorf("message %d: %w", i, err))
		}
		rows[i] = m
	}
	return wrap("put messages", s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := s.prep(ctx, tx, sqlInsertMessage)
		if err != nil {
			return err
		}
		for _, m := range rows {
			src, err := encodeSource(m.Source)
			if err != nil {
				return fmt.Errorf("message %s: %w", m.ID, err)
			}
			inRow, separate := splitBody(m.Raw)
			if inRow == nil {
				inRow = []byte{}
			}
			res, err := stmt.ExecContext(ctx, m.ID, m.Channel, m.ContentType, inRow,
				query.Micros(m.ReceivedAt), src, m.ControlID, m.MessageType, m.PatientID,
				m.Accession, m.Sender, string(m.Status), m.Error, query.Micros(m.UpdatedAt),
				m.ReprocessOf)
			if err != nil {
				return fmt.Errorf("message %s: %w", m.ID, err)
			}
			if separate == nil {
				continue
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // stored before, body and all
			}
			if _, err := s.exec(ctx, tx, sqlPutBody, m.ID, "", separate); err != nil {
				return fmt.Errorf("message %s: body: %w", m.ID, err)
			}
		}
		return nil
	}))
}

// bodyInRow is the largest body kept in the row it belongs to. SQLite writes a row again,
// overflow pages and all, whenever one of its columns changes size, and a message's status
// (or a delivery's, for its payload) changes as it goes along. Below this a body shares a
// page with its neighbours, which the same commits write anyway; above it, it is written
// once, in bodies, and never again.
const bodyInRow = 2048

// splitBody says where a body goes: in its row (inRow), or in bodies (separate), in which
// case the row holds an empty value as the mark.
func splitBody(body []byte) (inRow, separate []byte) {
	if len(body) > bodyInRow {
		return []byte{}, body
	}
	return body, nil
}

// rawOf is the SQL of the raw bytes of message m (the alias): its row's, or, when the row
// holds the empty mark, the body's in bodies. An empty message has no body row, so the
// coalesce gives it back its empty value.
const rawOf = `CASE WHEN length(m.raw) > 0 THEN m.raw ELSE coalesce(
	(SELECT b.body FROM bodies b WHERE b.message_id = m.id AND b.destination = ''), m.raw) END`

// payloadOf is the SQL of what delivery d (the alias) sends: the message as received when it
// has no payload of its own, else its payload, from bodies when the row holds the mark.
const payloadOf = `CASE WHEN d.payload IS NULL THEN ` + rawOf + `
	WHEN length(d.payload) > 0 THEN d.payload
	ELSE (SELECT b.body FROM bodies b WHERE b.message_id = d.message_id AND b.destination = d.destination) END`

// SetStatus implements store.Store.
func (s *Store) SetStatus(ctx context.Context, id string, status store.Status, errText string) error {
	if err := query.CheckStatus(status); err != nil {
		return wrap("set status", err)
	}
	if err := s.settle(ctx); err != nil {
		return wrap("set status", err)
	}
	return wrap("set status", s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET status = ?, error = ?, updated_at = ? WHERE id = ?`,
			string(status), errText, query.Micros(time.Now()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound(id)
		}
		return nil
	}))
}

// messageChannel returns the channel of message id, or ErrNotFound.
func (s *Store) messageChannel(ctx context.Context, tx *sql.Tx, id string) (string, error) {
	st, err := s.prep(ctx, tx, sqlMessageChannel)
	if err != nil {
		return "", err
	}
	var ch string
	err = st.QueryRowContext(ctx, id).Scan(&ch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound(id)
	}
	return ch, err
}

// AddStages implements store.Store.
func (s *Store) AddStages(ctx context.Context, id string, stages []store.Stage) error {
	return wrap("add stages", s.addStageSets(ctx, []store.StageSet{{MessageID: id, Stages: stages}}))
}

// AddStageSets implements store.Store.
func (s *Store) AddStageSets(ctx context.Context, sets []store.StageSet) error {
	return wrap("add stage sets", s.addStageSets(ctx, sets))
}

func (s *Store) addStageSets(ctx context.Context, sets []store.StageSet) error {
	if !slices.ContainsFunc(sets, func(set store.StageSet) bool { return len(set.Stages) > 0 }) {
		return nil
	}
	now := time.Now()
	return s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := s.prep(ctx, tx, sqlInsertStage)
		if err != nil {
			return err
		}
		for _, set := range sets {
			for _, st := range set.Stages {
				query.Stage(&st, now)
				if _, err := stmt.ExecContext(ctx, set.MessageID, st.Seq, st.Name, query.Micros(st.At),
					nullBytes(st.Output), st.Error); err != nil {
					// A missing message fails the foreign key; the savepoint undoes the rest.
					return fmt.Errorf("stage %d: %w", st.Seq, missingMessage(err, set.MessageID))
				}
			}
		}
		return nil
	})
}

// PutDeliveries implements store.Store. An empty Channel is taken from the message.
func (s *Store) PutDeliveries(ctx context.Context, ds []store.Delivery) error {
	if err := s.settle(ctx); err != nil {
		return wrap("put deliveries", err)
	}
	if len(ds) == 0 {
		return nil
	}
	now := time.Now()
	rows := make([]store.Delivery, len(ds))
	for i, d := range ds {
		if err := query.Delivery(&d, now); err != nil {
			return wrap("put deliveries", fmt.Errorf("delivery %d: %w", i, err))
		}
		rows[i] = d
	}
	return wrap("put deliveries", s.write(ctx, func(tx *sql.Tx) error {
		stmt, err := s.prep(ctx, tx, sqlPutDelivery)
		if err != nil {
			return err
		}
		for _, d := range rows {
			// nullBytes first: an empty payload is none, and the empty value is the mark.
			payload := nullBytes(d.Payload)
			var separate []byte
			if p, ok := payload.([]byte); ok {
				payload, separate = splitBody(p)
			}
			if _, err := stmt.ExecContext(ctx, d.MessageID, d.Channel, d.Destination, string(d.Status),
				d.Attempts, d.LastError, query.Micros(d.UpdatedAt), payload); err != nil {
				// A missing message fails the foreign key, and the savepoint undoes the batch.
				return fmt.Errorf("delivery %s/%s: %w", d.MessageID, d.Destination, missingMessage(err, d.MessageID))
			}
			// A body replaced by a smaller payload, or by none, stays in bodies unread (the
			// row no longer holds the mark) until its message is pruned: looking for one on
			// every delivery would cost the hot path a statement for a case requeues and
			// reprocessing, which keep the payload, do not make.
			if separate != nil {
				if _, err := s.exec(ctx, tx, sqlPutBody, d.MessageID, d.Destination, separate); err != nil {
					return fmt.Errorf("delivery %s/%s: payload: %w", d.MessageID, d.Destination, err)
				}
			}
		}
		return nil
	}))
}

// The statements of the hot path, run for every batch the processor stores and for every
// delivery attempt; prepared at Open (see prep). Writes that name a message rely on the
// foreign key to find it missing (missingMessage), rather than spending a statement on a
// lookup first.
const (
	sqlMessageChannel = `SELECT channel FROM messages WHERE id = ?`
	sqlInsertMessage  = `INSERT INTO messages (id, channel, content_type, raw,
			received_at, source, control_id, message_type, patient_id, accession, sender, status,
			error, updated_at, reprocess_of)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`
	sqlInsertStage = `INSERT INTO stages (message_id, seq, name, at, output, error)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, seq) DO NOTHING`
	// An empty channel is the message's; coalesce runs the lookup only then.
	sqlPutDelivery = `INSERT INTO deliveries (message_id, channel, destination,
			status, attempts, last_error, updated_at, payload)
			VALUES (?1, coalesce(nullif(?2, ''), (SELECT channel FROM messages WHERE id = ?1), ''),
				?3, ?4, ?5, ?6, ?7, ?8)
			ON CONFLICT (message_id, destination) DO UPDATE SET
				channel = excluded.channel, status = excluded.status, attempts = excluded.attempts,
				last_error = excluded.last_error, updated_at = excluded.updated_at,
				payload = excluded.payload`
	// A body written again with the same bytes changes no page: SQLite overwrites a value
	// of the same size in place, and writes only the pages that differ.
	sqlPutBody = `INSERT INTO bodies (message_id, destination, body) VALUES (?, ?, ?)
			ON CONFLICT (message_id, destination) DO UPDATE SET body = excluded.body`
	sqlInsertAttempt = `INSERT INTO attempts (message_id, destination, number, at,
			duration_ns, ok, error, reply_summary, reply, sent)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (message_id, destination, number) DO NOTHING`
	// attempts counts the attempt rows rather than adding one, so it stays right
	// even when PutDeliveries replaced the row between attempts. The row is there
	// almost always (PutDeliveries wrote it), so AddAttempt updates it first and
	// inserts it, which needs the message's channel, only when the update found none.
	sqlUpdateDelivery = `UPDATE deliveries SET status = ?3,
				attempts = (SELECT count(*) FROM attempts WHERE message_id = ?1 AND destination = ?2),
				last_error = CASE WHEN ?4 <> '' THEN ?4 WHEN ?6 THEN '' ELSE last_error END,
				updated_at = ?5
			WHERE message_id = ?1 AND destination = ?2`
	sqlUpsertDelivery = `INSERT INTO deliveries (message_id, channel, destination,
			status, attempts, last_error, updated_at)
			VALUES (?1, (SELECT channel FROM messages WHERE id = ?1), ?2, ?3,
				(SELECT count(*) FROM attempts WHERE message_id = ?1 AND destination = ?2), ?4, ?5)
			ON CONFLICT (message_id, destination) DO UPDATE SET
				status = excluded.status,
				attempts = excluded.attempts,
				last_error = CASE WHEN excluded.last_error <> '' THEN excluded.last_error
					WHEN ?6 THEN '' ELSE deliveries.last_error END,
				updated_at = excluded.updated_at`
	// The usual end of a message: its last delivery sent, none dead-lettered. One
	// subquery instead of sqlAttemptMessageStatus's three; when it changes nothing, a
	// delivery is still queued or one dead-lettered, and the full statement decides.
	sqlAttemptMessageSent = `UPDATE messages SET status = 'sent', error = '', updated_at = ?2
			WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1 AND status <> 'sent')`
	// Three subqueries over the message's few deliveries measured cheaper than one
	// pass that aggregates them (as UPDATE ... FROM or a row-value SET), whose
	// materialized subquery costs more than the index seeks it saves.
	sqlAttemptMessageStatus = `UPDATE messages SET
				status = CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1 AND status = 'dead_letter')
					THEN 'error' ELSE 'sent' END,
				error = coalesce((SELECT 'dead letter: ' || destination ||
						CASE WHEN last_error <> '' THEN ': ' || last_error ELSE '' END
					FROM deliveries WHERE message_id = ?1 AND status = 'dead_letter'
					ORDER BY destination LIMIT 1), ''),
				updated_at = ?2
			WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = ?1 AND status = 'queued')`
)

// AddAttempt implements store.Store. When the message has no delivery row for the
// destination yet, one is created, so an attempt is never recorded without its state.
//
// The attempt goes to the attempt log (see attemptLog) and reaches the tables within a
// few milliseconds, or at once when something reads them. A message that is not stored
// is therefore not reported here; its attempt is dropped when it is applied.
func (s *Store) AddAttempt(ctx context.Context, id string, a store.Attempt, status store.DeliveryStatus) error {
	if err := query.Attempt(&a, status, time.Now()); err != nil {
		return wrap("add attempt", err)
	}
	if s.al != nil {
		if n := s.al.unapplied.Load(); n >= s.maxLogged {
			if err := s.settle(ctx); err != nil {
				return wrap("add attempt", fmt.Errorf("%d attempts wait for the database: %w", n, err))
			}
		}
		err := s.al.append(loggedAttempt{ID: id, Attempt: a, Status: status})
		if !errors.Is(err, errLogBroken) {
			return wrap("add attempt", err)
		}
		// Written directly from now on, after what the log holds, so that attempts of a
		// delivery still reach the table in order.
		if err := s.settle(ctx); err != nil {
			return wrap("add attempt", err)
		}
	}
	return wrap("add attempt", s.write(ctx, func(tx *sql.Tx) error { return s.addAttemptTx(ctx, tx, id, a, status) }))
}

// addAttemptTx writes an attempt and the delivery and message state it leads to.
func (s *Store) addAttemptTx(ctx context.Context, tx *sql.Tx, id string, a store.Attempt, status store.DeliveryStatus) error {
	res, err := s.exec(ctx, tx, sqlInsertAttempt,
		id, a.Destination, a.Number, query.Micros(a.At), int64(a.Duration), a.OK, a.Error,
		a.ReplySummary, nullBytes(a.Reply), nullBytes(a.Sent))
	if err != nil {
		return missingMessage(err, id)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		// Recorded before, together with its delivery update: nothing left to do.
		return nil
	}
	args := []any{id, a.Destination, string(status), a.Error, query.Micros(a.At), a.OK}
	res, err = s.exec(ctx, tx, sqlUpdateDelivery, args...)
	if err != nil {
		return fmt.Errorf("update delivery: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := s.exec(ctx, tx, sqlUpsertDelivery, args...); err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
	}
	if status == store.DeliveryQueued {
		// This delivery is still queued, so the message is too: the recomputation
		// below could only find that out.
		return nil
	}
	now := query.Micros(time.Now())
	if status == store.DeliverySent {
		res, err := s.exec(ctx, tx, sqlAttemptMessageSent, id, now)
		if err != nil {
			return fmt.Errorf("update message status: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n > 0 {
			return nil
		}
	}
	if _, err := s.exec(ctx, tx, sqlAttemptMessageStatus, id, now); err != nil {
		return fmt.Errorf("update message status: %w", err)
	}
	return nil
}

// deliveryStatesMax is the most ids one DeliveryStates statement takes; SQLite limits the
// parameters of a statement, and 512 stays far below it.
const deliveryStatesMax = 512

// deliveryStatesStmt returns the prepared DeliveryStates statement for n ids, n a power of
// two up to deliveryStatesMax. The processor and every delivery worker ask for each batch
// they handle, mostly for a few ids, and parsing the statement cost more than running it.
func (s *Store) deliveryStatesStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	s.dsMu.Lock()
	defer s.dsMu.Unlock()
	if st, ok := s.dsStmts[n]; ok {
		return st, nil
	}
	st, err := s.r.PrepareContext(ctx, `SELECT message_id, channel, status, attempts, last_error, updated_at
		FROM deliveries WHERE destination = ? AND message_id IN (?`+strings.Repeat(", ?", n-1)+`)`)
	if err != nil {
		return nil, err
	}
	if s.dsStmts == nil {
		s.dsStmts = map[int]*sql.Stmt{}
	}
	s.dsStmts[n] = st
	return st, nil
}

// DeliveryStates implements store.Store.
func (s *Store) DeliveryStates(ctx context.Context, destination string, ids []string) (map[string]store.Delivery, error) {
	if err := s.settle(ctx); err != nil {
		return nil, wrap("delivery states", err)
	}
	out := make(map[string]store.Delivery, len(ids))
	for start := 0; start < len(ids); start += deliveryStatesMax {
		chunk := ids[start:min(start+deliveryStatesMax, len(ids))]
		// Rounding the count up to a power of two keeps the statements few; the spare
		// parameters repeat the last id, which IN takes once.
		n := 1
		for n < len(chunk) {
			n *= 2
		}
		args := make([]any, 0, n+1)
		args = append(args, destination)
		for _, id := range chunk {
			args = append(args, id)
		}
		for len(args) < n+1 {
			args = append(args, chunk[len(chunk)-1])
		}
		st, err := s.deliveryStatesStmt(ctx, n)
		if err != nil {
			return nil, wrap("delivery states", err)
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, wrap("delivery states", err)
		}
		for rows.Next() {
			d := store.Delivery{Destination: destination}
			var status string
			var updated int64
			if err := rows.Scan(&d.MessageID, &d.Channel, &status, &d.Attempts, &d.LastError, &updated); err != nil {
				rows.Close()
				return nil, wrap("delivery states", err)
			}
			d.Status, d.UpdatedAt = store.DeliveryStatus(status), query.FromMicros(updated)
			out[d.MessageID] = d
		}
		if err := rows.Close(); err != nil {
			return nil, wrap("delivery states", err)
		}
		if err := rows.Err(); err != nil {
			return nil, wrap("delivery states", err)
		}
	}
	return out, nil
}

// Delivery implements store.Store.
func (s *Store) Delivery(ctx context.Context, id, destination string) (store.Delivery, error) {
	if err := s.settle(ctx); err != nil {
		return store.Delivery{}, wrap("delivery", err)
	}
	d := store.Delivery{MessageID: id, Destination: destination}
	var status string
	var updated int64
	err := s.r.QueryRowContext(ctx, `SELECT d.channel, d.status, d.attempts, d.last_error, d.updated_at,
			`+payloadOf+`
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.message_id = ? AND d.destination = ?`, id, destination).
		Scan(&d.Channel, &status, &d.Attempts, &d.LastError, &updated, &d.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Delivery{}, wrap("delivery", fmt.Errorf("%s/%s: %w", id, destination, store.ErrNotFound))
	}
	if err != nil {
		return store.Delivery{}, wrap("delivery", err)
	}
	d.Status, d.UpdatedAt = store.DeliveryStatus(status), query.FromMicros(updated)
	return d, nil
}

const messageColumns = `id, channel, content_type, received_at, source, control_id, message_type,
	patient_id, accession, sender, status, error, updated_at, reprocess_of`

type scanner interface{ Scan(dest ...any) error }

// scanMessage reads messageColumns, plus raw when withRaw.
func scanMessage(row scanner, withRaw bool) (store.Message, error) {
	var m store.Message
	var received, updated int64
	var src sql.NullString
	var status string
	dest := []any{&m.ID, &m.Channel, &m.ContentType, &received, &src, &m.ControlID, &m.MessageType,
		&m.PatientID, &m.Accession, &m.Sender, &status, &m.Error, &updated, &m.ReprocessOf}
	if withRaw {
		dest = append(dest, &m.Raw)
	}
	if err := row.Scan(dest...); err != nil {
		return m, err
	}
	var err error
	if m.Source, err = decodeSource(src); err != nil {
		return m, fmt.Errorf("message %s: %w", m.ID, err)
	}
	m.Status = store.Status(status)
	m.ReceivedAt, m.UpdatedAt = query.FromMicros(received), query.FromMicros(updated)
	if withRaw && m.Raw == nil {
		m.Raw = []byte{}
	}
	return m, nil
}

// Get implements store.Store. Deliveries come without their payload; use Delivery.
func (s *Store) Get(ctx context.Context, id string) (store.Detail, error) {
	if err := s.settle(ctx); err != nil {
		return store.Detail{}, wrap("get", err)
	}
	var d store.Detail
	err := s.read(ctx, func(tx *sql.Tx) error {
		m, err := scanMessage(tx.QueryRowContext(ctx,
			`SELECT `+messageColumns+`, `+rawOf+` FROM messages m WHERE id = ?`, id), true)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		d.Message = m
		if d.Stages, err = getStages(ctx, tx, id); err != nil {
			return fmt.Errorf("stages: %w", err)
		}
		if d.Attempts, err = getAttempts(ctx, tx, id); err != nil {
			return fmt.Errorf("attempts: %w", err)
		}
		if d.Deliveries, err = getDeliveries(ctx, tx, id); err != nil {
			return fmt.Errorf("deliveries: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.Detail{}, wrap("get", err)
	}
	return d, nil
}

func getStages(ctx context.Context, tx *sql.Tx, id string) ([]store.Stage, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, name, at, output, error FROM stages
		WHERE message_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Stage{}
	for rows.Next() {
		var st store.Stage
		var at int64
		if err := rows.Scan(&st.Seq, &st.Name, &at, &st.Output, &st.Error); err != nil {
			return nil, err
		}
		st.At = query.FromMicros(at)
		out = append(out, st)
	}
	return out, rows.Err()
}

func getAttempts(ctx context.Context, tx *sql.Tx, id string) ([]store.Attempt, error) {
	rows, err := tx.QueryContext(ctx, `SELECT destination, number, at, duration_ns, ok, error,
		reply_summary, reply, sent FROM attempts WHERE message_id = ?
		ORDER BY at, destination, number`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Attempt{}
	for rows.Next() {
		var a store.Attempt
		var at, dur int64
		if err := rows.Scan(&a.Destination, &a.Number, &at, &dur, &a.OK, &a.Error,
			&a.ReplySummary, &a.Reply, &a.Sent); err != nil {
			return nil, err
		}
		a.At, a.Duration = query.FromMicros(at), time.Duration(dur)
		out = append(out, a)
	}
	return out, rows.Err()
}

func getDeliveries(ctx context.Context, tx *sql.Tx, id string) ([]store.Delivery, error) {
	rows, err := tx.QueryContext(ctx, `SELECT message_id, channel, destination, status, attempts,
		last_error, updated_at FROM deliveries WHERE message_id = ? ORDER BY destination`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func scanDelivery(row scanner) (store.Delivery, error) {
	var d store.Delivery
	var status string
	var updated int64
	if err := row.Scan(&d.MessageID, &d.Channel, &d.Destination, &status, &d.Attempts,
		&d.LastError, &updated); err != nil {
		return d, err
	}
	d.Status, d.UpdatedAt = store.DeliveryStatus(status), query.FromMicros(updated)
	return d, nil
}

// searchSQL is the statement of a search, its arguments, and the page size.
func searchSQL(q store.Query) (sqlText string, args []any, limit int, err error) {
	var where []string
	add := func(cond string, vals ...any) {
		where = append(where, cond)
		args = append(args, vals...)
	}
	eq := func(col, v string) {
		if v != "" {
			add(col+" = ?", v)
		}
	}
	// The literal conditions are those of the partial indexes (migration 0004), which
	// SQLite uses only for a query that spells them out.
	keyed := func(col, v string) {
		if v != "" {
			add(col+" = ? AND "+col+" <> ''", v)
		}
	}
	eq("channel", q.Channel)
	switch q.Status {
	case "":
	case store.StatusSent:
		eq("status", string(q.Status))
	default:
		add("status = ? AND status <> 'sent'", string(q.Status))
	}
	keyed("control_id", q.ControlID)
	keyed("patient_id", q.PatientID)
	keyed("accession", q.Accession)
	eq("sender", q.Sender)
	if q.MessageType != "" {
		add("message_type GLOB ? AND message_type <> ''", query.GlobPrefix(q.MessageType))
	}
	if !q.From.IsZero() {
		add("received_at >= ?", query.Micros(q.From))
	}
	if !q.To.IsZero() {
		add("received_at < ?", query.Micros(q.To))
	}
	if q.Text != "" {
		add("osprey_contains("+rawOf+", ?)", query.FoldString(q.Text))
	}
	if q.Cursor != "" {
		at, id, err := query.ParseMessageCursor(q.Cursor)
		if err != nil {
			return "", nil, 0, err
		}
		add("(received_at, id) < (?, ?)", query.Micros(at), id)
	}
	limit = query.Limit(q.Limit)
	sqlText = `SELECT ` + messageColumns + ` FROM messages m`
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	sqlText += ` ORDER BY received_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1) // one more tells whether there is a next page
	return sqlText, args, limit, nil
}

// Search implements store.Store.
func (s *Store) Search(ctx context.Context, q store.Query) (store.Page, error) {
	if err := s.settle(ctx); err != nil {
		return store.Page{}, wrap("search", err)
	}
	sqlText, args, limit, err := searchSQL(q)
	if err != nil {
		return store.Page{}, wrap("search", err)
	}
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return store.Page{}, wrap("search", err)
	}
	defer rows.Close()
	page := store.Page{Messages: []store.Message{}}
	for rows.Next() {
		m, err := scanMessage(rows, false)
		if err != nil {
			return store.Page{}, wrap("search", err)
		}
		page.Messages = append(page.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, wrap("search", err)
	}
	if len(page.Messages) > limit {
		page.Messages = page.Messages[:limit]
		last := page.Messages[limit-1]
		page.Next = query.MessageCursor(last.ReceivedAt, last.ID)
	}
	return page, nil
}

// DeadLetters implements store.Store. Deliveries come without their payload.
func (s *Store) DeadLetters(ctx context.Context, q store.DeadLetterQuery) (store.DeadLetterPage, error) {
	if err := s.settle(ctx); err != nil {
		return store.DeadLetterPage{}, wrap("dead letters", err)
	}
	// The status literal (not a parameter) lets SQLite use the partial indexes.
	where := []string{"status = 'dead_letter'"}
	var args []any
	if q.Channel != "" {
		where = append(where, "channel = ?")
		args = append(args, q.Channel)
	}
	if q.Destination != "" {
		where = append(where, "destination = ?")
		args = append(args, q.Destination)
	}
	if q.Cursor != "" {
		at, id, dest, err := query.ParseDeadLetterCursor(q.Cursor)
		if err != nil {
			return store.DeadLetterPage{}, wrap("dead letters", err)
		}
		where = append(where, "(updated_at, message_id, destination) < (?, ?, ?)")
		args = append(args, query.Micros(at), id, dest)
	}
	limit := query.Limit(q.Limit)
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, `SELECT message_id, channel, destination, status, attempts,
		last_error, updated_at FROM deliveries WHERE `+strings.Join(where, " AND ")+`
		ORDER BY updated_at DESC, message_id DESC, destination DESC LIMIT ?`, args...)
	if err != nil {
		return store.DeadLetterPage{}, wrap("dead letters", err)
	}
	defer rows.Close()
	page := store.DeadLetterPage{Deliveries: []store.Delivery{}}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return store.DeadLetterPage{}, wrap("dead letters", err)
		}
		page.Deliveries = append(page.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return store.DeadLetterPage{}, wrap("dead letters", err)
	}
	if len(page.Deliveries) > limit {
		page.Deliveries = page.Deliveries[:limit]
		last := page.Deliveries[limit-1]
		page.Next = query.DeadLetterCursor(last.UpdatedAt, last.MessageID, last.Destination)
	}
	return page, nil
}

// Prune implements store.Store. Each batch is its own short write transaction, so writes
// waiting for the one writer connection get their turn between batches.
func (s *Store) Prune(ctx context.Context, channel string, before time.Time, batch int) (int64, error) {
	if err := s.settle(ctx); err != nil {
		return 0, wrap("prune", err)
	}
	if batch <= 0 {
		batch = query.DefaultBatch
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, wrap("prune", err)
		}
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			// Stages, attempts, deliveries, jobs and the analysis go with their message:
			// ON DELETE CASCADE.
			res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id IN (
				SELECT id FROM messages WHERE channel = ? AND received_at < ? LIMIT ?)`,
				channel, query.Micros(before), batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, wrap("prune", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return wrap("ping", err)
	}
	return wrap("ping", s.r.PingContext(ctx))
}

// Close implements store.Store. It lets SQLite refresh its planner statistics first, as
// the SQLite documentation recommends for long-lived connections. Calling it again
// returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.al != nil {
			// Before the writer stops: what the log holds goes into the tables now. If
			// that fails it stays in the files, and the next Open applies it.
			s.al.stop()
			if err := s.settle(context.Background()); err != nil {
				errs = append(errs, fmt.Errorf("apply the attempt log: %w", err))
			}
			s.al.closeFiles()
		}
		if s.wr != nil {
			s.wr.stop()
		}
		if s.ck != nil {
			// After the writer: its last commits may be checkpointed still. Closing the
			// last connection below checkpoints whatever is left.
			if err := s.ck.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, st := range s.stmts {
			_ = st.Close()
		}
		s.dsMu.Lock()
		for _, st := range s.dsStmts {
			_ = st.Close()
		}
		s.dsMu.Unlock()
		if s.w != nil {
			if _, err := s.w.Exec(`PRAGMA optimize`); err != nil {
				errs = append(errs, err)
			}
		}
		if s.r != nil && s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		s.closeErr = wrap("close", errors.Join(errs...))
	})
	return s.closeErr
}
