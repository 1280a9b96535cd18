package query

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

func TestJobLimit(t *testing.T) {
	tests := []struct{ in, want int }{
		{-1, store.DefaultLimit}, {0, store.DefaultLimit}, {7, 7},
		{store.MaxJobLimit, store.MaxJobLimit}, {store.MaxJobLimit + 1, store.MaxJobLimit},
	}
	for _, tc := range tests {
		if got := JobLimit(tc.in); got != tc.want {
			t.Errorf("JobLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestJobCursor(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	c := JobCursor(at, "job-1")
	gotAt, gotID, err := ParseJobCursor(c)
	if err != nil || !gotAt.Equal(at.Truncate(time.Microsecond)) || gotID != "job-1" {
		t.Errorf("round trip = %v %q %v", gotAt, gotID, err)
	}
	// A search cursor has the same keys; it must not pass as a job cursor, nor the reverse.
	for _, bad := range []string{"", "j", MessageCursor(at, "job-1"), c + "x"} {
		if _, _, err := ParseJobCursor(bad); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ParseJobCursor(%q) = %v, want ErrInvalidCursor", bad, err)
		}
	}
	if _, _, err := ParseMessageCursor(c); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("a job cursor parsed as a search cursor: %v", err)
	}
}

func TestJobWhere(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name      string
		q         store.JobQuery
		where     string
		args      []any
		limit     int
		wantError error
	}{
		{name: "nothing", q: store.JobQuery{}, where: "", limit: store.DefaultLimit},
		{
			name:  "fields and statuses",
			q:     store.JobQuery{Plugin: "ich", Channel: "ct", Status: []store.JobStatus{store.JobQueued, store.JobFailed}, Limit: 3},
			where: " WHERE plugin = $1 AND channel = $2 AND status IN ($3, $4)",
			args:  []any{"ich", "ct", "queued", "failed"},
			limit: 3,
		},
		{
			name:  "cursor",
			q:     store.JobQuery{MessageID: "m", Cursor: JobCursor(at, "j1")},
			where: " WHERE message_id = $1 AND (created_at, id) < ($2, $3)",
			args:  []any{"m", at, "j1"},
			limit: store.DefaultLimit,
		},
		{name: "bad status", q: store.JobQuery{Status: []store.JobStatus{"nope"}}},
		{name: "bad cursor", q: store.JobQuery{Cursor: "x"}, wantError: store.ErrInvalidCursor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var args []any
			where, limit, err := JobWhere(tc.q, func(v any) string {
				args = append(args, v)
				return "$" + strconv.Itoa(len(args))
			})
			if tc.where == "" && tc.limit == 0 {
				if err == nil {
					t.Fatalf("JobWhere accepted %+v", tc.q)
				}
				if tc.wantError != nil && !errors.Is(err, tc.wantError) {
					t.Errorf("error = %v, want %v", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if where != tc.where || limit != tc.limit || len(args) != len(tc.args) {
				t.Fatalf("JobWhere = %q %d %v, want %q %d %v", where, limit, args, tc.where, tc.limit, tc.args)
			}
			for i := range args {
				if args[i] != tc.args[i] {
					t.Errorf("arg %d = %v, want %v", i, args[i], tc.args[i])
				}
			}
		})
	}
}

func TestJobPage(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	jobs := []store.Job{{ID: "a", CreatedAt: at}, {ID: "b", CreatedAt: at}, {ID: "c", CreatedAt: at}}
	if p := JobPage(jobs[:2], 2); len(p.Jobs) != 2 || p.Next != "" {
		t.Errorf("full last page = %d jobs, next %q", len(p.Jobs), p.Next)
	}
	p := JobPage(jobs, 2)
	if len(p.Jobs) != 2 || p.Next != JobCursor(at, "b") {
		t.Errorf("page with more = %d jobs, next %q", len(p.Jobs), p.Next)
	}
}

func TestJobDefaults(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 999, time.UTC)
	j := store.Job{ID: "j", MessageID: "m", Plugin: "p", Status: store.JobCompleted}
	if err := Job(&j, now); err != nil {
		t.Fatal(err)
	}
	if j.Attempt != 1 || !j.CreatedAt.Equal(now.Truncate(time.Microsecond)) || !j.FinishedAt.Equal(j.UpdatedAt) {
		t.Errorf("defaults = %+v", j)
	}
	open := store.Job{ID: "j", MessageID: "m", Plugin: "p", FinishedAt: now}
	if err := Job(&open, now); err != nil || open.Status != store.JobQueued || !open.FinishedAt.IsZero() {
		t.Errorf("open job = %+v, %v", open, err)
	}
	for _, bad := range []store.Job{{}, {ID: "j", MessageID: "m"}, {ID: "j", MessageID: "m", Plugin: "p", Attempt: -1}, {ID: "j", MessageID: "m", Plugin: "p", Status: "nope"}} {
		if err := Job(&bad, now); err == nil {
			t.Errorf("Job(%+v) accepted", bad)
		}
	}
}

func TestJobUpdateFrom(t *testing.T) {
	from, err := JobUpdate(store.JobUpdate{ID: "j", Status: store.JobRunning})
	if err != nil || len(from) != 2 || from[0] != store.JobQueued || from[1] != store.JobRunning {
		t.Errorf("default From = %v, %v", from, err)
	}
	from, err = JobUpdate(store.JobUpdate{ID: "j", Status: store.JobFailed, From: []store.JobStatus{store.JobRunning, store.JobRunning}})
	if err != nil || len(from) != 1 {
		t.Errorf("repeated From = %v, %v", from, err)
	}
	for _, bad := range []store.JobUpdate{{Status: store.JobRunning}, {ID: "j", Status: "nope"}, {ID: "j", Status: store.JobRunning, Attempt: -1}, {ID: "j", Status: store.JobRunning, From: []store.JobStatus{"x"}}} {
		if _, err := JobUpdate(bad); err == nil {
			t.Errorf("JobUpdate(%+v) accepted", bad)
		}
	}
}

func TestAnalysisDefaults(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 999, time.UTC)
	a := store.Analysis{MessageID: "m"}
	if err := Analysis(&a, now); err != nil || a.Status != store.AnalysisOpen || !a.UpdatedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Errorf("defaults = %+v, %v", a, err)
	}
	for _, bad := range []store.Analysis{{}, {MessageID: "m", Status: "nope"}} {
		if err := Analysis(&bad, now); err == nil {
			t.Errorf("Analysis(%+v) accepted", bad)
		}
	}
}
