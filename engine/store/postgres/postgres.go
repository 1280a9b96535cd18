// Package postgres is the message store on PostgreSQL, for production installs that run
// several Osprey instances or keep a long history: jackc/pgx through a pgxpool, the tables
// in a schema of their own ("osprey" unless configured) so they sit beside anything else
// in the database and a test can use a throwaway one.
//
// Batches go to the server as one statement over unnested arrays, so a batch of 64
// messages costs one round trip and is atomic without an explicit transaction.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/migrate"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

// DefaultSchema is where the tables live unless Options.Schema says otherwise.
const DefaultSchema = "osprey"

// Options tunes a Store. The zero value is good for production.
type Options struct {
	// Schema holds the tables; it is created when missing. Lower-case letters, digits and
	// underscores; empty means DefaultSchema.
	Schema string
	// MaxConns caps the pool; zero keeps the DSN's pool_max_conns or pgxpool's default.
	MaxConns int32
}

// Store is a store.Store on a PostgreSQL database, and a store.JobStore.
type Store struct {
	pool   *pgxpool.Pool
	schema string
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.JobStore = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrations embed.FS

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to the database at dsn (a postgres:// URL or key=value string) and brings
// the schema up to date.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	schema := opts.Schema
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("store/postgres: open: invalid schema name %q: use lower-case letters, digits and _", schema)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included; do not pass it on.
		return nil, errors.New("store/postgres: open: invalid DSN")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "osprey"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: open: %w", err)
	}
	s := &Store{pool: pool, schema: schema}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: open %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: open: %w", err)
	}
	return s, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations in one
// transaction, under an advisory lock so instances starting together take turns.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte("osprey/store/migrate/" + s.schema))
	lock := int64(h.Sum64())
	ident := pgx.Identifier{s.schema}.Sanitize()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return fmt.Errorf("lock schema %s: %w", s.schema, err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident); err != nil {
			return fmt.Errorf("create schema %s: %w", s.schema, err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ident+`.schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+ident+`.schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("schema %s version %d is newer than this binary knows (%d): upgrade osprey", s.schema, have, len(ms))
		}
		for _, m := range ms[have:] {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+ident+`.schema_migrations (version) VALUES ($1)`, m.Version); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store/postgres: %s: %w", op, err)
}

func notFound(id string) error { return fmt.Errorf("message %s: %w", id, store.ErrNotFound) }

// fkNotFound turns a foreign key violation (a row naming a message that is not stored)
// into ErrNotFound, keeping the server's detail, which names the key.
func fkNotFound(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" {
		return fmt.Errorf("%s: %w", pe.Detail, store.ErrNotFound)
	}
	return err
}

// text makes s storable in a PostgreSQL text column, which must be valid UTF-8 without
// NUL: a field copied from a Latin-1 message would otherwise fail the whole batch, and
// losing the history of a message is worse than a replacement character in it.
func text(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func encodeSource(src map[string]string) (*string, error) {
	if len(src) == 0 {
		return nil, nil
	}
	clean := make(map[string]string, len(src))
	for k, v := range src {
		clean[text(k)] = text(v)
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

func decodeSource(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
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
	var c messageArrays
	seen := make(map[string]bool, len(msgs))
	for i, m := range msgs {
		if err := query.Message(&m, now); err != nil {
			return wrap("put messages", fmt.Errorf("message %d: %w", i, err))
		}
		if seen[m.ID] {
			continue // first write wins within a batch too
		}
		seen[m.ID] = true
		if err := c.add(m); err != nil {
			return wrap("put messages", fmt.Errorf("message %s: %w", m.ID, err))
		}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO messages (id, channel, content_type, raw, raw_text,
			received_at, source, control_id, message_type, patient_id, accession, sender, status,
			error, updated_at, reprocess_of)
		SELECT id, channel, content_type, raw, raw_text, received_at, source::jsonb, control_id,
			message_type, patient_id, accession, sender, status, error, updated_at, reprocess_of
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
			$14::text[], $15::timestamptz[], $16::text[])
			AS u(id, channel, content_type, raw, raw_text, received_at, source, control_id,
				message_type, patient_id, accession, sender, status, error, updated_at, reprocess_of)
		ON CONFLICT (id) DO NOTHING`,
		c.id, c.channel, c.contentType, c.raw, c.rawText, c.receivedAt, c.source, c.controlID,
		c.messageType, c.patientID, c.accession, c.sender, c.status, c.error, c.updatedAt, c.reprocessOf)
	return wrap("put messages", err)
}

// messageArrays holds a batch of messages column by column, for unnest.
type messageArrays struct {
	id, channel, contentType, rawText, controlID, messageType []string
	patientID, accession, sender, status, error, reprocessOf  []string
	raw                                                       [][]byte
	receivedAt, updatedAt                                     []time.Time
	source                                                    []*string
}

func (c *messageArrays) add(m store.Message) error {
	src, err := encodeSource(m.Source)
	if err != nil {
		return err
	}
	raw := m.Raw
	if raw == nil {
		raw = []byte{} // the column is NOT NULL; a nil slice would be sent as NULL
	}
	c.id = append(c.id, m.ID)
	c.channel = append(c.channel, text(m.Channel))
	c.contentType = append(c.contentType, text(m.ContentType))
	c.raw = append(c.raw, raw)
	c.rawText = append(c.rawText, query.Fold(raw))
	c.receivedAt = append(c.receivedAt, m.ReceivedAt)
	c.source = append(c.source, src)
	c.controlID = append(c.controlID, text(m.ControlID))
	c.messageType = append(c.messageType, text(m.MessageType))
	c.patientID = append(c.patientID, text(m.PatientID))
	c.accession = append(c.accession, text(m.Accession))
	c.sender = append(c.sender, text(m.Sender))
	c.status = append(c.status, string(m.Status))
	c.error = append(c.error, text(m.Error))
	c.updatedAt = append(c.updatedAt, m.UpdatedAt)
	c.reprocessOf = append(c.reprocessOf, text(m.ReprocessOf))
	return nil
}

// SetStatus implements store.Store.
func (s *Store) SetStatus(ctx context.Context, id string, status store.Status, errText string) error {
	if err := query.CheckStatus(status); err != nil {
		return wrap("set status", err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET status = $1, error = $2, updated_at = $3 WHERE id = $4`,
		string(status), text(errText), query.Time(time.Now()), id)
	if err != nil {
		return wrap("set status", err)
	}
	if tag.RowsAffected() == 0 {
		return wrap("set status", notFound(id))
	}
	return nil
}

// AddStages implements store.Store.
func (s *Store) AddStages(ctx context.Context, id string, stages []store.Stage) error {
	return wrap("add stages", s.addStageSets(ctx, []store.StageSet{{MessageID: id, Stages: stages}}))
}

// AddStageSets implements store.Store: one statement for every stage of every set.
func (s *Store) AddStageSets(ctx context.Context, sets []store.StageSet) error {
	return wrap("add stage sets", s.addStageSets(ctx, sets))
}

func (s *Store) addStageSets(ctx context.Context, sets []store.StageSet) error {
	now := time.Now()
	var ids, names, errs []string
	var seqs []int32
	var ats []time.Time
	var outputs [][]byte
	for _, set := range sets {
		for _, st := range set.Stages {
			query.Stage(&st, now)
			if len(st.Output) == 0 {
				st.Output = nil
			}
			ids, seqs, names = append(ids, set.MessageID), append(seqs, int32(st.Seq)), append(names, text(st.Name))
			ats, outputs, errs = append(ats, st.At), append(outputs, st.Output), append(errs, text(st.Error))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO stages (message_id, seq, name, at, output, error)
		SELECT id, seq, name, at, output, error
		FROM unnest($1::text[], $2::integer[], $3::text[], $4::timestamptz[], $5::bytea[], $6::text[])
			AS u(id, seq, name, at, output, error)
		ON CONFLICT (message_id, seq) DO NOTHING`, ids, seqs, names, ats, outputs, errs)
	return fkNotFound(err)
}

// PutDeliveries implements store.Store. An empty Channel is taken from the message.
func (s *Store) PutDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	now := time.Now()
	// One statement cannot upsert a row twice, so a later duplicate replaces an earlier one
	// here, as it would have in the table.
	type key struct{ id, dest string }
	at := map[key]int{}
	var rows []store.Delivery
	for i, d := range ds {
		if err := query.Delivery(&d, now); err != nil {
			return wrap("put deliveries", fmt.Errorf("delivery %d: %w", i, err))
		}
		k := key{d.MessageID, d.Destination}
		if j, ok := at[k]; ok {
			rows[j] = d
			continue
		}
		at[k] = len(rows)
		rows = append(rows, d)
	}
	n := len(rows)
	ids, channels, dests, statuses, errs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	attempts, updated, payloads := make([]int32, n), make([]time.Time, n), make([][]byte, n)
	for i, d := range rows {
		if len(d.Payload) == 0 {
			d.Payload = nil
		}
		ids[i], channels[i], dests[i], statuses[i], errs[i] = d.MessageID, text(d.Channel), d.Destination, string(d.Status), text(d.LastError)
		attempts[i], updated[i], payloads[i] = int32(d.Attempts), d.UpdatedAt, d.Payload
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO deliveries (message_id, channel, destination, status,
			attempts, last_error, updated_at, payload)
		SELECT u.message_id, coalesce(nullif(u.channel, ''), m.channel, ''), u.destination, u.status,
			u.attempts, u.last_error, u.updated_at, u.payload
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::text[],
			$7::timestamptz[], $8::bytea[])
			AS u(message_id, channel, destination, status, attempts, last_error, updated_at, payload)
		LEFT JOIN messages m ON m.id = u.message_id
		ON CONFLICT (message_id, destination) DO UPDATE SET
			channel = excluded.channel, status = excluded.status, attempts = excluded.attempts,
			last_error = excluded.last_error, updated_at = excluded.updated_at,
			payload = excluded.payload`,
		ids, channels, dests, statuses, attempts, errs, updated, payloads)
	if err != nil {
		return wrap("put deliveries", fkNotFound(err))
	}
	return nil
}

// AddAttempt implements store.Store. When the message has no delivery row for the
// destination yet, one is created, so an attempt is never recorded without its state.
func (s *Store) AddAttempt(ctx context.Context, id string, a store.Attempt, status store.DeliveryStatus) error {
	if err := query.Attempt(&a, status, time.Now()); err != nil {
		return wrap("add attempt", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Attempts on one message take turns: the last destination to finish must see the
		// others' committed rows to set the message status. NO KEY UPDATE does not block
		// rows that merely reference the message.
		var channel string
		err := tx.QueryRow(ctx, `SELECT channel FROM messages WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&channel)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO attempts (message_id, destination, number, at,
				duration_ns, ok, error, reply_summary, reply, sent)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (message_id, destination, number) DO NOTHING`,
			id, a.Destination, a.Number, a.At, int64(a.Duration), a.OK, text(a.Error),
			text(a.ReplySummary), nilIfEmpty(a.Reply), nilIfEmpty(a.Sent))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// Recorded before, together with its delivery update: nothing left to do.
			return nil
		}
		b := &pgx.Batch{}
		// attempts counts the attempt rows rather than adding one, so it stays right even
		// when PutDeliveries replaced the row between attempts.
		b.Queue(`INSERT INTO deliveries (message_id, channel, destination, status, attempts, last_error, updated_at)
			VALUES ($1, $2, $3, $4, (SELECT count(*) FROM attempts WHERE message_id = $1 AND destination = $3), $5, $6)
			ON CONFLICT (message_id, destination) DO UPDATE SET
				status = excluded.status,
				attempts = excluded.attempts,
				last_error = CASE WHEN excluded.last_error <> '' THEN excluded.last_error
					WHEN $7 THEN '' ELSE deliveries.last_error END,
				updated_at = excluded.updated_at`,
			id, channel, a.Destination, string(status), text(a.Error), a.At, a.OK)
		b.Queue(`UPDATE messages SET
				status = CASE WHEN EXISTS (SELECT 1 FROM deliveries WHERE message_id = $1 AND status = 'dead_letter')
					THEN 'error' ELSE 'sent' END,
				error = coalesce((SELECT 'dead letter: ' || destination ||
						CASE WHEN last_error <> '' THEN ': ' || last_error ELSE '' END
					FROM deliveries WHERE message_id = $1 AND status = 'dead_letter'
					ORDER BY destination LIMIT 1), ''),
				updated_at = $2
			WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE message_id = $1 AND status = 'queued')`,
			id, query.Time(time.Now()))
		return tx.SendBatch(ctx, b).Close()
	})
	return wrap("add attempt", err)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Delivery implements store.Store.
// DeliveryStates implements store.Store.
func (s *Store) DeliveryStates(ctx context.Context, destination string, ids []string) (map[string]store.Delivery, error) {
	out := make(map[string]store.Delivery, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT message_id, channel, status, attempts, last_error, updated_at
		FROM deliveries WHERE destination = $1 AND message_id = ANY($2)`, destination, ids)
	if err != nil {
		return nil, wrap("delivery states", err)
	}
	defer rows.Close()
	for rows.Next() {
		d := store.Delivery{Destination: destination}
		var status string
		if err := rows.Scan(&d.MessageID, &d.Channel, &status, &d.Attempts, &d.LastError, &d.UpdatedAt); err != nil {
			return nil, wrap("delivery states", err)
		}
		d.Status, d.UpdatedAt = store.DeliveryStatus(status), d.UpdatedAt.UTC()
		out[d.MessageID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("delivery states", err)
	}
	return out, nil
}

// Delivery implements store.Store.
func (s *Store) Delivery(ctx context.Context, id, destination string) (store.Delivery, error) {
	d := store.Delivery{MessageID: id, Destination: destination}
	var status string
	err := s.pool.QueryRow(ctx, `SELECT d.channel, d.status, d.attempts, d.last_error, d.updated_at,
			coalesce(d.payload, m.raw)
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.message_id = $1 AND d.destination = $2`, id, destination).
		Scan(&d.Channel, &status, &d.Attempts, &d.LastError, &d.UpdatedAt, &d.Payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Delivery{}, wrap("delivery", fmt.Errorf("%s/%s: %w", id, destination, store.ErrNotFound))
	}
	if err != nil {
		return store.Delivery{}, wrap("delivery", err)
	}
	d.Status, d.UpdatedAt = store.DeliveryStatus(status), d.UpdatedAt.UTC()
	return d, nil
}

const messageColumns = `id, channel, content_type, received_at, source, control_id, message_type,
	patient_id, accession, sender, status, error, updated_at, reprocess_of`

// scanMessage reads messageColumns, plus raw when withRaw.
func scanMessage(row pgx.Row, withRaw bool) (store.Message, error) {
	var m store.Message
	var src []byte
	var status string
	dest := []any{&m.ID, &m.Channel, &m.ContentType, &m.ReceivedAt, &src, &m.ControlID, &m.MessageType,
		&m.PatientID, &m.Accession, &m.Sender, &status, &m.Error, &m.UpdatedAt, &m.ReprocessOf}
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
	m.ReceivedAt, m.UpdatedAt = m.ReceivedAt.UTC(), m.UpdatedAt.UTC()
	if withRaw && m.Raw == nil {
		m.Raw = []byte{}
	}
	return m, nil
}

// Get implements store.Store. Deliveries come without their payload; use Delivery.
func (s *Store) Get(ctx context.Context, id string) (store.Detail, error) {
	var d store.Detail
	// One round trip for the four reads.
	b := &pgx.Batch{}
	b.Queue(`SELECT `+messageColumns+`, raw FROM messages WHERE id = $1`, id)
	b.Queue(`SELECT seq, name, at, output, error FROM stages WHERE message_id = $1 ORDER BY seq`, id)
	b.Queue(`SELECT destination, number, at, duration_ns, ok, error, reply_summary, reply, sent
		FROM attempts WHERE message_id = $1 ORDER BY at, destination, number`, id)
	b.Queue(`SELECT message_id, channel, destination, status, attempts, last_error, updated_at
		FROM deliveries WHERE message_id = $1 ORDER BY destination`, id)
	br := s.pool.SendBatch(ctx, b)
	err := func() error {
		m, err := scanMessage(br.QueryRow(), true)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		d.Message = m
		rows, _ := br.Query()
		d.Stages, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Stage, error) {
			var st store.Stage
			err := r.Scan(&st.Seq, &st.Name, &st.At, &st.Output, &st.Error)
			st.At = st.At.UTC()
			return st, err
		})
		if err != nil {
			return fmt.Errorf("stages: %w", err)
		}
		rows, _ = br.Query()
		d.Attempts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Attempt, error) {
			var a store.Attempt
			var dur int64
			err := r.Scan(&a.Destination, &a.Number, &a.At, &dur, &a.OK, &a.Error, &a.ReplySummary, &a.Reply, &a.Sent)
			a.At, a.Duration = a.At.UTC(), time.Duration(dur)
			return a, err
		})
		if err != nil {
			return fmt.Errorf("attempts: %w", err)
		}
		rows, _ = br.Query()
		d.Deliveries, err = pgx.CollectRows(rows, scanDelivery)
		if err != nil {
			return fmt.Errorf("deliveries: %w", err)
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.Detail{}, wrap("get", err)
	}
	// CollectRows returns empty, non-nil slices, so the API's JSON has a stable shape.
	return d, nil
}

func scanDelivery(r pgx.CollectableRow) (store.Delivery, error) {
	var d store.Delivery
	var status string
	err := r.Scan(&d.MessageID, &d.Channel, &d.Destination, &status, &d.Attempts, &d.LastError, &d.UpdatedAt)
	d.Status, d.UpdatedAt = store.DeliveryStatus(status), d.UpdatedAt.UTC()
	return d, err
}

// args numbers query parameters as they are added.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// Search implements store.Store.
func (s *Store) Search(ctx context.Context, q store.Query) (store.Page, error) {
	var where []string
	var params args
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = "+params.add(v))
		}
	}
	eq("channel", q.Channel)
	eq("status", string(q.Status))
	eq("control_id", q.ControlID)
	eq("patient_id", q.PatientID)
	eq("accession", q.Accession)
	eq("sender", q.Sender)
	if q.MessageType != "" {
		where = append(where, `message_type LIKE `+params.add(query.LikePrefix(q.MessageType))+` ESCAPE '\'`)
	}
	if !q.From.IsZero() {
		where = append(where, "received_at >= "+params.add(query.Time(q.From)))
	}
	if !q.To.IsZero() {
		where = append(where, "received_at < "+params.add(query.Time(q.To)))
	}
	if q.Text != "" {
		// strpos, not LIKE: the user's % and _ stay literal.
		where = append(where, "strpos(raw_text, "+params.add(query.FoldString(q.Text))+") > 0")
	}
	if q.Cursor != "" {
		at, id, err := query.ParseMessageCursor(q.Cursor)
		if err != nil {
			return store.Page{}, wrap("search", err)
		}
		where = append(where, "(received_at, id) < ("+params.add(at)+", "+params.add(id)+")")
	}
	limit := query.Limit(q.Limit)
	sql := `SELECT ` + messageColumns + ` FROM messages`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY received_at DESC, id DESC LIMIT ` + params.add(limit+1) // one more tells whether there is a next page

	rows, _ := s.pool.Query(ctx, sql, params...)
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Message, error) {
		return scanMessage(r, false)
	})
	if err != nil {
		return store.Page{}, wrap("search", err)
	}
	page := store.Page{Messages: msgs}
	if len(msgs) > limit {
		page.Messages = msgs[:limit]
		last := msgs[limit-1]
		page.Next = query.MessageCursor(last.ReceivedAt, last.ID)
	}
	return page, nil
}

// DeadLetters implements store.Store. Deliveries come without their payload.
func (s *Store) DeadLetters(ctx context.Context, q store.DeadLetterQuery) (store.DeadLetterPage, error) {
	// The status literal (not a parameter) lets the planner use the partial indexes.
	where := []string{"status = 'dead_letter'"}
	var params args
	if q.Channel != "" {
		where = append(where, "channel = "+params.add(q.Channel))
	}
	if q.Destination != "" {
		where = append(where, "destination = "+params.add(q.Destination))
	}
	if q.Cursor != "" {
		at, id, dest, err := query.ParseDeadLetterCursor(q.Cursor)
		if err != nil {
			return store.DeadLetterPage{}, wrap("dead letters", err)
		}
		where = append(where, "(updated_at, message_id, destination) < ("+params.add(at)+", "+
			params.add(id)+", "+params.add(dest)+")")
	}
	limit := query.Limit(q.Limit)
	rows, _ := s.pool.Query(ctx, `SELECT message_id, channel, destination, status, attempts,
		last_error, updated_at FROM deliveries WHERE `+strings.Join(where, " AND ")+`
		ORDER BY updated_at DESC, message_id DESC, destination DESC LIMIT `+params.add(limit+1), params...)
	ds, err := pgx.CollectRows(rows, scanDelivery)
	if err != nil {
		return store.DeadLetterPage{}, wrap("dead letters", err)
	}
	page := store.DeadLetterPage{Deliveries: ds}
	if len(ds) > limit {
		page.Deliveries = ds[:limit]
		last := ds[limit-1]
		page.Next = query.DeadLetterCursor(last.UpdatedAt, last.MessageID, last.Destination)
	}
	return page, nil
}

// Prune implements store.Store. Each batch is its own statement and so its own short
// transaction.
func (s *Store) Prune(ctx context.Context, channel string, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = query.DefaultBatch
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, wrap("prune", err)
		}
		// Stages, attempts, deliveries, jobs and the analysis go with their message:
		// ON DELETE CASCADE.
		tag, err := s.pool.Exec(ctx, `DELETE FROM messages WHERE id IN (
			SELECT id FROM messages WHERE channel = $1 AND received_at < $2 LIMIT $3)`, channel, query.Time(before), batch)
		if err != nil {
			return total, wrap("prune", err)
		}
		n := tag.RowsAffected()
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.pool.Ping(ctx))
}

// Close implements store.Store. It waits for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}
