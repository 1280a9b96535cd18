package conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/plugins/conformance"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// fault is what a test plugin gets wrong; faultNone is a correct plugin.
type fault string

const (
	faultNone         fault = ""
	faultUnknownField fault = "unknown field"     // every result carries a member the schema lacks
	faultWrongJobID   fault = "wrong job id"      // every result names another job in its body
	faultNoMsgID      fault = "no msg id"         // results published without Nats-Msg-Id
	faultNoVersion    fault = "no version"        // results published without the plugin-version header
	faultDuplicate    fault = "duplicate"         // the bleed job answered twice, the copy without Nats-Msg-Id
	faultIgnoresToken fault = "ignores token"     // never fetches: answers completed even with a refused token
	faultFailsAll     fault = "fails all"         // answers every job failed, internal
	faultBadProgress  fault = "bad progress"      // heartbeats with percent 150
	faultSilentBleed  fault = "silent on bleed"   // never answers the bleed job
	faultBadDiscovery fault = "bad discovery"     // version "1.0", protocol osprey.ai/v0, no device_uid
	faultForeign      fault = "foreign result"    // also publishes a result for a job of the engine
	faultStray        fault = "stray result"      // also publishes a result for a job of the run that does not exist
	faultBadReference fault = "bad reference"     // references an instance that is not in the study
	faultRawInvalid   fault = "not json"          // the bleed job's result is not JSON at all
	faultLateBleed    fault = "late on the bleed" // answers the bleed job only after its deadline
)

const (
	testVersion = "1.2.3"
	// bleedCase is how the test plugin recognises the job of the bleed study: the run's job
	// ids end with the case name.
	bleedCase = "-" + conformance.CaseCTHeadBleed
)

// testPlugin is a plugin written with nats.go and micro alone, the way a model team would
// without the SDK: metadata in discovery, pull from the shared consumer, WADO-RS metadata with
// the job's token, progress, result with its headers, ack after the publish ack.
type testPlugin struct {
	name  string
	fault fault
	nc    *nats.Conn
	js    jetstream.JetStream

	mu   sync.Mutex
	errs []error // what went wrong inside the plugin, reported when the test ends
}

// pluginPermissions are the NATS permissions docs/plugins.md gives a plugin: the test plugins
// run with exactly those, so the check is shown to need nothing more of a plugin.
func pluginPermissions(name string) *broker.Permissions {
	p := broker.Permissions(protocol.PluginPermissions(name))
	return &p
}

// startPlugin connects a test plugin to s with a plugin's credentials and starts it, once it
// is discoverable; when the test ends it stops and reports any error it met.
func startPlugin(t *testing.T, s *brokertest.Server, name string, f fault) *testPlugin {
	t.Helper()
	// Its credentials allow its own inboxes only.
	nc := s.Connect(t, name, pluginPermissions(name), nats.CustomInboxPrefix(protocol.InboxPrefix(name)))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPlugin{name: name, fault: f, nc: nc, js: js}
	meta := map[string]string{
		protocol.MetaModelName: "test-model", protocol.MetaModelVersion: "0.0.1", protocol.MetaManufacturer: "Osprey tests",
		protocol.MetaDeviceUID: "2.25.1", protocol.MetaModalities: "CT", protocol.MetaBodyParts: "HEAD",
		protocol.MetaProtocol: protocol.Version,
	}
	version := testVersion
	if f == faultBadDiscovery {
		version = "1.0"
		meta[protocol.MetaProtocol] = "osprey.ai/v0"
		delete(meta, protocol.MetaDeviceUID)
	}
	if f == faultBadDiscovery {
		// micro refuses a version that is not semver, so this plugin answers discovery by hand,
		// as docs/plugins.md describes for clients without a micro library.
		handRolledDiscovery(t, nc, name, version, meta)
	} else {
		svc, err := micro.AddService(nc, micro.Config{Name: name, Version: version, Metadata: meta})
		if err != nil {
			t.Fatalf("plugin service: %v", err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve(ctx, version)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, err := range p.errs {
			t.Errorf("test plugin %s: %v", name, err)
		}
	})
	waitDiscoverable(t, s, name)
	return p
}

func (p *testPlugin) fail(err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

// serve binds to the jobs consumer once it exists (the check creates it when absent) and
// handles one job at a time until ctx ends.
func (p *testPlugin) serve(ctx context.Context, version string) {
	var cons jetstream.Consumer
	for {
		var err error
		cons, err = p.js.Consumer(ctx, protocol.JobsStream(p.name), protocol.Consumer(p.name))
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			if ctx.Err() == nil {
				p.fail(fmt.Errorf("bind: %w", err))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond): // the consumer appears when the check starts
		}
	}
	for ctx.Err() == nil {
		msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionClosed) {
				p.fail(fmt.Errorf("fetch: %w", err))
			}
			return
		}
		for m := range msgs.Messages() {
			if err := p.handle(ctx, m, version); err != nil && ctx.Err() == nil {
				p.fail(err)
			}
		}
	}
}

func (p *testPlugin) handle(ctx context.Context, m jetstream.Msg, version string) error {
	var job protocol.Job
	if err := json.Unmarshal(m.Data(), &job); err != nil {
		_ = m.Term()
		return fmt.Errorf("job: %w", err)
	}
	bleed := strings.HasSuffix(job.JobID, bleedCase)
	if p.fault == faultSilentBleed && bleed {
		return nil // neither answer nor ack: the check must see no result
	}
	if p.fault == faultLateBleed && bleed {
		select {
		case <-time.After(time.Until(job.Deadline) + 100*time.Millisecond):
		case <-ctx.Done():
			return nil
		}
	}
	percent := 10.0
	if p.fault == faultBadProgress {
		percent = 150
	}
	prog, _ := json.Marshal(protocol.Progress{Protocol: protocol.Version, JobID: job.JobID, Plugin: p.name, Percent: percent, Message: "fetching metadata", At: time.Now().UTC()})
	if err := p.nc.Publish(protocol.ProgressSubject(job.JobID), prog); err != nil {
		return err
	}
	if err := m.InProgress(); err != nil {
		return err
	}

	res := p.analyse(ctx, job)
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	switch {
	case p.fault == faultUnknownField:
		body = append(body[:len(body)-1], []byte(`,"score":0.5}`)...)
	case p.fault == faultRawInvalid && bleed:
		body = []byte("finding: yes")
	}
	msg := nats.NewMsg(protocol.ResultsSubject(p.name))
	msg.Data = body
	if p.fault != faultNoMsgID {
		msg.Header.Set(jetstream.MsgIDHeader, protocol.ResultMsgID(job.JobID, job.Attempt))
	}
	if p.fault != faultNoVersion {
		msg.Header.Set(protocol.HeaderPluginVersion, version)
	}
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	if p.fault == faultDuplicate && bleed {
		again := nats.NewMsg(msg.Subject)
		again.Data = body
		again.Header.Set(protocol.HeaderPluginVersion, version)
		if _, err := p.js.PublishMsg(ctx, again); err != nil {
			return fmt.Errorf("publish copy: %w", err)
		}
	}
	if p.fault == faultForeign || p.fault == faultStray {
		other := res
		other.JobID = "01JDQ4ZP8K3T6V9X2B5N7M1C4R" // a job of the engine
		if p.fault == faultStray {
			other.JobID = job.JobID[:strings.LastIndexByte(job.JobID, '-')] + "-bogus"
		}
		data, _ := json.Marshal(other)
		extra := nats.NewMsg(msg.Subject)
		extra.Data = data
		extra.Header.Set(jetstream.MsgIDHeader, protocol.ResultMsgID(other.JobID, 1))
		extra.Header.Set(protocol.HeaderPluginVersion, version)
		if _, err := p.js.PublishMsg(ctx, extra); err != nil {
			return fmt.Errorf("publish extra: %w", err)
		}
	}
	return m.Ack()
}

// analyse is the test plugin's "model": it reads the study's metadata with the job's token and
// rules a haemorrhage out on every CT (it has no eyes); other modalities are not for it.
func (p *testPlugin) analyse(ctx context.Context, job protocol.Job) protocol.Result {
	res := protocol.Result{Protocol: protocol.Version, JobID: job.JobID, Plugin: job.Plugin}
	if p.fault == faultWrongJobID {
		res.JobID = job.JobID + "x"
	}
	if p.fault == faultFailsAll {
		res.Status, res.Error = protocol.StatusFailed, &protocol.Error{Code: protocol.ErrCodeInternal, Message: "out of memory"}
		return res
	}
	model := protocol.Model{Name: "test-model", Version: "0.0.1"}
	if p.fault != faultIgnoresToken {
		if err := fetchMetadata(ctx, job); err != nil {
			res.Status, res.Error = protocol.StatusFailed, &protocol.Error{Code: protocol.ErrCodeFetch, Message: err.Error()}
			return res
		}
	}
	if job.Study.Modality != "CT" {
		res.Status, res.Model, res.Summary = protocol.StatusNotApplicable, model, "not a CT"
		return res
	}
	s := job.Study.Series[0]
	ref := protocol.Reference{SeriesInstanceUID: s.SeriesInstanceUID, SOPInstanceUID: s.Instances[0].SOPInstanceUID}
	if p.fault == faultBadReference {
		ref.SOPInstanceUID = "1.2.3.9.9"
	}
	res.Status, res.Model = protocol.StatusCompleted, model
	res.Findings = []protocol.Finding{{
		ID: "ich-1", Code: protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
		Present: false, Confidence: 0.5, References: []protocol.Reference{ref},
	}}
	return res
}

func fetchMetadata(ctx context.Context, job protocol.Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.DICOMweb.BaseURL+"/studies/"+job.Study.StudyInstanceUID+"/metadata", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+job.DICOMweb.Token)
	req.Header.Set("Accept", "application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("WADO-RS metadata: HTTP %d", resp.StatusCode)
	}
	var instances []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&instances); err != nil {
		return fmt.Errorf("WADO-RS metadata: %w", err)
	}
	if len(instances) == 0 {
		return errors.New("WADO-RS metadata: no instances")
	}
	return nil
}

// handRolledDiscovery answers $SRV.PING, INFO and STATS (all, by name, by name and id) with the
// JSON the micro protocol defines.
func handRolledDiscovery(t *testing.T, nc *nats.Conn, name, version string, meta map[string]string) {
	t.Helper()
	const id = "HANDROLLED1"
	answers := map[string]map[string]any{
		"PING":  {"type": micro.PingResponseType},
		"INFO":  {"type": micro.InfoResponseType, "description": "", "endpoints": []any{}},
		"STATS": {"type": micro.StatsResponseType, "started": time.Now().UTC().Format(time.RFC3339), "endpoints": []any{}},
	}
	for verb, answer := range answers {
		answer["name"], answer["id"], answer["version"], answer["metadata"] = name, id, version, meta
		data, err := json.Marshal(answer)
		if err != nil {
			t.Fatal(err)
		}
		for _, subject := range []string{"$SRV." + verb, "$SRV." + verb + "." + name, "$SRV." + verb + "." + name + "." + id} {
			sub, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(data) })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sub.Unsubscribe() })
		}
	}
}

// waitDiscoverable polls $SRV.PING.<name> until an instance answers, so that a run does not
// start before the plugin is there.
func waitDiscoverable(t *testing.T, s *brokertest.Server, name string) {
	t.Helper()
	nc := s.Conn()
	deadline := time.Now().Add(waitFor)
	for {
		if _, err := nc.Request("$SRV.PING."+name, nil, 500*time.Millisecond); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %s not discoverable within %s", name, waitFor)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, not waiting for time to pass
	}
}
