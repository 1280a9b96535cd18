package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// storeWithTable opens a store in a temporary directory, closed when the test ends, with one
// more table made by create for the test's own writes.
func storeWithTable(t *testing.T, create string) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "o.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(create)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Concurrent writes share transactions; a failing one must take only its own work with it.
func TestGroupCommitIsolatesAFailingWrite(t *testing.T) {
	ctx := context.Background()
	s := storeWithTable(t, `CREATE TABLE t (k TEXT PRIMARY KEY)`)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO t VALUES (?)`, fmt.Sprint(i)); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom // after its insert: the savepoint must undo it
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if want := i%3 == 0; errors.Is(err, boom) != want || (!want && err != nil) {
			t.Fatalf("write %d: err = %v", i, err)
		}
	}
	for i := range errs {
		var n int
		if err := s.r.QueryRow(`SELECT count(*) FROM t WHERE k = ?`, fmt.Sprint(i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 1}[i%3 == 0]; n != want {
			t.Errorf("row %d: %d rows, want %d", i, n, want)
		}
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "o.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.write(context.Background(), func(*sql.Tx) error { return nil }); !errors.Is(err, errWriterClosed) {
		t.Errorf("write after close: %v, want errWriterClosed", err)
	}
}

// A batch runs first without savepoints; when one write fails, the rest run again, each in
// its own savepoint, and only the failing writes lose their work.
func TestBatchFallbackAfterAFailure(t *testing.T) {
	ctx := context.Background()
	s := storeWithTable(t, `CREATE TABLE t (k INTEGER PRIMARY KEY)`)
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name     string
		fail     map[int]bool // writes that fail after their insert
		canceled map[int]bool // writes whose context is done
		runs     []int        // times each write's function should run: twice when it ran before the first failure
	}{
		{name: "none fails", runs: []int{1, 1, 1, 1, 1}},
		{name: "one fails", fail: map[int]bool{2: true}, runs: []int{2, 2, 1, 1, 1}},
		{name: "first fails", fail: map[int]bool{0: true}, runs: []int{1, 1, 1, 1, 1}},
		{name: "two fail", fail: map[int]bool{1: true, 3: true}, runs: []int{2, 1, 1, 1, 1}},
		{name: "canceled and failing", fail: map[int]bool{3: true}, canceled: map[int]bool{1: true},
			runs: []int{2, 0, 2, 1, 1}},
	}
	for ti, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs := make([]int, len(tc.runs))
			batch := make([]*writeReq, len(tc.runs))
			for i := range batch {
				k := ti*100 + i
				rctx := ctx
				if tc.canceled[i] {
					rctx = cancelled
				}
				batch[i] = &writeReq{ctx: rctx, done: make(chan error, 1), fn: func(tx *sql.Tx) error {
					runs[i]++
					if _, err := tx.Exec(`INSERT INTO t VALUES (?)`, k); err != nil {
						return err
					}
					if tc.fail[i] {
						return boom
					}
					return nil
				}}
			}
			s.wr.run(batch)
			for i, r := range batch {
				err := <-r.done
				switch {
				case tc.fail[i] && !errors.Is(err, boom):
					t.Errorf("write %d: err = %v, want boom", i, err)
				case tc.canceled[i] && !errors.Is(err, context.Canceled):
					t.Errorf("write %d: err = %v, want context.Canceled", i, err)
				case !tc.fail[i] && !tc.canceled[i] && err != nil:
					t.Errorf("write %d: err = %v", i, err)
				}
				var n int
				if err := s.r.QueryRow(`SELECT count(*) FROM t WHERE k = ?`, ti*100+i).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{true: 0, false: 1}[tc.fail[i] || tc.canceled[i]]; n != want {
					t.Errorf("write %d: %d rows, want %d", i, n, want)
				}
				if runs[i] != tc.runs[i] {
					t.Errorf("write %d ran %d times, want %d", i, runs[i], tc.runs[i])
				}
			}
		})
	}
}
