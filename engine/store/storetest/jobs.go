package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// job is a dispatched job of plugin for message msgID, created at `at`.
func job(id, msgID, plugin string, at time.Time) store.Job {
	return store.Job{
		ID: id, MessageID: msgID, Channel: "pacs-in", Plugin: plugin,
		StudyUID: "1.2.826.0.1.3680043.8.498." + msgID, Accession: "ACC-" + msgID, Mode: "notify",
		Attempt: 1, Status: store.JobQueued, CreatedAt: at, UpdatedAt: at, Deadline: at.Add(5 * time.Minute),
		Request: json.RawMessage(`{"job_id":"` + id + `","study_uid":"1.2.3"}`),
	}
}

func putJobs(t *testing.T, s store.Store, jobs ...store.Job) {
	t.Helper()
	if err := s.PutJobs(t.Context(), jobs); err != nil {
		t.Fatalf("PutJobs: %v", err)
	}
}

func getJob(t *testing.T, s store.Store, id string) store.Job {
	t.Helper()
	j, err := s.Job(t.Context(), id)
	if err != nil {
		t.Fatalf("Job(%s): %v", id, err)
	}
	return j
}

func updateJob(t *testing.T, s store.Store, u store.JobUpdate) (store.Job, bool) {
	t.Helper()
	j, ok, err := s.UpdateJob(t.Context(), u)
	if err != nil {
		t.Fatalf("UpdateJob(%s -> %s): %v", u.ID, u.Status, err)
	}
	return j, ok
}

// normJob is j as the store returns it: times in UTC to the microsecond.
func normJob(j store.Job) store.Job {
	j.CreatedAt, j.UpdatedAt = us(j.CreatedAt), us(j.UpdatedAt)
	if !j.Deadline.IsZero() {
		j.Deadline = us(j.Deadline)
	}
	if !j.FinishedAt.IsZero() {
		j.FinishedAt = us(j.FinishedAt)
	}
	return j
}

func jobIDs(js []store.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

// allJobs walks every page of q and returns the ids in order.
func allJobs(t *testing.T, s store.Store, q store.JobQuery) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("jobs never ran out of pages")
		}
		p, err := s.Jobs(t.Context(), q)
		if err != nil {
			t.Fatalf("Jobs(%+v): %v", q, err)
		}
		out = append(out, jobIDs(p.Jobs)...)
		if p.Next == "" {
			return out
		}
		if len(p.Jobs) == 0 {
			t.Fatal("empty page with a next cursor")
		}
		q.Cursor = p.Next
	}
}

func testJobPutGet(t *testing.T, s store.Store) {
	cet := time.FixedZone("CET", 3600)
	put(t, s, msg("study1", t0))
	in := store.Job{
		ID: "j1", MessageID: "study1", Channel: "pacs-in", Plugin: "ich-detect",
		StudyUID: "1.2.3.4", Accession: "ACC-1", Mode: "active", Attempt: 2, Status: store.JobFailed,
		CreatedAt: t0.In(cet), UpdatedAt: t0.Add(time.Second).In(cet), Deadline: t0.Add(time.Minute).In(cet),
		FinishedAt: t0.Add(2 * time.Second).In(cet), Error: "model crashed", ModelName: "ich-net",
		ModelVersion: "3.1.0", PluginVersion: "1.4.2", LatencyMS: 1234,
		Request: json.RawMessage(`{"job_id":"j1"}`),
		// Kept exactly as received: key order and spacing included.
		Result: json.RawMessage(`{"status":"failed",  "job_id":"j1"}`),
	}
	putJobs(t, s, in)
	got := getJob(t, s, "j1")
	if want := normJob(in); !reflect.DeepEqual(got, want) {
		t.Errorf("Job round trip:\n got %+v\nwant %+v", got, want)
	}
	for _, tm := range []time.Time{got.CreatedAt, got.UpdatedAt, got.Deadline, got.FinishedAt} {
		if tm.Location() != time.UTC {
			t.Errorf("time %v not in UTC", tm)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		putJobs(t, s, store.Job{ID: "bare", MessageID: "study1", Plugin: "p"})
		j := getJob(t, s, "bare")
		if j.Status != store.JobQueued || j.Attempt != 1 || j.Channel != "ris-in" {
			t.Errorf("defaults: status %q attempt %d channel %q; want queued, 1 and the message's channel",
				j.Status, j.Attempt, j.Channel)
		}
		if j.CreatedAt.Before(before) || j.UpdatedAt.Before(before) {
			t.Errorf("zero times not defaulted to now: %v %v", j.CreatedAt, j.UpdatedAt)
		}
		if !j.Deadline.IsZero() || !j.FinishedAt.IsZero() || j.Request != nil || j.Result != nil {
			t.Errorf("empty fields came back set: %+v", j)
		}
	})
	t.Run("final without FinishedAt", func(t *testing.T) {
		putJobs(t, s, store.Job{ID: "done", MessageID: "study1", Plugin: "p", Status: store.JobCompleted, UpdatedAt: t0})
		if j := getJob(t, s, "done"); !j.FinishedAt.Equal(us(t0)) {
			t.Errorf("FinishedAt = %v, want UpdatedAt %v", j.FinishedAt, us(t0))
		}
	})
	t.Run("open with FinishedAt", func(t *testing.T) {
		putJobs(t, s, store.Job{ID: "open", MessageID: "study1", Plugin: "p", Status: store.JobRunning, FinishedAt: t0})
		if j := getJob(t, s, "open"); !j.FinishedAt.IsZero() {
			t.Errorf("an open job kept FinishedAt %v", j.FinishedAt)
		}
	})
}

func testJobPutIdempotent(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	first := job("j", "m", "p", t0)
	second := first
	second.Plugin, second.Status, second.Attempt = "other", store.JobCompleted, 3
	putJobs(t, s, first)
	putJobs(t, s, second)
	if got := getJob(t, s, "j"); !reflect.DeepEqual(got, normJob(first)) {
		t.Errorf("a second PutJobs changed the job:\n got %+v\nwant %+v", got, normJob(first))
	}
	// Within one batch too.
	a, b := job("k", "m", "p", t0), job("k", "m", "other", t0)
	putJobs(t, s, a, b)
	if got := getJob(t, s, "k"); got.Plugin != "p" {
		t.Errorf("duplicate in a batch: plugin %q, want the first one's", got.Plugin)
	}
	// A redelivered dispatch must not reset a job that has moved on.
	updateJob(t, s, store.JobUpdate{ID: "j", Status: store.JobRunning})
	putJobs(t, s, first)
	if got := getJob(t, s, "j"); got.Status != store.JobRunning {
		t.Errorf("redelivered PutJobs reset the status to %q", got.Status)
	}
	if got := allJobs(t, s, store.JobQuery{}); len(got) != 2 {
		t.Errorf("store holds jobs %v, want j and k", got)
	}
}

func testJobPutInvalid(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	ok := job("good", "m", "p", t0)
	tests := []struct {
		name     string
		job      store.Job
		notFound bool
	}{
		{"no id", store.Job{MessageID: "m", Plugin: "p"}, false},
		{"no message id", store.Job{ID: "x", Plugin: "p"}, false},
		{"no plugin", store.Job{ID: "x", MessageID: "m"}, false},
		{"unknown status", store.Job{ID: "x", MessageID: "m", Plugin: "p", Status: "lost"}, false},
		{"negative attempt", store.Job{ID: "x", MessageID: "m", Plugin: "p", Attempt: -1}, false},
		{"missing message", store.Job{ID: "x", MessageID: "missing", Plugin: "p"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The valid job in the same batch must not be written either.
			err := s.PutJobs(t.Context(), []store.Job{ok, tc.job})
			if err == nil {
				t.Fatal("PutJobs accepted it")
			}
			if errors.Is(err, store.ErrNotFound) != tc.notFound {
				t.Errorf("error %v: ErrNotFound = %v, want %v", err, !tc.notFound, tc.notFound)
			}
			if _, err := s.Job(t.Context(), "good"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the failed batch wrote its valid job: %v", err)
			}
		})
	}
	if err := s.PutJobs(t.Context(), nil); err != nil {
		t.Errorf("PutJobs of nothing: %v", err)
	}
}

func testJobUpdate(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	in := job("j", "m", "ich", t0)
	putJobs(t, s, in)
	result := json.RawMessage(`{"status":"completed","findings":[]}`)
	finishedAt := t0.Add(42*time.Second + 123456789)
	newDeadline := t0.Add(time.Hour)

	// Each step runs on the job as the previous ones left it.
	steps := []struct {
		name    string
		u       store.JobUpdate
		applied bool
		check   func(t *testing.T, j store.Job)
	}{
		{"queued to running", store.JobUpdate{ID: "j", Status: store.JobRunning}, true, func(t *testing.T, j store.Job) {
			if j.Status != store.JobRunning || !j.FinishedAt.IsZero() {
				t.Errorf("status %q finished %v", j.Status, j.FinishedAt)
			}
			if j.Attempt != 1 || !j.Deadline.Equal(us(in.Deadline)) || j.ModelName != "" {
				t.Errorf("zero fields of the update changed the job: %+v", j)
			}
		}},
		{"completed from an explicit status not held", store.JobUpdate{ID: "j", From: []store.JobStatus{store.JobQueued},
			Status: store.JobCompleted}, false, func(t *testing.T, j store.Job) {
			if j.Status != store.JobRunning {
				t.Errorf("status %q, want running (unchanged)", j.Status)
			}
		}},
		{"running to completed", store.JobUpdate{ID: "j", Status: store.JobCompleted, ModelName: "ich-net",
			ModelVersion: "3.1", PluginVersion: "1.0", LatencyMS: 900, Result: result}, true, func(t *testing.T, j store.Job) {
			if j.Status != store.JobCompleted || j.ModelName != "ich-net" || j.ModelVersion != "3.1" ||
				j.PluginVersion != "1.0" || j.LatencyMS != 900 || string(j.Result) != string(result) {
				t.Errorf("completed job: %+v", j)
			}
			if j.FinishedAt.IsZero() || j.FinishedAt.Before(j.CreatedAt) {
				t.Errorf("FinishedAt = %v, want now", j.FinishedAt)
			}
		}},
		{"a late timeout loses", store.JobUpdate{ID: "j", Status: store.JobTimeout, Error: "deadline passed"}, false,
			func(t *testing.T, j store.Job) {
				if j.Status != store.JobCompleted || j.Error != "" {
					t.Errorf("final job changed: status %q error %q", j.Status, j.Error)
				}
			}},
		{"completed to failed from completed, FinishedAt given", store.JobUpdate{ID: "j",
			From: []store.JobStatus{store.JobCompleted, store.JobCompleted}, Status: store.JobFailed,
			Error: "model crashed", FinishedAt: finishedAt}, true, func(t *testing.T, j store.Job) {
			if j.Status != store.JobFailed || j.Error != "model crashed" || !j.FinishedAt.Equal(us(finishedAt)) {
				t.Errorf("status %q error %q finished %v; want failed, the error, %v", j.Status, j.Error, j.FinishedAt, us(finishedAt))
			}
			if j.ModelName != "ich-net" || string(j.Result) != string(result) {
				t.Errorf("empty update fields cleared the model or result: %+v", j)
			}
		}},
		{"re-queued as a new attempt", store.JobUpdate{ID: "j", From: []store.JobStatus{store.JobTimeout, store.JobFailed},
			Status: store.JobQueued, Attempt: 2, Deadline: newDeadline}, true, func(t *testing.T, j store.Job) {
			if j.Status != store.JobQueued || j.Attempt != 2 || !j.Deadline.Equal(us(newDeadline)) {
				t.Errorf("status %q attempt %d deadline %v", j.Status, j.Attempt, j.Deadline)
			}
			if !j.FinishedAt.IsZero() || j.Error != "" {
				t.Errorf("re-opened job kept finished %v error %q", j.FinishedAt, j.Error)
			}
		}},
		{"timeout", store.JobUpdate{ID: "j", Status: store.JobTimeout, Error: "no result in 5m"}, true, func(t *testing.T, j store.Job) {
			if j.Status != store.JobTimeout || j.Error != "no result in 5m" || j.FinishedAt.IsZero() {
				t.Errorf("timed out job: %+v", j)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := getJob(t, s, "j")
			start := time.Now().Add(-time.Second)
			got, applied := updateJob(t, s, st.u)
			if applied != st.applied {
				t.Fatalf("applied = %v, want %v (job %+v)", applied, st.applied, got)
			}
			if stored := getJob(t, s, "j"); !reflect.DeepEqual(got, stored) {
				t.Errorf("UpdateJob returned\n %+v\nbut the store holds\n %+v", got, stored)
			}
			if !applied && !reflect.DeepEqual(got, before) {
				t.Errorf("an update that did not apply changed the job:\n got %+v\nwant %+v", got, before)
			}
			if applied && got.UpdatedAt.Before(start) {
				t.Errorf("UpdatedAt %v, want now", got.UpdatedAt)
			}
			if got.CreatedAt != us(in.CreatedAt) || got.UpdatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt %v (want %v) or UpdatedAt zone %v", got.CreatedAt, us(in.CreatedAt), got.UpdatedAt.Location())
			}
			st.check(t, got)
		})
	}

	t.Run("invalid", func(t *testing.T) {
		before := getJob(t, s, "j")
		tests := []struct {
			name string
			u    store.JobUpdate
		}{
			{"no id", store.JobUpdate{Status: store.JobQueued}},
			{"no status", store.JobUpdate{ID: "j"}},
			{"unknown status", store.JobUpdate{ID: "j", Status: "lost"}},
			{"unknown from", store.JobUpdate{ID: "j", From: []store.JobStatus{"lost"}, Status: store.JobQueued}},
			{"negative attempt", store.JobUpdate{ID: "j", From: []store.JobStatus{store.JobTimeout}, Status: store.JobQueued, Attempt: -1}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, applied, err := s.UpdateJob(t.Context(), tc.u)
				if err == nil || applied || errors.Is(err, store.ErrNotFound) {
					t.Errorf("UpdateJob(%+v) = %v, %v; want a validation error", tc.u, applied, err)
				}
			})
		}
		if after := getJob(t, s, "j"); !reflect.DeepEqual(after, before) {
			t.Errorf("invalid updates changed the job:\n got %+v\nwant %+v", after, before)
		}
	})
	t.Run("missing job", func(t *testing.T) {
		if _, applied, err := s.UpdateJob(t.Context(), store.JobUpdate{ID: "nope", Status: store.JobRunning}); !errors.Is(err, store.ErrNotFound) || applied {
			t.Errorf("UpdateJob of a missing job: %v, %v; want ErrNotFound", applied, err)
		}
	})
}

// testJobUpdateRace races a result against the deadline sweep on the same open jobs:
// exactly one of the two may win each, and the loser must see the winner's write.
func testJobUpdateRace(t *testing.T, s store.Store) {
	const n = 30
	put(t, s, msg("m", t0))
	var jobs []store.Job
	for i := range n {
		jobs = append(jobs, job(fmt.Sprintf("race%02d", i), "m", "ich", t0))
	}
	putJobs(t, s, jobs...)
	type outcome struct {
		job     store.Job
		applied bool
		err     error
	}
	for i := range n {
		id := jobs[i].ID
		var got [2]outcome
		start := make(chan struct{})
		var wg sync.WaitGroup
		for k, u := range []store.JobUpdate{
			{ID: id, Status: store.JobCompleted, ModelName: "ich-net", Result: json.RawMessage(`{"status":"completed"}`)},
			{ID: id, Status: store.JobTimeout, Error: "deadline passed"},
		} {
			wg.Go(func() {
				<-start
				j, ok, err := s.UpdateJob(t.Context(), u)
				got[k] = outcome{j, ok, err}
			})
		}
		close(start)
		wg.Wait()
		if got[0].err != nil || got[1].err != nil {
			t.Fatalf("%s: errors %v, %v", id, got[0].err, got[1].err)
		}
		if got[0].applied == got[1].applied {
			t.Fatalf("%s: completed applied %v, timeout applied %v; want exactly one", id, got[0].applied, got[1].applied)
		}
		winner, loser := got[0], got[1]
		if got[1].applied {
			winner, loser = got[1], got[0]
		}
		stored := getJob(t, s, id)
		if !reflect.DeepEqual(stored, winner.job) || !reflect.DeepEqual(stored, loser.job) {
			t.Errorf("%s: stored %+v\nwinner saw %+v\nloser saw %+v", id, stored, winner.job, loser.job)
		}
		if stored.Status == store.JobTimeout && (stored.ModelName != "" || stored.Result != nil) ||
			stored.Status == store.JobCompleted && stored.Error != "" {
			t.Errorf("%s: the writes mixed: %+v", id, stored)
		}
	}
}

// jobSet is the listing fixture: ten jobs over three study messages, four plugins, and
// timestamps shared in pairs to exercise the tie-break.
func jobSet(t *testing.T, s store.Store) []store.Job {
	t.Helper()
	put(t, s, msg("s1", t0), msg("s2", t0), msg("s3", t0))
	var out []store.Job
	for i := range 10 {
		m := []string{"s1", "s2", "s3"}[i%3]
		j := job(fmt.Sprintf("j%02d", (i*7)%10), m, []string{"ich", "pe", "ich", "fracture", "nodule"}[i%5], t0.Add(time.Duration(i/2)*time.Second))
		j.Channel = []string{"pacs-in", "stow-in"}[i%2]
		j.Status = []store.JobStatus{store.JobQueued, store.JobRunning, store.JobCompleted, store.JobTimeout}[i%4]
		if j.Status.Final() {
			j.FinishedAt = j.CreatedAt
		}
		out = append(out, j)
	}
	putJobs(t, s, out...)
	return out
}

// newestFirst is the ids of the jobs matching f, sorted as Jobs sorts them.
func newestFirst(js []store.Job, f func(store.Job) bool) []string {
	js = slices.DeleteFunc(slices.Clone(js), func(j store.Job) bool { return !f(j) })
	slices.SortFunc(js, func(a, b store.Job) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return jobIDs(js)
}

func testJobList(t *testing.T, s store.Store) {
	set := jobSet(t, s)
	study2 := set[1].StudyUID
	tests := []struct {
		name string
		q    store.JobQuery
		f    func(store.Job) bool
	}{
		{"all", store.JobQuery{}, func(store.Job) bool { return true }},
		{"message", store.JobQuery{MessageID: "s1"}, func(j store.Job) bool { return j.MessageID == "s1" }},
		{"study", store.JobQuery{StudyUID: study2}, func(j store.Job) bool { return j.StudyUID == study2 }},
		{"plugin", store.JobQuery{Plugin: "ich"}, func(j store.Job) bool { return j.Plugin == "ich" }},
		{"channel", store.JobQuery{Channel: "stow-in"}, func(j store.Job) bool { return j.Channel == "stow-in" }},
		{"one status", store.JobQuery{Status: []store.JobStatus{store.JobTimeout}},
			func(j store.Job) bool { return j.Status == store.JobTimeout }},
		{"open statuses", store.JobQuery{Status: []store.JobStatus{store.JobQueued, store.JobRunning}},
			func(j store.Job) bool { return !j.Status.Final() }},
		{"plugin and status", store.JobQuery{Plugin: "ich", Status: []store.JobStatus{store.JobQueued}},
			func(j store.Job) bool { return j.Plugin == "ich" && j.Status == store.JobQueued }},
		{"message, plugin and channel", store.JobQuery{MessageID: "s3", Plugin: "ich", Channel: "pacs-in"},
			func(j store.Job) bool { return j.MessageID == "s3" && j.Plugin == "ich" && j.Channel == "pacs-in" }},
		{"no match", store.JobQuery{Plugin: "nobody"}, func(store.Job) bool { return false }},
	}
	for _, tc := range tests {
		want := newestFirst(set, tc.f)
		for _, size := range []int{0, 1, 3, 4} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, size), func(t *testing.T) {
				q := tc.q
				q.Limit = size
				if got := allJobs(t, s, q); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("Jobs(%+v):\n got %v\nwant %v", q, got, want)
				}
			})
		}
	}

	t.Run("rows are whole", func(t *testing.T) {
		p, err := s.Jobs(t.Context(), store.JobQuery{MessageID: set[4].MessageID, Plugin: set[4].Plugin, Channel: set[4].Channel})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(p.Jobs, func(j store.Job) bool { return j.ID == set[4].ID })
		if i < 0 || !reflect.DeepEqual(p.Jobs[i], normJob(set[4])) {
			t.Errorf("listed %+v, want %+v", p.Jobs, normJob(set[4]))
		}
	})
	t.Run("empty page", func(t *testing.T) {
		p, err := s.Jobs(t.Context(), store.JobQuery{Plugin: "nobody"})
		if err != nil || p.Jobs == nil || len(p.Jobs) != 0 || p.Next != "" {
			t.Errorf("Jobs with no match = %+v, %v; want an empty, non-nil page", p, err)
		}
	})
	t.Run("stable under new jobs", func(t *testing.T) {
		p1, err := s.Jobs(t.Context(), store.JobQuery{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		putJobs(t, s, job("newer", "s1", "ich", t0.Add(time.Hour)))
		got := append(jobIDs(p1.Jobs), allJobs(t, s, store.JobQuery{Limit: 4, Cursor: p1.Next})...)
		if want := newestFirst(set, func(store.Job) bool { return true }); !slices.Equal(got, want) {
			t.Errorf("walk with an insert in between:\n got %v\nwant %v", got, want)
		}
	})
	t.Run("unknown status", func(t *testing.T) {
		if _, err := s.Jobs(t.Context(), store.JobQuery{Status: []store.JobStatus{"lost"}}); err == nil {
			t.Error("Jobs accepted an unknown status")
		}
	})
}

func testJobLimit(t *testing.T, s store.Store) {
	const n = store.MaxJobLimit + 20
	put(t, s, msg("m", t0))
	var js []store.Job
	for i := range n {
		js = append(js, job(fmt.Sprintf("l%04d", i), "m", "p", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	putJobs(t, s, js...)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"default", 0, store.DefaultLimit},
		{"negative", -1, store.DefaultLimit},
		{"small", 7, 7},
		{"max", store.MaxJobLimit, store.MaxJobLimit},
		{"over max", store.MaxLimit, store.MaxJobLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.Jobs(t.Context(), store.JobQuery{Limit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Jobs) != tc.want || p.Next == "" {
				t.Errorf("Limit %d: %d jobs, next %q; want %d and a cursor", tc.limit, len(p.Jobs), p.Next, tc.want)
			}
			if len(p.Jobs) > 0 && p.Jobs[0].ID != fmt.Sprintf("l%04d", n-1) {
				t.Errorf("first job %s, want the newest", p.Jobs[0].ID)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		late := t0.Add(24 * time.Hour)
		for _, tc := range tests {
			got, err := s.ExpiredJobs(t.Context(), late, tc.limit)
			if err != nil || len(got) != tc.want {
				t.Errorf("ExpiredJobs limit %d: %d jobs, %v; want %d", tc.limit, len(got), err, tc.want)
			}
		}
	})
	// A page that exactly exhausts the jobs has no next cursor.
	p, err := s.Jobs(t.Context(), store.JobQuery{Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.Jobs(t.Context(), store.JobQuery{Limit: 20, Cursor: p.Next})
	if err != nil || len(p2.Jobs) != 20 || p2.Next != "" {
		t.Errorf("exact last page: %d jobs, next %q, %v", len(p2.Jobs), p2.Next, err)
	}
}

func testJobCursor(t *testing.T, s store.Store) {
	put(t, s, msg("a", t0), msg("b", t0))
	putJobs(t, s, job("ja", "a", "p", t0), job("jb", "b", "p", t0))
	putDeliveries(t, s,
		store.Delivery{MessageID: "a", Destination: "x", Status: store.DeliveryDeadLetter, UpdatedAt: t0},
		store.Delivery{MessageID: "b", Destination: "x", Status: store.DeliveryDeadLetter, UpdatedAt: t0})
	jp, err := s.Jobs(t.Context(), store.JobQuery{Limit: 1})
	if err != nil || jp.Next == "" {
		t.Fatalf("Jobs: %+v %v", jp, err)
	}
	sp, err := s.Search(t.Context(), store.Query{Limit: 1})
	if err != nil || sp.Next == "" {
		t.Fatalf("Search: %+v %v", sp, err)
	}
	dp, err := s.DeadLetters(t.Context(), store.DeadLetterQuery{Limit: 1})
	if err != nil || dp.Next == "" {
		t.Fatalf("DeadLetters: %+v %v", dp, err)
	}
	for _, c := range []string{"garbage!", "j", "je30", "e30", sp.Next, dp.Next, "j" + dp.Next} {
		if _, err := s.Jobs(t.Context(), store.JobQuery{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("Jobs(cursor %q): %v, want ErrInvalidCursor", c, err)
		}
	}
	if _, err := s.Search(t.Context(), store.Query{Cursor: jp.Next}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("Search(job cursor): %v, want ErrInvalidCursor", err)
	}
	if _, err := s.DeadLetters(t.Context(), store.DeadLetterQuery{Cursor: jp.Next}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("DeadLetters(job cursor): %v, want ErrInvalidCursor", err)
	}
}

func testJobExpired(t *testing.T, s store.Store) {
	put(t, s, msg("m", t0))
	now := t0.Add(time.Hour)
	mk := func(id string, deadline time.Time, st store.JobStatus) store.Job {
		j := job(id, "m", "p", t0)
		j.Deadline, j.Status = deadline, st
		return j
	}
	putJobs(t, s,
		mk("late-2", now.Add(-time.Minute), store.JobQueued),
		mk("late-1", now.Add(-2*time.Minute), store.JobRunning),
		mk("late-1b", now.Add(-2*time.Minute), store.JobQueued), // same deadline: by id
		mk("just", now.Add(-time.Microsecond), store.JobQueued),
		mk("at-now", now, store.JobQueued), // before now, not at it
		mk("future", now.Add(time.Minute), store.JobRunning),
		mk("never", time.Time{}, store.JobQueued),
		mk("done", now.Add(-time.Hour), store.JobCompleted),
		mk("gone", now.Add(-time.Hour), store.JobTimeout),
	)
	got, err := s.ExpiredJobs(t.Context(), now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"late-1", "late-1b", "late-2", "just"}; !slices.Equal(jobIDs(got), want) {
		t.Errorf("ExpiredJobs = %v, want %v", jobIDs(got), want)
	}
	if len(got) > 0 && !reflect.DeepEqual(got[0], getJob(t, s, "late-1")) {
		t.Errorf("expired row %+v is not the whole job", got[0])
	}
	if got, err := s.ExpiredJobs(t.Context(), now, 2); err != nil || !slices.Equal(jobIDs(got), []string{"late-1", "late-1b"}) {
		t.Errorf("ExpiredJobs limit 2 = %v, %v", jobIDs(got), err)
	}
	// The sweep times one out; it leaves the list.
	updateJob(t, s, store.JobUpdate{ID: "late-1", Status: store.JobTimeout})
	if got, err := s.ExpiredJobs(t.Context(), now, 0); err != nil || !slices.Equal(jobIDs(got), []string{"late-1b", "late-2", "just"}) {
		t.Errorf("ExpiredJobs after a timeout = %v, %v", jobIDs(got), err)
	}
	if got, err := s.ExpiredJobs(t.Context(), t0, 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ExpiredJobs before any deadline = %v, %v; want empty, non-nil", got, err)
	}
}

func testJobCounts(t *testing.T, s store.Store) {
	got, err := s.JobCounts(t.Context())
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("JobCounts of an empty store = %v, %v; want an empty map", got, err)
	}
	jobSet(t, s)
	got, err = s.JobCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// jobSet gives job i plugin i%5 and status i%4.
	want := map[string]map[store.JobStatus]int64{}
	for i := range 10 {
		p := []string{"ich", "pe", "ich", "fracture", "nodule"}[i%5]
		st := []store.JobStatus{store.JobQueued, store.JobRunning, store.JobCompleted, store.JobTimeout}[i%4]
		if want[p] == nil {
			want[p] = map[store.JobStatus]int64{}
		}
		want[p][st]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JobCounts:\n got %v\nwant %v", got, want)
	}
	updateJob(t, s, store.JobUpdate{ID: "j00", Status: store.JobCompleted}) // j00 is job 0: ich, queued
	if want["ich"][store.JobQueued]--; want["ich"][store.JobQueued] == 0 {
		delete(want["ich"], store.JobQueued) // absent, not zero
	}
	want["ich"][store.JobCompleted]++
	if got, err := s.JobCounts(t.Context()); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("JobCounts after an update:\n got %v, %v\nwant %v", got, err, want)
	}
}

func testAnalysis(t *testing.T, s store.Store) {
	put(t, s, msg("study", t0))
	cet := time.FixedZone("CET", 3600)
	in := store.Analysis{
		MessageID: "study", Channel: "pacs-in", StudyUID: "1.2.3", Accession: "ACC-1",
		Status: store.AnalysisOpen, Priority: "STAT", Destinations: []string{"ris-oru", "ehr-fhir"},
		Rules: []string{"ich-critical"}, Body: json.RawMessage(`{"findings": [ {"code":"ICH"} ]}`),
		CreatedAt: t0.In(cet), UpdatedAt: t0.In(cet),
	}
	if err := s.PutAnalysis(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Analysis(t.Context(), "study")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.CreatedAt, want.UpdatedAt = us(in.CreatedAt), us(in.UpdatedAt)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Analysis round trip:\n got %+v\nwant %+v", got, want)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
	}

	t.Run("replace keeps CreatedAt", func(t *testing.T) {
		next := store.Analysis{MessageID: "study", Status: store.AnalysisComplete, StudyUID: "1.2.3",
			Destinations: []string{"pacs-sr"}, CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Minute)}
		if err := s.PutAnalysis(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		got, err := s.Analysis(t.Context(), "study")
		if err != nil {
			t.Fatal(err)
		}
		want := next
		want.Channel = "ris-in" // empty: the message's
		want.CreatedAt, want.UpdatedAt = us(t0), us(next.UpdatedAt)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after replace:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		put(t, s, msg("bare", t0))
		before := time.Now().Add(-time.Second)
		if err := s.PutAnalysis(t.Context(), store.Analysis{MessageID: "bare"}); err != nil {
			t.Fatal(err)
		}
		a, err := s.Analysis(t.Context(), "bare")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != store.AnalysisOpen || a.Channel != "ris-in" || a.CreatedAt.Before(before) || a.UpdatedAt.Before(before) {
			t.Errorf("defaults: %+v", a)
		}
		if a.Destinations != nil || a.Rules != nil || a.Body != nil {
			t.Errorf("empty lists or body came back set: %+v", a)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		tests := []struct {
			name     string
			a        store.Analysis
			notFound bool
		}{
			{"no message id", store.Analysis{Status: store.AnalysisOpen}, false},
			{"unknown status", store.Analysis{MessageID: "study", Status: "done"}, false},
			{"missing message", store.Analysis{MessageID: "missing", Status: store.AnalysisOpen}, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				err := s.PutAnalysis(t.Context(), tc.a)
				if err == nil {
					t.Fatal("PutAnalysis accepted it")
				}
				if errors.Is(err, store.ErrNotFound) != tc.notFound {
					t.Errorf("error %v: want ErrNotFound %v", err, tc.notFound)
				}
			})
		}
		if a, err := s.Analysis(t.Context(), "study"); err != nil || a.Status != store.AnalysisComplete {
			t.Errorf("invalid writes changed the analysis: %+v, %v", a, err)
		}
		if _, err := s.Analysis(t.Context(), "missing"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Analysis of a missing message: %v, want ErrNotFound", err)
		}
	})
}

func testJobPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := t0.Add(-30 * 24 * time.Hour)
	var msgs []store.Message
	var jobs []store.Job
	for i := range 12 {
		at := old
		if i >= 9 {
			at = t0 // the last three are kept
		}
		m := msg(fmt.Sprintf("m%02d", i), at)
		msgs = append(msgs, m)
		jobs = append(jobs, job("a-"+m.ID, m.ID, "ich", at), job("b-"+m.ID, m.ID, "pe", at))
	}
	put(t, s, msgs...)
	putJobs(t, s, jobs...)
	for _, m := range msgs {
		if err := s.PutAnalysis(ctx, store.Analysis{MessageID: m.ID}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Prune(ctx, "ris-in", t0, 4) // 9 messages: batches of 4, 4, 1
	if err != nil || n != 9 {
		t.Fatalf("Prune = %d, %v; want 9", n, err)
	}
	for i, m := range msgs {
		kept := i >= 9
		for _, id := range []string{"a-" + m.ID, "b-" + m.ID} {
			if _, err := s.Job(ctx, id); kept != (err == nil) || (!kept && !errors.Is(err, store.ErrNotFound)) {
				t.Errorf("Job(%s) after prune (kept %v): %v", id, kept, err)
			}
		}
		if _, err := s.Analysis(ctx, m.ID); kept != (err == nil) || (!kept && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("Analysis(%s) after prune (kept %v): %v", m.ID, kept, err)
		}
	}
	if got := allJobs(t, s, store.JobQuery{Limit: 500}); len(got) != 6 {
		t.Errorf("%d jobs left, want the 6 of the kept messages: %v", len(got), got)
	}
	if got, err := s.JobCounts(ctx); err != nil || got["ich"][store.JobQueued] != 3 || got["pe"][store.JobQueued] != 3 {
		t.Errorf("JobCounts after prune = %v, %v", got, err)
	}
	if got, err := s.ExpiredJobs(ctx, t0.Add(time.Hour), 0); err != nil || len(got) != 6 {
		t.Errorf("ExpiredJobs after prune = %v, %v; want the 6 kept", jobIDs(got), err)
	}
}

func testJobNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"Job", func() error { _, err := s.Job(ctx, "missing"); return err }},
		{"UpdateJob", func() error {
			_, _, err := s.UpdateJob(ctx, store.JobUpdate{ID: "missing", Status: store.JobTimeout})
			return err
		}},
		{"PutJobs", func() error {
			return s.PutJobs(ctx, []store.Job{{ID: "j", MessageID: "missing", Plugin: "p"}})
		}},
		{"Analysis", func() error { _, err := s.Analysis(ctx, "missing"); return err }},
		{"PutAnalysis", func() error { return s.PutAnalysis(ctx, store.Analysis{MessageID: "missing"}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("error %v, want ErrNotFound", err)
			}
		})
	}
	c, cancel := context.WithCancel(ctx)
	cancel()
	put(t, s, msg("m", t0))
	if err := s.PutJobs(c, []store.Job{job("j", "m", "p", t0)}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutJobs with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := s.Job(ctx, "j"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled PutJobs stored the job: %v", err)
	}
}
