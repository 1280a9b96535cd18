package store

import (
	"context"
	"encoding/json"
	"time"
)

// JobStatus is where an AI job stands. Queued and running are open; the rest are final.
type JobStatus string

const (
	JobQueued        JobStatus = "queued"         // published to the plugin's jobs stream
	JobRunning       JobStatus = "running"        // a plugin instance reported progress
	JobCompleted     JobStatus = "completed"      // a valid result with status completed
	JobFailed        JobStatus = "failed"         // a valid result with status failed
	JobNotApplicable JobStatus = "not_applicable" // a valid result with status not_applicable
	JobTimeout       JobStatus = "timeout"        // the deadline passed without a result
	JobInvalid       JobStatus = "invalid"        // a result that failed validation
)

// Final reports whether s is a final status: nothing will change it except a new attempt.
func (s JobStatus) Final() bool { return s != JobQueued && s != JobRunning && s != "" }

// Valid reports whether s is one of the JobStatus constants; the store refuses others.
func (s JobStatus) Valid() bool {
	switch s {
	case JobQueued, JobRunning, JobCompleted, JobFailed, JobNotApplicable, JobTimeout, JobInvalid:
		return true
	}
	return false
}

// Job is one AI job: one plugin asked about one study, for one study message.
//
// On PutJobs, ID, MessageID and Plugin are required; an empty Status is JobQueued, a zero
// Attempt is 1, an empty Channel is the message's. A zero Deadline never expires. A job
// put in a final status with a zero FinishedAt gets its UpdatedAt; an open job's
// FinishedAt is dropped. Empty Request and Result come back nil.
type Job struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"` // the study message the job was made for
	Channel   string    `json:"channel"`
	Plugin    string    `json:"plugin"`
	StudyUID  string    `json:"study_uid"`
	Accession string    `json:"accession,omitempty"`
	Mode      string    `json:"mode"`    // silent, notify or active, as configured when dispatched
	Attempt   int       `json:"attempt"` // engine-level attempt, from 1
	Status    JobStatus `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Deadline  time.Time `json:"deadline"`
	// FinishedAt is when the job reached a final status; zero while open.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Error says why a job failed, timed out or was invalid.
	Error         string `json:"error,omitempty"`
	ModelName     string `json:"model_name,omitempty"`
	ModelVersion  string `json:"model_version,omitempty"`
	PluginVersion string `json:"plugin_version,omitempty"`
	// LatencyMS is from the job's publication to its result being recorded.
	LatencyMS int64 `json:"latency_ms,omitempty"`
	// Request is the job as published, with its DICOMweb token removed.
	Request json.RawMessage `json:"request,omitempty"`
	// Result is the last result received, exactly as received (valid or not); nil when none.
	Result json.RawMessage `json:"result,omitempty"`
}

// JobUpdate changes one job, if its current status is one of From.
//
// Status is required. UpdatedAt becomes now. A final Status sets FinishedAt (to
// u.FinishedAt, or now when that is zero); an open Status (a new attempt re-queued after
// a timeout, say) clears it.
type JobUpdate struct {
	ID string
	// From lists the statuses the job may be in for the update to apply; empty means any
	// open status (queued or running).
	From   []JobStatus
	Status JobStatus
	// Zero values leave a field as it is, except Error, which is always set (so a new
	// attempt clears the last one's error).
	Attempt       int
	Deadline      time.Time
	FinishedAt    time.Time
	Error         string
	ModelName     string
	ModelVersion  string
	PluginVersion string
	LatencyMS     int64
	Result        json.RawMessage
}

// JobQuery selects jobs; empty fields match everything. Jobs come newest first by
// (CreatedAt, ID).
type JobQuery struct {
	MessageID string
	StudyUID  string
	Plugin    string
	Channel   string
	Status    []JobStatus
	Limit     int    // zero or less means DefaultLimit; at most MaxJobLimit
	Cursor    string // JobPage.Next of the previous page; another kind is ErrInvalidCursor
}

// MaxJobLimit caps JobQuery.Limit and the limit of ExpiredJobs.
const MaxJobLimit = 500

// JobPage is one page of jobs.
type JobPage struct {
	Jobs []Job  `json:"jobs"`
	Next string `json:"next,omitempty"`
}

// AnalysisStatus is where the reconciliation of a study's jobs stands.
type AnalysisStatus string

const (
	AnalysisOpen     AnalysisStatus = "open"     // some jobs are still open
	AnalysisComplete AnalysisStatus = "complete" // every job is final; result rules ran
)

// Valid reports whether s is one of the AnalysisStatus constants; the store refuses others.
func (s AnalysisStatus) Valid() bool { return s == AnalysisOpen || s == AnalysisComplete }

// Analysis is the reconciled outcome of the jobs of one study message.
//
// On PutAnalysis, MessageID is required; an empty Status is AnalysisOpen, an empty
// Channel is the message's. Empty Destinations, Rules and Body come back nil.
type Analysis struct {
	MessageID    string         `json:"message_id"` // the key
	Channel      string         `json:"channel"`
	StudyUID     string         `json:"study_uid"`
	Accession    string         `json:"accession,omitempty"`
	Status       AnalysisStatus `json:"status"`
	Priority     string         `json:"priority,omitempty"`
	Destinations []string       `json:"destinations,omitempty"`
	Rules        []string       `json:"rules,omitempty"` // the result rules that matched
	// Body is the reconciled analysis (the JSON of a mappings.Analysis).
	Body      json.RawMessage `json:"body,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// JobStore keeps AI jobs and the analyses reconciled from them. Every implementation of
// Store implements it; the conformance suite checks it on both.
//
// Times follow the Store rules (UTC, microseconds; a zero CreatedAt or UpdatedAt becomes
// now). Prune deletes the jobs and analysis of every message it deletes.
type JobStore interface {
	// PutJobs inserts jobs in one transaction; a job whose id exists is left as it is. A job
	// naming a message that is not stored fails with ErrNotFound and writes nothing.
	PutJobs(ctx context.Context, jobs []Job) error
	// UpdateJob applies u if the job's status is one of u.From (any open status when From
	// is empty) and returns the job as it is afterwards and whether u applied. A missing
	// job is ErrNotFound. The check and the write are one atomic step, so two engines
	// racing on the same job (a result against a deadline) never both win.
	UpdateJob(ctx context.Context, u JobUpdate) (Job, bool, error)
	// Job returns one job.
	Job(ctx context.Context, id string) (Job, error)
	// Jobs lists jobs, newest first, one page at a time.
	Jobs(ctx context.Context, q JobQuery) (JobPage, error)
	// ExpiredJobs returns up to limit open jobs whose deadline is before now, oldest
	// deadline first (then by id). limit follows the JobQuery.Limit rules.
	ExpiredJobs(ctx context.Context, now time.Time, limit int) ([]Job, error)
	// JobCounts counts jobs by plugin and status; a status no job of a plugin has is
	// absent rather than zero.
	JobCounts(ctx context.Context) (map[string]map[JobStatus]int64, error)
	// PutAnalysis creates or replaces the analysis of a message (CreatedAt of an existing
	// row is kept). A message that is not stored is ErrNotFound.
	PutAnalysis(ctx context.Context, a Analysis) error
	// Analysis returns the analysis of a message.
	Analysis(ctx context.Context, messageID string) (Analysis, error)
}
