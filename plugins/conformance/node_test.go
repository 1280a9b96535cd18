package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/plugins/conformance"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// nodePluginDir is the JavaScript example plugin, relative to this package.
var nodePluginDir = filepath.Join("..", "..", "examples", "node-plugin")

const nodePluginName = "slice-qa"

// skipOrFail skips a test whose tool is missing, unless CI requires every service.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("required (OSPREY_TEST_REQUIRE_SERVICES=1): "+format, args...)
	}
	t.Skipf(format, args...)
}

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// nodePlugin is the example plugin running as a subprocess.
type nodePlugin struct {
	cmd    *exec.Cmd
	exited chan error
	out    *syncBuffer
}

// requireNode returns the node binary, or skips the test when node or the plugin's
// node_modules are absent.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipOrFail(t, "node is not installed (apt-get install -y nodejs npm): %v", err)
	}
	if _, err := os.Stat(filepath.Join(nodePluginDir, "node_modules", "nats", "package.json")); err != nil {
		skipOrFail(t, "examples/node-plugin has no node_modules: run npm ci --prefix examples/node-plugin (%v)", err)
	}
	return node
}

// startNodePlugin runs `node plugin.js` with a plugin's credentials for s and waits until it
// is discoverable. It skips the test when node or the plugin's node_modules are absent.
func startNodePlugin(t *testing.T, s *brokertest.Server) *nodePlugin {
	t.Helper()
	node := requireNode(t)
	creds := s.CredsFile(t, nodePluginName, pluginPermissions(nodePluginName))
	cmd := exec.Command(node, "plugin.js")
	cmd.Dir = nodePluginDir
	cmd.Env = append(os.Environ(),
		"OSPREY_NATS_URL="+s.ClientURL(),
		"OSPREY_NATS_CREDS="+creds,
		"OSPREY_PLUGIN_NAME="+nodePluginName,
	)
	p := &nodePlugin{cmd: cmd, exited: make(chan error, 1), out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node plugin: %v", err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("node plugin output:\n%s", p.out.String())
		}
	})

	deadline := time.Now().Add(waitFor)
	for {
		if _, err := s.Conn().Request("$SRV.PING."+nodePluginName, nil, 500*time.Millisecond); err == nil {
			return p
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("node plugin exited before it was discoverable (%v):\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node plugin not discoverable within %s:\n%s", waitFor, p.out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *nodePlugin) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("node plugin exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("node plugin still running %s after SIGTERM", waitFor)
	}
}

// TestNodePlugin runs the conformance check against the JavaScript example, with the
// credentials docs/plugins.md gives a plugin: every row passes, and its answers are the ones
// its slice-thickness rule gives on the canned studies.
func TestNodePlugin(t *testing.T) {
	requireNode(t)
	s := brokertest.New(t)
	p := startNodePlugin(t, s)
	rep := check(t, s, conformance.Options{Plugin: nodePluginName})
	if !rep.Passed() {
		t.Errorf("failed rows: %+v", rep.Failed())
	}
	for _, o := range rep.Outcomes {
		r := o.Result
		if r == nil {
			t.Errorf("case %s: no result", o.Case)
			continue
		}
		switch o.Case {
		case conformance.CaseCTHeadBleed, conformance.CaseCTHeadNormal:
			// The synthetic head CTs have 5 mm slices: measured, and not thicker than 5 mm.
			if r.Status != protocol.StatusCompleted || len(r.Findings) != 1 {
				t.Errorf("case %s: %s with %d findings, want completed with 1", o.Case, r.Status, len(r.Findings))
				continue
			}
			f := r.Findings[0]
			if f.Code.Code != "thick-slices" || f.Present || len(f.Measurements) != 1 || f.Measurements[0].Value != 5 || f.Measurements[0].Unit != "mm" {
				t.Errorf("case %s: finding %+v, want thick-slices absent, slice thickness 5 mm", o.Case, f)
			}
			if r.Model.Name != "osprey-slice-qa-demo" || r.Model.DeviceUID == "" {
				t.Errorf("case %s: model %+v", o.Case, r.Model)
			}
		case conformance.CaseXRChest:
			if r.Status != protocol.StatusNotApplicable {
				t.Errorf("chest XR: %s, want not_applicable", r.Status)
			}
		case conformance.CaseBadToken:
			if r.Status != protocol.StatusFailed || r.Error == nil || r.Error.Code != protocol.ErrCodeFetch {
				t.Errorf("bad token: %s %+v, want failed fetch_failed", r.Status, r.Error)
			}
		}
	}
	p.stop(t)
	if _, err := s.Conn().Request("$SRV.PING."+nodePluginName, nil, time.Second); err == nil {
		t.Error("the plugin still answers discovery after SIGTERM")
	}
}

// TestNodePluginSIGTERMHandsJobBack stops the JavaScript plugin while it waits for WADO-RS:
// the job must go to the next instance at once (nak), not after the ack wait runs out, and no
// result be published.
func TestNodePluginSIGTERMHandsJobBack(t *testing.T) {
	requireNode(t)
	s := brokertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	js := s.JetStream()
	jobs, err := js.CreateStream(ctx, protocol.JobsStreamConfig(nodePluginName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.CreateConsumer(ctx, protocol.JobsConsumerConfig(nodePluginName, 0, 0)); err != nil {
		t.Fatal(err)
	}
	results, err := js.CreateStream(ctx, protocol.ResultsStreamConfig())
	if err != nil {
		t.Fatal(err)
	}

	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // hold the request until the plugin gives up on it
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()

	p := startNodePlugin(t, s)
	job := protocol.Job{
		Protocol: protocol.Version, JobID: "sigterm-1", Plugin: nodePluginName,
		Study: protocol.Study{StudyInstanceUID: "1.2.3", Modality: "CT", Series: []protocol.Series{{
			SeriesInstanceUID: "1.2.3.1", Modality: "CT", Instances: []protocol.Instance{{SOPInstanceUID: "1.2.3.1.1"}},
		}}},
		Patient:  protocol.Patient{PseudoID: "p-1"},
		DICOMweb: protocol.DICOMweb{BaseURL: slow.URL, Token: "t"},
		Deadline: time.Now().Add(time.Minute).UTC(),
		Attempt:  1,
	}
	data, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Conn().Request(protocol.JobsSubject(nodePluginName), data, 5*time.Second); err != nil {
		t.Fatalf("publish job: %v", err)
	}
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatalf("the plugin never asked for the study:\n%s", p.out.String())
	}
	p.stop(t)

	// Another instance pulls: a nak'ed job comes at once, a held one only after the 30 s ack
	// wait, far beyond this pull's wait.
	cons, err := jobs.Consumer(ctx, protocol.Consumer(nodePluginName))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(protocol.DefaultAckWait/3))
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for m := range batch.Messages() {
		got++
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumDelivered != 2 {
			t.Errorf("job delivered %d times, want 2 (the plugin's and this one)", md.NumDelivered)
		}
		_ = m.Ack()
	}
	if got != 1 {
		t.Fatalf("job not handed back: none within %s of SIGTERM", protocol.DefaultAckWait/3)
	}
	ri, err := results.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ri.State.Msgs != 0 {
		t.Errorf("%d results published for a job given back", ri.State.Msgs)
	}
}
