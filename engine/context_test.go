package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

// Study context is tested across two channels, as it runs: orders arrive on one (an MLLP
// feed from the RIS in production), studies on another (DICOMweb). The sources are the same
// in-process push sources as in engine_test.go, one per channel, and the destinations record
// the ids of what they were given whatever its content type.

type keyedPush struct {
	mu    sync.Mutex
	sinks map[string]chan engine.Sink
}

func (k *keyedPush) ch(key string) chan engine.Sink {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sinks[key] == nil {
		k.sinks[key] = make(chan engine.Sink, 1)
	}
	return k.sinks[key]
}

type recorder struct {
	mu  sync.Mutex
	ids map[string][]string // destination key -> message ids delivered
}

func (r *recorder) got(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids[key])
}

type recordDest struct {
	r   *recorder
	key string
}

func (d recordDest) Send(_ context.Context, m *engine.Message) (engine.Reply, error) {
	d.r.mu.Lock()
	d.r.ids[d.key] = append(d.r.ids[d.key], m.ID)
	d.r.mu.Unlock()
	return engine.Reply{Summary: "ok"}, nil
}

type ctxHarness struct {
	t     *testing.T
	br    *brokertest.Server
	st    store.Store
	push  *keyedPush
	rec   *recorder
	eng   *engine.Engine
	sinks map[string]engine.Sink
}

// newCtxHarness starts an engine with the given channels on br and st; sources are
// `push: {key: NAME}` and destinations `record: {key: NAME}`.
func newCtxHarness(t *testing.T, br *brokertest.Server, st store.Store, channelYAML string) *ctxHarness {
	t.Helper()
	h := &ctxHarness{t: t, br: br, st: st, push: &keyedPush{sinks: map[string]chan engine.Sink{}},
		rec: &recorder{ids: map[string][]string{}}, sinks: map[string]engine.Sink{}}
	reg := engine.NewRegistry()
	reg.RegisterSource(spec.Component{Name: "push", Summary: "test source", Fields: []spec.Field{spec.NewString("key", "which sink")}},
		func(p *spec.Parsed, _ engine.Resources) (engine.Source, error) {
			return sourceFunc(func(ctx context.Context, sink engine.Sink) error {
				select {
				case h.push.ch(p.String("key")) <- sink:
				case <-ctx.Done():
				}
				<-ctx.Done()
				return nil
			}), nil
		})
	reg.RegisterDestination(spec.Component{Name: "record", Summary: "test destination", Fields: []spec.Field{spec.NewString("key", "which list")}},
		func(p *spec.Parsed, _ engine.Resources) (engine.Destination, error) {
			return recordDest{r: h.rec, key: p.String("key")}, nil
		})
	path := filepath.Join(t.TempDir(), "osprey.yaml")
	if err := os.WriteFile(path, []byte("channels:\n"+channelYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, lints := config.Load(path, reg)
	if cfg == nil || spec.HasErrors(lints) {
		t.Fatalf("config: %v", lints)
	}
	h.eng = engine.New(engine.Options{Registry: reg, Broker: br.Broker, Store: st, DataDir: t.TempDir()})
	t.Cleanup(h.stop)
	if err := h.eng.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Channels {
		key := c.Source.Conf.String("key")
		select {
		case h.sinks[key] = <-h.push.ch(key):
		case <-time.After(10 * time.Second):
			t.Fatalf("source %s never started", key)
		}
	}
	return h
}

func (h *ctxHarness) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h.eng.Shutdown(ctx)
}

type sourceFunc func(ctx context.Context, sink engine.Sink) error

func (f sourceFunc) Run(ctx context.Context, sink engine.Sink) error { return f(ctx, sink) }

// StudyToken makes the push source one that serves its studies, as source.dicomweb does, so
// that AI jobs carry a token (ai_test.go).
func (f sourceFunc) StudyToken(uid string, ttl time.Duration) (string, time.Time) {
	return "test-token-" + uid, time.Now().Add(ttl)
}

func newSQLite(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "osprey.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (h *ctxHarness) send(key, contentType string, body []byte) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := h.sinks[key].Accept(ctx, &engine.Message{ContentType: contentType, Body: body})
	if err != nil || rec.Verdict != engine.Accepted {
		h.t.Fatalf("accept on %s: %+v, %v", key, rec, err)
	}
	return rec.ID
}

func (h *ctxHarness) detail(id string) store.Detail {
	d, _ := h.st.Get(context.Background(), id)
	return d
}

func (h *ctxHarness) waitStatus(id string, want store.Status, timeout time.Duration) store.Detail {
	h.t.Helper()
	waitFor(h.t, "message "+id+" "+string(want), timeout, func() bool { return h.detail(id).Message.Status == want })
	return h.detail(id)
}

func (h *ctxHarness) waitOrder(acc string) store.Order {
	h.t.Helper()
	var o store.Order
	waitFor(h.t, "order "+acc, 10*time.Second, func() bool {
		var err error
		o, err = h.st.Order(context.Background(), acc)
		return err == nil
	})
	return o
}

// orm is an ORM^O01 (v2.3.1) for accession acc with the priority in OBR-27.6, placed from
// location loc; control is ORC-1.
func orm(id, control, acc, priority, loc string) []byte {
	return []byte(`MSH|^~\&|RIS|HOSP|OSPREY|RAD|20261201101500||ORM^O01|` + id + `|P|2.3.1` + "\r" +
		`PID|1||MRN1^^^HOSP^MR||DOE^JANE||19700515|F` + "\r" +
		`PV1|1|E|` + loc + `^1^1^HOSP` + "\r" +
		`ORC|` + control + `|PL-` + acc + `|FL-` + acc + `||SC` + "\r" +
		`OBR|1|PL-` + acc + `|FL-` + acc + `|CTHEAD^CT HEAD WO CONTRAST` + strings.Repeat("|", 14) + acc + strings.Repeat("|", 9) + `^^^^^` + priority + "\r")
}

func studyJSON(t *testing.T, acc, modality, bodyPart, description string) []byte {
	t.Helper()
	// UIDs are digits (the plugin protocol checks them): the accession's bytes in decimal.
	n := ""
	for _, c := range []byte(acc) {
		n += strconv.Itoa(int(c))
	}
	s := dicom.StudySummary{
		StudyInstanceUID: "1.2.826.0.1.3680043.2." + n, AccessionNumber: acc, PatientID: "MRN1",
		Retrieve:         dicom.Retrieve{BaseURL: "http://127.0.0.1:1/dicom-web", Source: dicom.SourceSTOW},
		StudyDescription: description, PatientSex: "F", PatientAge: "056Y", Modalities: []string{modality},
		BodyPartExamined: bodyPart, NumberOfInstances: 2,
		Series: []dicom.SeriesSummary{{SeriesInstanceUID: "1.2.3." + n, Modality: modality, SeriesNumber: 1,
			BodyPartExamined: bodyPart, Instances: []dicom.InstanceSummary{{SOPInstanceUID: "1." + n, Frames: 1}, {SOPInstanceUID: "2." + n, Frames: 1}}}},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// contextChannels are the two channels of these tests. ris keeps order context (and proves
// that study and order filters on HL7 messages see zero values); studies routes on both.
func contextChannels(join string) string {
	return `
  - name: ris
    source: {push: {key: ris}}
    filter: 'msg.Type == "ORM"'
    destinations:
      - name: ris-out
        record: {key: ris-out}
        filter: '!order.Found && study.Modality == "" && !study.Contrast'
  - name: studies
    source: {push: {key: studies}}
` + join + `
    destinations:
      - name: ai
        record: {key: ai}
        filter: 'study.Modality == "CT" && study.BodyPart == "HEAD" && !study.Contrast && order.Priority == "S" && order.Location startsWith "ED"'
      - name: no-order
        record: {key: no-order}
        filter: '!order.Found'
      - name: archive
        record: {key: archive}
`
}

func stageNames(d store.Detail) []string {
	var out []string
	for _, s := range d.Stages {
		out = append(out, s.Name)
	}
	return out
}

func TestOrderThenStudyJoins(t *testing.T) {
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), contextChannels(""))
	tests := []struct {
		name      string
		acc       string
		priority  string
		loc       string
		modality  string
		desc      string
		wantRoute []string // destinations the study reaches
	}{
		{"stat head CT from the ED goes to the AI", "ACC1", "S", "EDX", "CT", "CT HEAD WO CONTRAST", []string{"ai", "archive"}},
		{"routine order does not", "ACC2", "R", "EDX", "CT", "CT HEAD WO CONTRAST", []string{"archive"}},
		{"outpatient location does not", "ACC3", "S", "OPD", "CT", "CT HEAD WO CONTRAST", []string{"archive"}},
		{"contrast study does not", "ACC4", "S", "EDX", "CT", "CT HEAD W CONTRAST", []string{"archive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ormID := h.send("ris", engine.ContentHL7v2, orm("O-"+tt.acc, "NW", tt.acc, tt.priority, tt.loc))
			h.waitStatus(ormID, store.StatusSent, 10*time.Second)
			o := h.waitOrder(tt.acc)
			if o.Priority != tt.priority || o.Location != tt.loc || o.MessageID != ormID || o.Channel != "ris" {
				t.Fatalf("order context = %+v", o)
			}
			if got := h.rec.got("ris-out"); !slices.Contains(got, ormID) {
				t.Errorf("the ORM did not pass ris-out's filter over zero study and order values")
			}
			id := h.send("studies", engine.ContentStudy, studyJSON(t, tt.acc, tt.modality, "HEAD", tt.desc))
			d := h.waitStatus(id, store.StatusSent, 10*time.Second)
			if d.Message.MessageType != "STUDY" || d.Message.Accession != tt.acc || d.Message.PatientID != "MRN1" {
				t.Errorf("key fields = %q %q %q", d.Message.MessageType, d.Message.Accession, d.Message.PatientID)
			}
			if names := stageNames(d); len(names) == 0 || !strings.HasPrefix(names[0], "join: order "+tt.acc) {
				t.Errorf("stages %q, want the join with order %s first", names, tt.acc)
			}
			for _, dest := range []string{"ai", "no-order", "archive"} {
				if got, want := slices.Contains(h.rec.got(dest), id), slices.Contains(tt.wantRoute, dest); got != want {
					t.Errorf("delivered to %s: %v, want %v", dest, got, want)
				}
			}
		})
	}

	t.Run("a cancellation updates the order context, keeping what it does not restate", func(t *testing.T) {
		h.waitStatus(h.send("ris", engine.ContentHL7v2, orm("C-ACC1", "CA", "ACC1", "", "")), store.StatusSent, 10*time.Second)
		waitFor(t, "order cancelled", 10*time.Second, func() bool {
			o, err := h.st.Order(context.Background(), "ACC1")
			return err == nil && o.Status == "CA" && o.Priority == "S" && len(o.MessageIDs) == 2
		})
	})
}

func TestStudyThenOrderWithinWaitJoins(t *testing.T) {
	// The wait is long: only the order's arrival can release the study within the test.
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), contextChannels("    join: {wait: 10m}"))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC9", "CT", "HEAD", "CT HEAD"))
	waitFor(t, "study held", 10*time.Second, func() bool {
		d := h.detail(id)
		return d.Message.Status == store.StatusReceived && len(d.Stages) == 1 && strings.Contains(d.Stages[0].Name, "waiting up to 10m0s for order ACC9")
	})
	// The channel is not blocked by the held study: another study with its order goes through.
	h.waitStatus(h.send("ris", engine.ContentHL7v2, orm("O-ACC8", "NW", "ACC8", "R", "EDX")), store.StatusSent, 10*time.Second)
	other := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC8", "CT", "HEAD", "CT HEAD"))
	h.waitStatus(other, store.StatusSent, 10*time.Second)
	if st := h.detail(id).Message.Status; st != store.StatusReceived {
		t.Fatalf("held study is %s before its order arrived", st)
	}
	if n := len(h.rec.got("archive")); n != 1 {
		t.Fatalf("archive has %d studies before the order, want only the other one", n)
	}

	h.send("ris", engine.ContentHL7v2, orm("O-ACC9", "NW", "ACC9", "S", "ED-RESUS"))
	d := h.waitStatus(id, store.StatusSent, 15*time.Second)
	if got := h.rec.got("ai"); !slices.Equal(got, []string{id}) {
		t.Errorf("ai got %v, want the held study joined with its stat ED order", got)
	}
	if slices.Contains(h.rec.got("no-order"), id) {
		t.Error("the joined study went to no-order")
	}
	names := stageNames(d)
	if len(names) != 2 || !strings.HasPrefix(names[1], "join: order ACC9") || d.Stages[1].Seq != 2 {
		t.Errorf("stages %q, want the wait then the join", names)
	}
}

func TestStudyWithoutOrderProceedsAfterWait(t *testing.T) {
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), contextChannels("    join: {wait: 1500ms}"))
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "NOPE1", "CT", "HEAD", "CT HEAD"))
	waitFor(t, "study held", 10*time.Second, func() bool {
		return h.detail(id).Message.Status == store.StatusReceived && len(h.detail(id).Stages) == 1
	})
	d := h.waitStatus(id, store.StatusSent, 20*time.Second)
	if got := h.rec.got("no-order"); !slices.Equal(got, []string{id}) {
		t.Errorf("no-order got %v, want the study with order.Found false", got)
	}
	if len(h.rec.got("ai")) != 0 {
		t.Error("a study without an order reached the ai destination")
	}
	if names := stageNames(d); len(names) != 2 || !strings.Contains(names[1], "no order NOPE1 after waiting 1.5s") {
		t.Errorf("stages %q, want the wait then no order", names)
	}
	// A study without an accession number cannot join: it is not held at all.
	bare := h.send("studies", engine.ContentStudy, studyJSON(t, "", "CT", "HEAD", "CT HEAD"))
	d = h.waitStatus(bare, store.StatusSent, 10*time.Second)
	if names := stageNames(d); len(names) != 1 || !strings.Contains(names[0], "no accession") {
		t.Errorf("stages %q, want one join stage saying there is no accession", names)
	}
}

// A held study is durable: an engine that stops while the study waits hands it back, and
// the next engine on the same NATS and store releases it when its order comes.
func TestHeldStudySurvivesARestart(t *testing.T) {
	br, st := brokertest.New(t), newSQLite(t)
	channels := contextChannels("    join: {wait: 10m}")
	h := newCtxHarness(t, br, st, channels)
	id := h.send("studies", engine.ContentStudy, studyJSON(t, "ACC7", "CT", "HEAD", "CT HEAD"))
	waitFor(t, "study held", 10*time.Second, func() bool {
		return h.detail(id).Message.Status == store.StatusReceived && len(h.detail(id).Stages) == 1
	})
	h.stop()

	h2 := newCtxHarness(t, br, st, channels)
	h2.send("ris", engine.ContentHL7v2, orm("O-ACC7", "NW", "ACC7", "S", "EDX"))
	h2.waitStatus(id, store.StatusSent, 20*time.Second)
	if got := h2.rec.got("ai"); !slices.Equal(got, []string{id}) {
		t.Errorf("ai got %v after the restart, want the held study once", got)
	}
}

func TestUnreadableStudyIsAnError(t *testing.T) {
	h := newCtxHarness(t, brokertest.New(t), newSQLite(t), contextChannels("    join: {wait: 10m}"))
	id := h.send("studies", engine.ContentStudy, []byte(`{"study_instance_uid": 7}`))
	d := h.waitStatus(id, store.StatusError, 10*time.Second)
	if !strings.Contains(d.Message.Error, "study summary") {
		t.Errorf("error %q, want it to say the study summary could not be read", d.Message.Error)
	}
	for _, dest := range []string{"ai", "no-order", "archive"} {
		if len(h.rec.got(dest)) != 0 {
			t.Errorf("an unreadable study reached %s", dest)
		}
	}
}
