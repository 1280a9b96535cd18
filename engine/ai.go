package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// The plugin layer, on the channel side (docs/plugins.md, docs/ai-routing.md).
//
// A study message in a channel with `route` rules does not go to the destinations. The
// processor evaluates the routes, and for each plugin they select it records a job and
// publishes it, in the same commit step that would otherwise queue the study, to the
// plugin's work queue. From there the dispatcher (dispatch.go) takes over: results, deadlines,
// reconciliation, result rules, and the analysis going to the destinations.
//
// A job's id is the study message's id and the plugin's name, so a second pass over the same
// record (a crash before the inbound ack) finds the job already stored and publishes nothing
// new; each attempt's publish carries "<job id>:<attempt>" as its Nats-Msg-Id as well.

// StudyTokens is implemented by sources that serve the studies they hand the engine over
// DICOMweb (source.dicomweb): the engine asks for a short-lived bearer token that opens one
// study, read-only, and puts it in the job, so a plugin can fetch the pixels and nothing else.
type StudyTokens interface {
	StudyToken(studyUID string, ttl time.Duration) (token string, expires time.Time)
}

// tokenSlack is how long a job's token outlives its deadline: a plugin that starts just
// before the deadline can still fetch what it needs.
const tokenSlack = 5 * time.Minute

// plannedJob is a job the processor decided on: its store row and the message to publish.
type plannedJob struct {
	rec  store.Job
	body []byte // the protocol.Job as published, token included
}

func jobID(messageID, plugin string) string { return messageID + "-" + plugin }

// route runs the channel's routing rules over a study and plans one job per selected plugin.
// It returns the stage to record and whether any plugin was selected.
func (ch *channel) route(o *outcome, env rules.Env, sum *dicom.StudySummary, order *store.Order) (store.Stage, error) {
	stage := store.Stage{Name: "route", At: time.Now().UTC()}
	var picked, matched []string
	for i, r := range ch.cfg.Routes {
		ok, err := r.Match.Match(env)
		if err != nil {
			return stage, fmt.Errorf("route %s: %w", routeLabel(r, i), err)
		}
		if !ok {
			continue
		}
		matched = append(matched, routeLabel(r, i))
		for _, p := range r.Plugins {
			if !slices.Contains(picked, p) {
				picked = append(picked, p)
			}
		}
	}
	if len(picked) == 0 {
		stage.Name += ": no rule matched; no plugin asked"
		return stage, nil
	}
	// A study announced again (an instance came late, or the PACS stored the SR Osprey
	// sent) is not analysed again by a plugin that already saw the same images: without
	// this, every SR sent back to the PACS would bring the study back, and another SR.
	var fresh, seen []string
	// What a job says of the study and the patient is the same for every plugin: made once.
	study, patient := protocolStudy(sum, env.Study), ch.e.pseudonymise(sum, env.Study)
	images := imageInstances(study)
	for _, name := range picked {
		// Reprocessing a message asks the plugins again: that is what the analyst wants.
		if prior := ch.priorJob(sum.StudyInstanceUID, images, name); prior != "" && o.rec.ReprocessOf == "" {
			seen = append(seen, fmt.Sprintf("%s (job %s)", name, prior))
			continue
		}
		fresh = append(fresh, name)
	}
	if len(fresh) == 0 {
		stage.Name += fmt.Sprintf(": %s matched; the same images were analysed already by %s", strings.Join(matched, ", "), strings.Join(seen, ", "))
		return stage, nil
	}
	stage.Name += fmt.Sprintf(": %s matched; jobs for %s", strings.Join(matched, ", "), strings.Join(fresh, ", "))
	if len(seen) > 0 {
		stage.Name += "; analysed already: " + strings.Join(seen, ", ")
	}
	for _, name := range fresh {
		settings, _ := ch.cfg.Plugin(name) // config checked every route's plugins
		pj, err := ch.planJob(o.rec, sum, study, patient, order, settings, 1)
		if err != nil {
			return stage, fmt.Errorf("job for %s: %w", name, err)
		}
		o.jobs = append(o.jobs, pj)
	}
	return stage, nil
}

// priorJob returns the id of an answered job of plugin, made for another message, that saw
// exactly the images want (see imageInstances), or "" when there is none or the
// store cannot say (then the study is analysed: a second analysis is better than none).
func (ch *channel) priorJob(studyUID string, want []string, plugin string) string {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	page, err := ch.e.opts.Store.Jobs(ctx, store.JobQuery{StudyUID: studyUID, Plugin: plugin, Limit: 20})
	if err != nil {
		return ""
	}
	for _, j := range page.Jobs {
		// Only an answer counts: a study whose job failed, timed out or is still open is
		// analysed again when it is announced again.
		if j.Status != store.JobCompleted && j.Status != store.JobNotApplicable {
			continue
		}
		var req protocol.Job
		if json.Unmarshal(j.Request, &req) != nil {
			continue
		}
		if slices.Equal(imageInstances(req.Study), want) {
			return j.ID
		}
	}
	return ""
}

// imageInstances lists the SOP Instance UIDs of a study's image series, sorted.
func imageInstances(s protocol.Study) []string {
	var out []string
	for _, se := range s.Series {
		if rules.NonImageModality(se.Modality) {
			continue
		}
		for _, in := range se.Instances {
			out = append(out, in.SOPInstanceUID)
		}
	}
	slices.Sort(out)
	return out
}

func routeLabel(r config.Route, i int) string {
	if r.Name != "" {
		return r.Name
	}
	return fmt.Sprintf("route[%d]", i)
}

// planJob builds the job for one plugin and attempt.
func (ch *channel) planJob(msg store.Message, sum *dicom.StudySummary, study protocol.Study, patient protocol.Patient,
	order *store.Order, p config.Plugin, attempt int) (plannedJob, error) {
	now := time.Now().UTC()
	j := protocol.Job{
		Protocol: protocol.Version,
		JobID:    jobID(msg.ID, p.Name),
		Plugin:   p.Name,
		Study:    study,
		Patient:  patient,
		Order:    protocolOrder(order),
		DICOMweb: protocol.DICOMweb{BaseURL: sum.Retrieve.BaseURL},
		Deadline: now.Add(p.Timeout),
		Attempt:  attempt,
	}
	if !protocol.ValidJobID(j.JobID) {
		return plannedJob{}, fmt.Errorf("job id %q is not a single NATS token", j.JobID)
	}
	j.DICOMweb.Token, j.DICOMweb.TokenExpires = ch.jobToken(sum.StudyInstanceUID, p.Timeout+tokenSlack)
	body, err := json.Marshal(j)
	if err != nil {
		return plannedJob{}, err
	}
	// A job the plugin could not read is refused here, where the analyst sees why, rather
	// than terminated by every plugin.
	if err := protocol.ValidateJob(body); err != nil {
		if j.DICOMweb.Token == "" {
			err = fmt.Errorf("%w (source %s does not serve its studies with scoped tokens: set the channel's plugin_token)", err, ch.cfg.Source.Name)
		}
		return plannedJob{}, err
	}
	redacted := j
	redacted.DICOMweb.Token = ""
	req, err := json.Marshal(redacted)
	if err != nil {
		return plannedJob{}, err
	}
	rec := store.Job{ID: j.JobID, MessageID: msg.ID, Channel: ch.name, Plugin: p.Name,
		StudyUID: sum.StudyInstanceUID, Accession: sum.AccessionNumber, Mode: p.Mode, Attempt: attempt,
		Status: store.JobQueued, CreatedAt: now, UpdatedAt: now, Deadline: j.Deadline, Request: req}
	return plannedJob{rec: rec, body: body}, nil
}

// jobToken is the credential a job carries: a token scoped to the study when the source
// mints them, else the channel's plugin_token (which does not expire with the job).
func (ch *channel) jobToken(studyUID string, ttl time.Duration) (string, time.Time) {
	if tk, ok := ch.source.(StudyTokens); ok {
		return tk.StudyToken(studyUID, ttl)
	}
	return ch.cfg.PluginToken, time.Time{}
}

// protocolStudy lists what a plugin may fetch. Patient attributes stay behind: the job
// carries only the pseudonymised patient.
func protocolStudy(sum *dicom.StudySummary, view *rules.StudyView) protocol.Study {
	s := protocol.Study{StudyInstanceUID: sum.StudyInstanceUID, AccessionNumber: sum.AccessionNumber,
		BodyPart: sum.BodyPartExamined, StudyDescription: sum.StudyDescription, Series: []protocol.Series{}}
	s.Modality = view.Modality
	for _, se := range sum.Series {
		ps := protocol.Series{SeriesInstanceUID: se.SeriesInstanceUID, Modality: se.Modality,
			SeriesDescription: se.SeriesDescription, Instances: []protocol.Instance{}}
		for _, in := range se.Instances {
			pi := protocol.Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID, InstanceNumber: in.InstanceNumber}
			if in.Frames > 1 {
				pi.Frames = in.Frames
			}
			ps.Instances = append(ps.Instances, pi)
		}
		s.Series = append(s.Series, ps)
	}
	return s
}

// protocolOrder is the order context a plugin sees: no patient identifiers, no provider.
func protocolOrder(o *store.Order) *protocol.Order {
	if o == nil {
		return nil
	}
	return &protocol.Order{Accession: o.Accession, Priority: priorityWord(o.Priority), Location: o.Location,
		ProcedureCode: o.ProcedureCode, ProcedureText: o.ProcedureText, Reason: o.Reason}
}

// priorityWord normalises an HL7 priority code (TQ1-9, OBR-27.6) to the protocol's words.
func priorityWord(code string) string {
	switch strings.ToUpper(code) {
	case "S":
		return protocol.PriorityStat
	case "A", "P", "T", "C":
		return protocol.PriorityUrgent
	case "R":
		return protocol.PriorityRoutine
	}
	return ""
}

// pseudonymise gives the plugin a patient it cannot identify: a keyed hash of the MRN that
// is stable within this installation (so a model team can tell two studies of one patient
// apart from two patients) and means nothing outside it.
func (e *Engine) pseudonymise(sum *dicom.StudySummary, view *rules.StudyView) protocol.Patient {
	p := protocol.Patient{Sex: strings.ToUpper(sum.PatientSex)}
	if p.Sex != "F" && p.Sex != "M" && p.Sex != "O" {
		p.Sex = ""
	}
	id := sum.PatientID
	if id == "" {
		id = "study:" + sum.StudyInstanceUID
	}
	m := hmac.New(sha256.New, e.pseudoKey)
	m.Write([]byte(id))
	p.PseudoID = hex.EncodeToString(m.Sum(nil))[:32]
	if age := view.PatientAge; age > 0 {
		p.AgeYears = &age
	}
	return p
}

// loadPseudoKey reads the installation's pseudonymisation key from the data dir, creating it
// on first use; without a data dir (tests, tools) the key lives for the process only.
func loadPseudoKey(dataDir string) ([]byte, error) {
	key := make([]byte, 32)
	if dataDir == "" {
		_, err := rand.Read(key)
		return key, err
	}
	path := filepath.Join(dataDir, "pseudonym.key")
	if b, err := os.ReadFile(path); err == nil && len(b) == 64 {
		if _, err := hex.Decode(key, b); err == nil {
			return key, nil
		}
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: two engines starting on one data dir must not each write their own key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadPseudoKey(dataDir)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write([]byte(hex.EncodeToString(key))); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

// commitJobs is the part of commitOutcomes that belongs to the plugin layer: it records the
// planned jobs and publishes those still waiting for this attempt. It reports false when ctx
// ended first.
func (ch *channel) commitJobs(ctx context.Context, outs []outcome, op func(func(context.Context) error) func() error) bool {
	var all []store.Job
	for _, o := range outs {
		for _, pj := range o.jobs {
			all = append(all, pj.rec)
		}
	}
	if len(all) == 0 {
		return true
	}
	st := ch.e.opts.Store
	if !retry(ctx, ch, "store jobs", op(func(c context.Context) error { return st.PutJobs(c, all) })) {
		return false
	}
	for _, o := range outs {
		for _, pj := range o.jobs {
			var cur store.Job
			if !retry(ctx, ch, "read job", op(func(c context.Context) (err error) {
				cur, err = st.Job(c, pj.rec.ID)
				return err
			})) {
				return false
			}
			// A repeated pass finds the job answered, timed out or on a later attempt: the
			// dispatcher owns it now.
			if cur.Status != store.JobQueued || cur.Attempt != pj.rec.Attempt {
				continue
			}
			if !retry(ctx, ch, "publish job", op(func(c context.Context) error {
				return publishJob(c, ch.e.opts.Broker.JetStream(), pj.rec.Plugin, pj.rec.ID, pj.rec.Attempt, pj.body)
			})) {
				return false
			}
			ch.e.m.JobsDispatched.WithLabelValues(pj.rec.Plugin).Inc()
		}
	}
	return true
}

func publishJob(ctx context.Context, js jetstream.JetStream, plugin, id string, attempt int, body []byte) error {
	m := nats.NewMsg(protocol.JobsSubject(plugin))
	m.Data = body
	m.Header.Set(jetstream.MsgIDHeader, protocol.ResultMsgID(id, attempt))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish job %s to %s: %w", id, protocol.JobsSubject(plugin), err)
	}
	return nil
}
