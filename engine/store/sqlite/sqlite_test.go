package sqlite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/storetest"
)

func openFile(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "data", "osprey.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t) })
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), Memory, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPragmas(t *testing.T) {
	s := openFile(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "1"}, // NORMAL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"wal_autocheckpoint", "0"}, // the checkpointer's job
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			if err := s.w.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if strings.ToLower(got) != tc.want {
				t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
			}
		})
	}
	t.Run("readers are query only", func(t *testing.T) {
		_, err := s.r.ExecContext(t.Context(), `DELETE FROM messages`)
		if err == nil {
			t.Error("a read pool connection accepted a write")
		}
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutMessages(t.Context(), []store.Message{{ID: "m", Channel: "c", Raw: []byte("PID|1||42")}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode %v, want 0600 (it holds PHI)", filepath.Base(p), perm)
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	for i := range 3 {
		s, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var n, v int
		if err := s.r.QueryRowContext(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != v || n < 1 {
			t.Errorf("open #%d: %d migration rows up to version %d", i+1, n, v)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(t.Context(), path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer release")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

func TestInvalidPath(t *testing.T) {
	for _, p := range []string{"", "a?b", "x#y"} {
		if s, err := Open(t.Context(), p, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

// The partial indexes serve a search only when its SQL spells their conditions; a plan
// that falls back to a scan would still answer right, only slowly, so only the plan shows it.
func TestSearchUsesIndexes(t *testing.T) {
	s := openFile(t)
	tests := []struct {
		name  string
		q     store.Query
		index string
	}{
		{"control id", store.Query{ControlID: "C1"}, "messages_by_control_id"},
		{"patient id", store.Query{PatientID: "P1"}, "messages_by_patient_id"},
		{"accession", store.Query{Accession: "A1"}, "messages_by_accession"},
		{"message type", store.Query{MessageType: "ADT"}, "messages_by_message_type"},
		{"error status", store.Query{Status: store.StatusError}, "messages_by_status"},
		{"sent status", store.Query{Status: store.StatusSent}, "messages_by_received"},
		{"channel", store.Query{Channel: "c"}, "messages_by_channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sqlText, args, _, err := searchSQL(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := queryPlan(t, s, sqlText, args...); !strings.Contains(got, "INDEX "+tc.index) {
				t.Errorf("plan %q does not use %s", got, tc.index)
			}
		})
	}
}

// queryPlan is SQLite's plan for a statement, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, sqlText string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+sqlText, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

// A database from before migration 4 (full indexes) gets the partial ones on open and
// answers searches the same.
func TestPartialIndexMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(t.Context(), path, Options{schema: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutMessages(t.Context(), []store.Message{{ID: "m", Channel: "c", ControlID: "C1", Status: store.StatusError, Raw: []byte("MSH")}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, index := range []string{"messages_by_control_id", "messages_by_status"} {
		var sqlText string
		if err := s.r.QueryRowContext(t.Context(), `SELECT sql FROM sqlite_master WHERE name = ?`, index).Scan(&sqlText); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sqlText, "WHERE") {
			t.Errorf("%s after migration: %s, want a partial index", index, sqlText)
		}
	}
	for _, q := range []store.Query{{ControlID: "C1"}, {Status: store.StatusError}} {
		p, err := s.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 1 || p.Messages[0].ID != "m" {
			t.Errorf("Search(%+v) = %+v, want message m", q, p.Messages)
		}
	}
}

// A database from before migration 5 (attempts as a rowid table) gets attempts WITHOUT
// ROWID on open, with its rows, and they still go with their message.
func TestAttemptsWithoutRowidMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(t.Context(), path, Options{schema: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	at := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	if err := s.PutMessages(ctx, []store.Message{{ID: "m", Channel: "c", Raw: []byte("MSH"), ReceivedAt: at}}); err != nil {
		t.Fatal(err)
	}
	attempts := []store.Attempt{
		{Destination: "out", Number: 1, At: at, Duration: time.Second, Error: "refused"},
		{Destination: "out", Number: 2, At: at.Add(time.Minute), Duration: time.Millisecond, OK: true,
			ReplySummary: "AA", Reply: []byte("MSA|AA"), Sent: bytes.Repeat([]byte("x"), 20000)},
	}
	for i, a := range attempts {
		st := store.DeliveryQueued
		if a.OK {
			st = store.DeliverySent
		}
		if err := s.AddAttempt(ctx, "m", a, st); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// The rows as schema 4 holds them (Get needs the latest schema).
	rowsOf := func(s *Store) []string {
		t.Helper()
		if err := s.settle(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT message_id, destination, number, at, duration_ns, ok, error,
			reply_summary, quote(reply), quote(sent) FROM attempts ORDER BY number`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v [10]string
			if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(v[:], "|"))
		}
		return out
	}
	before := rowsOf(s)
	s.Close()

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sqlText string
	if err := s.r.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'attempts'`).Scan(&sqlText); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sqlText, "WITHOUT ROWID") {
		t.Errorf("attempts after migration: %s", sqlText)
	}
	if after := rowsOf(s); !slices.Equal(after, before) || len(after) != 2 {
		t.Errorf("attempts after migration:\n got %q\nwant %q", after, before)
	}
	if d, err := s.Get(ctx, "m"); err != nil || len(d.Attempts) != 2 || !d.Attempts[1].OK || len(d.Attempts[1].Sent) != 20000 {
		t.Errorf("Get after migration: %+v, %v", d.Attempts, err)
	}
	// The copy keeps the key: a replayed attempt is still a no-op.
	if err := s.AddAttempt(ctx, "m", attempts[1], store.DeliverySent); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Delivery(ctx, "m", "out"); err != nil || d.Attempts != 2 {
		t.Errorf("delivery after a replayed attempt: %+v, %v; want 2 attempts", d, err)
	}
	if n, err := s.Prune(ctx, "c", at.Add(time.Hour), 0); err != nil || n != 1 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM attempts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("attempts left after their message was pruned: %d, %v", n, err)
	}
}

// DeliveryStates pads each statement's id list to a power of two; every id counts once.
func TestDeliveryStatesSizes(t *testing.T) {
	s := openFile(t)
	ctx := t.Context()
	const n = 1100
	var msgs []store.Message
	var ds []store.Delivery
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		msgs = append(msgs, store.Message{ID: id, Channel: "c", Raw: []byte("MSH")})
		ds = append(ds, store.Delivery{MessageID: id, Destination: "out", Attempts: i})
	}
	if err := s.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 2, 3, 5, 16, 17, 511, 512, 513, 1025, n} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ids := make([]string, 0, size+1)
			for i := range size {
				ids = append(ids, msgs[(i*7)%n].ID) // spread, so chunks differ
			}
			ids = append(ids, "missing")
			got, err := s.DeliveryStates(ctx, "out", ids)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, id := range ids[:size] {
				want[id] = true
			}
			if len(got) != len(want) {
				t.Fatalf("%d states, want %d", len(got), len(want))
			}
			for id := range want {
				var i int
				fmt.Sscanf(id, "m%04d", &i)
				if d, ok := got[id]; !ok || d.Attempts != i || d.Channel != "c" {
					t.Errorf("state of %s: %+v, %v", id, d, ok)
				}
			}
		})
	}
}
