package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// JobLimit applies the JobQuery.Limit rules (and those of ExpiredJobs' limit).
func JobLimit(n int) int {
	return limit(n, store.MaxJobLimit)
}

// jobCursorPrefix keeps a job cursor apart from a search cursor, which has the same keys:
// no base64 of a JSON object starts with it.
const jobCursorPrefix = "j"

// JobCursor is the cursor after a job row with these sort keys.
func JobCursor(createdAt time.Time, id string) string {
	return jobCursorPrefix + MessageCursor(createdAt, id)
}

// ParseJobCursor reverses JobCursor; anything else is store.ErrInvalidCursor.
func ParseJobCursor(c string) (createdAt time.Time, id string, err error) {
	rest, ok := strings.CutPrefix(c, jobCursorPrefix)
	if !ok {
		return time.Time{}, "", store.ErrInvalidCursor
	}
	return ParseMessageCursor(rest)
}

// JobWhere is the WHERE clause (empty when nothing filters) and the page size of q. param
// adds a value to the statement's arguments and returns its placeholder; the cursor's
// time reaches it as a time.Time for the backend to convert. Both backends build the
// clause here so that their filters and their keyset agree.
func JobWhere(q store.JobQuery, param func(v any) string) (where string, limit int, err error) {
	var conds []string
	for _, f := range []struct{ col, v string }{
		{"message_id", q.MessageID},
		{"study_uid", q.StudyUID},
		{"plugin", q.Plugin},
		{"channel", q.Channel},
	} {
		if f.v != "" {
			conds = append(conds, f.col+" = "+param(f.v))
		}
	}
	if len(q.Status) > 0 {
		ps := make([]string, len(q.Status))
		for i, st := range q.Status {
			if !st.Valid() {
				return "", 0, fmt.Errorf("unknown job status %q", st)
			}
			ps[i] = param(string(st))
		}
		conds = append(conds, "status IN ("+strings.Join(ps, ", ")+")")
	}
	if q.Cursor != "" {
		at, id, err := ParseJobCursor(q.Cursor)
		if err != nil {
			return "", 0, err
		}
		conds = append(conds, "(created_at, id) < ("+param(at)+", "+param(id)+")")
	}
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return where, JobLimit(q.Limit), nil
}

// JobPage is the page of a Jobs query that asked for limit+1 rows (the one more tells
// whether there is a next page).
func JobPage(jobs []store.Job, limit int) store.JobPage {
	page := store.JobPage{Jobs: jobs}
	if len(jobs) > limit {
		page.Jobs = jobs[:limit]
		last := jobs[limit-1]
		page.Next = JobCursor(last.CreatedAt, last.ID)
	}
	return page
}

// Job applies the write defaults of store.Job to j and checks it.
func Job(j *store.Job, now time.Time) error {
	if j.ID == "" || j.MessageID == "" || j.Plugin == "" {
		return fmt.Errorf("job %q needs an id, a message id and a plugin", j.ID)
	}
	if j.Status == "" {
		j.Status = store.JobQueued
	}
	if !j.Status.Valid() {
		return fmt.Errorf("job %s: unknown job status %q", j.ID, j.Status)
	}
	switch {
	case j.Attempt == 0:
		j.Attempt = 1
	case j.Attempt < 0:
		return fmt.Errorf("job %s: attempt %d: must be 1 or more", j.ID, j.Attempt)
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = now
	}
	switch {
	case !j.Status.Final():
		j.FinishedAt = time.Time{}
	case j.FinishedAt.IsZero():
		j.FinishedAt = j.UpdatedAt
	}
	j.CreatedAt, j.UpdatedAt = Time(j.CreatedAt), Time(j.UpdatedAt)
	if !j.Deadline.IsZero() {
		j.Deadline = Time(j.Deadline)
	}
	if !j.FinishedAt.IsZero() {
		j.FinishedAt = Time(j.FinishedAt)
	}
	return nil
}

// JobUpdate checks u and returns the statuses it may apply from: u.From without
// repeats, or queued and running when u.From is empty.
func JobUpdate(u store.JobUpdate) ([]store.JobStatus, error) {
	if u.ID == "" {
		return nil, errors.New("job update has no job id")
	}
	if !u.Status.Valid() {
		return nil, fmt.Errorf("job %s: unknown job status %q", u.ID, u.Status)
	}
	if u.Attempt < 0 {
		return nil, fmt.Errorf("job %s: attempt %d: must be 1 or more", u.ID, u.Attempt)
	}
	if len(u.From) == 0 {
		return []store.JobStatus{store.JobQueued, store.JobRunning}, nil
	}
	var from []store.JobStatus
	for _, st := range u.From {
		if !st.Valid() {
			return nil, fmt.Errorf("job %s: unknown job status %q in From", u.ID, st)
		}
		if !slices.Contains(from, st) {
			from = append(from, st)
		}
	}
	return from, nil
}

// Analysis applies the write defaults of store.Analysis to a and checks it.
func Analysis(a *store.Analysis, now time.Time) error {
	if a.MessageID == "" {
		return errors.New("analysis has no message id")
	}
	if a.Status == "" {
		a.Status = store.AnalysisOpen
	}
	if !a.Status.Valid() {
		return fmt.Errorf("analysis of %s: unknown analysis status %q", a.MessageID, a.Status)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = now
	}
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = now
	}
	a.CreatedAt, a.UpdatedAt = Time(a.CreatedAt), Time(a.UpdatedAt)
	return nil
}

// Raw is a stored JSON column as the store returns it: nil when the column is empty or
// NULL, so that a job without a result reads back as it was written.
func Raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}
