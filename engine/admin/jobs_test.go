package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/store"
)

// listingEngine is the fake engine plus plugin discovery, as (*engine.Engine) has it.
type listingEngine struct {
	*fakeEngine
	mu          sync.Mutex
	plugins     []engine.PluginStatus
	err         error
	hadDeadline bool // the context of the last call had a deadline
}

func (l *listingEngine) Plugins(ctx context.Context) ([]engine.PluginStatus, error) {
	_, ok := ctx.Deadline()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hadDeadline = ok
	return l.plugins, l.err
}

func (l *listingEngine) deadlineSeen() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hadDeadline
}

var _ admin.PluginLister = (*listingEngine)(nil)

// withPlugins makes newEnv's engine a listingEngine; the returned pointer is set once
// newEnv has run.
func withPlugins(l **listingEngine, ps []engine.PluginStatus, err error) func(*admin.Options) {
	return func(o *admin.Options) {
		*l = &listingEngine{fakeEngine: o.Engine.(*fakeEngine), plugins: ps, err: err}
		o.Engine = *l
	}
}

// ichResult is a plugin result as the protocol has it.
const ichResult = `{"protocol":"1","job_id":"j1","plugin":"ich","status":"completed",` +
	`"model":{"name":"ich-net","version":"2.1.0"},"findings":[{"id":"f1","present":true,"confidence":0.93}]}`

const analysisBody = `{"id":"s1","revision":1,"status":"preliminary","channel":"studies","priority":"stat",` +
	`"rules":["ich-stat"],"findings":[{"id":"f1","plugin":"ich","job_id":"j1","present":true,"confidence":0.93}],` +
	`"results":[],"created_at":"2026-03-04T10:20:00Z"}`

// seedJobs adds two study messages, five jobs (j1 oldest, j5 newest) and one analysis to
// the env's store.
func seedJobs(t *testing.T, env *testEnv) {
	t.Helper()
	ctx := context.Background()
	st := env.store.Store
	if err := st.PutMessages(ctx, []store.Message{
		{ID: "s1", Channel: "studies", ContentType: "application/dicom+json", Raw: []byte(`{}`),
			ReceivedAt: base.Add(6 * time.Minute), Accession: "ACC10", Status: store.StatusQueued},
		{ID: "s2", Channel: "studies", ContentType: "application/dicom+json", Raw: []byte(`{}`),
			ReceivedAt: base.Add(7 * time.Minute), Accession: "ACC11", Status: store.StatusQueued},
	}); err != nil {
		t.Fatalf("seed study messages: %v", err)
	}
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	jobs := []store.Job{
		{ID: "j1", MessageID: "s1", Plugin: "ich", StudyUID: "1.2.3.1", Accession: "ACC10", Mode: "active",
			Status: store.JobCompleted, CreatedAt: at(10), UpdatedAt: at(11), Deadline: at(15),
			ModelName: "ich-net", ModelVersion: "2.1.0", PluginVersion: "1.4.0", LatencyMS: 42000,
			Request: json.RawMessage(`{"protocol":"1","job_id":"j1","plugin":"ich"}`), Result: json.RawMessage(ichResult)},
		{ID: "j2", MessageID: "s1", Plugin: "fracture", StudyUID: "1.2.3.1", Accession: "ACC10", Mode: "notify",
			Status: store.JobFailed, CreatedAt: at(11), UpdatedAt: at(12), Deadline: at(16), Error: "model crashed"},
		{ID: "j3", MessageID: "s2", Plugin: "ich", StudyUID: "1.2.3.2", Accession: "ACC11", Mode: "active",
			Status: store.JobQueued, CreatedAt: at(12), UpdatedAt: at(12), Deadline: at(17)},
		{ID: "j4", MessageID: "s2", Plugin: "fracture", StudyUID: "1.2.3.2", Mode: "notify",
			Status: store.JobTimeout, CreatedAt: at(13), UpdatedAt: at(18), Deadline: at(18), Error: "no result by the deadline"},
		// A result that is not JSON, as an older engine might have stored it.
		{ID: "j5", MessageID: "m3", Plugin: "lvo", StudyUID: "1.2.3.3", Mode: "silent",
			Status: store.JobInvalid, CreatedAt: at(14), UpdatedAt: at(15), Deadline: at(19), Error: "result: not JSON",
			Result: json.RawMessage("status: done")},
	}
	if err := st.PutJobs(ctx, jobs); err != nil {
		t.Fatalf("seed jobs: %v", err)
	}
	if err := st.PutAnalysis(ctx, store.Analysis{MessageID: "s1", StudyUID: "1.2.3.1", Accession: "ACC10",
		Status: store.AnalysisComplete, Priority: "stat", Destinations: []string{"ris", "ehr"}, Rules: []string{"ich-stat"},
		Body: json.RawMessage(analysisBody), CreatedAt: at(20), UpdatedAt: at(20)}); err != nil {
		t.Fatalf("seed analysis: %v", err)
	}
}

// serveReq sends a request built by the caller, for headers call does not set.
func serveReq(env *testEnv, req *http.Request) response {
	rec := httptest.NewRecorder()
	env.srv.Handler().ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func newJobsEnv(t *testing.T, mod ...func(*admin.Options)) *testEnv {
	t.Helper()
	env := newEnv(t, mod...)
	seedJobs(t, env)
	return env
}

type jobPage struct {
	Jobs []store.Job `json:"jobs"`
	Next string      `json:"next"`
}

func jobIDs(p jobPage) []string {
	var ids []string
	for _, j := range p.Jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

func TestListJobs(t *testing.T) {
	env := newJobsEnv(t)
	tests := []struct {
		name, query string
		want        []string // newest first
	}{
		{"everything", "", []string{"j5", "j4", "j3", "j2", "j1"}},
		{"study", "study=1.2.3.1", []string{"j2", "j1"}},
		{"message", "message=s2", []string{"j4", "j3"}},
		{"plugin", "plugin=ich", []string{"j3", "j1"}},
		{"channel, defaulted from the message", "channel=orders", []string{"j5"}},
		{"channel", "channel=studies", []string{"j4", "j3", "j2", "j1"}},
		{"one status", "status=queued", []string{"j3"}},
		{"repeated status", "status=failed&status=timeout", []string{"j4", "j2"}},
		{"comma separated status", "status=failed,timeout,invalid", []string{"j5", "j4", "j2"}},
		{"status with blanks and a repeat", "status=+failed+,,failed,", []string{"j2"}},
		{"empty status is no filter", "status=", []string{"j5", "j4", "j3", "j2", "j1"}},
		{"combined", "study=1.2.3.2&plugin=fracture&status=timeout", []string{"j4"}},
		{"no match", "study=1.2.3.1&status=queued", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := env.call(t, "GET", "/api/v1/jobs?"+tt.query, readToken)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			p := decode[jobPage](t, r)
			if got := jobIDs(p); !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if p.Jobs == nil {
				t.Errorf("jobs is null, want [] (body %s)", r.body)
			}
			if p.Next != "" {
				t.Errorf("next = %q on the only page", p.Next)
			}
		})
	}

	t.Run("job fields, request and result inline", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/jobs?plugin=ich&status=completed", readToken)
		var raw struct {
			Jobs []map[string]any `json:"jobs"`
		}
		if err := json.Unmarshal(r.body, &raw); err != nil || len(raw.Jobs) != 1 {
			t.Fatalf("body %s: %v", r.body, err)
		}
		j := raw.Jobs[0]
		want := map[string]any{"id": "j1", "message_id": "s1", "channel": "studies", "plugin": "ich", "study_uid": "1.2.3.1",
			"accession": "ACC10", "mode": "active", "attempt": 1.0, "status": "completed", "model_name": "ich-net",
			"model_version": "2.1.0", "plugin_version": "1.4.0", "latency_ms": 42000.0,
			"created_at": "2026-03-04T10:10:00Z", "finished_at": "2026-03-04T10:11:00Z", "deadline": "2026-03-04T10:15:00Z"}
		for k, v := range want {
			if j[k] != v {
				t.Errorf("%s = %v, want %v", k, j[k], v)
			}
		}
		res, ok := j["result"].(map[string]any)
		if !ok || res["status"] != "completed" || res["model"].(map[string]any)["name"] != "ich-net" {
			t.Errorf("result = %#v, want the plugin's result as a JSON object", j["result"])
		}
		if req, ok := j["request"].(map[string]any); !ok || req["job_id"] != "j1" {
			t.Errorf("request = %#v, want the job as published, as an object", j["request"])
		}
	})
	t.Run("a result that is not JSON comes out as a string", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/jobs?plugin=lvo", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		p := decode[jobPage](t, r)
		if len(p.Jobs) != 1 || string(p.Jobs[0].Result) != `"status: done"` {
			t.Fatalf("jobs = %+v, want j5 with its result as a JSON string", p.Jobs)
		}
		if _, ok := decode[map[string]any](t, r)["jobs"].([]any)[0].(map[string]any)["request"]; ok {
			t.Errorf("a job without a request shows one: %s", r.body)
		}
	})

	bad := []struct {
		name, query, want string
	}{
		{"unknown status lists the valid ones", "status=done",
			`parameter status: "done" is not a job status; use queued, running, completed, failed, not_applicable, timeout, invalid`},
		{"unknown status inside a list", "status=failed,sent", `"sent" is not a job status`},
		{"message status is not a job status", "status=queued&status=error", `"error" is not a job status`},
		{"limit zero", "limit=0", "parameter limit"},
		{"limit above the job store's", "limit=501", `parameter limit: "501" is not a whole number from 1 to 500`},
		{"limit not a number", "limit=all", "parameter limit"},
		{"unknown parameter", "study_uid=1.2.3.1", "parameter study_uid: unknown parameter; this route takes study, message"},
		{"repeated parameter", "plugin=ich&plugin=lvo", "parameter plugin: given 2 times"},
		{"cursor from nowhere", "cursor=bm9wZQ", "parameter cursor: not a cursor"},
		{"malformed query", "plugin=%zz", "malformed query"},
	}
	for _, tt := range bad {
		t.Run("400/"+tt.name, func(t *testing.T) {
			wantError(t, env.call(t, "GET", "/api/v1/jobs?"+tt.query, readToken), 400, tt.want)
		})
	}
	t.Run("400/a messages cursor is not a jobs cursor", func(t *testing.T) {
		p := decode[struct {
			Messages []map[string]any `json:"messages"`
			Next     string           `json:"next"`
		}](t, env.call(t, "GET", "/api/v1/messages?limit=1", readToken))
		if p.Next == "" {
			t.Fatal("messages search gave no next cursor")
		}
		wantError(t, env.call(t, "GET", "/api/v1/jobs?cursor="+url.QueryEscape(p.Next), readToken), 400, "parameter cursor")
	})
}

func TestJobPagination(t *testing.T) {
	env := newJobsEnv(t)
	tests := []struct {
		name, filter string
		limit        int
		want         []string
	}{
		{"all, two at a time", "", 2, []string{"j5", "j4", "j3", "j2", "j1"}},
		{"all, one at a time", "", 1, []string{"j5", "j4", "j3", "j2", "j1"}},
		{"filtered", "channel=studies&", 3, []string{"j4", "j3", "j2", "j1"}},
		{"a page exactly full", "study=1.2.3.1&", 2, []string{"j2", "j1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			target := fmt.Sprintf("/api/v1/jobs?%slimit=%d", tt.filter, tt.limit)
			for pages := 0; ; pages++ {
				if pages > len(tt.want) {
					t.Fatalf("more pages than jobs; ids so far %v", got)
				}
				r := env.call(t, "GET", target, readToken)
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				p := decode[jobPage](t, r)
				if len(p.Jobs) > tt.limit {
					t.Fatalf("page of %d with limit=%d", len(p.Jobs), tt.limit)
				}
				got = append(got, jobIDs(p)...)
				if p.Next == "" {
					break
				}
				target = fmt.Sprintf("/api/v1/jobs?%slimit=%d&cursor=%s", tt.filter, tt.limit, url.QueryEscape(p.Next))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("walked ids = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGetJob(t *testing.T) {
	env := newJobsEnv(t)
	t.Run("found", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/jobs/j2", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		j := decode[store.Job](t, r)
		if j.ID != "j2" || j.Plugin != "fracture" || j.Status != store.JobFailed || j.Error != "model crashed" ||
			j.Channel != "studies" || !j.FinishedAt.Equal(base.Add(12*time.Minute)) {
			t.Errorf("job = %+v", j)
		}
	})
	t.Run("result that is not JSON", func(t *testing.T) {
		j := decode[store.Job](t, env.call(t, "GET", "/api/v1/jobs/j5", readToken))
		if string(j.Result) != `"status: done"` {
			t.Errorf("result = %s", j.Result)
		}
	})
	t.Run("escaped id", func(t *testing.T) {
		if j := decode[store.Job](t, env.call(t, "GET", "/api/v1/jobs/j%31", readToken)); j.ID != "j1" {
			t.Errorf("id = %q, want j1", j.ID)
		}
	})
	t.Run("missing is 404 naming the id", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/jobs/nope", readToken), 404, `job "nope" not found`)
	})
	t.Run("parameters are refused", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/jobs/j1?full=1", readToken), 400, "parameter full")
	})
}

func TestGetAnalysis(t *testing.T) {
	env := newJobsEnv(t)
	t.Run("found, body inline", func(t *testing.T) {
		r := env.call(t, "GET", "/api/v1/messages/s1/analysis", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		a := decode[store.Analysis](t, r)
		if a.MessageID != "s1" || a.Channel != "studies" || a.StudyUID != "1.2.3.1" || a.Status != store.AnalysisComplete ||
			a.Priority != "stat" || !slices.Equal(a.Destinations, []string{"ris", "ehr"}) || !slices.Equal(a.Rules, []string{"ich-stat"}) {
			t.Errorf("analysis = %+v", a)
		}
		var body struct {
			ID       string `json:"id"`
			Findings []struct {
				JobID      string  `json:"job_id"`
				Confidence float64 `json:"confidence"`
			} `json:"findings"`
		}
		if err := json.Unmarshal(a.Body, &body); err != nil || body.ID != "s1" || len(body.Findings) != 1 || body.Findings[0].JobID != "j1" {
			t.Errorf("body = %s (%v), want the reconciled analysis", a.Body, err)
		}
		if !bytes.Contains(r.body, []byte(`"body":{"id":"s1"`)) {
			t.Errorf("body is not inline JSON: %s", r.body)
		}
	})
	tests := []struct{ name, id string }{
		{"message without analysis", "s2"},
		{"message that does not exist", "nope"},
	}
	for _, tt := range tests {
		t.Run("404/"+tt.name, func(t *testing.T) {
			wantError(t, env.call(t, "GET", "/api/v1/messages/"+tt.id+"/analysis", readToken), 404,
				fmt.Sprintf("no analysis of message %q", tt.id))
		})
	}
	t.Run("parameters are refused", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/messages/s1/analysis?rev=1", readToken), 400, "parameter rev")
	})
	t.Run("the message route is unchanged", func(t *testing.T) {
		if r := env.call(t, "GET", "/api/v1/messages/s1", readToken); r.status != 200 || !bytes.Contains(r.body, []byte(`"id":"s1"`)) {
			t.Errorf("GET message = %d %s", r.status, r.body)
		}
	})
}

func TestPlugins(t *testing.T) {
	status := []engine.PluginStatus{
		// Out of order and with nil lists, as a careless engine might give them.
		{Name: "lvo", Versions: nil, Instances: nil, Jobs: nil},
		{Name: "ich", Configured: true, Channels: []string{"studies"}, Mode: "active", MinVersion: "1.2.0",
			Versions: []string{"1.1.0", "1.4.0"},
			Instances: []engine.PluginInstance{{ID: "a1", Version: "1.4.0", Metadata: map[string]string{"model": "ich-net"}},
				{ID: "b2", Version: "1.1.0", BelowMinimum: true}},
			Jobs:     map[string]int64{"completed": 40, "queued": 2, "running": 1, "failed": 3, "timeout": 1},
			InFlight: 3, Errors: 3, Timeouts: 1,
			Latency: engine.LatencySummary{Count: 40, P50MS: 8100, P99MS: 30200, MaxMS: 41000}},
	}
	t.Run("list", func(t *testing.T) {
		var l *listingEngine
		env := newEnv(t, withPlugins(&l, status, nil))
		r := env.call(t, "GET", "/api/v1/plugins", readToken)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		got := decode[struct {
			Plugins []engine.PluginStatus `json:"plugins"`
		}](t, r).Plugins
		if len(got) != 2 || got[0].Name != "ich" || got[1].Name != "lvo" {
			t.Fatalf("plugins = %+v, want ich then lvo", got)
		}
		ich := got[0]
		if !ich.Configured || ich.MinVersion != "1.2.0" || !slices.Equal(ich.Versions, []string{"1.1.0", "1.4.0"}) ||
			len(ich.Instances) != 2 || !ich.Instances[1].BelowMinimum || ich.Instances[0].Metadata["model"] != "ich-net" ||
			ich.Jobs["completed"] != 40 || ich.InFlight != 3 || ich.Errors != 3 || ich.Timeouts != 1 ||
			ich.Latency != status[1].Latency {
			t.Errorf("ich = %+v, want it as the engine reported it", ich)
		}
		if !bytes.Contains(r.body, []byte(`{"name":"lvo","configured":false,"versions":[],"instances":[],"jobs":{},`)) {
			t.Errorf("a plugin without versions, instances or jobs should list [] and {}: %s", r.body)
		}
		if !l.deadlineSeen() {
			t.Error("the engine was asked without a deadline; a hung discovery would hang the request")
		}
	})
	t.Run("none is an empty array", func(t *testing.T) {
		var l *listingEngine
		env := newEnv(t, withPlugins(&l, nil, nil))
		r := env.call(t, "GET", "/api/v1/plugins", readToken)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"plugins":[]}` {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
	t.Run("engine failure is a generic 500", func(t *testing.T) {
		var l *listingEngine
		env := newEnv(t, withPlugins(&l, nil, errBoom))
		r := env.call(t, "GET", "/api/v1/plugins", readToken)
		wantError(t, r, 500, "internal server error")
		if bytes.Contains(r.body, []byte("disk on fire")) || !strings.Contains(env.logs.String(), "disk on fire") {
			t.Errorf("cause leaked or not logged: body %s", r.body)
		}
	})
	t.Run("an engine that does not list plugins is 501", func(t *testing.T) {
		env := newEnv(t)
		wantError(t, env.call(t, "GET", "/api/v1/plugins", readToken), http.StatusNotImplemented, "does not report plugins")
	})
	t.Run("parameters are refused", func(t *testing.T) {
		var l *listingEngine
		env := newEnv(t, withPlugins(&l, status, nil))
		wantError(t, env.call(t, "GET", "/api/v1/plugins?name=ich", readToken), 400, "parameter name")
	})
}

func TestJobRoutesAuth(t *testing.T) {
	var l *listingEngine
	env := newEnv(t, withPlugins(&l, nil, nil))
	seedJobs(t, env)
	paths := []string{"/api/v1/plugins", "/api/v1/jobs", "/api/v1/jobs?study=1.2.3.1&status=failed", "/api/v1/jobs/j1",
		"/api/v1/messages/s1/analysis"}
	tokens := []struct {
		name, header string
		get, post    int
	}{
		{"none", "", 401, 401},
		{"unknown", "Bearer not-a-token", 401, 401},
		{"read", "Bearer " + readToken, 200, 403},
		{"admin", "Bearer " + adminToken, 200, 405}, // read-only routes: no method writes
	}
	for _, p := range paths {
		for _, tk := range tokens {
			for _, m := range []struct {
				method string
				want   int
			}{{"GET", tk.get}, {"POST", tk.post}} {
				t.Run(m.method+" "+p+"/"+tk.name, func(t *testing.T) {
					req, _ := http.NewRequest(m.method, p, nil)
					if tk.header != "" {
						req.Header.Set("Authorization", tk.header)
					}
					r := serveReq(env, req)
					if r.status != m.want {
						t.Fatalf("status = %d, want %d; body %s", r.status, m.want, r.body)
					}
					switch m.want {
					case 401:
						if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
							t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
						}
						wantError(t, r, 401, "token")
					case 403:
						wantError(t, r, 403, `role "read"`)
					case 200:
						if r.header.Get("Cache-Control") != "no-store" {
							t.Errorf("Cache-Control = %q, want no-store (answers can hold PHI)", r.header.Get("Cache-Control"))
						}
					}
				})
			}
		}
	}
	t.Run("a missing job is 401 without a token, not 404", func(t *testing.T) {
		wantError(t, env.call(t, "GET", "/api/v1/jobs/nope", ""), 401, "missing bearer token")
	})
}
