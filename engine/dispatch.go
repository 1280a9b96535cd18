package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// dispatcher is the engine-wide half of the plugin layer: for every configured plugin it
// keeps the jobs stream and consumer as configured and consumes the plugin's results; one
// sweeper ends jobs whose deadline passed. Both then reconcile the study: once every job of
// a study message is final, the result rules run and the analysis goes where they say.
//
// Everything it decides is in the store before the NATS message that caused it is acked, and
// every decision is a conditional store update (UpdateJob), so several engines on one NATS
// and one store, or one engine seeing a result twice, never decide twice.
type dispatcher struct {
	e   *Engine
	log *slog.Logger

	mu       sync.Mutex
	plugins  map[string]*pluginRunner
	sweep    context.CancelFunc
	progress *nats.Subscription // heartbeats: a queued job becomes running
	wg       sync.WaitGroup
	started  time.Time

	runningMu sync.Mutex
	running   map[string]time.Time // jobs already marked running, so a heartbeat costs no write
}

// pluginRunner consumes one plugin's results.
type pluginRunner struct {
	settings config.Plugin
	cancel   context.CancelFunc
	stats    *pluginStats
}

// resultsConsumer is the durable consumer of one plugin's results on the results stream.
// One per plugin (not one over every subject): NATS 2.9 consumers filter on one subject,
// and engines that share a NATS but not a store must configure different plugin names.
func resultsConsumer(plugin string) string { return "engine-" + plugin }

// sweepInterval is how often the sweeper looks for jobs past their deadline.
const sweepInterval = time.Second

func newDispatcher(e *Engine) *dispatcher {
	return &dispatcher{e: e, log: e.log.With("component", "dispatch"), plugins: map[string]*pluginRunner{},
		started: time.Now(), running: map[string]time.Time{}}
}

// sync makes the running plugin consumers match cfg: streams and consumers of new plugins
// are created (a changed concurrency updates the jobs consumer), removed plugins stop being
// consumed (their streams stay: jobs in them are not lost).
func (d *dispatcher) sync(ctx context.Context, cfg *config.Config) error {
	want := map[string]config.Plugin{}
	for _, p := range cfg.Plugins() {
		want[p.Name] = p
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(want) > 0 {
		if _, err := d.e.opts.Broker.EnsureStream(ctx, protocol.ResultsStreamConfig()); err != nil {
			return fmt.Errorf("results stream: %w", err)
		}
	}
	js := d.e.opts.Broker.JetStream()
	for name, p := range want {
		if r, ok := d.plugins[name]; ok && r.settings == p {
			continue
		}
		if _, err := d.e.opts.Broker.EnsureStream(ctx, protocol.JobsStreamConfig(name)); err != nil {
			return fmt.Errorf("plugin %s: jobs stream: %w", name, err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, protocol.JobsStream(name),
			protocol.JobsConsumerConfig(name, maxDeliver(p.MaxRedeliveries), p.Concurrency)); err != nil {
			return fmt.Errorf("plugin %s: jobs consumer: %w", name, err)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, protocol.ResultsStream, jetstream.ConsumerConfig{
			Durable:       resultsConsumer(name),
			Description:   "Osprey engine: results of plugin " + name,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    -1,
			FilterSubject: protocol.ResultsSubject(name),
		})
		if err != nil {
			return fmt.Errorf("plugin %s: results consumer: %w", name, err)
		}
		stats := newPluginStats()
		if old, ok := d.plugins[name]; ok {
			old.cancel()
			stats = old.stats
		}
		rctx, cancel := context.WithCancel(context.Background())
		d.plugins[name] = &pluginRunner{settings: p, cancel: cancel, stats: stats}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			consume(rctx, cons, d.log, 64, func(m jetstream.Msg) { d.onResult(rctx, name, m) })
		}()
	}
	for name, r := range d.plugins {
		if _, ok := want[name]; !ok {
			r.cancel()
			delete(d.plugins, name)
		}
	}
	if len(d.plugins) > 0 && d.progress == nil {
		sub, err := d.e.opts.Broker.Conn().Subscribe(protocol.ProgressSubjects, d.onProgress)
		if err != nil {
			return fmt.Errorf("progress subscription: %w", err)
		}
		d.progress = sub
	}
	if len(d.plugins) > 0 && d.sweep == nil {
		sctx, cancel := context.WithCancel(context.Background())
		d.sweep = cancel
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.sweepLoop(sctx)
		}()
	}
	return nil
}

func (d *dispatcher) stop() {
	d.mu.Lock()
	for _, r := range d.plugins {
		r.cancel()
	}
	if d.sweep != nil {
		d.sweep()
	}
	if d.progress != nil {
		_ = d.progress.Unsubscribe()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// onProgress marks a job running at its first valid heartbeat. Heartbeats are core NATS
// (best effort): a missed one changes nothing but what the API shows.
func (d *dispatcher) onProgress(m *nats.Msg) {
	if protocol.ValidateProgress(m.Data) != nil {
		return
	}
	p, err := protocol.DecodeProgress(m.Data)
	if err != nil || m.Subject != protocol.ProgressSubject(p.JobID) {
		return
	}
	d.runningMu.Lock()
	_, seen := d.running[p.JobID]
	if !seen {
		d.running[p.JobID] = time.Now()
		for id, at := range d.running {
			if time.Since(at) > time.Hour { // long finished, whatever became of them
				delete(d.running, id)
			}
		}
	}
	d.runningMu.Unlock()
	if seen {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	j, err := d.e.opts.Store.Job(ctx, p.JobID)
	if err != nil || j.Status != store.JobQueued {
		return
	}
	if j.Plugin != p.Plugin {
		d.log.Warn("progress for a job of another plugin ignored", "job", p.JobID, "plugin", p.Plugin, "job_plugin", j.Plugin)
		return
	}
	_, _, _ = d.e.opts.Store.UpdateJob(ctx, store.JobUpdate{ID: p.JobID, From: []store.JobStatus{store.JobQueued},
		Status: store.JobRunning, Error: j.Error})
}

func (d *dispatcher) runner(plugin string) *pluginRunner {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plugins[plugin]
}

// settings returns the settings a job runs under: its channel's, else (the channel was
// removed) the plugin's from any channel, else one attempt.
func (d *dispatcher) settings(j store.Job) config.Plugin {
	if ch, err := d.e.channel(j.Channel); err == nil {
		if p, ok := ch.cfg.Plugin(j.Plugin); ok {
			return p
		}
	}
	if r := d.runner(j.Plugin); r != nil {
		return r.settings
	}
	return config.Plugin{Name: j.Plugin, MaxAttempts: 1, Timeout: 5 * time.Minute, Mode: config.ModeSilent}
}

// maxDeliver is JetStream's MaxDeliver for max_redeliveries: the first delivery plus that
// many more; 0 (no limit) stays 0.
func maxDeliver(redeliveries int) int {
	if redeliveries <= 0 {
		return 0
	}
	return redeliveries + 1
}

// opTimeout bounds one store or NATS operation of the dispatcher.
const opTimeout = 30 * time.Second

// onResult handles one message of a plugin's results subject. Whatever the message holds,
// it is acked once its consequences are stored; only a failure to store them (the store is
// down) hands it back for later.
func (d *dispatcher) onResult(ctx context.Context, plugin string, m jetstream.Msg) {
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if err := d.handleResult(octx, plugin, m.Data(), m.Headers()); err != nil {
		d.log.Warn("result not handled; retrying", "plugin", plugin, "err", err)
		_ = m.NakWithDelay(2 * time.Second)
		return
	}
	_ = m.Ack()
}

func (d *dispatcher) handleResult(ctx context.Context, plugin string, data []byte, hdr map[string][]string) error {
	st := d.e.opts.Store
	if !json.Valid(data) {
		// Kept as received for the analyst, as a JSON string so that the job stays JSON.
		data, _ = json.Marshal(string(data))
	}
	first := func(k string) string {
		if v := hdr[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var probe struct {
		JobID string `json:"job_id"`
	}
	_ = json.Unmarshal(data, &probe)
	id := probe.JobID
	if id == "" {
		id, _, _ = strings.Cut(first(jetstream.MsgIDHeader), ":")
	}
	if id == "" {
		d.log.Warn("result without a job id dropped", "plugin", plugin, "bytes", len(data))
		d.e.m.JobResults.WithLabelValues(plugin, string(store.JobInvalid)).Inc()
		return nil
	}
	j, err := st.Job(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if strings.HasPrefix(id, "check-") {
			return nil // a conformance run's job (osprey plugin check): not ours
		}
		d.log.Warn("result for a job this engine does not know dropped", "plugin", plugin, "job", id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if _, a, ok := strings.Cut(first(jetstream.MsgIDHeader), ":"); ok {
		if n, err := strconv.Atoi(a); err == nil && n < j.Attempt {
			// An earlier attempt's answer (the plugin was down and now works through old
			// copies): the current attempt's answer decides.
			d.log.Info("result of an earlier attempt ignored", "plugin", plugin, "job", id, "attempt", n, "current", j.Attempt)
			return nil
		}
	}
	if j.Plugin != plugin {
		d.log.Warn("result published on another plugin's subject dropped", "plugin", plugin, "job", id, "job_plugin", j.Plugin)
		return nil
	}
	if j.Status.Final() {
		if j.Status == store.JobTimeout && j.Result == nil {
			// Kept for the record: the model did answer, after the engine stopped waiting.
			_, _, err := st.UpdateJob(ctx, store.JobUpdate{ID: id, From: []store.JobStatus{store.JobTimeout},
				Status: store.JobTimeout, Error: j.Error + "; a result arrived after the deadline", Result: data})
			if err != nil {
				return err
			}
		}
		// The study may not be reconciled yet if the engine stopped between the job's final
		// update and the analysis; a repeat costs two reads.
		return d.reconcile(ctx, j.MessageID)
	}
	settings := d.settings(j)
	// This attempt was published at its deadline less the timeout (planJob, retryJob).
	took := time.Since(j.Deadline.Add(-settings.Timeout))
	if took < 0 {
		took = 0
	}
	latency := took.Milliseconds()
	res, verr := d.validate(j, data, first(protocol.HeaderPluginVersion), settings)
	u := store.JobUpdate{ID: id, From: []store.JobStatus{store.JobQueued, store.JobRunning}, Result: data,
		PluginVersion: first(protocol.HeaderPluginVersion), LatencyMS: latency}
	switch {
	case verr != nil:
		u.Status, u.Error = store.JobInvalid, verr.Error()
		d.log.Warn("invalid result", "plugin", plugin, "job", id, "err", verr)
	case res.Status == protocol.StatusFailed && j.Attempt < settings.MaxAttempts:
		return d.retryJob(ctx, j, settings, "attempt "+strconv.Itoa(j.Attempt)+" failed: "+res.Error.Error())
	default:
		u.Status = store.JobStatus(res.Status)
		u.ModelName, u.ModelVersion = res.Model.Name, res.Model.Version
		if res.Error != nil {
			u.Error = res.Error.Error()
		}
	}
	_, applied, err := st.UpdateJob(ctx, u)
	if err != nil {
		return fmt.Errorf("record result of %s: %w", id, err)
	}
	if applied {
		d.e.m.JobResults.WithLabelValues(plugin, string(u.Status)).Inc()
		d.e.m.JobLatency.WithLabelValues(plugin).Observe(took.Seconds())
		if r := d.runner(plugin); r != nil {
			r.stats.observe(took)
		}
	}
	return d.reconcile(ctx, j.MessageID)
}

// validate checks a result against the schema, against its job, and against the channel's
// minimum plugin version.
func (d *dispatcher) validate(j store.Job, data []byte, version string, p config.Plugin) (protocol.Result, error) {
	if err := protocol.ValidateResult(data); err != nil {
		return protocol.Result{}, err
	}
	res, err := protocol.DecodeResult(data)
	if err != nil {
		return protocol.Result{}, err
	}
	var req protocol.Job
	if err := json.Unmarshal(j.Request, &req); err != nil {
		return protocol.Result{}, fmt.Errorf("the job as stored cannot be read: %w", err)
	}
	if err := protocol.CheckResult(req, res); err != nil {
		return protocol.Result{}, err
	}
	if p.MinVersion != "" {
		if version == "" {
			return protocol.Result{}, fmt.Errorf("no %s header, and the channel accepts versions %s and later only", protocol.HeaderPluginVersion, p.MinVersion)
		}
		if compareSemver(version, p.MinVersion) < 0 {
			return protocol.Result{}, fmt.Errorf("plugin version %s is older than the minimum %s", version, p.MinVersion)
		}
	}
	return res, nil
}

// retryJob starts the next attempt of j: a new deadline and a new publish.
func (d *dispatcher) retryJob(ctx context.Context, j store.Job, p config.Plugin, why string) error {
	st := d.e.opts.Store
	var req protocol.Job
	if err := json.Unmarshal(j.Request, &req); err != nil {
		return fmt.Errorf("job %s: stored request: %w", j.ID, err)
	}
	next := j.Attempt + 1
	// The stored request stays the first attempt's; the row's Attempt and Deadline say the rest.
	req.Attempt, req.Deadline = next, time.Now().UTC().Add(p.Timeout)
	if ch, err := d.e.channel(j.Channel); err == nil {
		req.DICOMweb.Token, req.DICOMweb.TokenExpires = ch.jobToken(j.StudyUID, p.Timeout+tokenSlack)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, applied, err := st.UpdateJob(ctx, store.JobUpdate{ID: j.ID, From: []store.JobStatus{store.JobQueued, store.JobRunning},
		Status: store.JobQueued, Attempt: next, Deadline: req.Deadline, Error: why})
	if err != nil || !applied {
		return err
	}
	d.log.Info("job sent again", "plugin", j.Plugin, "job", j.ID, "attempt", next, "why", why)
	if err := publishJob(ctx, d.e.opts.Broker.JetStream(), j.Plugin, j.ID, next, body); err != nil {
		// The row says queued with a deadline: the sweeper ends it at the deadline.
		return err
	}
	d.e.m.JobsDispatched.WithLabelValues(j.Plugin).Inc()
	return nil
}

func (d *dispatcher) sweepLoop(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		if err := d.sweepOnce(octx); err != nil && ctx.Err() == nil {
			d.log.Warn("deadline sweep", "err", err)
		}
		cancel()
	}
}

// sweepOnce ends or retries every open job past its deadline.
func (d *dispatcher) sweepOnce(ctx context.Context) error {
	st := d.e.opts.Store
	jobs, err := st.ExpiredJobs(ctx, time.Now(), 100)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		p := d.settings(j)
		why := fmt.Sprintf("no result within %s (attempt %d of %d)", p.Timeout, j.Attempt, p.MaxAttempts)
		if j.Attempt < p.MaxAttempts {
			if err := d.retryJob(ctx, j, p, why); err != nil {
				return err
			}
			continue
		}
		_, applied, err := st.UpdateJob(ctx, store.JobUpdate{ID: j.ID, Status: store.JobTimeout, Error: why})
		if err != nil {
			return err
		}
		if applied {
			d.log.Warn("job timed out", "plugin", j.Plugin, "job", j.ID, "why", why)
			d.e.m.JobResults.WithLabelValues(j.Plugin, string(store.JobTimeout)).Inc()
		}
		if err := d.reconcile(ctx, j.MessageID); err != nil {
			return err
		}
	}
	return nil
}

// reconcile completes the analysis of a study message once all its jobs are final: it merges
// the results, runs the channel's result rules, stores the analysis and queues it for the
// destinations the rules name. It does nothing while a job is open, nor for an analysis
// already complete.
func (d *dispatcher) reconcile(ctx context.Context, messageID string) error {
	st := d.e.opts.Store
	page, err := st.Jobs(ctx, store.JobQuery{MessageID: messageID, Limit: 500})
	if err != nil {
		return fmt.Errorf("jobs of %s: %w", messageID, err)
	}
	if len(page.Jobs) == 0 {
		return nil
	}
	for _, j := range page.Jobs {
		if !j.Status.Final() {
			return nil
		}
	}
	if a, err := st.Analysis(ctx, messageID); err == nil && a.Status == store.AnalysisComplete {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	detail, err := st.Get(ctx, messageID)
	if err != nil {
		return fmt.Errorf("study message %s: %w", messageID, err)
	}
	var sum dicom.StudySummary
	if err := json.Unmarshal(detail.Message.Raw, &sum); err != nil {
		return fmt.Errorf("study message %s: %w", messageID, err)
	}
	var order *store.Order
	if sum.AccessionNumber != "" {
		o, err := st.Order(ctx, sum.AccessionNumber)
		switch {
		case err == nil:
			order = &o
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("order %s: %w", sum.AccessionNumber, err)
		}
	}
	chName := detail.Message.Channel
	ch, _ := d.e.channel(chName) // nil when the channel was removed: the analysis is stored, not sent
	a, outcome := buildAnalysis(messageID, chName, sum, order, page.Jobs)
	var ruleSet []config.ResultRule
	if ch != nil {
		ruleSet = ch.cfg.ResultRules
	}
	env := rules.NewResultEnv(chName, rules.NewStudyView(sum, time.Now()), orderView(order), outcome.views, outcome.statuses)
	priority, dests, matched, err := applyResultRules(ruleSet, env)
	if err != nil {
		return d.fail(ctx, messageID, len(detail.Stages), err)
	}
	note := "analysis: " + outcome.summary()
	switch {
	case !outcome.sends:
		// Silent plugins are run to see what they would do: the rules run on their findings
		// for the record, and nothing leaves.
		all := rules.NewResultEnv(chName, env.Study, env.Order, outcome.silentViews, outcome.statuses)
		wp, wd, wm, err := applyResultRules(ruleSet, all)
		if err == nil && (len(wd) > 0 || wp != "") {
			note += fmt.Sprintf("; every plugin is silent: rules %s would send it to %s with priority %q",
				strings.Join(wm, ", "), strings.Join(wd, ", "), wp)
		}
		dests, priority, matched = nil, "", nil
	case !outcome.active && priority != "":
		note += fmt.Sprintf("; priority %q not applied: no plugin is active", priority)
		priority = ""
	}
	a.Priority, a.Rules = priority, matched
	if len(matched) > 0 {
		note += "; rules " + strings.Join(matched, ", ") + " matched"
	}
	if len(dests) > 0 {
		note += "; to " + strings.Join(dests, ", ")
	} else {
		note += "; nothing sent"
	}
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := st.AddStages(ctx, messageID, []store.Stage{{Seq: len(detail.Stages) + 1, Name: note, At: time.Now().UTC(), Output: body}}); err != nil {
		return err
	}
	if err := d.deliver(ctx, ch, detail.Message, dests, body); err != nil {
		return err
	}
	if len(dests) == 0 {
		if err := st.SetStatus(ctx, messageID, store.StatusFiltered, ""); err != nil {
			return err
		}
	}
	// Last: a crash before this line reconciles again, and the Nats-Msg-Id of each queued
	// analysis (and the delivery rows) make the repeat harmless.
	return st.PutAnalysis(ctx, store.Analysis{MessageID: messageID, Channel: chName, StudyUID: sum.StudyInstanceUID,
		Accession: sum.AccessionNumber, Status: store.AnalysisComplete, Priority: priority, Destinations: dests,
		Rules: matched, Body: body})
}

// fail records a result rule that could not be evaluated: the analysis is complete, nothing
// is sent, and the message says why.
func (d *dispatcher) fail(ctx context.Context, messageID string, stages int, err error) error {
	st := d.e.opts.Store
	if e := st.AddStages(ctx, messageID, []store.Stage{{Seq: stages + 1, Name: "result rules", At: time.Now().UTC(), Error: err.Error()}}); e != nil {
		return e
	}
	if e := st.SetStatus(ctx, messageID, store.StatusError, "result rules: "+err.Error()); e != nil {
		return e
	}
	return st.PutAnalysis(ctx, store.Analysis{MessageID: messageID, Status: store.AnalysisComplete})
}

// deliver queues the analysis for each named destination of ch, as commitOutcomes queues a
// message: delivery rows first, then one record per destination.
func (d *dispatcher) deliver(ctx context.Context, ch *channel, msg store.Message, dests []string, body []byte) error {
	if len(dests) == 0 {
		return nil
	}
	if ch == nil {
		return fmt.Errorf("channel %s is not running; the analysis of %s waits for it", msg.Channel, msg.ID)
	}
	st := d.e.opts.Store
	hdr := map[string]string{hdrReceived: msg.ReceivedAt.UTC().Format(time.RFC3339Nano), hdrContentType: mappings.ContentType}
	var targets []*destination
	for _, name := range dests {
		if dd := ch.destination(name); dd != nil {
			targets = append(targets, dd)
		}
	}
	states := map[string]store.Delivery{}
	var rows []store.Delivery
	for _, dd := range targets {
		got, err := st.DeliveryStates(ctx, dd.name, []string{msg.ID})
		if err != nil {
			return err
		}
		if old, ok := got[msg.ID]; ok {
			states[dd.name] = old
			continue
		}
		rows = append(rows, store.Delivery{MessageID: msg.ID, Channel: ch.name, Destination: dd.name,
			Status: store.DeliveryQueued, UpdatedAt: time.Now().UTC(), Payload: body})
	}
	if len(rows) > 0 {
		if err := st.PutDeliveries(ctx, rows); err != nil {
			return err
		}
	}
	for _, dd := range targets {
		if old, ok := states[dd.name]; ok && old.Status != store.DeliveryQueued {
			continue
		}
		e := broker.Entry{ID: msg.ID, Headers: hdr, Body: body}
		if err := dd.publish(ctx, "analysis:"+msg.ID+":"+dd.name, []broker.Entry{e}); err != nil {
			return err
		}
	}
	return nil
}

// analysisOutcome is what the jobs of a study add up to, for the rules and the history.
type analysisOutcome struct {
	views       []rules.FindingView // of notify and active plugins: what the rules decide on
	silentViews []rules.FindingView // of silent plugins: what the rules would have decided on
	statuses    map[string]string
	sends       bool // some plugin is notify or active
	active      bool // some plugin is active
}

func (o analysisOutcome) summary() string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(o.statuses)) {
		parts = append(parts, p+" "+o.statuses[p])
	}
	return strings.Join(parts, ", ")
}

// buildAnalysis merges the final jobs of a study into the analysis the mappings take.
// Findings of silent plugins are kept in Results (for the audit) but neither reach the
// rules nor the findings that leave Osprey.
func buildAnalysis(id, channel string, sum dicom.StudySummary, order *store.Order, jobs []store.Job) (mappings.Analysis, analysisOutcome) {
	a := mappings.Analysis{ID: id, Revision: 1, Status: mappings.StatusPreliminary, Channel: channel, Study: sum,
		Order: mappingOrder(order), Findings: []mappings.Finding{}, Results: []protocol.Result{}, CreatedAt: time.Now().UTC()}
	out := analysisOutcome{statuses: map[string]string{}}
	slices.SortFunc(jobs, func(x, y store.Job) int { return strings.Compare(x.Plugin, y.Plugin) })
	var summaries []string
	for _, j := range jobs {
		out.statuses[j.Plugin] = string(j.Status)
		silent := j.Mode == config.ModeSilent
		if !silent {
			out.sends = true
			out.active = out.active || j.Mode == config.ModeActive
		}
		if j.Result == nil || j.Status == store.JobInvalid || silent {
			// A silent plugin's answer stays in its job row for the audit; nothing of it,
			// not even its summary or model, may reach a receiver.
			if silent && j.Status == store.JobCompleted {
				if res, err := protocol.DecodeResult(j.Result); err == nil {
					for _, f := range res.Findings {
						out.silentViews = append(out.silentViews, findingView(f, j.Plugin, res.Model))
					}
				}
			}
			continue
		}
		res, err := protocol.DecodeResult(j.Result)
		if err != nil {
			continue
		}
		a.Results = append(a.Results, res)
		if res.Summary != "" {
			summaries = append(summaries, j.Plugin+": "+res.Summary)
		}
		if j.Status != store.JobCompleted {
			continue
		}
		for _, f := range res.Findings {
			a.Findings = append(a.Findings, mappings.Finding{Finding: f, Plugin: j.Plugin, JobID: j.ID, Model: res.Model})
			out.views = append(out.views, findingView(f, j.Plugin, res.Model))
		}
	}
	a.Summary = strings.Join(summaries, "\n")
	return a, out
}

func findingView(f protocol.Finding, plugin string, m protocol.Model) rules.FindingView {
	v := rules.FindingView{Present: f.Present, Confidence: f.Confidence, Code: f.Code.Code, Display: f.Code.Display,
		System: f.Code.System, Plugin: plugin, Model: m.Name, Version: m.Version, Location: f.Location.Text,
		Laterality: f.Location.Laterality, Measurements: map[string]float64{}}
	for _, ms := range f.Measurements {
		v.Measurements[ms.Name] = ms.Value
		if ms.Code != nil && ms.Code.Code != "" {
			v.Measurements[ms.Code.Code] = ms.Value
		}
	}
	return v
}

// applyResultRules runs every rule: the highest priority of those that match wins and their
// destinations add up, in rule order.
func applyResultRules(rs []config.ResultRule, env rules.ResultEnv) (priority string, dests, matched []string, err error) {
	rank := map[string]int{"": 0, config.PriorityRoutine: 1, config.PriorityUrgent: 2, config.PriorityStat: 3}
	for i, r := range rs {
		ok, err := r.Match.Match(env)
		if err != nil {
			return "", nil, nil, fmt.Errorf("rule %s: %w", ruleLabel(r, i), err)
		}
		if !ok {
			continue
		}
		matched = append(matched, ruleLabel(r, i))
		if rank[r.Priority] > rank[priority] {
			priority = r.Priority
		}
		for _, d := range r.Destinations {
			if !slices.Contains(dests, d) {
				dests = append(dests, d)
			}
		}
	}
	return priority, dests, matched, nil
}

func ruleLabel(r config.ResultRule, i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("result_rules[%d]", i)
}

func orderView(o *store.Order) *rules.OrderView {
	if o == nil {
		return nil
	}
	return rules.NewOrderView(*o)
}

func mappingOrder(o *store.Order) *mappings.Order {
	if o == nil {
		return nil
	}
	return &mappings.Order{Accession: o.Accession, PlacerOrderNumber: o.PlacerOrderNumber, FillerOrderNumber: o.FillerOrderNumber,
		PatientID: o.PatientID, PatientName: o.PatientName, PatientSex: o.PatientSex, PatientBirthDate: o.PatientBirthDate,
		PatientIDAuthority: o.PatientIDAuthority, PatientClass: o.PatientClass, Priority: o.Priority, OrderingProvider: o.OrderingProvider, Location: o.Location, ProcedureCode: o.ProcedureCode,
		ProcedureText: o.ProcedureText, Reason: o.Reason, OrderedAt: o.OrderedAt}
}

// compareSemver compares two semantic versions by major, minor and patch (a pre-release sorts
// before its release); malformed parts count as 0.
func compareSemver(a, b string) int {
	pa, pb := semverParts(a), semverParts(b)
	for i := range 3 {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	switch ra, rb := strings.Contains(a, "-"), strings.Contains(b, "-"); {
	case ra && !rb:
		return -1
	case !ra && rb:
		return 1
	}
	return 0
}

func semverParts(v string) [3]int {
	v = strings.TrimPrefix(v, "v")
	v, _, _ = strings.Cut(v, "+")
	v, _, _ = strings.Cut(v, "-")
	var out [3]int
	for i, p := range strings.SplitN(v, ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}
