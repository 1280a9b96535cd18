package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// The plugin layer is tested with the engine on a real NATS and a real store, and with
// plugins that speak the protocol on their own connection: each test plugin below binds to
// its jobs consumer, pulls, and publishes results exactly as docs/plugins.md says (it is not
// the SDK, so these tests also hold the engine to the written protocol).

// testPlugin is a plugin instance driven by answer.
type testPlugin struct {
	name   string
	nc     *nats.Conn
	answer func(j protocol.Job) (protocol.Result, bool) // false: take the job and never answer
	jobs   atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

func startPlugin(t *testing.T, br *brokertest.Server, name string, answer func(protocol.Job) (protocol.Result, bool)) *testPlugin {
	t.Helper()
	var opts []nats.Option
	if br.Broker.Embedded() {
		opts = append(opts, nats.UserCredentials(br.CredsFile(t, "plugin-"+name, nil)))
	}
	nc, err := nats.Connect(br.Broker.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testPlugin{name: name, nc: nc, answer: answer, cancel: cancel, done: make(chan struct{})}
	var cons jetstream.Consumer
	waitFor(t, "jobs consumer of "+name, 10*time.Second, func() bool {
		cons, err = js.Consumer(ctx, protocol.JobsStream(name), protocol.Consumer(name))
		return err == nil
	})
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
			if err != nil {
				continue
			}
			for m := range batch.Messages() {
				p.jobs.Add(1)
				j, err := protocol.DecodeJob(m.Data())
				if err != nil {
					_ = m.Term()
					continue
				}
				r, ok := p.answer(j)
				if !ok {
					continue // holds the job: no ack, no progress
				}
				out := nats.NewMsg(protocol.ResultsSubject(name))
				out.Data, _ = json.Marshal(r)
				out.Header.Set(jetstream.MsgIDHeader, protocol.ResultMsgID(j.JobID, j.Attempt))
				out.Header.Set(protocol.HeaderPluginVersion, "1.2.0")
				if _, err := js.PublishMsg(ctx, out); err != nil {
					continue
				}
				_ = m.Ack()
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *testPlugin) stop() {
	p.cancel()
	<-p.done
	p.nc.Close()
}

// completed answers a job with one finding of the job's first instance.
func completed(code string, present bool, confidence float64) func(protocol.Job) (protocol.Result, bool) {
	return func(j protocol.Job) (protocol.Result, bool) {
		f := protocol.Finding{ID: "f1", Code: protocol.Coding{System: protocol.SystemSNOMED, Code: code, Display: "Finding " + code},
			Present: present, Confidence: confidence,
			Measurements: []protocol.Measurement{{Name: "volume", Value: 14.5, Unit: "mL"}}}
		if s := j.Study.Series; len(s) > 0 && len(s[0].Instances) > 0 {
			f.References = []protocol.Reference{{SeriesInstanceUID: s[0].SeriesInstanceUID, SOPInstanceUID: s[0].Instances[0].SOPInstanceUID}}
		}
		return protocol.Result{Protocol: protocol.Version, JobID: j.JobID, Plugin: j.Plugin, Status: protocol.StatusCompleted,
			Model: protocol.Model{Name: "test-" + j.Plugin, Version: "7.1"}, Findings: []protocol.Finding{f},
			Summary: j.Plugin + " looked"}, true
	}
}

func (h *ctxHarness) jobs(msgID string) []store.Job {
	p, err := h.st.Jobs(context.Background(), store.JobQuery{MessageID: msgID})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.SortFunc(p.Jobs, func(a, b store.Job) int { return strings.Compare(a.Plugin, b.Plugin) })
	return p.Jobs
}

func (h *ctxHarness) waitAnalysis(msgID string, timeout time.Duration) store.Analysis {
	h.t.Helper()
	var a store.Analysis
	waitFor(h.t, "analysis of "+msgID, timeout, func() bool {
		var err error
		a, err = h.st.Analysis(context.Background(), msgID)
		return err == nil && a.Status == store.AnalysisComplete
	})
	return a
}

// aiChannel is a studies channel with two plugins and result rules; mode and timeout are
// the ich plugin's.
func aiChannel(mode, timeout string, attempts int) string {
	return fmt.Sprintf(`
  - name: studies
    source: {push: {key: studies}}
    plugins:
      - name: ich
        mode: %s
        timeout: %s
        max_attempts: %d
      - name: pe
        mode: notify
        timeout: 1m
    route:
      - name: head-ct
        when: 'study.Modality == "CT" && study.BodyPart == "HEAD" && !study.Contrast'
        plugins: [ich]
      - name: chest-ct
        when: 'study.Modality == "CT" && study.BodyPart == "CHEST"'
        plugins: [pe]
      - name: trauma
        when: 'study.Description contains "TRAUMA"'
        plugins: [ich, pe]
    result_rules:
      - name: ich-stat
        when: 'finding("1386000").Present && finding("1386000").Confidence >= 0.85'
        priority: stat
        destinations: [ris, ehr]
      - name: any-positive
        when: positive
        destinations: [ehr]
      - name: timed-out
        when: 'plugins["ich"] == "timeout"'
        destinations: [ops]
    destinations:
      - name: ris
        record: {key: ris}
      - name: ehr
        record: {key: ehr}
      - name: ops
        record: {key: ops}
`, mode, timeout, attempts)
}

func TestRoutingRulesChooseThePlugins(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	tests := []struct {
		name              string
		modality, body    string
		description       string
		want              []string
		wantStatus        store.Status
		wantStageContains string
	}{
		{"head ct", "CT", "HEAD", "CT HEAD WO", []string{"ich"}, store.StatusQueued, "head-ct matched; jobs for ich"},
		{"chest ct", "CT", "CHEST", "CT CHEST", []string{"pe"}, store.StatusQueued, "chest-ct matched; jobs for pe"},
		{"trauma head ct goes to both once", "CT", "HEAD", "CT HEAD TRAUMA", []string{"ich", "pe"}, store.StatusQueued, "head-ct, trauma matched; jobs for ich, pe"},
		{"mr is not routed", "MR", "HEAD", "MR BRAIN", nil, store.StatusFiltered, "no rule matched"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := h.send("studies", engine.ContentStudy, studyJSON(t, fmt.Sprintf("ACC%d", i), tt.modality, tt.body, tt.description))
			// Stages are written after the message row: wait for the route stage itself.
			waitFor(t, "route stage", 10*time.Second, func() bool {
				return slices.ContainsFunc(stageNames(h.detail(id)), func(s string) bool { return strings.Contains(s, tt.wantStageContains) })
			})
			if st := h.detail(id).Message.Status; st != tt.wantStatus {
				t.Errorf("status %s, want %s", st, tt.wantStatus)
			}
			var got []string
			for _, j := range h.jobs(id) {
				got = append(got, j.Plugin)
				if j.Status != store.JobQueued || j.Attempt != 1 || j.StudyUID == "" || j.Deadline.IsZero() {
					t.Errorf("job %+v: want queued attempt 1 with study and deadline", j)
				}
				var req protocol.Job
				if err := json.Unmarshal(j.Request, &req); err != nil {
					t.Fatal(err)
				}
				if req.Patient.PseudoID == "" || strings.Contains(string(j.Request), "MRN1") {
					t.Errorf("job request is not pseudonymised: %s", j.Request)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("jobs for %v, want %v", got, tt.want)
			}
			for _, p := range tt.want {
				if n := streamMsgs(t, br, protocol.JobsStream(p)); n == 0 {
					t.Errorf("no job waiting in %s", protocol.JobsStream(p))
				}
			}
		})
	}
}

func streamMsgs(t *testing.T, br *brokertest.Server, stream string) uint64 {
	t.Helper()
	s, err := br.Broker.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func decodeAnalysis(t *testing.T, b []byte) mappings.Analysis {
	t.Helper()
	var a mappings.Analysis
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("analysis: %v: %s", err, b)
	}
	return a
}

func TestPositiveResultGoesWhereTheRulesSay(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	startPlugin(t, br, "ich", completed("1386000", true, 0.93))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	a := h.waitAnalysis(id, 15*time.Second)
	if a.Priority != "stat" || !slices.Equal(a.Destinations, []string{"ris", "ehr"}) || !slices.Equal(a.Rules, []string{"ich-stat", "any-positive"}) {
		t.Errorf("analysis priority %q destinations %v rules %v; want stat, [ris ehr], [ich-stat any-positive]", a.Priority, a.Destinations, a.Rules)
	}
	waitFor(t, "delivered to ris and ehr", 10*time.Second, func() bool {
		return slices.Contains(h.rec.got("ris"), id) && slices.Contains(h.rec.got("ehr"), id)
	})
	if got := h.rec.got("ops"); len(got) != 0 {
		t.Errorf("ops got %v; no rule named it", got)
	}
	h.waitStatus(id, store.StatusSent, 10*time.Second)
	j := h.jobs(id)[0]
	if j.Status != store.JobCompleted || j.ModelName != "test-ich" || j.ModelVersion != "7.1" || j.PluginVersion != "1.2.0" || j.Result == nil {
		t.Errorf("job after result: %+v", j)
	}
	body := decodeAnalysis(t, a.Body)
	if body.Priority != "stat" || len(body.Findings) != 1 || body.Findings[0].Plugin != "ich" || body.Findings[0].Model.Version != "7.1" ||
		body.Study.AccessionNumber != "ACC1" || body.ID != id {
		t.Errorf("analysis body: %+v", body)
	}
	del, err := h.st.Delivery(context.Background(), id, "ris")
	if err != nil || !strings.Contains(string(del.Payload), `"priority":"stat"`) {
		t.Errorf("ris delivery payload %s, %v", del.Payload, err)
	}
}

func TestSilentModeStoresButSendsNothing(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("silent", "1m", 1))
	startPlugin(t, br, "ich", completed("1386000", true, 0.99))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	a := h.waitAnalysis(id, 15*time.Second)
	if len(a.Destinations) != 0 || a.Priority != "" {
		t.Errorf("silent analysis goes to %v with priority %q", a.Destinations, a.Priority)
	}
	d := h.waitStatus(id, store.StatusFiltered, 10*time.Second)
	if !slices.ContainsFunc(stageNames(d), func(s string) bool {
		return strings.Contains(s, "every plugin is silent: rules ich-stat, any-positive would send it to ris, ehr")
	}) {
		t.Errorf("stages %q do not say the rules were silenced", stageNames(d))
	}
	if j := h.jobs(id)[0]; j.Status != store.JobCompleted || j.Result == nil {
		t.Errorf("silent result not stored: %+v", j)
	}
	for _, k := range []string{"ris", "ehr", "ops"} {
		if got := h.rec.got(k); len(got) > 0 {
			t.Errorf("%s got %v in silent mode", k, got)
		}
	}
}

func TestNotifyModeSendsWithoutPriority(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("notify", "1m", 1))
	startPlugin(t, br, "ich", completed("1386000", true, 0.99))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	a := h.waitAnalysis(id, 15*time.Second)
	if a.Priority != "" || !slices.Equal(a.Destinations, []string{"ris", "ehr"}) {
		t.Errorf("notify analysis: priority %q destinations %v; want none and [ris ehr]", a.Priority, a.Destinations)
	}
	waitFor(t, "delivered to ris", 10*time.Second, func() bool { return slices.Contains(h.rec.got("ris"), id) })
}

func TestPluginDownThenUpLosesNoJob(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	h.waitStatus(id, store.StatusQueued, 10*time.Second)
	waitFor(t, "job waiting in the stream", 10*time.Second, func() bool { return streamMsgs(t, br, protocol.JobsStream("ich")) == 1 })
	if j := h.jobs(id); len(j) != 1 || j[0].Status != store.JobQueued {
		t.Fatalf("jobs while the plugin is down: %+v", j)
	}
	p := startPlugin(t, br, "ich", completed("1386000", false, 0.97))
	a := h.waitAnalysis(id, 15*time.Second)
	if p.jobs.Load() != 1 {
		t.Errorf("plugin took %d jobs, want 1", p.jobs.Load())
	}
	if a.Priority != "" || len(a.Destinations) != 0 {
		t.Errorf("negative finding: priority %q destinations %v", a.Priority, a.Destinations)
	}
	if n := streamMsgs(t, br, protocol.JobsStream("ich")); n != 0 {
		t.Errorf("%d jobs left in the work queue after the ack", n)
	}
}

func TestDeadlinePassedIsATimeoutNotAHang(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1s", 1))
	// The plugin takes the job and never answers, like one that hangs.
	startPlugin(t, br, "ich", func(protocol.Job) (protocol.Result, bool) { return protocol.Result{}, false })
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	a := h.waitAnalysis(id, 20*time.Second)
	j := h.jobs(id)[0]
	if j.Status != store.JobTimeout || !strings.Contains(j.Error, "no result within 1s") {
		t.Errorf("job: status %s error %q; want timeout", j.Status, j.Error)
	}
	if !slices.Equal(a.Destinations, []string{"ops"}) {
		t.Errorf("timed-out analysis goes to %v, want [ops] (rule timed-out)", a.Destinations)
	}
	waitFor(t, "ops told", 10*time.Second, func() bool { return slices.Contains(h.rec.got("ops"), id) })
}

func TestFailedAttemptIsRetriedUpToMaxAttempts(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 2))
	var attempts []int
	var mu sync.Mutex
	ok := completed("1386000", true, 0.9)
	startPlugin(t, br, "ich", func(j protocol.Job) (protocol.Result, bool) {
		mu.Lock()
		attempts = append(attempts, j.Attempt)
		mu.Unlock()
		if j.Attempt == 1 {
			return protocol.Result{Protocol: protocol.Version, JobID: j.JobID, Plugin: j.Plugin, Status: protocol.StatusFailed,
				Error: &protocol.Error{Code: protocol.ErrCodeFetch, Message: "PACS said 503"}}, true
		}
		return ok(j)
	})
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	h.waitAnalysis(id, 15*time.Second)
	j := h.jobs(id)[0]
	mu.Lock()
	defer mu.Unlock()
	if j.Status != store.JobCompleted || j.Attempt != 2 || !slices.Equal(attempts, []int{1, 2}) {
		t.Errorf("job %s attempt %d, plugin saw attempts %v; want completed on attempt 2 after [1 2]", j.Status, j.Attempt, attempts)
	}
}

func TestInvalidResultIsRecordedAndHarmsNothing(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	good := completed("1386000", true, 0.9)
	startPlugin(t, br, "ich", func(j protocol.Job) (protocol.Result, bool) {
		r, _ := good(j)
		if j.Study.AccessionNumber == "BAD" {
			r.Findings[0].References[0].SOPInstanceUID = "9.9.9" // schema-valid, but not an instance of the study
		}
		if j.Study.AccessionNumber == "WORSE" {
			r.Findings[0].Confidence = 1.7 // against the schema
		}
		return r, true
	})
	bad := h.send("studies", engine.ContentStudy, studyJSON(t, "BAD", "CT", "HEAD", "CT HEAD WO"))
	h.waitAnalysis(bad, 15*time.Second)
	j := h.jobs(bad)[0]
	if j.Status != store.JobInvalid || !strings.Contains(j.Error, "9.9.9") || j.Result == nil {
		t.Errorf("result naming a foreign instance: status %s error %q", j.Status, j.Error)
	}
	worse := h.send("studies", engine.ContentStudy, studyJSON(t, "WORSE", "CT", "HEAD", "CT HEAD WO"))
	h.waitAnalysis(worse, 15*time.Second)
	if j := h.jobs(worse)[0]; j.Status != store.JobInvalid || !strings.Contains(j.Error, "/findings/0/confidence") {
		t.Errorf("result against the schema: status %s error %q", j.Status, j.Error)
	}
	if got := h.rec.got("ris"); len(got) > 0 {
		t.Errorf("an invalid result reached the RIS: %v", got)
	}
	next := h.send("studies", engine.ContentStudy, studyJSON(t, "GOOD", "CT", "HEAD", "CT HEAD WO"))
	waitFor(t, "the next study delivered", 15*time.Second, func() bool { return slices.Contains(h.rec.got("ris"), next) })
}

func TestTwoPluginsOnOneStudyAreReconciled(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	release := make(chan struct{})
	startPlugin(t, br, "ich", completed("1386000", true, 0.95))
	slow := completed("59282003", true, 0.6) // pulmonary embolism
	startPlugin(t, br, "pe", func(j protocol.Job) (protocol.Result, bool) {
		<-release
		return slow(j)
	})
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD TRAUMA"))
	waitFor(t, "ich answered", 15*time.Second, func() bool {
		js := h.jobs(id)
		return len(js) == 2 && js[0].Status == store.JobCompleted
	})
	if a, err := h.st.Analysis(context.Background(), id); err == nil && a.Status == store.AnalysisComplete {
		t.Fatal("analysis completed before every plugin answered")
	}
	close(release)
	a := h.waitAnalysis(id, 15*time.Second)
	body := decodeAnalysis(t, a.Body)
	var who []string
	for _, f := range body.Findings {
		who = append(who, f.Plugin+":"+f.Code.Code+":"+f.Model.Name)
	}
	if !slices.Equal(who, []string{"ich:1386000:test-ich", "pe:59282003:test-pe"}) || len(body.Results) != 2 {
		t.Errorf("merged findings %v, %d results; want both plugins' with provenance", who, len(body.Results))
	}
	if a.Priority != "stat" {
		t.Errorf("priority %q, want stat (ich is active)", a.Priority)
	}
}

func TestExternalNATSDispatchesTheSameWay(t *testing.T) {
	br := brokertest.External(t)
	// Plugin streams are not per channel: a unique plugin name keeps runs on a shared server apart.
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		js := br.Broker.JetStream()
		_ = js.DeleteStream(ctx, protocol.JobsStream(name))
		if s, err := js.Stream(ctx, protocol.ResultsStream); err == nil {
			_ = s.DeleteConsumer(ctx, "engine-"+name)
		}
	})
	h := newCtxHarness(t, br, newSQLite(t), `
  - name: studies
    source: {push: {key: studies}}
    plugins:
      - name: `+name+`
        mode: active
    route:
      - when: 'study.Modality == "CT"'
        plugins: [`+name+`]
    result_rules:
      - when: positive
        priority: urgent
        destinations: [ris]
    destinations:
      - name: ris
        record: {key: ris}
`)
	startPlugin(t, br, name, completed("1386000", true, 0.7))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD"))
	if a := h.waitAnalysis(id, 15*time.Second); a.Priority != "urgent" {
		t.Errorf("priority %q, want urgent", a.Priority)
	}
	waitFor(t, "delivered", 10*time.Second, func() bool { return slices.Contains(h.rec.got("ris"), id) })
}

func TestAStudyAnnouncedAgainIsNotAnalysedAgain(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	p := startPlugin(t, br, "ich", completed("1386000", true, 0.93))
	body := studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO")
	first := h.send("studies", engine.ContentStudy, body)
	h.waitAnalysis(first, 15*time.Second)

	// The PACS stored the SR Osprey sent and announces the study again: same images, one
	// SR series more.
	var sum dicom.StudySummary
	if err := json.Unmarshal(body, &sum); err != nil {
		t.Fatal(err)
	}
	sum.Series = append(sum.Series, dicom.SeriesSummary{SeriesInstanceUID: "2.25.1", Modality: "SR",
		Instances: []dicom.InstanceSummary{{SOPInstanceUID: "2.25.2"}}})
	again, _ := json.Marshal(sum)
	second := h.send("studies", engine.ContentStudy, again)
	waitFor(t, "second announcement recorded", 10*time.Second, func() bool {
		return slices.ContainsFunc(stageNames(h.detail(second)), func(s string) bool { return strings.Contains(s, "analysed already by ich") })
	})
	if js := h.jobs(second); len(js) != 0 || p.jobs.Load() != 1 {
		t.Errorf("the same images were sent again: %d jobs for the second message, plugin took %d", len(js), p.jobs.Load())
	}

	// A new image series is new work.
	sum.Series = append(sum.Series, dicom.SeriesSummary{SeriesInstanceUID: "1.2.9", Modality: "CT",
		Instances: []dicom.InstanceSummary{{SOPInstanceUID: "1.2.9.1", Frames: 1}}})
	more, _ := json.Marshal(sum)
	third := h.send("studies", engine.ContentStudy, more)
	h.waitAnalysis(third, 15*time.Second)
}

func TestHeartbeatMarksTheJobRunning(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	release := make(chan struct{})
	var nc *nats.Conn
	answer := completed("1386000", false, 0.9)
	p := startPlugin(t, br, "ich", func(j protocol.Job) (protocol.Result, bool) {
		b, _ := json.Marshal(protocol.Progress{Protocol: protocol.Version, JobID: j.JobID, Plugin: j.Plugin, Percent: 10,
			Message: "fetching", At: time.Now().UTC()})
		_ = nc.Publish(protocol.ProgressSubject(j.JobID), b)
		<-release
		return answer(j)
	})
	nc = p.nc
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	waitFor(t, "job running", 10*time.Second, func() bool {
		js := h.jobs(id)
		return len(js) == 1 && js[0].Status == store.JobRunning
	})
	close(release)
	h.waitAnalysis(id, 15*time.Second)
	if j := h.jobs(id)[0]; j.Status != store.JobCompleted {
		t.Errorf("after the result: %s", j.Status)
	}
}

func TestWithdrawSendsANewRevisionToTheSameDestinations(t *testing.T) {
	br := brokertest.New(t)
	h := newCtxHarness(t, br, newSQLite(t), aiChannel("active", "1m", 1))
	startPlugin(t, br, "ich", completed("1386000", true, 0.93))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC1", "CT", "HEAD", "CT HEAD WO"))
	h.waitAnalysis(id, 15*time.Second)
	h.waitStatus(id, store.StatusSent, 10*time.Second)

	rev, err := h.eng.Withdraw(context.Background(), id, "radiologist: calcification, not blood")
	if err != nil || rev != 2 {
		t.Fatalf("withdraw: revision %d, %v", rev, err)
	}
	waitFor(t, "the withdrawal delivered to ris and ehr", 10*time.Second, func() bool {
		return len(h.rec.got("ris")) == 2 && len(h.rec.got("ehr")) == 2 && h.detail(id).Message.Status == store.StatusSent
	})
	for _, dest := range []string{"ris", "ehr"} {
		d, err := h.st.Delivery(context.Background(), id, dest)
		if err != nil {
			t.Fatal(err)
		}
		if a := decodeAnalysis(t, d.Payload); a.Status != mappings.StatusWithdrawn || a.Revision != 2 || d.Attempts != 2 {
			t.Errorf("%s: delivered status %s revision %d after %d attempts; want withdrawn, 2, 2", dest, a.Status, a.Revision, d.Attempts)
		}
	}
	if got := h.rec.got("ops"); len(got) != 0 {
		t.Errorf("ops got the withdrawal but never had the result: %v", got)
	}
	if !slices.ContainsFunc(stageNames(h.detail(id)), func(s string) bool { return strings.Contains(s, "calcification") }) {
		t.Errorf("the reason is not in the history: %q", stageNames(h.detail(id)))
	}
	if _, err := h.eng.Withdraw(context.Background(), id, "again"); !errors.Is(err, engine.ErrBadRequest) {
		t.Errorf("second withdraw: %v, want ErrBadRequest", err)
	}
	if _, err := h.eng.Withdraw(context.Background(), "01NOSUCHMESSAGE", "x"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("withdraw of nothing: %v, want ErrNotFound", err)
	}
}

// A source that does not mint scoped tokens (a PACS's notifications): jobs carry the
// channel's plugin_token, and without one the study fails at the route stage, saying why.
func TestPluginTokenForSourcesWithoutScopedTokens(t *testing.T) {
	channel := func(token string) string {
		return `
  - name: pacs-studies
    source: {push: {}}
    plugin_token: "` + token + `"
    plugins:
      - name: ich
        mode: silent
    route:
      - when: 'study.Modality == "CT"'
        plugins: [ich]
    destinations:
      - name: out
        capture: {key: out}
`
	}
	t.Run("with a token", func(t *testing.T) {
		br := brokertest.New(t)
		h := newHarnessOn(t, br, channel("pacs-read-token"))
		rec := sendStudy(t, h, studyJSON(t, "ACC7", "CT", "HEAD", "CT HEAD"))
		if rec.Verdict != engine.Accepted {
			t.Fatalf("receipt %+v", rec)
		}
		var job protocol.Job
		waitFor(t, "the job published", 10*time.Second, func() bool {
			s, err := br.Broker.JetStream().Stream(context.Background(), protocol.JobsStream("ich"))
			if err != nil {
				return false
			}
			m, err := s.GetLastMsgForSubject(context.Background(), protocol.JobsSubject("ich"))
			return err == nil && json.Unmarshal(m.Data, &job) == nil
		})
		if job.DICOMweb.Token != "pacs-read-token" || !job.DICOMweb.TokenExpires.IsZero() {
			t.Errorf("job token %q expiring %v, want the channel's plugin_token", job.DICOMweb.Token, job.DICOMweb.TokenExpires)
		}
	})
	t.Run("without", func(t *testing.T) {
		h := newHarnessOn(t, brokertest.New(t), channel(""))
		rec := sendStudy(t, h, studyJSON(t, "ACC8", "CT", "HEAD", "CT HEAD"))
		waitFor(t, "the study failed", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusError })
		d, _ := h.st.Get(context.Background(), rec.ID)
		if !strings.Contains(d.Message.Error, "plugin_token") {
			t.Errorf("error %q does not say what to set", d.Message.Error)
		}
	})
}

func sendStudy(t *testing.T, h *harness, body []byte) engine.Receipt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := h.sink.Accept(ctx, &engine.Message{ContentType: engine.ContentStudy, Body: body})
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return rec
}
