package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/channels/internal/listen/listentest"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// waitFor bounds every wait: long enough never to fire on a loaded machine, short enough that
// a hang fails the test rather than the run.
const waitFor = 20 * time.Second

// sink records the messages handed to it; failing makes the next n Accept calls fail.
type sink struct {
	mu      sync.Mutex
	msgs    []*engine.Message
	failing int
	calls   int
	got     chan struct{}
}

func newSink() *sink { return &sink{got: make(chan struct{}, 100)} }

func (s *sink) Accept(_ context.Context, m *engine.Message) (engine.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failing > 0 {
		s.failing--
		return engine.Receipt{}, errors.New("engine stopping")
	}
	s.msgs = append(s.msgs, m)
	s.got <- struct{}{}
	return engine.Receipt{ID: "m" + string(rune('0'+len(s.msgs))), Verdict: engine.Accepted}, nil
}

func (s *sink) messages() []*engine.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*engine.Message(nil), s.msgs...)
}

// wait returns the study message for study, waiting for it to arrive.
func (s *sink) wait(t *testing.T, study string) (*engine.Message, dicom.StudySummary) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		for _, m := range s.messages() {
			var sum dicom.StudySummary
			if err := json.Unmarshal(m.Body, &sum); err != nil {
				t.Fatalf("study message body: %v", err)
			}
			if sum.StudyInstanceUID == study {
				return m, sum
			}
		}
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("no study message for %s within %s (%d messages)", study, waitFor, len(s.messages()))
		}
	}
}

// count returns the number of messages for study.
func (s *sink) count(t *testing.T, study string) int {
	t.Helper()
	n := 0
	for _, m := range s.messages() {
		var sum dicom.StudySummary
		if json.Unmarshal(m.Body, &sum) == nil && sum.StudyInstanceUID == study {
			n++
		}
	}
	return n
}

// runSource starts a source.dicomweb on a free port with the given broker.
func runSource(t *testing.T, b *broker.Broker, cfg dicomweb.SourceConfig, sk engine.Sink) (*dicomweb.Source, func()) {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	if cfg.QuietPeriod == 0 {
		cfg.QuietPeriod = 200 * time.Millisecond
	}
	src, err := dicomweb.NewSource(cfg, engine.Resources{Channel: "studies", Broker: b})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return src, listentest.Run(t, src, sk)
}

func newBroker(t *testing.T) *broker.Broker { return brokertest.New(t).Broker }

// headCT makes a small synthetic head CT.
func headCT(t testing.TB, seed string, slices int) *synth.Series {
	t.Helper()
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: seed}, Slices: slices, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func instancesOf(s *synth.Series) [][]byte {
	out := make([][]byte, len(s.Instances))
	for i, in := range s.Instances {
		out[i] = in.Data
	}
	return out
}

// post sends a body to url and returns the status and decoded DICOM JSON answer.
func post(t *testing.T, url, contentType string, body []byte, token string) (int, dicom.JSONDataset) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var d dicom.JSONDataset
	if resp.Header.Get("Content-Type") == dicom.ContentJSON {
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("answer is not DICOM JSON: %v\n%s", err, b)
		}
	}
	return resp.StatusCode, d
}

// get fetches url with a bearer token and Accept header.
func get(t *testing.T, url, accept, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, b
}

// items returns the items of a sequence attribute.
func items(d dicom.JSONDataset, key string) []dicom.JSONDataset {
	a := d[key]
	if a == nil {
		return nil
	}
	var out []dicom.JSONDataset
	for _, v := range a.Value {
		if item, ok := v.(dicom.JSONDataset); ok {
			out = append(out, item)
		}
	}
	return out
}

const (
	keyReferenced = "00081199"
	keyFailed     = "00081198"
	keyReason     = "00081197"
	keyRefSOP     = "00081155"
	keyRetrieve   = "00081190"
)
