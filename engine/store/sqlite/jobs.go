package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

const jobColumns = `id, message_id, channel, plugin, study_uid, accession, mode, attempt, status,
	created_at, updated_at, deadline, finished_at, error, model_name, model_version,
	plugin_version, latency_ms, request, result`

// The statements of a job's life, run for every job and every result; all but
// sqlExpiredJobs (a read) are prepared at Open (see prep).
const (
	sqlInsertJob = `INSERT INTO jobs (` + jobColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`
	sqlJob = `SELECT ` + jobColumns + ` FROM jobs WHERE id = ?`
	// The check and the write are one statement; SQLite's single writer makes it atomic.
	// The From list is always seven parameters (as many as there are statuses), padded
	// with '' which no job has, so one prepared statement serves every update.
	sqlUpdateJob = `UPDATE jobs SET
				status = ?1,
				attempt = CASE WHEN ?2 > 0 THEN ?2 ELSE attempt END,
				deadline = coalesce(?3, deadline),
				finished_at = ?4,
				error = ?5,
				model_name = CASE WHEN ?6 <> '' THEN ?6 ELSE model_name END,
				model_version = CASE WHEN ?7 <> '' THEN ?7 ELSE model_version END,
				plugin_version = CASE WHEN ?8 <> '' THEN ?8 ELSE plugin_version END,
				latency_ms = CASE WHEN ?9 <> 0 THEN ?9 ELSE latency_ms END,
				result = coalesce(?10, result),
				updated_at = ?11
			WHERE id = ?12 AND status IN (?13, ?14, ?15, ?16, ?17, ?18, ?19)
			RETURNING ` + jobColumns
	fromParams = 7
	// The status list and the NOT NULL are spelt as in jobs_open_by_deadline, so SQLite
	// uses that partial index.
	sqlExpiredJobs = `SELECT ` + jobColumns + ` FROM jobs
			WHERE status IN ('queued', 'running') AND deadline IS NOT NULL AND deadline < ?
			ORDER BY deadline, id LIMIT ?`
)

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return query.Micros(t)
}

func fromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return query.FromMicros(v.Int64)
}

func rawOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func scanJob(row scanner) (store.Job, error) {
	var j store.Job
	var status string
	var created, updated int64
	var deadline, finished sql.NullInt64
	var req, res []byte
	if err := row.Scan(&j.ID, &j.MessageID, &j.Channel, &j.Plugin, &j.StudyUID, &j.Accession, &j.Mode,
		&j.Attempt, &status, &created, &updated, &deadline, &finished, &j.Error, &j.ModelName,
		&j.ModelVersion, &j.PluginVersion, &j.LatencyMS, &req, &res); err != nil {
		return j, err
	}
	j.Status = store.JobStatus(status)
	j.CreatedAt, j.UpdatedAt = query.FromMicros(created), query.FromMicros(updated)
	j.Deadline, j.FinishedAt = fromNullMicros(deadline), fromNullMicros(finished)
	j.Request, j.Result = rawOrNil(req), rawOrNil(res)
	return j, nil
}

func jobNotFound(id string) error { return fmt.Errorf("job %s: %w", id, store.ErrNotFound) }

// PutJobs implements store.JobStore.
func (s *Store) PutJobs(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	now := time.Now()
	rows := make([]store.Job, len(jobs))
	for i, j := range jobs {
		if err := jobDefaults(&j, now); err != nil {
			return wrap("put jobs", fmt.Errorf("job %d: %w", i, err))
		}
		rows[i] = j
	}
	return wrap("put jobs", s.write(ctx, func(tx *sql.Tx) error {
		st, err := s.prep(ctx, tx, sqlInsertJob)
		if err != nil {
			return err
		}
		channels := map[string]string{}
		for _, j := range rows {
			ch, ok := channels[j.MessageID]
			if !ok {
				// A missing message fails the write, and the savepoint undoes the batch.
				if ch, err = s.messageChannel(ctx, tx, j.MessageID); err != nil {
					return fmt.Errorf("job %s: %w", j.ID, err)
				}
				channels[j.MessageID] = ch
			}
			if j.Channel == "" {
				j.Channel = ch
			}
			if _, err := st.ExecContext(ctx, j.ID, j.MessageID, j.Channel, j.Plugin, j.StudyUID,
				j.Accession, j.Mode, j.Attempt, string(j.Status), query.Micros(j.CreatedAt),
				query.Micros(j.UpdatedAt), nullMicros(j.Deadline), nullMicros(j.FinishedAt), j.Error,
				j.ModelName, j.ModelVersion, j.PluginVersion, j.LatencyMS, nullBytes(j.Request),
				nullBytes(j.Result)); err != nil {
				return fmt.Errorf("job %s: %w", j.ID, err)
			}
		}
		return nil
	}))
}

// UpdateJob implements store.JobStore.
func (s *Store) UpdateJob(ctx context.Context, u store.JobUpdate) (store.Job, bool, error) {
	from, err := checkJobUpdate(u)
	if err != nil {
		return store.Job{}, false, wrap("update job", err)
	}
	now := time.Now()
	var finished any
	if u.Status.Final() {
		if u.FinishedAt.IsZero() {
			u.FinishedAt = now
		}
		finished = query.Micros(u.FinishedAt)
	}
	args := []any{string(u.Status), u.Attempt, nullMicros(u.Deadline), finished, u.Error,
		u.ModelName, u.ModelVersion, u.PluginVersion, u.LatencyMS, nullBytes(u.Result),
		query.Micros(now), u.ID}
	for i := range fromParams {
		v := ""
		if i < len(from) {
			v = string(from[i])
		}
		args = append(args, v)
	}
	var job store.Job
	var applied bool
	err = s.write(ctx, func(tx *sql.Tx) error {
		st, err := s.prep(ctx, tx, sqlUpdateJob)
		if err != nil {
			return err
		}
		job, err = scanJob(st.QueryRowContext(ctx, args...))
		if err == nil {
			applied = true
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Not applied: the job is missing or in another status; say which.
		if st, err = s.prep(ctx, tx, sqlJob); err != nil {
			return err
		}
		job, err = scanJob(st.QueryRowContext(ctx, u.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return jobNotFound(u.ID)
		}
		return err
	})
	if err != nil {
		return store.Job{}, false, wrap("update job", err)
	}
	return job, applied, nil
}

// Job implements store.JobStore.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, sqlJob, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, wrap("job", jobNotFound(id))
	}
	if err != nil {
		return store.Job{}, wrap("job", err)
	}
	return j, nil
}

// Jobs implements store.JobStore.
func (s *Store) Jobs(ctx context.Context, q store.JobQuery) (store.JobPage, error) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("message_id", q.MessageID)
	eq("study_uid", q.StudyUID)
	eq("plugin", q.Plugin)
	eq("channel", q.Channel)
	if len(q.Status) > 0 {
		for _, st := range q.Status {
			if !st.Valid() {
				return store.JobPage{}, wrap("jobs", fmt.Errorf("unknown job status %q", st))
			}
			args = append(args, string(st))
		}
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(q.Status)-1)+")")
	}
	if q.Cursor != "" {
		at, id, err := parseJobCursor(q.Cursor)
		if err != nil {
			return store.JobPage{}, wrap("jobs", err)
		}
		where = append(where, "(created_at, id) < (?, ?)")
		args = append(args, query.Micros(at), id)
	}
	limit := jobLimit(q.Limit)
	sqlText := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	sqlText += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1) // one more tells whether there is a next page
	jobs, err := s.queryJobs(ctx, sqlText, args...)
	if err != nil {
		return store.JobPage{}, wrap("jobs", err)
	}
	page := store.JobPage{Jobs: jobs}
	if len(jobs) > limit {
		page.Jobs = jobs[:limit]
		last := jobs[limit-1]
		page.Next = jobCursor(last.CreatedAt, last.ID)
	}
	return page, nil
}

// ExpiredJobs implements store.JobStore.
func (s *Store) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]store.Job, error) {
	jobs, err := s.queryJobs(ctx, sqlExpiredJobs, query.Micros(now), jobLimit(limit))
	return jobs, wrap("expired jobs", err)
}

func (s *Store) queryJobs(ctx context.Context, sqlText string, args ...any) ([]store.Job, error) {
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Job{}
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// JobCounts implements store.JobStore.
func (s *Store) JobCounts(ctx context.Context) (map[string]map[store.JobStatus]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT plugin, status, count(*) FROM jobs GROUP BY plugin, status`)
	if err != nil {
		return nil, wrap("job counts", err)
	}
	defer rows.Close()
	out := map[string]map[store.JobStatus]int64{}
	for rows.Next() {
		var plugin, status string
		var n int64
		if err := rows.Scan(&plugin, &status, &n); err != nil {
			return nil, wrap("job counts", err)
		}
		if out[plugin] == nil {
			out[plugin] = map[store.JobStatus]int64{}
		}
		out[plugin][store.JobStatus(status)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("job counts", err)
	}
	return out, nil
}

const analysisColumns = `message_id, channel, study_uid, accession, status, priority,
	destinations, rules, body, created_at, updated_at`

// PutAnalysis implements store.JobStore.
func (s *Store) PutAnalysis(ctx context.Context, a store.Analysis) error {
	if err := analysisDefaults(&a, time.Now()); err != nil {
		return wrap("put analysis", err)
	}
	dests, err := encodeList(a.Destinations)
	if err != nil {
		return wrap("put analysis", err)
	}
	rules, err := encodeList(a.Rules)
	if err != nil {
		return wrap("put analysis", err)
	}
	return wrap("put analysis", s.write(ctx, func(tx *sql.Tx) error {
		ch, err := s.messageChannel(ctx, tx, a.MessageID)
		if err != nil {
			return err
		}
		if a.Channel == "" {
			a.Channel = ch
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO analyses (`+analysisColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (message_id) DO UPDATE SET
				channel = excluded.channel, study_uid = excluded.study_uid,
				accession = excluded.accession, status = excluded.status,
				priority = excluded.priority, destinations = excluded.destinations,
				rules = excluded.rules, body = excluded.body, updated_at = excluded.updated_at`,
			a.MessageID, a.Channel, a.StudyUID, a.Accession, string(a.Status), a.Priority,
			dests, rules, nullBytes(a.Body), query.Micros(a.CreatedAt), query.Micros(a.UpdatedAt))
		return err
	}))
}

// Analysis implements store.JobStore.
func (s *Store) Analysis(ctx context.Context, messageID string) (store.Analysis, error) {
	var a store.Analysis
	var status string
	var dests, rules sql.NullString
	var body []byte
	var created, updated int64
	err := s.r.QueryRowContext(ctx, `SELECT `+analysisColumns+` FROM analyses WHERE message_id = ?`, messageID).
		Scan(&a.MessageID, &a.Channel, &a.StudyUID, &a.Accession, &status, &a.Priority,
			&dests, &rules, &body, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Analysis{}, wrap("analysis", fmt.Errorf("analysis of %s: %w", messageID, store.ErrNotFound))
	}
	if err != nil {
		return store.Analysis{}, wrap("analysis", err)
	}
	if a.Destinations, err = decodeList(dests); err != nil {
		return store.Analysis{}, wrap("analysis", fmt.Errorf("%s destinations: %w", messageID, err))
	}
	if a.Rules, err = decodeList(rules); err != nil {
		return store.Analysis{}, wrap("analysis", fmt.Errorf("%s rules: %w", messageID, err))
	}
	a.Status, a.Body = store.AnalysisStatus(status), rawOrNil(body)
	a.CreatedAt, a.UpdatedAt = query.FromMicros(created), query.FromMicros(updated)
	return a, nil
}

func encodeList(l []string) (any, error) {
	if len(l) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func decodeList(s sql.NullString) ([]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s.String), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// The rest of this file is the same in the postgres package; the conformance suite keeps
// the two in step.

// jobLimit applies the JobQuery.Limit rules.
func jobLimit(n int) int {
	switch {
	case n <= 0:
		return store.DefaultLimit
	case n > store.MaxJobLimit:
		return store.MaxJobLimit
	}
	return n
}

// jobCursorPrefix keeps a job cursor apart from a search cursor, which has the same keys:
// no base64 of a JSON object starts with it.
const jobCursorPrefix = "j"

// jobCursor is the cursor after a job row with these sort keys.
func jobCursor(createdAt time.Time, id string) string {
	return jobCursorPrefix + query.MessageCursor(createdAt, id)
}

// parseJobCursor reverses jobCursor; anything else is store.ErrInvalidCursor.
func parseJobCursor(c string) (time.Time, string, error) {
	rest, ok := strings.CutPrefix(c, jobCursorPrefix)
	if !ok {
		return time.Time{}, "", store.ErrInvalidCursor
	}
	return query.ParseMessageCursor(rest)
}

// jobDefaults applies the write defaults of store.Job to j and checks it.
func jobDefaults(j *store.Job, now time.Time) error {
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
	j.CreatedAt, j.UpdatedAt = query.Time(j.CreatedAt), query.Time(j.UpdatedAt)
	if !j.Deadline.IsZero() {
		j.Deadline = query.Time(j.Deadline)
	}
	if !j.FinishedAt.IsZero() {
		j.FinishedAt = query.Time(j.FinishedAt)
	}
	return nil
}

// checkJobUpdate checks u and returns the statuses it may apply from.
func checkJobUpdate(u store.JobUpdate) ([]store.JobStatus, error) {
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

// analysisDefaults applies the write defaults of store.Analysis to a and checks it.
func analysisDefaults(a *store.Analysis, now time.Time) error {
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
	a.CreatedAt, a.UpdatedAt = query.Time(a.CreatedAt), query.Time(a.UpdatedAt)
	return nil
}
