package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

// The runtime is tested with two in-process components: a source that hands the test its
// sink, and a capture destination whose answers the test scripts. They stand in for peers
// because the faults these tests need (a peer down for exactly N attempts, an AE on demand, a
// delivery that blocks until released) cannot be caused reliably with real peers; the MLLP
// connector is tested against real peers in channels/mllp and end to end in cmd/osprey.

type pushSource struct{ sinks chan engine.Sink }

func (s *pushSource) Run(ctx context.Context, sink engine.Sink) error {
	select {
	case s.sinks <- sink:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

type capture struct {
	mu     sync.Mutex
	got    []string // MSH-10 of each confirmed delivery, in order
	tries  map[string]int
	answer func(controlID string, try int) error // nil error = delivered
}

func (c *capture) Send(ctx context.Context, m *engine.Message) (engine.Reply, error) {
	msg, err := hl7v2.Parse(m.Body)
	if err != nil {
		return engine.Reply{}, fmt.Errorf("capture: %w", err)
	}
	id := msg.ControlID()
	c.mu.Lock()
	c.tries[id]++
	try, answer := c.tries[id], c.answer
	c.mu.Unlock()
	if answer != nil {
		if err := answer(id, try); err != nil {
			summary := "transport"
			if errors.Is(err, engine.ErrRejected) {
				summary = "AE"
			}
			return engine.Reply{Summary: summary}, err
		}
	}
	c.mu.Lock()
	c.got = append(c.got, id)
	c.mu.Unlock()
	return engine.Reply{Summary: "AA", Body: []byte("MSA|AA|" + id)}, nil
}

func (c *capture) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *capture) setAnswer(f func(string, int) error) {
	c.mu.Lock()
	c.answer = f
	c.mu.Unlock()
}

// harness is one engine with a test registry, an embedded NATS and a SQLite store.
type harness struct {
	t        *testing.T
	eng      *engine.Engine
	st       store.Store
	src      *pushSource
	sink     engine.Sink
	captures map[string]*capture
	dir      string
}

func newHarness(t *testing.T, channelYAML string) *harness {
	t.Helper()
	return newHarnessOn(t, brokertest.New(t), channelYAML)
}

func newHarnessOn(t *testing.T, br *brokertest.Server, channelYAML string) *harness {
	t.Helper()
	h := &harness{t: t, src: &pushSource{sinks: make(chan engine.Sink, 1)}, captures: map[string]*capture{}, dir: t.TempDir()}
	reg := engine.NewRegistry()
	reg.RegisterSource(spec.Component{Name: "push", Summary: "test source"},
		func(*spec.Parsed, engine.Resources) (engine.Source, error) { return h.src, nil })
	reg.RegisterDestination(spec.Component{Name: "capture", Summary: "test destination",
		Fields: []spec.Field{spec.NewString("key", "which capture")}},
		func(p *spec.Parsed, _ engine.Resources) (engine.Destination, error) {
			c := &capture{tries: map[string]int{}}
			h.captures[p.String("key")] = c
			return c, nil
		})
	st, err := sqlite.Open(context.Background(), filepath.Join(h.dir, "osprey.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h.st = st
	path := filepath.Join(h.dir, "osprey.yaml")
	write := func(y string) {
		if err := os.WriteFile(path, []byte("channels:\n"+y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(channelYAML)
	load := func(context.Context) (*config.Config, error) {
		cfg, lints := config.Load(path, reg)
		if cfg == nil {
			return nil, &engine.ConfigError{Lints: lints}
		}
		return cfg, nil
	}
	cfg, err := load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.eng = engine.New(engine.Options{Registry: reg, Broker: br.Broker, Store: st, Load: load, DataDir: h.dir})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h.eng.Shutdown(ctx)
	})
	if err := h.eng.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	select {
	case h.sink = <-h.src.sinks:
	case <-time.After(10 * time.Second):
		t.Fatal("source never started")
	}
	return h
}

func (h *harness) rewrite(channelYAML string) {
	if err := os.WriteFile(filepath.Join(h.dir, "osprey.yaml"), []byte("channels:\n"+channelYAML), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func hl7msg(typ, id, patient string) []byte {
	return []byte("MSH|^~\\&|HIS|HOSP|OSPREY|RAD|20261201120000||" + typ + "|" + id + "|P|2.5.1\r" +
		"PID|1||" + patient + "^^^HOSP^MR||Doe^Jane\rPV1|1|E|ER^1\r")
}

func (h *harness) send(body []byte) engine.Receipt {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := h.sink.Accept(ctx, &engine.Message{Body: body, Meta: map[string]string{"remote_addr": "127.0.0.1:5"}})
	if err != nil {
		h.t.Fatalf("accept: %v", err)
	}
	return rec
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) status(id string) store.Status {
	d, err := h.st.Get(context.Background(), id)
	if err != nil {
		return ""
	}
	return d.Message.Status
}

const simple = `
  - name: feed
    source: {push: {}}
    destinations:
      - name: out
        capture: {key: out}
        retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms}
`

func TestAcceptedMessageIsCommittedStoredAndDelivered(t *testing.T) {
	h := newHarness(t, simple)
	rec := h.send(hl7msg("ADT^A01", "C1", "P1"))
	if rec.Verdict != engine.Accepted || rec.ID == "" {
		t.Fatalf("receipt = %+v, want accepted with an id", rec)
	}
	waitFor(t, "status sent", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusSent })
	d, err := h.st.Get(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.ControlID != "C1" || d.Message.MessageType != "ADT^A01" || d.Message.PatientID != "P1" {
		t.Errorf("key fields = %q %q %q", d.Message.ControlID, d.Message.MessageType, d.Message.PatientID)
	}
	if d.Message.Source["remote_addr"] != "127.0.0.1:5" {
		t.Errorf("source meta = %v", d.Message.Source)
	}
	if len(d.Attempts) != 1 || !d.Attempts[0].OK || d.Attempts[0].ReplySummary != "AA" {
		t.Errorf("attempts = %+v, want one OK attempt with AA", d.Attempts)
	}
	if got := h.captures["out"].received(); !slices.Equal(got, []string{"C1"}) {
		t.Errorf("delivered %v, want [C1]", got)
	}
}

// The same path against the NATS server running on this machine (an external cluster to
// Osprey): the channel name carries the test's unique prefix so streams never collide.
func TestExternalNATSCarriesMessagesTheSameWay(t *testing.T) {
	br := brokertest.External(t)
	name := "feed-" + strings.ToLower(br.Prefix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range []string{"OSPREY_IN_", "OSPREY_OUT_"} {
			_ = br.JetStream().DeleteStream(ctx, s+strings.ToUpper(name))
		}
	})
	h := newHarnessOn(t, br, strings.ReplaceAll(simple, "name: feed", "name: "+name))
	var ids []string
	for i := range 50 {
		ids = append(ids, h.send(hl7msg("ADT^A08", fmt.Sprintf("E%02d", i), "P1")).ID)
	}
	waitFor(t, "all sent", 20*time.Second, func() bool {
		for _, id := range ids {
			if h.status(id) != store.StatusSent {
				return false
			}
		}
		return true
	})
	if n := len(h.captures["out"].received()); n != 50 {
		t.Errorf("delivered %d, want 50", n)
	}
}

// Accept returns only once the message is in the inbound stream: right after it returns, the
// stream's last sequence has moved, whatever the processor has done since.
func TestAcceptReturnsAfterTheStreamHasTheMessage(t *testing.T) {
	br := brokertest.New(t)
	h := newHarnessOn(t, br, simple)
	stream, err := br.JetStream().Stream(context.Background(), "OSPREY_IN_FEED")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		h.send(hl7msg("ADT^A08", fmt.Sprintf("S%d", i), "P1"))
		info, err := stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.LastSeq < uint64(i+1) {
			t.Fatalf("after %d accepts the inbound stream's last sequence is %d", i+1, info.State.LastSeq)
		}
	}
}

func TestUnparseableMessageIsRejectedAndKept(t *testing.T) {
	h := newHarness(t, simple)
	rec := h.send([]byte("this is not HL7"))
	if rec.Verdict != engine.Rejected || rec.Reason == nil {
		t.Fatalf("receipt = %+v, want rejected with a reason", rec)
	}
	waitFor(t, "rejected message stored", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusRejected })
	d, _ := h.st.Get(context.Background(), rec.ID)
	if string(d.Message.Raw) != "this is not HL7" || d.Message.Error == "" {
		t.Errorf("stored raw %q error %q: want the bytes as received and the parse error", d.Message.Raw, d.Message.Error)
	}
	if len(h.captures["out"].received()) != 0 {
		t.Error("a rejected message was delivered")
	}
}

func TestFilterAndTransformAreStagedAndApplied(t *testing.T) {
	h := newHarness(t, `
  - name: feed
    source: {push: {}}
    filter: 'msg.Type == "ADT"'
    transform:
      - set: {path: PV1-3.1, value: "ED|x"}
    destinations:
      - name: out
        capture: {key: out}
`)
	kept := h.send(hl7msg("ADT^A08", "K1", "P1"))
	dropped := h.send(hl7msg("ORU^R01", "D1", "P1"))
	waitFor(t, "kept message sent", 10*time.Second, func() bool { return h.status(kept.ID) == store.StatusSent })
	waitFor(t, "other message filtered", 10*time.Second, func() bool { return h.status(dropped.ID) == store.StatusFiltered })
	d, _ := h.st.Get(context.Background(), kept.ID)
	if len(d.Stages) != 1 || !strings.HasPrefix(d.Stages[0].Name, "transform[0] set") {
		t.Fatalf("stages = %+v, want the set step", d.Stages)
	}
	out, err := hl7v2.Parse(d.Stages[0].Output)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Get("PV1-3.1"); got != "ED|x" {
		t.Errorf("PV1-3.1 after transform = %q, want ED|x (escaped, not a new field)", got)
	}
	if got := out.Get("PV1-3.2"); got != "1" {
		t.Errorf("PV1-3.2 after transform = %q, want 1 (untouched)", got)
	}
	if got := h.captures["out"].received(); !slices.Equal(got, []string{"K1"}) {
		t.Errorf("delivered %v, want only K1", got)
	}
}

func TestOrderedChannelWaitsForADownDestinationAndKeepsOrder(t *testing.T) {
	h := newHarness(t, `
  - name: feed
    source: {push: {}}
    ordered: true
    destinations:
      - name: out
        capture: {key: out}
        retry: {max_attempts: 1000, initial_backoff: 5ms, max_backoff: 20ms}
`)
	c := h.captures["out"]
	down := errors.New("connection refused")
	c.setAnswer(func(string, int) error { return down })
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("M%02d", i)
		want = append(want, id)
		h.send(hl7msg("ADT^A08", id, "P1"))
	}
	// The first message is retried while the peer is down; nothing behind it overtakes it.
	waitFor(t, "several failed attempts", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.tries["M00"] >= 3
	})
	if n := len(c.received()); n != 0 {
		t.Fatalf("%d messages delivered while the peer was down", n)
	}
	c.setAnswer(nil)
	waitFor(t, "all 20 delivered", 20*time.Second, func() bool { return len(c.received()) == 20 })
	if got := c.received(); !slices.Equal(got, want) {
		t.Errorf("delivery order %v, want %v", got, want)
	}
}

func TestRejectionIsRetriedThenDeadLetteredAndCanBeRequeued(t *testing.T) {
	h := newHarness(t, simple)
	c := h.captures["out"]
	c.setAnswer(func(string, int) error { return fmt.Errorf("AE unknown patient: %w", engine.ErrRejected) })
	rec := h.send(hl7msg("ADT^A08", "R1", "P1"))
	waitFor(t, "dead letter", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusError })
	d, _ := h.st.Get(context.Background(), rec.ID)
	if len(d.Attempts) != 3 {
		t.Errorf("%d attempts, want max_attempts 3", len(d.Attempts))
	}
	dl, err := h.st.DeadLetters(context.Background(), store.DeadLetterQuery{Channel: "feed"})
	if err != nil || len(dl.Deliveries) != 1 || dl.Deliveries[0].MessageID != rec.ID {
		t.Fatalf("dead letters = %+v, %v", dl, err)
	}
	c.setAnswer(nil)
	if err := h.eng.Requeue(context.Background(), rec.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "requeued message sent", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusSent })
	d, _ = h.st.Get(context.Background(), rec.ID)
	if len(d.Attempts) != 4 || !d.Attempts[3].OK {
		t.Errorf("attempts after requeue = %+v, want a fourth, successful one", d.Attempts)
	}
	if err := h.eng.Requeue(context.Background(), rec.ID, ""); !errors.Is(err, engine.ErrBadRequest) {
		t.Errorf("requeue of a delivered message: err = %v, want ErrBadRequest", err)
	}
}

func TestOnRejectDeadLetterDoesNotRetry(t *testing.T) {
	h := newHarness(t, `
  - name: feed
    source: {push: {}}
    destinations:
      - name: out
        capture: {key: out}
        on_reject: dead_letter
        retry: {max_attempts: 5, initial_backoff: 10ms}
`)
	h.captures["out"].setAnswer(func(string, int) error { return fmt.Errorf("AR: %w", engine.ErrRejected) })
	rec := h.send(hl7msg("ADT^A08", "X1", "P1"))
	waitFor(t, "dead letter", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusError })
	d, _ := h.st.Get(context.Background(), rec.ID)
	if len(d.Attempts) != 1 {
		t.Errorf("%d attempts, want 1 (on_reject: dead_letter)", len(d.Attempts))
	}
}

func TestOrderedByKeepsOrderPerKeyWhileOtherKeysFlow(t *testing.T) {
	h := newHarness(t, `
  - name: feed
    source: {push: {}}
    ordered_by: 'msg.Get("PID-3.1")'
    destinations:
      - name: out
        capture: {key: out}
        retry: {max_attempts: 1000, initial_backoff: 5ms, max_backoff: 10ms}
`)
	c := h.captures["out"]
	release := make(chan struct{})
	var once sync.Once
	c.setAnswer(func(id string, _ int) error {
		if strings.HasPrefix(id, "A") {
			select {
			case <-release:
			default:
				return errors.New("peer busy for patient A")
			}
		}
		return nil
	})
	for i := range 5 {
		h.send(hl7msg("ADT^A08", fmt.Sprintf("A%d", i), "PA"))
		h.send(hl7msg("ADT^A08", fmt.Sprintf("B%d", i), "PB"))
	}
	waitFor(t, "patient B's messages", 10*time.Second, func() bool { return len(c.received()) == 5 })
	for _, id := range c.received() {
		if !strings.HasPrefix(id, "B") {
			t.Fatalf("%s delivered while patient A's first message was failing", id)
		}
	}
	once.Do(func() { close(release) })
	waitFor(t, "all delivered", 20*time.Second, func() bool { return len(c.received()) == 10 })
	var a, b []string
	for _, id := range c.received() {
		if id[0] == 'A' {
			a = append(a, id)
		} else {
			b = append(b, id)
		}
	}
	if !slices.IsSorted(a) || !slices.IsSorted(b) {
		t.Errorf("per-key order broken: A %v, B %v", a, b)
	}
}

func TestDuplicateControlIDIsRecordedNotDelivered(t *testing.T) {
	h := newHarness(t, `
  - name: feed
    source: {push: {}}
    dedupe: {window: 1m}
    destinations:
      - name: out
        capture: {key: out}
`)
	first := h.send(hl7msg("ADT^A08", "D1", "P1"))
	second := h.send(hl7msg("ADT^A08", "D1", "P1"))
	if first.Verdict != engine.Accepted || second.Verdict != engine.Duplicate {
		t.Fatalf("verdicts %v, %v: want accepted, duplicate", first.Verdict, second.Verdict)
	}
	waitFor(t, "duplicate stored", 10*time.Second, func() bool { return h.status(second.ID) == store.StatusDuplicate })
	waitFor(t, "original sent", 10*time.Second, func() bool { return h.status(first.ID) == store.StatusSent })
	if got := h.captures["out"].received(); !slices.Equal(got, []string{"D1"}) {
		t.Errorf("delivered %v, want D1 once", got)
	}
}

func TestReloadRefusesBrokenConfigAndAppliesGoodOne(t *testing.T) {
	h := newHarness(t, simple)
	h.rewrite(`
  - name: feed
    source: {push: {}}
    filter: 'msg.Typo == "ADT"'
    destinations:
      - name: out
        capture: {key: out}
`)
	err := h.eng.Reload(context.Background())
	var ce *engine.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "osprey.yaml:") {
		t.Fatalf("reload of a broken config: err = %v, want a ConfigError with a file position", err)
	}
	rec := h.send(hl7msg("ORU^R01", "K1", "P1"))
	waitFor(t, "old channel still delivers", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusSent })

	h.rewrite(`
  - name: feed
    source: {push: {}}
    filter: 'msg.Type == "ADT"'
    destinations:
      - name: out
        capture: {key: out2}
`)
	if err := h.eng.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case h.sink = <-h.src.sinks:
	case <-time.After(10 * time.Second):
		t.Fatal("reloaded channel's source never started")
	}
	oru := h.send(hl7msg("ORU^R01", "K2", "P1"))
	adt := h.send(hl7msg("ADT^A08", "K3", "P1"))
	waitFor(t, "new filter applies", 10*time.Second, func() bool {
		return h.status(oru.ID) == store.StatusFiltered && h.status(adt.ID) == store.StatusSent
	})
	if got := h.captures["out2"].received(); !slices.Equal(got, []string{"K3"}) {
		t.Errorf("new destination got %v, want [K3]", got)
	}
}

func TestReprocessCreatesALinkedMessage(t *testing.T) {
	h := newHarness(t, simple)
	rec := h.send(hl7msg("ADT^A08", "P1", "P1"))
	waitFor(t, "sent", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusSent })
	id, err := h.eng.Reprocess(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reprocessed sent", 10*time.Second, func() bool { return h.status(id) == store.StatusSent })
	d, _ := h.st.Get(context.Background(), id)
	if d.Message.ReprocessOf != rec.ID {
		t.Errorf("reprocess_of = %q, want %q", d.Message.ReprocessOf, rec.ID)
	}
	if got := h.captures["out"].received(); !slices.Equal(got, []string{"P1", "P1"}) {
		t.Errorf("delivered %v, want the message twice", got)
	}
	if _, err := h.eng.Reprocess(context.Background(), "NOPE"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reprocess of unknown id: %v, want store.ErrNotFound", err)
	}
}

func TestPauseHoldsDeliveriesAndStartResumes(t *testing.T) {
	h := newHarness(t, simple)
	if err := h.eng.Control(context.Background(), "feed", "pause"); err != nil {
		t.Fatal(err)
	}
	rec := h.send(hl7msg("ADT^A08", "Q1", "P1"))
	waitFor(t, "queued", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusQueued })
	if st := h.eng.Channels()[0].State; st != engine.StatePaused {
		t.Errorf("state %q, want paused", st)
	}
	if n := len(h.captures["out"].received()); n != 0 {
		t.Fatalf("%d delivered while paused", n)
	}
	if err := h.eng.Control(context.Background(), "feed", "start"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sent after resume", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusSent })
	if err := h.eng.Control(context.Background(), "nope", "pause"); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("unknown channel: %v", err)
	}
}

// A message larger than NATS takes cannot be queued, so retrying is pointless: it is
// rejected (the sender hears AE, not AR) and kept in the history all the same.
func TestOversizeMessageIsRejectedAndKept(t *testing.T) {
	h := newHarness(t, simple)
	big := append(hl7msg("ORU^R01", "BIG1", "P1"), []byte("OBX|1|ED|PDF||^application^pdf^Base64^"+strings.Repeat("QUJD", 3<<20)+"\r")...)
	rec := h.send(big)
	if rec.Verdict != engine.Rejected || rec.Reason == nil || !strings.Contains(rec.Reason.Error(), "larger than") {
		t.Fatalf("receipt = %+v, want rejected as too large", rec)
	}
	d, err := h.st.Get(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Message.Status != store.StatusRejected || len(d.Message.Raw) != len(big) || d.Message.ControlID != "BIG1" {
		t.Errorf("stored %s, %d bytes, control id %q: want rejected, %d bytes, BIG1", d.Message.Status, len(d.Message.Raw), d.Message.ControlID, len(big))
	}
}

func TestUndeliverableIsDeadLetteredAtOnce(t *testing.T) {
	h := newHarness(t, simple)
	h.captures["out"].setAnswer(func(string, int) error {
		return fmt.Errorf("no MSH-10 to match the ACK by: %w", engine.ErrUndeliverable)
	})
	rec := h.send(hl7msg("ADT^A08", "U1", "P1"))
	waitFor(t, "dead letter", 10*time.Second, func() bool { return h.status(rec.ID) == store.StatusError })
	if d, _ := h.st.Get(context.Background(), rec.ID); len(d.Attempts) != 1 {
		t.Errorf("%d attempts, want 1: retrying cannot help an undeliverable message", len(d.Attempts))
	}
}
