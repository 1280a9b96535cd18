package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// received is one message the run took in: a result from the results stream or a progress
// heartbeat.
type received struct {
	data []byte
	hdr  nats.Header
	at   time.Time // when the run received it
}

// collector gathers what arrives on NATS callbacks, for the run's loop to take.
type collector struct {
	mu       sync.Mutex
	results  []received
	progress map[string][]received // by job id
	notify   chan struct{}
}

func (c *collector) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *collector) addResult(m received) {
	c.mu.Lock()
	c.results = append(c.results, m)
	c.mu.Unlock()
	c.wake()
}

func (c *collector) addProgress(job string, m received) {
	c.mu.Lock()
	c.progress[job] = append(c.progress[job], m)
	c.mu.Unlock()
}

// progressOf returns the heartbeats of job received so far; more may still come in.
func (c *collector) progressOf(job string) []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.progress[job])
}

// take returns the results that arrived since the last call.
func (c *collector) take() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.results
	c.results = nil
	return out
}

// tracked is one canned job sent, and what came back for it.
type tracked struct {
	c       canned
	job     protocol.Job
	sent    time.Time
	seq     uint64 // its sequence in the jobs stream, to delete it when the run ends
	results []received
}

// runJobs sends the canned jobs one at a time, each once the previous one was answered or
// its deadline passed, so every job has the whole timeout to itself; collects the results and
// progress; removes the jobs left in the stream; and adds the rows of every job.
func (r *run) runJobs(ctx context.Context, o *origin, cases []canned) error {
	nc, js, plugin := r.b.Conn(), r.b.JetStream(), r.opts.Plugin
	col := &collector{progress: make(map[string][]received), notify: make(chan struct{}, 1)}

	// Read results from the stream's current end on: older ones cannot answer jobs not yet sent.
	rs, err := js.Stream(ctx, protocol.ResultsStream)
	if err != nil {
		return fmt.Errorf("conformance: results stream: %w", err)
	}
	info, err := rs.Info(ctx)
	if err != nil {
		return fmt.Errorf("conformance: results stream: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, protocol.ResultsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{protocol.ResultsSubject(plugin)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	})
	if err != nil {
		return fmt.Errorf("conformance: results consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		col.addResult(received{data: m.Data(), hdr: m.Headers(), at: time.Now()})
	})
	if err != nil {
		return fmt.Errorf("conformance: results consumer: %w", err)
	}
	defer cc.Stop()

	tracks := make([]*tracked, len(cases))
	byID := make(map[string]*tracked)
	for i, c := range cases {
		t := &tracked{c: c, job: c.job}
		tracks[i], byID[c.job.JobID] = t, t
		id := c.job.JobID
		sub, err := nc.Subscribe(protocol.ProgressSubject(id), func(m *nats.Msg) {
			col.addProgress(id, received{data: m.Data, hdr: m.Header, at: time.Now()})
		})
		if err != nil {
			return fmt.Errorf("conformance: progress subscription: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	// The server must know the subscriptions before the first heartbeat can be sent.
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("conformance: flush: %w", err)
	}
	defer r.deleteJobs(tracks)

	var stray []received
	take := func() {
		for _, m := range col.take() {
			t, mine := r.attribute(m, byID)
			switch {
			case t != nil:
				t.results = append(t.results, m)
			case mine:
				stray = append(stray, m)
			}
		}
	}
	for _, t := range tracks {
		if err := r.send(ctx, t); err != nil {
			return err
		}
		r.log.Info("plugin check: job sent", "case", t.c.name, "job_id", t.job.JobID)
		wait := time.NewTimer(time.Until(t.job.Deadline) + r.opts.Settle)
		for take(); len(t.results) == 0; take() {
			select {
			case <-col.notify:
				continue
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			}
			break
		}
		wait.Stop()
	}
	// A second result for the last job, or a late one, arrives after the loop stopped waiting.
	settle := time.NewTimer(r.opts.Settle)
	for done := false; !done; {
		select {
		case <-col.notify:
			take()
		case <-settle.C:
			done = true
		case <-ctx.Done():
			settle.Stop()
			return ctx.Err()
		}
	}
	cc.Stop()
	take()

	for _, t := range tracks {
		r.judge(t, col.progressOf(t.job.JobID))
	}
	if len(stray) == 0 {
		r.rep.add("stray results", true, "none")
	} else {
		var vs []string
		for _, m := range stray {
			vs = append(vs, fmt.Sprintf("Nats-Msg-Id %q: %.120s", m.hdr.Get(jetstream.MsgIDHeader), m.data))
		}
		r.rep.add("stray results", false, "%d result(s) of this run match none of its jobs by job_id or Nats-Msg-Id: %s", len(stray), strings.Join(vs, "; "))
	}
	return nil
}

// send gives t's job its deadline and token, and publishes it to the jobs stream with its id
// as Nats-Msg-Id.
func (r *run) send(ctx context.Context, t *tracked) error {
	now := time.Now()
	ttl := r.opts.Timeout + time.Minute
	t.job.Deadline = now.Add(r.opts.Timeout).UTC()
	t.job.DICOMweb.Token = t.c.mint(t.job.Study.StudyInstanceUID, ttl)
	t.job.DICOMweb.TokenExpires = now.Add(ttl).UTC().Truncate(time.Second)
	data, err := json.Marshal(t.job)
	if err != nil {
		return fmt.Errorf("conformance: job %s: %w", t.c.name, err)
	}
	if err := protocol.ValidateJob(data); err != nil {
		return fmt.Errorf("conformance: canned job %s: %w", t.c.name, err) // a bug of the run, not of the plugin
	}
	ack, err := r.b.JetStream().Publish(ctx, protocol.JobsSubject(r.opts.Plugin), data, jetstream.WithMsgID(t.job.JobID))
	if err != nil {
		return fmt.Errorf("conformance: send job %s: %w", t.c.name, err)
	}
	t.sent, t.seq = now, ack.Sequence
	return nil
}

// attribute finds the job a result answers: by its job_id, else by its Nats-Msg-Id, so that a
// result with a wrong job_id is still judged. A result for neither is someone else's (the
// engine's), unless it mentions this run: then it is mine but stray.
func (r *run) attribute(m received, byID map[string]*tracked) (t *tracked, mine bool) {
	var head struct {
		JobID string `json:"job_id"`
	}
	if json.Unmarshal(m.data, &head) == nil && byID[head.JobID] != nil {
		return byID[head.JobID], true
	}
	msgID := m.hdr.Get(jetstream.MsgIDHeader)
	if i := strings.LastIndexByte(msgID, ':'); i > 0 && byID[msgID[:i]] != nil {
		return byID[msgID[:i]], true
	}
	if byID[msgID] != nil {
		return byID[msgID], true
	}
	return nil, bytes.Contains(m.data, []byte(r.runID)) || strings.Contains(msgID, r.runID)
}

// deleteJobs removes the canned jobs still in the jobs stream (unanswered ones), so that no
// plugin instance takes them after the run.
func (r *run) deleteJobs(tracks []*tracked) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.b.JetStream().Stream(ctx, protocol.JobsStream(r.opts.Plugin))
	if err != nil {
		r.log.Warn("plugin check: delete canned jobs", "err", err)
		return
	}
	for _, t := range tracks {
		if t.seq == 0 {
			continue
		}
		// An answered job is gone already (work-queue retention): only look for the others.
		if _, err := s.GetMsg(ctx, t.seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err := s.DeleteMsg(ctx, t.seq); err != nil {
			r.log.Warn("plugin check: delete canned job", "job_id", t.job.JobID, "err", err)
		}
	}
}

// judge adds the rows of one job.
func (r *run) judge(t *tracked, progress []received) {
	name := func(check string) string { return t.c.name + ": " + check }
	out := Outcome{Case: t.c.name, JobID: t.job.JobID}
	defer func() { r.rep.Outcomes = append(r.rep.Outcomes, out) }()

	if len(t.results) == 0 {
		r.rep.add(name("result"), false, "no result for %s (%s) within %s", t.job.JobID, t.c.what, r.opts.Timeout)
		r.judgeProgress(t, name("progress"), progress)
		return
	}
	first := t.results[0]
	if late := first.at.Sub(t.job.Deadline); late > 0 {
		r.rep.add(name("result"), false, "arrived %s after the deadline (timeout %s)", late.Round(time.Millisecond), r.opts.Timeout)
	} else {
		r.rep.add(name("result"), true, "arrived %s after the job was sent (%s)", first.at.Sub(t.sent).Round(time.Millisecond), t.c.what)
	}

	multi := len(t.results) > 1
	label := func(i int) string {
		if !multi {
			return ""
		}
		return fmt.Sprintf("result %d: ", i+1)
	}
	var schema, check, msgID, version []string
	decoded := make([]*protocol.Result, len(t.results))
	wantID := protocol.ResultMsgID(t.job.JobID, t.job.Attempt)
	for i, m := range t.results {
		if err := protocol.ValidateResult(m.data); err != nil {
			schema = append(schema, label(i)+violationText(err))
		}
		var res protocol.Result
		if err := json.Unmarshal(m.data, &res); err != nil {
			check = append(check, label(i)+"does not decode as a result: "+err.Error())
		} else {
			decoded[i] = &res
			if err := protocol.CheckResult(t.job, res); err != nil {
				check = append(check, label(i)+violationText(err))
			}
		}
		switch got := m.hdr.Get(jetstream.MsgIDHeader); {
		case got == "":
			msgID = append(msgID, label(i)+fmt.Sprintf("header missing, want %q", wantID))
		case got != wantID:
			msgID = append(msgID, label(i)+fmt.Sprintf("%q, want %q (<job_id>:<attempt>)", got, wantID))
		}
		switch v := m.hdr.Get(protocol.HeaderPluginVersion); {
		case v == "":
			version = append(version, label(i)+"header "+protocol.HeaderPluginVersion+" missing")
		case !ValidSemver(v):
			version = append(version, label(i)+fmt.Sprintf("%q is not a semantic version", v))
		case !r.versions[v]:
			version = append(version, label(i)+fmt.Sprintf("%q is not the version of a discovered instance (%s)", v, strings.Join(sortedKeys(r.versions), ", ")))
		}
	}
	r.rep.add(name("schema"), len(schema) == 0, "%s", orOK(schema, "valid against %s", protocol.SchemaFile))
	r.rep.add(name("against job"), len(check) == 0, "%s", orOK(check, "job id, plugin, status, model and references agree with the job"))
	r.rep.add(name("Nats-Msg-Id"), len(msgID) == 0, "%s", orOK(msgID, "%s", wantID))
	r.rep.add(name("plugin version"), len(version) == 0, "%s", orOK(version, "%s %s", protocol.HeaderPluginVersion, first.hdr.Get(protocol.HeaderPluginVersion)))
	if multi {
		r.rep.add(name("one result"), false, "%d results for one job: publish exactly one, with Nats-Msg-Id %q so that the stream drops a copy republished after a crash", len(t.results), wantID)
	} else {
		r.rep.add(name("one result"), true, "exactly one")
	}
	out.Result = decoded[0]
	r.judgeStatus(t, name("status"), decoded[0])
	r.judgeProgress(t, name("progress"), progress)
}

// judgeStatus checks the status the first result gives: the job with the refused token must
// fail with fetch_failed; the others, whose study the origin serves, must not fail.
func (r *run) judgeStatus(t *tracked, row string, res *protocol.Result) {
	if res == nil {
		r.rep.add(row, false, "the result does not decode")
		return
	}
	desc := describe(res)
	if t.c.fetchFails {
		if res.Status == protocol.StatusFailed && res.Error != nil && res.Error.Code == protocol.ErrCodeFetch {
			r.rep.add(row, true, "%s", desc)
		} else {
			r.rep.add(row, false, "%s; want failed with error code %s: the origin answers 401 to this job's token", desc, protocol.ErrCodeFetch)
		}
		return
	}
	if res.Status == protocol.StatusFailed {
		r.rep.add(row, false, "%s; the origin serves this study with this token: answer completed, or not_applicable for a study the model is not for", desc)
		return
	}
	r.rep.add(row, res.Status == protocol.StatusCompleted || res.Status == protocol.StatusNotApplicable, "%s", desc)
}

// describe says in a line what a result says.
func describe(res *protocol.Result) string {
	var b strings.Builder
	b.WriteString(string(res.Status))
	switch {
	case res.Error != nil:
		fmt.Fprintf(&b, " (%s: %s)", res.Error.Code, res.Error.Message)
	case res.Status == protocol.StatusCompleted:
		present := 0
		for _, f := range res.Findings {
			if f.Present {
				present++
			}
		}
		fmt.Fprintf(&b, ", %d finding(s), %d present", len(res.Findings), present)
	}
	if res.Summary != "" {
		fmt.Fprintf(&b, ": %s", res.Summary)
	}
	return b.String()
}

// judgeProgress checks the heartbeats of a job: optional, but valid when sent.
func (r *run) judgeProgress(t *tracked, row string, progress []received) {
	if len(progress) == 0 {
		r.rep.add(row, true, "none sent (optional; send one at least every 10 s on long jobs)")
		return
	}
	var vs []string
	for i, m := range progress {
		l := fmt.Sprintf("heartbeat %d: ", i+1)
		if err := protocol.ValidateProgress(m.data); err != nil {
			vs = append(vs, l+violationText(err))
			continue
		}
		var p protocol.Progress
		if err := json.Unmarshal(m.data, &p); err != nil {
			vs = append(vs, l+"does not decode: "+err.Error())
			continue
		}
		if p.JobID != t.job.JobID {
			vs = append(vs, l+fmt.Sprintf("/job_id: %q, want %q", p.JobID, t.job.JobID))
		}
		if p.Plugin != t.job.Plugin {
			vs = append(vs, l+fmt.Sprintf("/plugin: %q, want %q", p.Plugin, t.job.Plugin))
		}
	}
	r.rep.add(row, len(vs) == 0, "%s", orOK(vs, "%d heartbeat(s), all valid", len(progress)))
}

// violationText lists the violations of a protocol error, without the error's prefix.
func violationText(err error) string {
	var ve *protocol.ValidationError
	if errors.As(err, &ve) {
		parts := make([]string, len(ve.Violations))
		for i, v := range ve.Violations {
			parts[i] = v.String()
		}
		return strings.Join(parts, "; ")
	}
	return err.Error()
}
