package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/channels/internal/listen/listentest"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/dicom"
)

// runNotify starts a source.dicomweb_notify reading studies from pacs.
func runNotify(t *testing.T, cfg dicomweb.NotifyConfig, sk engine.Sink) *dicomweb.NotifySource {
	t.Helper()
	cfg.Address = "127.0.0.1:0"
	n, err := dicomweb.NewNotifySource(cfg, engine.Resources{Channel: "notified", Broker: newBroker(t)})
	if err != nil {
		t.Fatal(err)
	}
	listentest.Run(t, n, sk)
	return n
}

func notify(t *testing.T, url, token string, n any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(n)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// TestNotify uses an Osprey source.dicomweb as the PACS that sends the notification.
func TestNotify(t *testing.T) {
	pacs, ct, _ := stored(t, dicomweb.SourceConfig{Tokens: []string{"pacs-token"}})
	sk := newSink()
	n := runNotify(t, dicomweb.NotifyConfig{
		Tokens: []string{"hook"},
		URL:    pacs.BaseURL(),
		Client: dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "pacs-token"}},
	}, sk)
	hook := "http://" + n.Addr().String() + "/notify"
	study := ct.Manifest.StudyInstanceUID
	ok := dicomweb.Notification{Event: dicomweb.EventStudyStable, StudyInstanceUID: study, AccessionNumber: ct.Manifest.AccessionNumber, DICOMweb: pacs.BaseURL() + "/"}

	tests := []struct {
		name   string
		token  string
		body   any
		status int
	}{
		{"no token", "", ok, http.StatusUnauthorized},
		{"not json", "hook", "hello", http.StatusBadRequest},
		{"other event", "hook", dicomweb.Notification{Event: "study.deleted", StudyInstanceUID: study}, http.StatusBadRequest},
		{"no uid", "hook", dicomweb.Notification{Event: dicomweb.EventStudyStable}, http.StatusBadRequest},
		{"foreign dicomweb", "hook", dicomweb.Notification{Event: dicomweb.EventStudyStable, StudyInstanceUID: study, DICOMweb: "http://evil.example/dicom-web"}, http.StatusForbidden},
		// Queued, then retried in the background: it never becomes a message.
		{"unknown study", "hook", dicomweb.Notification{Event: dicomweb.EventStudyStable, StudyInstanceUID: "1.2.3.4.5"}, http.StatusAccepted},
		{"stable study", "hook", ok, http.StatusAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := notify(t, hook, tc.token, tc.body); status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
		})
	}
	sk.wait(t, study)
	msgs := sk.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	var sum dicom.StudySummary
	if err := json.Unmarshal(msgs[0].Body, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.StudyInstanceUID != study || sum.NumberOfInstances != 3 || sum.Retrieve.BaseURL != pacs.BaseURL() || sum.Retrieve.Source != dicom.SourceNotify || sum.AccessionNumber != ct.Manifest.AccessionNumber {
		t.Errorf("summary %+v", sum)
	}
	if msgs[0].ContentType != engine.ContentStudy {
		t.Errorf("content type %q", msgs[0].ContentType)
	}
}

// runPoller starts a source.qido_poll; stop cancels it.
func runPoller(t *testing.T, b *broker.Broker, cfg dicomweb.PollConfig, sk engine.Sink) (*dicomweb.Poller, func()) {
	t.Helper()
	p, err := dicomweb.NewPoller(cfg, engine.Resources{Channel: "polled", Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sk) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// waitPolls waits for n completed polls.
func waitPolls(t *testing.T, p *dicomweb.Poller, n int) {
	t.Helper()
	for range n {
		select {
		case <-p.Polled():
		case <-time.After(waitFor):
			t.Fatal("poller did not poll")
		}
	}
}

func TestPollerAnnouncesOnceAcrossRestarts(t *testing.T) {
	pacs, ct, xr := stored(t, dicomweb.SourceConfig{})
	b := newBroker(t)
	sk := newSink()
	cfg := dicomweb.PollConfig{URL: pacs.BaseURL(), Interval: 50 * time.Millisecond, WaitStable: true}
	p, stop := runPoller(t, b, cfg, sk)
	sk.wait(t, ct.Manifest.StudyInstanceUID)
	_, sum := sk.wait(t, xr.Manifest.StudyInstanceUID)
	if sum.Retrieve.Source != dicom.SourcePoll || sum.Retrieve.BaseURL != pacs.BaseURL() || sum.Modalities[0] != "DX" {
		t.Errorf("summary %+v", sum)
	}
	waitPolls(t, p, 3)
	stop()
	// A restarted poller (same bucket) announces nothing already announced, but a new study.
	late := headCT(t, "poll-late", 1)
	typ, body := dicomweb.Multipart(instancesOf(late)...)
	if status, _ := post(t, pacs.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	p2, _ := runPoller(t, b, cfg, sk)
	sk.wait(t, late.Manifest.StudyInstanceUID)
	waitPolls(t, p2, 2)
	for _, s := range []string{ct.Manifest.StudyInstanceUID, xr.Manifest.StudyInstanceUID, late.Manifest.StudyInstanceUID} {
		if n := sk.count(t, s); n != 1 {
			t.Errorf("study %s announced %d times, want 1", s, n)
		}
	}
}
