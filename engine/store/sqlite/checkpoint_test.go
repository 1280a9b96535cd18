package sqlite

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// waitTicks waits until the checkpointer has run a whole tick that began after the call.
func waitTicks(t *testing.T, c *checkpointer) {
	t.Helper()
	want := c.ticks.Load() + 2
	deadline := time.Now().Add(10 * time.Second)
	for c.ticks.Load() < want {
		if time.Now().After(deadline) {
			t.Fatal("the checkpointer did not tick")
		}
		time.Sleep(time.Millisecond)
	}
}

// Under a sustained write load the WAL stays small, through PASSIVE checkpoints when they
// can keep up or through TRUNCATE ones when the file grows past the limit; everything
// written is there after a reopen.
func TestCheckpointBoundsTheWAL(t *testing.T) {
	const (
		rounds  = 100
		perRnd  = 16
		rawSize = 16 << 10 // about 70 frames a round, 28 MB of WAL in all
		// What the writer appends between two ticks, when the other write below runs
		// flat out (it alone appends tens of MB over the test).
		slack = 8 << 20
	)
	tests := []struct {
		name  string
		cfg   checkpointConfig
		limit int64 // the largest WAL file allowed, before slack
	}{
		// Without PASSIVE checkpoints (or a writer that cannot restart the WAL after one)
		// the file would grow past 28 MB.
		{"passive", checkpointConfig{every: 5 * time.Millisecond, frames: 64, maxAge: time.Hour,
			limit: 1 << 40, busy: 250 * time.Millisecond, retry: 10 * time.Millisecond, retryTo: 50 * time.Millisecond}, 0},
		// Only the limit bounds it here: PASSIVE never comes due.
		{"truncate", checkpointConfig{every: 5 * time.Millisecond, frames: 1 << 30, maxAge: time.Hour,
			limit: 1 << 20, busy: 250 * time.Millisecond, retry: 10 * time.Millisecond, retryTo: 50 * time.Millisecond}, 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "osprey.db")
			s, err := Open(t.Context(), path, Options{checkpoints: tc.cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Another write commits all the time, as under load: a checkpoint beside the
			// writer then never finds every frame copied, and without holding the writer
			// for the last ones the WAL would never start over.
			if err := s.PutMessages(t.Context(), []store.Message{{ID: "busy", Channel: "other", Raw: []byte("MSH|")}}); err != nil {
				t.Fatal(err)
			}
			stop, stopped := make(chan struct{}), make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						stopped <- nil
						return
					default:
					}
					if err := s.SetStatus(t.Context(), "busy", store.StatusQueued, ""); err != nil {
						stopped <- err
						return
					}
				}
			}()
			raw := func(id string) []byte { return bytes.Repeat([]byte(id+"|"), rawSize/(len(id)+1)) }
			var largest int64
			for r := range rounds {
				msgs := make([]store.Message, perRnd)
				for i := range msgs {
					id := fmt.Sprintf("m%04d-%02d", r, i)
					msgs[i] = store.Message{ID: id, Channel: "c", Raw: raw(id)}
				}
				if err := s.PutMessages(t.Context(), msgs); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(path + "-wal")
				if err != nil {
					t.Fatal(err)
				}
				largest = max(largest, fi.Size())
				if fi.Size() > tc.limit+slack {
					t.Fatalf("round %d: WAL is %d bytes, want at most %d", r, fi.Size(), tc.limit+slack)
				}
				waitTicks(t, s.ck)
			}
			close(stop)
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			var frames int64
			if err := s.ck.holdWriter(t.Context(), func(n int64) error { frames = n; return nil }); err != nil {
				t.Fatal(err)
			}
			// Else the bound proves nothing.
			if appended := frames * (4096 + 24); appended < 2*(tc.limit+slack) {
				t.Fatalf("the writer appended only %d bytes to the WAL", appended)
			}
			t.Logf("largest WAL: %d bytes of %d appended", largest, frames*(4096+24))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = Open(t.Context(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var n int
			if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM messages`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != rounds*perRnd+1 {
				t.Fatalf("after reopen: %d messages, want %d", n, rounds*perRnd+1)
			}
			for _, id := range []string{"m0000-00", fmt.Sprintf("m%04d-%02d", rounds-1, perRnd-1)} {
				d, err := s.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(d.Message.Raw, raw(id)) {
					t.Errorf("message %s: raw of %d bytes differs", id, len(d.Message.Raw))
				}
			}
		})
	}
}

func TestCloseStopsTheCheckpointer(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "osprey.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.ck
	if c == nil {
		t.Fatal("a file store has no checkpointer")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	default:
		t.Fatal("the checkpointer's goroutine still runs after Close")
	}
	if err := c.db.Ping(); err == nil {
		t.Error("the checkpointer's connection is still open after Close")
	}
}

// An in-memory database has no WAL and so no checkpointer, and still works.
func TestMemoryHasNoCheckpointer(t *testing.T) {
	s, err := Open(t.Context(), Memory, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.ck != nil {
		t.Error("an in-memory store has a checkpointer")
	}
	if err := s.PutMessages(t.Context(), []store.Message{{ID: "m", Channel: "c", Raw: []byte("MSH|")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "m"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
