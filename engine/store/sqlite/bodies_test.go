package sqlite

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// A large message's body is written once: its status changes, and the attempts of a delivery
// with a large payload of its own, write a few pages of rows and indexes, not the bodies
// again. (Kept in the rows, each change wrote the whole body, overflow pages and all.)
func TestLargeBodiesAreWrittenOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "osprey.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pages := func() int64 { // pages the writer has written to the WAL so far
		t.Helper()
		var n int64
		if err := s.ck.holdWriter(ctx, func(w int64) error { n = w; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	body := func(tag byte) []byte { return bytes.Repeat([]byte{'O', 'B', 'X', '|', tag, '\r'}, 200<<10) } // 1.2 MB
	now := time.Now().UTC()
	raw, payload := body('1'), body('2')
	if err := s.PutMessages(ctx, []store.Message{{ID: "big", Channel: "c", Raw: raw, ReceivedAt: now,
		Status: store.StatusQueued}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeliveries(ctx, []store.Delivery{
		{MessageID: "big", Destination: "transformed", Status: store.DeliveryQueued, UpdatedAt: now, Payload: payload},
		{MessageID: "big", Destination: "as-received", Status: store.DeliveryQueued, UpdatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}

	before := pages()
	for _, a := range []struct {
		dest   string
		n      int
		ok     bool
		status store.DeliveryStatus
	}{{"transformed", 1, false, store.DeliveryQueued}, {"transformed", 2, true, store.DeliverySent}, {"as-received", 1, true, store.DeliverySent}} {
		if err := s.AddAttempt(ctx, "big", store.Attempt{Destination: a.dest, Number: a.n, At: time.Now(), OK: a.ok,
			Error: map[bool]string{false: "timeout"}[a.ok]}, a.status); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Delivery(ctx, "big", a.dest); err != nil { // applies the attempt log: one transaction each
			t.Fatal(err)
		}
	}
	written := pages() - before

	d, err := s.Get(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.Status != store.StatusSent || !bytes.Equal(d.Message.Raw, raw) {
		t.Fatalf("after the attempts: status %s, raw %d bytes (want sent, %d)", d.Message.Status, len(d.Message.Raw), len(raw))
	}
	// Each of the three transactions writes the pages of the rows it changes and of their
	// indexes; one body alone is 300 pages.
	if written > 60 {
		t.Errorf("three attempts and a status change wrote %d pages to the WAL; the bodies are %d bytes each", written, len(raw))
	}
}

// A database from before migration 6 keeps its large bodies in their rows: they read back
// as they were, a status change keeps them, and bodies written after the migration go to
// the bodies table.
func TestBodiesMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(ctx, path, Options{schema: 5})
	if err != nil {
		t.Fatal(err)
	}
	old := bytes.Repeat([]byte("OBX|1|TX|||old report\r"), 10000)
	oldPayload := bytes.Repeat([]byte("OBX|1|TX|||old payload\r"), 10000)
	now := time.Now().UTC()
	// As schema 5 wrote them: the bodies in the rows, no bodies table.
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO messages (id, channel, raw, received_at, status, updated_at) VALUES ('old', 'c', ?, ?, 'queued', ?)`,
			[]any{old, now.UnixMicro(), now.UnixMicro()}},
		{`INSERT INTO deliveries (message_id, channel, destination, status, updated_at, payload)
			VALUES ('old', 'c', 'out', 'queued', ?, ?), ('old', 'c', 'raw', 'queued', ?, NULL)`,
			[]any{now.UnixMicro(), oldPayload, now.UnixMicro()}},
	} {
		if _, err := s.w.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	s.Close()

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, dest := range []string{"out", "raw"} {
		if err := s.AddAttempt(ctx, "old", store.Attempt{Destination: dest, Number: 1, At: time.Now(), OK: true}, store.DeliverySent); err != nil {
			t.Fatal(err)
		}
	}
	d, err := s.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.Status != store.StatusSent || !bytes.Equal(d.Message.Raw, old) {
		t.Errorf("old message after its deliveries: %s, raw %d bytes, want sent, %d", d.Message.Status, len(d.Message.Raw), len(old))
	}
	for dest, want := range map[string][]byte{"out": oldPayload, "raw": old} {
		if got, err := s.Delivery(ctx, "old", dest); err != nil || !bytes.Equal(got.Payload, want) {
			t.Errorf("old delivery %s: %d bytes, %v; want %d", dest, len(got.Payload), err, len(want))
		}
	}

	if err := s.PutMessages(ctx, []store.Message{{ID: "new", Channel: "c", Raw: old, ReceivedAt: now}}); err != nil {
		t.Fatal(err)
	}
	var inRow, separate int
	if err := s.r.QueryRowContext(ctx, `SELECT length(raw), (SELECT length(body) FROM bodies WHERE message_id = 'new' AND destination = '')
		FROM messages WHERE id = 'new'`).Scan(&inRow, &separate); err != nil {
		t.Fatal(err)
	}
	if inRow != 0 || separate != len(old) {
		t.Errorf("a large body after the migration: %d bytes in the row, %d in bodies; want 0 and %d", inRow, separate, len(old))
	}
}
