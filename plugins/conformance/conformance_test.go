package conformance_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/plugins/conformance"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// waitFor bounds every wait of the tests: long on a loaded machine, short enough that a hang
// fails the test rather than the run.
const waitFor = 30 * time.Second

const pluginName = "test-plugin"

var cases = []string{conformance.CaseCTHeadBleed, conformance.CaseCTHeadNormal, conformance.CaseXRChest, conformance.CaseBadToken}

// every names one check for each canned case.
func every(check string) []string {
	out := make([]string, len(cases))
	for i, c := range cases {
		out[i] = c + ": " + check
	}
	return out
}

func row(c, check string) string { return c + ": " + check }

// check runs a conformance run against s and logs its table.
func check(t *testing.T, s *brokertest.Server, opts conformance.Options) *conformance.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if opts.Plugin == "" {
		opts.Plugin = pluginName
	}
	rep, err := conformance.Run(ctx, s.Broker, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", buf.String())
	return rep
}

func failedNames(rep *conformance.Report) []string {
	var out []string
	for _, c := range rep.Failed() {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

// TestRunFindsFaults runs the check against plugins that each get one thing wrong, and
// expects exactly the rows that thing breaks to fail, with the reason in their detail.
func TestRunFindsFaults(t *testing.T) {
	tests := []struct {
		fault   fault
		timeout time.Duration
		fail    []string
		detail  map[string]string // row -> substring of its detail
	}{
		{fault: faultUnknownField, fail: every("schema"), detail: map[string]string{row(conformance.CaseCTHeadBleed, "schema"): "/score"}},
		{fault: faultWrongJobID, fail: every("against job"), detail: map[string]string{row(conformance.CaseXRChest, "against job"): "/job_id"}},
		{fault: faultNoMsgID, fail: every("Nats-Msg-Id"), detail: map[string]string{row(conformance.CaseCTHeadNormal, "Nats-Msg-Id"): "missing"}},
		{fault: faultNoVersion, fail: every("plugin version"), detail: map[string]string{row(conformance.CaseBadToken, "plugin version"): protocol.HeaderPluginVersion + " missing"}},
		{
			fault:  faultDuplicate,
			fail:   []string{row(conformance.CaseCTHeadBleed, "Nats-Msg-Id"), row(conformance.CaseCTHeadBleed, "one result")},
			detail: map[string]string{row(conformance.CaseCTHeadBleed, "one result"): "2 results", row(conformance.CaseCTHeadBleed, "Nats-Msg-Id"): "result 2: header missing"},
		},
		{fault: faultIgnoresToken, fail: []string{row(conformance.CaseBadToken, "status")}, detail: map[string]string{row(conformance.CaseBadToken, "status"): "want failed with error code fetch_failed"}},
		{fault: faultFailsAll, fail: every("status"), detail: map[string]string{row(conformance.CaseCTHeadBleed, "status"): "the origin serves this study"}},
		{fault: faultBadProgress, fail: every("progress"), detail: map[string]string{row(conformance.CaseCTHeadBleed, "progress"): "/percent"}},
		{
			fault: faultSilentBleed, timeout: 3 * time.Second,
			fail:   []string{row(conformance.CaseCTHeadBleed, "result")},
			detail: map[string]string{row(conformance.CaseCTHeadBleed, "result"): "no result"},
		},
		{
			fault: faultLateBleed, timeout: 3 * time.Second,
			fail:   []string{row(conformance.CaseCTHeadBleed, "result")},
			detail: map[string]string{row(conformance.CaseCTHeadBleed, "result"): "after the deadline"},
		},
		{
			fault: faultBadDiscovery,
			fail:  append([]string{"service metadata", "service protocol", "service version"}, every("plugin version")...),
			detail: map[string]string{
				"service metadata": `"device_uid" missing`, "service protocol": "osprey.ai/v0", "service version": `"1.0" is not a semantic version`,
			},
		},
		{fault: faultForeign},
		{fault: faultStray, fail: []string{"stray results"}, detail: map[string]string{"stray results": "-bogus"}},
		{
			fault:  faultBadReference,
			fail:   []string{row(conformance.CaseCTHeadBleed, "against job"), row(conformance.CaseCTHeadNormal, "against job")},
			detail: map[string]string{row(conformance.CaseCTHeadNormal, "against job"): `/findings/0/references/0/sop_instance_uid: "1.2.3.9.9" is not an instance of the job's study`},
		},
		{
			fault:  faultRawInvalid,
			fail:   []string{row(conformance.CaseCTHeadBleed, "against job"), row(conformance.CaseCTHeadBleed, "schema"), row(conformance.CaseCTHeadBleed, "status")},
			detail: map[string]string{row(conformance.CaseCTHeadBleed, "schema"): "not a JSON document"},
		},
	}
	for _, tc := range tests {
		t.Run(string(tc.fault), func(t *testing.T) {
			t.Parallel() // each has a server of its own
			s := brokertest.New(t)
			startPlugin(t, s, pluginName, tc.fault)
			rep := check(t, s, conformance.Options{Timeout: tc.timeout})

			want := slices.Clone(tc.fail)
			slices.Sort(want)
			if got := failedNames(rep); !slices.Equal(got, want) {
				t.Errorf("failed rows\n got %q\nwant %q", got, want)
			}
			for name, sub := range tc.detail {
				c, ok := rep.Check(name)
				if !ok {
					t.Errorf("no row %q", name)
					continue
				}
				if !strings.Contains(c.Detail, sub) {
					t.Errorf("row %q: detail %q does not contain %q", name, c.Detail, sub)
				}
			}
			if rep.Passed() != (len(tc.fail) == 0) {
				t.Errorf("Passed() = %v with %d failed rows", rep.Passed(), len(tc.fail))
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			assertCleanedUp(ctx, t, s.JetStream())
		})
	}
}

// TestRunCorrectPlugin runs the check against a correct plugin: every row passes, the
// answers are the plugin's, the streams are created when absent and left as they are when
// present, and nothing of the run stays behind.
func TestRunCorrectPlugin(t *testing.T) {
	tests := []struct {
		name     string
		existing bool // the engine made the streams before, with its own consumer settings
	}{
		{name: "creates streams"},
		{name: "keeps existing streams", existing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := brokertest.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			js := s.JetStream()
			if tc.existing {
				jobs, err := js.CreateStream(ctx, protocol.JobsStreamConfig(pluginName))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := jobs.CreateConsumer(ctx, protocol.JobsConsumerConfig(pluginName, 5, 3)); err != nil {
					t.Fatal(err)
				}
				if _, err := js.CreateStream(ctx, protocol.ResultsStreamConfig()); err != nil {
					t.Fatal(err)
				}
			}
			startPlugin(t, s, pluginName, faultNone)
			rep := check(t, s, conformance.Options{})
			if !rep.Passed() {
				t.Fatalf("failed rows: %v", rep.Failed())
			}
			for _, name := range []string{"jobs stream", "jobs consumer", "results stream"} {
				c, _ := rep.Check(name)
				if want := map[bool]string{true: "found", false: "created"}[tc.existing]; !strings.Contains(c.Detail, want) {
					t.Errorf("row %q: detail %q, want %q", name, c.Detail, want)
				}
			}

			wantStatus := map[string]protocol.Status{
				conformance.CaseCTHeadBleed: protocol.StatusCompleted, conformance.CaseCTHeadNormal: protocol.StatusCompleted,
				conformance.CaseXRChest: protocol.StatusNotApplicable, conformance.CaseBadToken: protocol.StatusFailed,
			}
			if len(rep.Outcomes) != len(wantStatus) {
				t.Fatalf("%d outcomes, want %d", len(rep.Outcomes), len(wantStatus))
			}
			for _, o := range rep.Outcomes {
				if !strings.HasPrefix(o.JobID, conformance.JobIDPrefix) || !strings.HasSuffix(o.JobID, "-"+o.Case) {
					t.Errorf("job id %q of case %s", o.JobID, o.Case)
				}
				if o.Result == nil || o.Result.Status != wantStatus[o.Case] {
					t.Errorf("case %s: result %+v, want status %s", o.Case, o.Result, wantStatus[o.Case])
				}
			}

			cons, err := js.Consumer(ctx, protocol.JobsStream(pluginName), protocol.Consumer(pluginName))
			if err != nil {
				t.Fatal(err)
			}
			cfg := cons.CachedInfo().Config
			wantDeliver, wantPending := -1, -1
			if tc.existing {
				wantDeliver, wantPending = 5, 3
			}
			if cfg.MaxDeliver != wantDeliver || cfg.MaxAckPending != wantPending || cfg.AckWait != protocol.DefaultAckWait {
				t.Errorf("consumer max deliver %d, max ack pending %d, ack wait %s; want %d, %d, %s",
					cfg.MaxDeliver, cfg.MaxAckPending, cfg.AckWait, wantDeliver, wantPending, protocol.DefaultAckWait)
			}
			assertCleanedUp(ctx, t, js)
		})
	}
}

// TestRunNoInstance: without a running plugin the run reports discovery failed and sends no job.
func TestRunNoInstance(t *testing.T) {
	s := brokertest.New(t)
	rep := check(t, s, conformance.Options{DiscoveryTimeout: time.Second})
	if len(rep.Checks) != 1 || rep.Checks[0].Name != "discovery" || rep.Checks[0].Pass {
		t.Fatalf("checks %+v, want one failed discovery row", rep.Checks)
	}
	if rep.Passed() {
		t.Error("Passed() with no instance")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := s.JetStream().Stream(ctx, protocol.JobsStream(pluginName)); err == nil {
		t.Error("jobs stream created although no instance runs")
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CHECK", "discovery", "FAIL", "no instance answered", "plugin test-plugin: FAIL, 1 of 1 checks"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestRunRejectsBadName(t *testing.T) {
	s := brokertest.New(t)
	if _, err := conformance.Run(context.Background(), s.Broker, conformance.Options{Plugin: "Bad Name"}); err == nil {
		t.Fatal("no error for an invalid plugin name")
	}
}

// assertCleanedUp checks that the run left no canned studies and no canned jobs.
func assertCleanedUp(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	for name := range js.ObjectStoreNames(ctx).Name() {
		if strings.HasPrefix(name, "osprey-check-") {
			t.Errorf("object store %s left behind", name)
		}
	}
	for name := range js.KeyValueStoreNames(ctx).Name() {
		if strings.HasPrefix(name, "osprey-check-") {
			t.Errorf("key-value bucket %s left behind", name)
		}
	}
	jobs, err := js.Stream(ctx, protocol.JobsStream(pluginName))
	if err != nil {
		t.Fatal(err)
	}
	info, err := jobs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("%d canned jobs left in %s", info.State.Msgs, protocol.JobsStream(pluginName))
	}
}
