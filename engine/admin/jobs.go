package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/store"
)

// PluginLister is the optional part of an Engine that reports the AI plugins it knows of.
// It is not in Engine, so an engine without AI dispatch still serves the rest of the API;
// GET /api/v1/plugins answers 501 for one. (*engine.Engine) implements it.
type PluginLister interface {
	// Plugins reports every plugin that is configured, has stored jobs or answered
	// discovery, in name order.
	Plugins(ctx context.Context) ([]engine.PluginStatus, error)
}

// pluginsTimeout bounds a plugin listing: discovery waits for answers over NATS and the
// job counts come from the store, and a dashboard must get an answer, not a hung request.
const pluginsTimeout = 5 * time.Second

// pluginList is the answer of GET /api/v1/plugins.
type pluginList struct {
	Plugins []engine.PluginStatus `json:"plugins"`
}

func (s *Server) listPlugins(c echo.Context) error {
	if _, err := queryParams(c); err != nil {
		return err
	}
	pl, ok := s.eng.(PluginLister)
	if !ok {
		return &Error{Status: http.StatusNotImplemented, Message: "this engine does not report plugins"}
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), pluginsTimeout)
	defer cancel()
	ps, err := pl.Plugins(ctx)
	if err != nil {
		return fmt.Errorf("list plugins: %w", err)
	}
	ps = slices.Clone(ps)
	if ps == nil {
		ps = []engine.PluginStatus{}
	}
	slices.SortFunc(ps, func(a, b engine.PluginStatus) int { return strings.Compare(a.Name, b.Name) })
	// Lists and maps are always present, so a client never has to tell null from empty.
	for i := range ps {
		if ps[i].Versions == nil {
			ps[i].Versions = []string{}
		}
		if ps[i].Instances == nil {
			ps[i].Instances = []engine.PluginInstance{}
		}
		if ps[i].Jobs == nil {
			ps[i].Jobs = map[string]int64{}
		}
	}
	return c.JSON(http.StatusOK, pluginList{Plugins: ps})
}

// jobStatuses are the statuses a job filter accepts, in the order of a job's life.
var jobStatuses = []store.JobStatus{store.JobQueued, store.JobRunning, store.JobCompleted,
	store.JobFailed, store.JobNotApplicable, store.JobTimeout, store.JobInvalid}

// jobParams are the parameters of GET /api/v1/jobs.
var jobParams = []string{"study", "message", "plugin", "channel", "status", "limit", "cursor"}

// jobList is the answer of GET /api/v1/jobs.
type jobList struct {
	Jobs []store.Job `json:"jobs"`
	Next string      `json:"next,omitempty"`
}

func (s *Server) listJobs(c echo.Context) error {
	p, sts, err := jobQuery(c)
	if err != nil {
		return err
	}
	q := store.JobQuery{
		StudyUID:  p.str("study"),
		MessageID: p.str("message"),
		Plugin:    p.str("plugin"),
		Channel:   p.str("channel"),
		Status:    sts,
		Cursor:    p.str("cursor"),
	}
	if q.Limit, err = jobLimit(p); err != nil {
		return err
	}
	page, err := s.store.Jobs(c.Request().Context(), q)
	if errors.Is(err, store.ErrInvalidCursor) {
		return badParam("cursor", "not a cursor from a previous page's next")
	}
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	res := jobList{Jobs: make([]store.Job, len(page.Jobs)), Next: page.Next}
	for i, j := range page.Jobs {
		res.Jobs[i] = viewJob(j)
	}
	return c.JSON(http.StatusOK, res)
}

// jobQuery reads the query of GET /api/v1/jobs as strictly as queryParams does, except
// that status may be repeated or comma separated: several statuses are a list
// (status=failed&status=timeout), not a typo.
func jobQuery(c echo.Context) (params, []store.JobStatus, error) {
	v, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return params{}, nil, &Error{Status: http.StatusBadRequest, Message: "malformed query string"}
	}
	names := make([]string, 0, len(v))
	for name := range v {
		names = append(names, name)
	}
	sort.Strings(names) // report the same parameter first every time
	for _, name := range names {
		if !slices.Contains(jobParams, name) {
			return params{}, nil, badParam(name, "unknown parameter; this route takes %s", strings.Join(jobParams, ", "))
		}
		if name != "status" && len(v[name]) > 1 {
			return params{}, nil, badParam(name, "given %d times; give it once", len(v[name]))
		}
	}
	var sts []store.JobStatus
	for _, val := range v["status"] {
		for part := range strings.SplitSeq(val, ",") {
			st := store.JobStatus(strings.TrimSpace(part))
			switch {
			case st == "":
				continue // status= or a trailing comma: no filter from it
			case !st.Valid():
				return params{}, nil, badParam("status", "%q is not a job status; use %s", st, joinStatuses())
			case !slices.Contains(sts, st):
				sts = append(sts, st)
			}
		}
	}
	return params{v: v}, sts, nil
}

func joinStatuses() string {
	names := make([]string, len(jobStatuses))
	for i, st := range jobStatuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// jobLimit is params.limit with the job store's smaller maximum: a limit the store would
// cut silently is refused instead, so a client never mistakes a short page for the end.
func jobLimit(p params) (int, error) {
	s := p.str("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > store.MaxJobLimit {
		return 0, badParam("limit", "%q is not a whole number from 1 to %d", s, store.MaxJobLimit)
	}
	return n, nil
}

func (s *Server) getJob(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	j, err := s.store.Job(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("job %q not found", id), Err: err}
	}
	if err != nil {
		return fmt.Errorf("get job: %w", err)
	}
	return c.JSON(http.StatusOK, viewJob(j))
}

func (s *Server) getAnalysis(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	a, err := s.store.Analysis(c.Request().Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		// A message that is not a study, one whose jobs were never made, and one that does
		// not exist all look the same here; the message route tells them apart.
		return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("no analysis of message %q", id), Err: err}
	}
	if err != nil {
		return fmt.Errorf("get analysis: %w", err)
	}
	a.Body = inlineJSON(a.Body)
	return c.JSON(http.StatusOK, a)
}

// viewJob makes a job safe to marshal: its request and result go out inline as JSON.
func viewJob(j store.Job) store.Job {
	j.Request, j.Result = inlineJSON(j.Request), inlineJSON(j.Result)
	return j
}

// inlineJSON returns b as it is when it is JSON, and as a JSON string otherwise. The engine
// stores a result that was not JSON as a string already; this keeps one bad row from
// failing a whole page (json.RawMessage that is not JSON cannot be marshalled).
func inlineJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b)) // a string always marshals; bad UTF-8 becomes U+FFFD
	return s
}

var _ PluginLister = (*engine.Engine)(nil)

// Withdrawer is the optional part of an Engine that retracts an analysis already sent.
type Withdrawer interface {
	Withdraw(ctx context.Context, messageID, reason string) (revision int, err error)
}

var _ Withdrawer = (*engine.Engine)(nil)

// withdrawRequest is the body of POST /api/v1/messages/{id}/analysis/withdraw.
type withdrawRequest struct {
	Reason string `json:"reason"`
}

// withdrawResult is its answer.
type withdrawResult struct {
	MessageID string `json:"message_id"`
	Revision  int    `json:"revision"`
	Status    string `json:"status"`
}

func (s *Server) withdrawAnalysis(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	wd, ok := s.eng.(Withdrawer)
	if !ok {
		return &Error{Status: http.StatusNotImplemented, Message: "this engine does not withdraw analyses"}
	}
	var req withdrawRequest
	if c.Request().ContentLength != 0 {
		if err := json.NewDecoder(c.Request().Body).Decode(&req); err != nil {
			return &Error{Status: http.StatusBadRequest, Message: "body: want {\"reason\": \"...\"}: " + err.Error(), Err: err}
		}
	}
	if strings.TrimSpace(req.Reason) == "" {
		return &Error{Status: http.StatusBadRequest, Message: "a reason is required: it is recorded in the message history"}
	}
	rev, err := wd.Withdraw(c.Request().Context(), id, req.Reason)
	if err != nil {
		return err
	}
	s.log.Info("admin: analysis withdrawn", "message_id", id, "revision", rev, "token", c.Get(principalKey))
	return c.JSON(http.StatusAccepted, withdrawResult{MessageID: id, Revision: rev, Status: "withdrawn"})
}
