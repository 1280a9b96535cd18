package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/internal/query"
)

const jobColumns = `id, message_id, channel, plugin, study_uid, accession, mode, attempt, status,
	created_at, updated_at, deadline, finished_at, error, model_name, model_version,
	plugin_version, latency_ms, request, result`

const sqlJob = `SELECT ` + jobColumns + ` FROM jobs WHERE id = $1`

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromTimePtr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func scanJob(row pgx.Row) (store.Job, error) {
	var j store.Job
	var status string
	var deadline, finished *time.Time
	var req, res []byte
	if err := row.Scan(&j.ID, &j.MessageID, &j.Channel, &j.Plugin, &j.StudyUID, &j.Accession, &j.Mode,
		&j.Attempt, &status, &j.CreatedAt, &j.UpdatedAt, &deadline, &finished, &j.Error, &j.ModelName,
		&j.ModelVersion, &j.PluginVersion, &j.LatencyMS, &req, &res); err != nil {
		return j, err
	}
	j.Status = store.JobStatus(status)
	j.CreatedAt, j.UpdatedAt = j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	j.Deadline, j.FinishedAt = fromTimePtr(deadline), fromTimePtr(finished)
	j.Request, j.Result = query.Raw(req), query.Raw(res)
	return j, nil
}

func jobNotFound(id string) error { return fmt.Errorf("job %s: %w", id, store.ErrNotFound) }

// jobArrays holds a batch of jobs column by column, for unnest.
type jobArrays struct {
	id, messageID, channel, plugin, studyUID, accession, mode, status []string
	error, modelName, modelVersion, pluginVersion                     []string
	attempt                                                           []int32
	latency                                                           []int64
	createdAt, updatedAt                                              []time.Time
	deadline, finishedAt                                              []*time.Time
	request, result                                                   [][]byte
}

func (c *jobArrays) add(j store.Job) {
	c.id = append(c.id, j.ID)
	c.messageID = append(c.messageID, j.MessageID)
	c.channel = append(c.channel, text(j.Channel))
	c.plugin = append(c.plugin, text(j.Plugin))
	c.studyUID = append(c.studyUID, text(j.StudyUID))
	c.accession = append(c.accession, text(j.Accession))
	c.mode = append(c.mode, text(j.Mode))
	c.attempt = append(c.attempt, int32(j.Attempt))
	c.status = append(c.status, string(j.Status))
	c.createdAt = append(c.createdAt, j.CreatedAt)
	c.updatedAt = append(c.updatedAt, j.UpdatedAt)
	c.deadline = append(c.deadline, timePtr(j.Deadline))
	c.finishedAt = append(c.finishedAt, timePtr(j.FinishedAt))
	c.error = append(c.error, text(j.Error))
	c.modelName = append(c.modelName, text(j.ModelName))
	c.modelVersion = append(c.modelVersion, text(j.ModelVersion))
	c.pluginVersion = append(c.pluginVersion, text(j.PluginVersion))
	c.latency = append(c.latency, j.LatencyMS)
	c.request = append(c.request, nilIfEmpty(j.Request))
	c.result = append(c.result, nilIfEmpty(j.Result))
}

// PutJobs implements store.JobStore. The batch is one statement, so a job naming a
// missing message (a foreign key violation) writes none of it.
func (s *Store) PutJobs(ctx context.Context, jobs []store.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	now := time.Now()
	var c jobArrays
	seen := make(map[string]bool, len(jobs))
	for i, j := range jobs {
		if err := query.Job(&j, now); err != nil {
			return wrap("put jobs", fmt.Errorf("job %d: %w", i, err))
		}
		if seen[j.ID] {
			continue // first write wins within a batch too
		}
		seen[j.ID] = true
		c.add(j)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO jobs (`+jobColumns+`)
		SELECT u.id, u.message_id, coalesce(nullif(u.channel, ''), m.channel, ''), u.plugin,
			u.study_uid, u.accession, u.mode, u.attempt, u.status, u.created_at, u.updated_at,
			u.deadline, u.finished_at, u.error, u.model_name, u.model_version, u.plugin_version,
			u.latency_ms, u.request, u.result
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::integer[], $9::text[], $10::timestamptz[], $11::timestamptz[],
			$12::timestamptz[], $13::timestamptz[], $14::text[], $15::text[], $16::text[],
			$17::text[], $18::bigint[], $19::bytea[], $20::bytea[])
			AS u(id, message_id, channel, plugin, study_uid, accession, mode, attempt, status,
				created_at, updated_at, deadline, finished_at, error, model_name, model_version,
				plugin_version, latency_ms, request, result)
		LEFT JOIN messages m ON m.id = u.message_id
		ON CONFLICT (id) DO NOTHING`,
		c.id, c.messageID, c.channel, c.plugin, c.studyUID, c.accession, c.mode, c.attempt,
		c.status, c.createdAt, c.updatedAt, c.deadline, c.finishedAt, c.error, c.modelName,
		c.modelVersion, c.pluginVersion, c.latency, c.request, c.result)
	if err != nil {
		return wrap("put jobs", fkNotFound(err))
	}
	return nil
}

// UpdateJob implements store.JobStore. The check and the write are one UPDATE; of two
// racing on a job, the second waits for the first's row lock, then finds the status
// changed under READ COMMITTED and updates nothing.
func (s *Store) UpdateJob(ctx context.Context, u store.JobUpdate) (store.Job, bool, error) {
	from, err := query.JobUpdate(u)
	if err != nil {
		return store.Job{}, false, wrap("update job", err)
	}
	now := query.Time(time.Now())
	var finished *time.Time
	if u.Status.Final() {
		if u.FinishedAt.IsZero() {
			u.FinishedAt = now
		}
		f := query.Time(u.FinishedAt)
		finished = &f
	}
	var deadline *time.Time
	if !u.Deadline.IsZero() {
		d := query.Time(u.Deadline)
		deadline = &d
	}
	fromText := make([]string, len(from))
	for i, st := range from {
		fromText[i] = string(st)
	}
	job, err := scanJob(s.pool.QueryRow(ctx, `UPDATE jobs SET
			status = $1,
			attempt = CASE WHEN $2::integer > 0 THEN $2::integer ELSE attempt END,
			deadline = coalesce($3::timestamptz, deadline),
			finished_at = $4::timestamptz,
			error = $5,
			model_name = CASE WHEN $6::text <> '' THEN $6::text ELSE model_name END,
			model_version = CASE WHEN $7::text <> '' THEN $7::text ELSE model_version END,
			plugin_version = CASE WHEN $8::text <> '' THEN $8::text ELSE plugin_version END,
			latency_ms = CASE WHEN $9::bigint <> 0 THEN $9::bigint ELSE latency_ms END,
			result = coalesce($10::bytea, result),
			updated_at = $11
		WHERE id = $12 AND status = ANY($13::text[])
		RETURNING `+jobColumns,
		string(u.Status), int32(u.Attempt), deadline, finished, text(u.Error), text(u.ModelName),
		text(u.ModelVersion), text(u.PluginVersion), u.LatencyMS, nilIfEmpty(u.Result), now, u.ID,
		fromText))
	if err == nil {
		return job, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, false, wrap("update job", err)
	}
	// Not applied: the job is missing or in another status. A statement of its own, so
	// it sees the write of whoever won a race.
	job, err = scanJob(s.pool.QueryRow(ctx, sqlJob, u.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, false, wrap("update job", jobNotFound(u.ID))
	}
	if err != nil {
		return store.Job{}, false, wrap("update job", err)
	}
	return job, false, nil
}

// Job implements store.JobStore.
func (s *Store) Job(ctx context.Context, id string) (store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, sqlJob, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Job{}, wrap("job", jobNotFound(id))
	}
	if err != nil {
		return store.Job{}, wrap("job", err)
	}
	return j, nil
}

// Jobs implements store.JobStore.
func (s *Store) Jobs(ctx context.Context, q store.JobQuery) (store.JobPage, error) {
	var params args
	where, limit, err := query.JobWhere(q, params.add)
	if err != nil {
		return store.JobPage{}, wrap("jobs", err)
	}
	jobs, err := s.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs`+where+
		` ORDER BY created_at DESC, id DESC LIMIT `+params.add(limit+1), params...)
	if err != nil {
		return store.JobPage{}, wrap("jobs", err)
	}
	return query.JobPage(jobs, limit), nil
}

// ExpiredJobs implements store.JobStore.
func (s *Store) ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]store.Job, error) {
	// Spelt as the predicate of jobs_open_by_deadline, so the planner can use it.
	jobs, err := s.queryJobs(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE status IN ('queued', 'running') AND deadline IS NOT NULL AND deadline < $1
		ORDER BY deadline, id LIMIT $2`, query.Time(now), query.JobLimit(limit))
	return jobs, wrap("expired jobs", err)
}

func (s *Store) queryJobs(ctx context.Context, sql string, params ...any) ([]store.Job, error) {
	rows, _ := s.pool.Query(ctx, sql, params...)
	// CollectRows returns an empty, non-nil slice when there are none.
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Job, error) { return scanJob(r) })
}

// JobCounts implements store.JobStore.
func (s *Store) JobCounts(ctx context.Context) (map[string]map[store.JobStatus]int64, error) {
	rows, _ := s.pool.Query(ctx, `SELECT plugin, status, count(*) FROM jobs GROUP BY plugin, status`)
	out := map[string]map[store.JobStatus]int64{}
	var plugin, status string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&plugin, &status, &n}, func() error {
		if out[plugin] == nil {
			out[plugin] = map[store.JobStatus]int64{}
		}
		out[plugin][store.JobStatus(status)] = n
		return nil
	})
	if err != nil {
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
	_, err := s.pool.Exec(ctx, `INSERT INTO analyses (`+analysisColumns+`)
		VALUES ($1, coalesce(nullif($2, ''), (SELECT channel FROM messages WHERE id = $1), ''),
			$3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (message_id) DO UPDATE SET
			channel = excluded.channel, study_uid = excluded.study_uid,
			accession = excluded.accession, status = excluded.status,
			priority = excluded.priority, destinations = excluded.destinations,
			rules = excluded.rules, body = excluded.body, updated_at = excluded.updated_at`,
		a.MessageID, text(a.Channel), text(a.StudyUID), text(a.Accession), string(a.Status),
		text(a.Priority), textList(a.Destinations), textList(a.Rules), nilIfEmpty(a.Body),
		a.CreatedAt, a.UpdatedAt)
	if err != nil {
		return wrap("put analysis", fkNotFound(err))
	}
	return nil
}

// textList is l for a text[] column: NULL when empty, each element storable as text.
func textList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = text(v)
	}
	return out
}

// Analysis implements store.JobStore.
func (s *Store) Analysis(ctx context.Context, messageID string) (store.Analysis, error) {
	var a store.Analysis
	var status string
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT `+analysisColumns+` FROM analyses WHERE message_id = $1`, messageID).
		Scan(&a.MessageID, &a.Channel, &a.StudyUID, &a.Accession, &status, &a.Priority,
			&a.Destinations, &a.Rules, &body, &a.CreatedAt, &a.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Analysis{}, wrap("analysis", fmt.Errorf("analysis of %s: %w", messageID, store.ErrNotFound))
	}
	if err != nil {
		return store.Analysis{}, wrap("analysis", err)
	}
	if len(a.Destinations) == 0 {
		a.Destinations = nil
	}
	if len(a.Rules) == 0 {
		a.Rules = nil
	}
	a.Status, a.Body = store.AnalysisStatus(status), query.Raw(body)
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	return a, nil
}
