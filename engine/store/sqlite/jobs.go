package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

const jobColumns = `id, message_id, channel, plugin, study_uid, accession, mode, attempt, status,
	created_at, updated_at, deadline, finished_at, error, model_name, model_version,
	plugin_version, latency_ms, request, result`

// The statements of a job's life, run for every job and every result; all but the
// reads sqlJobCounts and sqlExpiredJobs are prepared at Open (see prep).
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
	// A scan of the covering index jobs_by_plugin_status, not of the table.
	sqlJobCounts = `SELECT plugin, status, count(*) FROM jobs GROUP BY plugin, status`
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
	j.Request, j.Result = query.Raw(req), query.Raw(res)
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
		if err := query.Job(&j, now); err != nil {
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
	from, err := query.JobUpdate(u)
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
		applied = false // a run before this one may have set it (see Store.write)
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
	sqlText, args, limit, err := jobsSQL(q)
	if err != nil {
		return store.JobPage{}, wrap("jobs", err)
	}
	jobs, err := s.queryJobs(ctx, sqlText, args...)
	if err != nil {
		return store.JobPage{}, wrap("jobs", err)
	}
	return query.JobPage(jobs, limit), nil
}

// jobsSQL is the statement of a job listing, its arguments, and the page size.
func jobsSQL(q store.JobQuery) (sqlText string, args []any, limit int, err error) {
	where, limit, err := query.JobWhere(q, func(v any) string {
		if t, ok := v.(time.Time); ok {
			v = query.Micros(t)
		}
		args = append(args, v)
		return "?"
	})
	if err != nil {
		return "", nil, 0, err
	}
	args = append(args, limit+1)
	return `SELECT ` + jobColumns + ` FROM jobs` + where + ` ORDER BY created_at DESC, id DESC LIMIT ?`, args, limit, nil
}

// ExpiredJobs implements store.JobStore.
func (s *Store) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]store.Job, error) {
	jobs, err := s.queryJobs(ctx, sqlExpiredJobs, query.Micros(now), query.JobLimit(limit))
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
	rows, err := s.r.QueryContext(ctx, sqlJobCounts)
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
	if err := query.Analysis(&a, time.Now()); err != nil {
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
	a.Status, a.Body = store.AnalysisStatus(status), query.Raw(body)
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
