package sqlite

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// logStore opens a store at path whose applier waits an hour, so that what a test finds in
// the tables got there because something read or closed, not because the applier ran.
func logStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, Options{applyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// queuedFor stores messages with one queued delivery each to destination "out".
func queuedFor(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	now := time.Now().UTC()
	var msgs []store.Message
	var ds []store.Delivery
	for _, id := range ids {
		msgs = append(msgs, store.Message{ID: id, Channel: "adt", Raw: []byte("MSH|" + id), ReceivedAt: now,
			Status: store.StatusQueued, UpdatedAt: now})
		ds = append(ds, store.Delivery{MessageID: id, Channel: "adt", Destination: "out", Status: store.DeliveryQueued, UpdatedAt: now})
	}
	if err := s.PutMessages(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeliveries(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
}

func TestAttemptReachesReadsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s := logStore(t, path)
	defer s.Close()
	queuedFor(t, s, "m1")
	log0 := attemptLogPaths(path)[0]
	a := store.Attempt{Destination: "out", Number: 1, At: time.Now(), OK: true, ReplySummary: "AA"}
	if err := s.AddAttempt(t.Context(), "m1", a, store.DeliverySent); err != nil {
		t.Fatal(err)
	}
	if fileSize(t, log0) == 0 {
		t.Fatal("the attempt is not in the attempt log")
	}
	states, err := s.DeliveryStates(t.Context(), "out", []string{"m1"})
	if err != nil {
		t.Fatal(err)
	}
	if st := states["m1"]; st.Status != store.DeliverySent || st.Attempts != 1 {
		t.Errorf("delivery right after the attempt = %+v, want sent after 1 attempt", st)
	}
	if n := fileSize(t, log0); n != 0 {
		t.Errorf("attempt log holds %d bytes after it was applied", n)
	}
	det, err := s.Get(t.Context(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	if det.Message.Status != store.StatusSent || len(det.Attempts) != 1 {
		t.Errorf("message after its only delivery was sent: status %q, %d attempts", det.Message.Status, len(det.Attempts))
	}
}

func TestCloseAppliesTheAttemptLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s := logStore(t, path)
	queuedFor(t, s, "m1")
	if err := s.AddAttempt(t.Context(), "m1", store.Attempt{Destination: "out", Number: 1, At: time.Now(), OK: true},
		store.DeliverySent); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range attemptLogPaths(path) {
		if n := fileSize(t, p); n != 0 {
			t.Errorf("%s holds %d bytes after Close", filepath.Base(p), n)
		}
	}
	s = logStore(t, path)
	defer s.Close()
	if d, err := s.Delivery(t.Context(), "m1", "out"); err != nil || d.Status != store.DeliverySent {
		t.Errorf("after reopening: %+v, %v", d, err)
	}
}

// What a crash leaves: attempts in both files, one of them already applied before the
// crash (the commit happened, the truncate did not), a delivery's later attempt in the
// file that is read first, and a record cut short at the end of a file.
func TestOpenReplaysWhatACrashLeft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s := logStore(t, path)
	queuedFor(t, s, "m1", "m2")
	at := time.Now().UTC().Truncate(time.Microsecond)
	m2first := loggedAttempt{ID: "m2", Attempt: store.Attempt{Destination: "out", Number: 1, At: at, OK: true, ReplySummary: "AA"},
		Status: store.DeliverySent}
	if err := s.AddAttempt(t.Context(), m2first.ID, m2first.Attempt, m2first.Status); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	m1failed := loggedAttempt{ID: "m1", Attempt: store.Attempt{Destination: "out", Number: 1, At: at, Error: "read: i/o timeout"},
		Status: store.DeliveryQueued}
	m1sent := loggedAttempt{ID: "m1", Attempt: store.Attempt{Destination: "out", Number: 2, At: at.Add(time.Second), OK: true,
		ReplySummary: "AA", Reply: []byte("MSH|^~\\&\rMSA|AA|m1\r")}, Status: store.DeliverySent}
	gone := loggedAttempt{ID: "pruned", Attempt: store.Attempt{Destination: "out", Number: 1, At: at, OK: true},
		Status: store.DeliverySent}
	paths := attemptLogPaths(path)
	write := func(p string, recs []loggedAttempt, tail []byte) {
		var buf []byte
		for _, r := range recs {
			b, err := encodeAttempt(r)
			if err != nil {
				t.Fatal(err)
			}
			buf = append(buf, b...)
		}
		if err := os.WriteFile(p, append(buf, tail...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	torn, _ := encodeAttempt(loggedAttempt{ID: "m2", Attempt: store.Attempt{Destination: "out", Number: 2, At: at}, Status: store.DeliveryDeadLetter})
	write(paths[0], []loggedAttempt{m1sent, m2first, gone}, torn[:len(torn)-3])
	write(paths[1], []loggedAttempt{m1failed}, nil)

	s = logStore(t, path)
	defer s.Close()
	for _, p := range paths {
		if n := fileSize(t, p); n != 0 {
			t.Errorf("%s holds %d bytes after Open applied it", filepath.Base(p), n)
		}
	}
	d1, err := s.Delivery(t.Context(), "m1", "out")
	if err != nil {
		t.Fatal(err)
	}
	if d1.Status != store.DeliverySent || d1.Attempts != 2 || d1.LastError != "" {
		t.Errorf("m1 after replay = %+v, want sent after 2 attempts (the later one applied last)", d1)
	}
	d2, err := s.Delivery(t.Context(), "m2", "out")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Status != store.DeliverySent || d2.Attempts != 1 {
		t.Errorf("m2 after replay = %+v, want sent after 1 attempt (the torn record is not one)", d2)
	}
	det, err := s.Get(t.Context(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	if det.Message.Status != store.StatusSent || len(det.Attempts) != 2 || string(det.Attempts[1].Reply) != string(m1sent.Attempt.Reply) {
		t.Errorf("m1 after replay: status %q, attempts %+v", det.Message.Status, det.Attempts)
	}
	if _, err := s.Delivery(t.Context(), "pruned", "out"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the attempt of a message not stored made a delivery: %v", err)
	}
}

// A batch that fails to apply stays in its file and in memory, is applied first next
// time, and its file takes no appends until it has been emptied.
func TestAttemptLogRetriesAFailedApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	l, left, err := openAttemptLog(path, slog.New(slog.DiscardHandler), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer l.closeFiles()
	if len(left) != 0 {
		t.Fatalf("a new log holds %d attempts", len(left))
	}
	rec := func(id string) loggedAttempt {
		return loggedAttempt{ID: id, Attempt: store.Attempt{Destination: "out", Number: 1}, Status: store.DeliverySent}
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := l.append(rec(id)); err != nil {
			t.Fatal(err)
		}
	}
	paths := attemptLogPaths(path)
	storeDown := errors.New("disk full")
	if err := l.settle(t.Context(), func(context.Context, []loggedAttempt) error { return storeDown }); !errors.Is(err, storeDown) {
		t.Fatalf("settle with a failing apply: %v", err)
	}
	if fileSize(t, paths[0]) == 0 {
		t.Fatal("the file of a batch that failed was emptied")
	}
	for _, id := range []string{"d", "e"} {
		if err := l.append(rec(id)); err != nil {
			t.Fatal(err)
		}
	}
	if fileSize(t, paths[1]) == 0 {
		t.Fatal("appends after the failure did not go to the other file")
	}
	if n := l.unapplied.Load(); n != 5 {
		t.Errorf("unapplied = %d, want 5", n)
	}
	var applied [][]string
	if err := l.settle(t.Context(), func(_ context.Context, recs []loggedAttempt) error {
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		applied = append(applied, ids)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"a", "b", "c"}, {"d", "e"}}; !slices.EqualFunc(applied, want, slices.Equal) {
		t.Errorf("applied %v, want %v (the failed batch first)", applied, want)
	}
	for _, p := range paths {
		if n := fileSize(t, p); n != 0 {
			t.Errorf("%s holds %d bytes after everything was applied", filepath.Base(p), n)
		}
	}
	if n := l.unapplied.Load(); n != 0 {
		t.Errorf("unapplied = %d after everything was applied", n)
	}
}

func TestMemoryHasNoAttemptLog(t *testing.T) {
	s, err := Open(t.Context(), Memory, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.al != nil {
		t.Error("an in-memory store has an attempt log")
	}
}

// When the database takes no writes, the log takes attempts up to its bound and then
// refuses them (the delivery worker retries, so delivery waits); what it took is applied
// when the store opens again.
func TestAttemptLogBoundWhenTheDatabaseFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "osprey.db")
	s, err := Open(t.Context(), path, Options{applyEvery: time.Hour, maxLogged: 3})
	if err != nil {
		t.Fatal(err)
	}
	queuedFor(t, s, "m1", "m2", "m3", "m4")
	s.wr.stop() // as if the disk were full: every write fails from here on
	sent := func(id string) error {
		return s.AddAttempt(t.Context(), id, store.Attempt{Destination: "out", Number: 1, At: time.Now(), OK: true},
			store.DeliverySent)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if err := sent(id); err != nil {
			t.Fatalf("attempt of %s, below the bound: %v", id, err)
		}
	}
	if err := sent("m4"); err == nil {
		t.Fatal("the log took a fourth attempt past its bound of 3 while the database failed")
	}
	if err := s.Close(); err == nil {
		t.Error("Close reported success although the attempt log could not be applied")
	}

	s = logStore(t, path)
	defer s.Close()
	for id, want := range map[string]store.DeliveryStatus{"m1": store.DeliverySent, "m2": store.DeliverySent,
		"m3": store.DeliverySent, "m4": store.DeliveryQueued} {
		if d, err := s.Delivery(t.Context(), id, "out"); err != nil || d.Status != want {
			t.Errorf("%s after reopening: %+v, %v; want %s", id, d, err, want)
		}
	}
}
