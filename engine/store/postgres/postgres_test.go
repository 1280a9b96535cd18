package postgres

import (
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/storetest"
)

// open returns a store in a throwaway schema, dropped when the test ends; it skips the
// test when PostgreSQL is unreachable.
func open(t *testing.T) *Store {
	t.Helper()
	return openDSN(t, storetest.PostgresDSN(t))
}

func openDSN(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, Options{Schema: storetest.PostgresSchema(t, dsn)})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the schema's cleanup, so it runs first: the pool is closed before
	// the schema is dropped.
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	dsn := storetest.PostgresDSN(t) // once: an unreachable server skips the suite, not each case
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, dsn) })
}

func TestMigrationsIdempotent(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	schema := storetest.PostgresSchema(t, dsn)
	for i := range 3 {
		s, err := Open(t.Context(), dsn, Options{Schema: schema})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var n, v int
		if err := s.pool.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != v || n < 1 {
			t.Errorf("open #%d: %d migration rows up to version %d", i+1, n, v)
		}
		s.Close()
	}
}

func TestConcurrentOpen(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	schema := storetest.PostgresSchema(t, dsn)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := Open(t.Context(), dsn, Options{Schema: schema})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s := open(t)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (999)`); err != nil {
		t.Fatal(err)
	}
	dsn := storetest.PostgresDSN(t)
	if s2, err := Open(t.Context(), dsn, Options{Schema: s.schema}); err == nil {
		s2.Close()
		t.Fatal("Open accepted a schema from a newer release")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	tests := []struct {
		name, dsn, schema string
	}{
		{"schema with quote", "postgres://127.0.0.1/test", `a"b`},
		{"schema upper case", "postgres://127.0.0.1/test", "Osprey"},
		{"bad dsn", "postgres://user:secret@[::1/test", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.dsn, Options{Schema: tc.schema})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

// A Latin-1 field or a NUL cannot go into a text column as it is; the message must still
// be stored, and remain findable by its ASCII parts.
func TestNonUTF8Fields(t *testing.T) {
	s := open(t)
	m := store.Message{ID: "latin1", Channel: "ris-in", Raw: []byte("PID|1||42||M\xfcller\x00^HANS\r"),
		PatientID: "42\xfc", Error: "bad\x00byte", Source: map[string]string{"k": "v\x00\xff"}}
	if err := s.PutMessages(t.Context(), []store.Message{m}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Get(t.Context(), "latin1")
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Message.Raw) != string(m.Raw) {
		t.Errorf("raw changed: %q", d.Message.Raw)
	}
	if d.Message.PatientID != "42\uFFFD" || d.Message.Error != "bad\uFFFDbyte" || d.Message.Source["k"] != "v\uFFFD\uFFFD" {
		t.Errorf("fields = %q %q %q", d.Message.PatientID, d.Message.Error, d.Message.Source)
	}
	p, err := s.Search(t.Context(), store.Query{Text: "^hans"})
	if err != nil || len(p.Messages) != 1 {
		t.Errorf("search by the ASCII part: %v %v", p.Messages, err)
	}
}
