package dicomweb_test

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

func TestSTOWStoresAndAnnouncesOnce(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	src, _ := runSource(t, b, dicomweb.SourceConfig{}, sk)
	ct := headCT(t, "stow", 4)
	m := ct.Manifest

	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	status, resp := post(t, src.BaseURL()+"/studies", typ, body, "")
	if status != http.StatusOK {
		t.Fatalf("STOW status %d, want 200: %v", status, resp)
	}
	refs := items(resp, keyReferenced)
	if len(refs) != 4 || len(items(resp, keyFailed)) != 0 {
		t.Fatalf("response has %d referenced and %d failed, want 4 and 0", len(refs), len(items(resp, keyFailed)))
	}
	wantURL := src.BaseURL() + "/studies/" + m.StudyInstanceUID + "/series/" + m.Series[0].SeriesInstanceUID + "/instances/" + m.Series[0].Instances[0].SOPInstanceUID
	if got := refs[0].String(tag.Tag{Group: 0x0008, Element: 0x1190}); got != wantURL {
		t.Errorf("RetrieveURL = %q, want %q", got, wantURL)
	}

	msg, sum := sk.wait(t, m.StudyInstanceUID)
	if msg.ContentType != engine.ContentStudy || msg.Channel != "studies" {
		t.Errorf("message content type %q channel %q", msg.ContentType, msg.Channel)
	}
	if msg.Meta["remote_addr"] == "" || msg.Meta["base_url"] != src.BaseURL() {
		t.Errorf("meta = %v", msg.Meta)
	}
	if sum.NumberOfInstances != 4 || sum.AccessionNumber != m.AccessionNumber || sum.Retrieve.BaseURL != src.BaseURL() || sum.Retrieve.Source != dicom.SourceSTOW {
		t.Errorf("summary: %d instances, accession %q, retrieve %+v", sum.NumberOfInstances, sum.AccessionNumber, sum.Retrieve)
	}

	// The same instances again: accepted, not stored twice, and the study is not reopened.
	status, resp = post(t, src.BaseURL()+"/studies/"+m.StudyInstanceUID, typ, body, "")
	if status != http.StatusOK || len(items(resp, keyReferenced)) != 4 {
		t.Fatalf("duplicate STOW status %d, %d referenced; want 200 and 4", status, len(items(resp, keyReferenced)))
	}
	// A later study is announced; by then a reopened first study would have been too.
	other := headCT(t, "stow-other", 1)
	typ2, body2 := dicomweb.Multipart(instancesOf(other)...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ2, body2, ""); status != http.StatusOK {
		t.Fatalf("second study status %d", status)
	}
	sk.wait(t, other.Manifest.StudyInstanceUID)
	if n := sk.count(t, m.StudyInstanceUID); n != 1 {
		t.Errorf("first study announced %d times, want 1", n)
	}
}

func TestSTOWBadInput(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	src, _ := runSource(t, b, dicomweb.SourceConfig{MaxRequestSize: 1 << 20}, sk)
	good := headCT(t, "bad-input", 2)
	g0, g1 := good.Instances[0].Data, good.Instances[1].Data
	study := good.Manifest.StudyInstanceUID
	other := headCT(t, "bad-input-other", 1).Instances[0].Data

	// An instance whose SOP Instance UID is not a UID: A900, the data set does not fit its class.
	badUID := bytes.ReplaceAll(g1, []byte(good.Manifest.Series[0].Instances[1].SOPInstanceUID), bytes.Repeat([]byte("X"), len(good.Manifest.Series[0].Instances[1].SOPInstanceUID)))
	ctBadUID, bodyBadUID := dicomweb.Multipart(badUID)

	textPart := func() (string, []byte) {
		boundary := "b0undary"
		var b bytes.Buffer
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
		b.Write(g0)
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain\r\n\r\nhello\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/dicom\r\n\r\nnot dicom at all\r\n--%s--\r\n", boundary, boundary)
		return `multipart/related; type="application/dicom"; boundary=` + boundary, b.Bytes()
	}
	ctText, bodyText := textPart()
	ctTrunc, bodyTrunc := dicomweb.Multipart(g1[:len(g1)/2])
	ctBig, bodyBig := dicomweb.Multipart(bytes.Repeat([]byte{1}, 2<<20))
	ctMismatch, bodyMismatch := dicomweb.Multipart(other)

	tests := []struct {
		name        string
		path        string
		contentType string
		body        []byte
		status      int
		stored      int
		reasons     []float64
	}{
		{"text and garbage parts beside a good one", "/studies", ctText, bodyText, http.StatusAccepted, 1, []float64{dicomweb.FailCannotUnderstand, dicomweb.FailCannotUnderstand}},
		{"truncated file", "/studies", ctTrunc, bodyTrunc, http.StatusConflict, 0, []float64{dicomweb.FailCannotUnderstand}},
		{"wrong content type", "/studies", "application/json", []byte(`{}`), http.StatusUnsupportedMediaType, 0, nil},
		{"json bulk form not supported", "/studies", `multipart/related; type="application/dicom+json"; boundary=x`, []byte("--x--"), http.StatusUnsupportedMediaType, 0, nil},
		{"SOP Instance UID not a UID", "/studies", ctBadUID, bodyBadUID, http.StatusConflict, 0, []float64{dicomweb.FailSOPClassMismatch}},
		{"oversize request", "/studies", ctBig, bodyBig, http.StatusRequestEntityTooLarge, 0, nil},
		{"study of the URL differs", "/studies/" + study, ctMismatch, bodyMismatch, http.StatusConflict, 0, []float64{dicomweb.FailStudyMismatch}},
		{"no parts", "/studies", `multipart/related; type="application/dicom"; boundary=x`, []byte("--x--\r\n"), http.StatusBadRequest, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := post(t, src.BaseURL()+tc.path, tc.contentType, tc.body, "")
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, resp)
			}
			if got := len(items(resp, keyReferenced)); got != tc.stored {
				t.Errorf("%d referenced, want %d", got, tc.stored)
			}
			var reasons []float64
			for _, f := range items(resp, keyFailed) {
				reasons = append(reasons, f[keyReason].Value[0].(float64))
			}
			if !reflect.DeepEqual(reasons, tc.reasons) {
				t.Errorf("failure reasons %v, want %v", reasons, tc.reasons)
			}
		})
	}
	// Nothing else was lost: the good instance of the mixed request is announced, alone.
	_, sum := sk.wait(t, study)
	if sum.NumberOfInstances != 1 || sum.Series[0].Instances[0].SOPInstanceUID != good.Manifest.Series[0].Instances[0].SOPInstanceUID {
		t.Errorf("announced %d instances: %+v", sum.NumberOfInstances, sum.Series)
	}
}

func TestSTOWStudyWithoutAccession(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	src, _ := runSource(t, b, dicomweb.SourceConfig{}, sk)
	inst := noAccessionInstance(t)
	typ, body := dicomweb.Multipart(inst)
	if status, resp := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d: %v", status, resp)
	}
	_, sum := sk.wait(t, "1.2.826.0.1.3680043.10.1234.1")
	if sum.AccessionNumber != "" || !reflect.DeepEqual(sum.Warnings, []string{dicom.WarningNoAccession}) {
		t.Errorf("accession %q, warnings %v", sum.AccessionNumber, sum.Warnings)
	}
}

// noAccessionInstance is a minimal Secondary Capture instance without AccessionNumber.
func noAccessionInstance(t *testing.T) []byte {
	t.Helper()
	var b dicom.Builder
	b.Add(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7")
	b.Add(tag.SOPInstanceUID, "1.2.826.0.1.3680043.10.1234.1.1.1")
	b.Add(tag.StudyInstanceUID, "1.2.826.0.1.3680043.10.1234.1")
	b.Add(tag.SeriesInstanceUID, "1.2.826.0.1.3680043.10.1234.1.1")
	b.Add(tag.Modality, "OT")
	b.Add(tag.PatientID, "NOACC")
	ds, err := b.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	data, err := dicom.Encode(ds)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCompletionRetriesUntilAccepted(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	sk.failing = 2
	src, _ := runSource(t, b, dicomweb.SourceConfig{}, sk)
	ct := headCT(t, "retry", 1)
	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	sk.wait(t, ct.Manifest.StudyInstanceUID)
	sk.mu.Lock()
	calls := sk.calls
	sk.mu.Unlock()
	if calls < 3 {
		t.Errorf("Accept called %d times, want at least 3 (two failures, then success)", calls)
	}
}

func TestStudyInProgressSurvivesRestart(t *testing.T) {
	b := newBroker(t)
	first := newSink()
	// A quiet period long enough that the first source stops before announcing.
	src, stop := runSource(t, b, dicomweb.SourceConfig{QuietPeriod: time.Hour}, first)
	ct := headCT(t, "restart", 2)
	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	stop()
	if n := len(first.messages()); n != 0 {
		t.Fatalf("first source announced %d studies before its quiet period", n)
	}
	second := newSink()
	runSource(t, b, dicomweb.SourceConfig{QuietPeriod: 100 * time.Millisecond}, second)
	_, sum := second.wait(t, ct.Manifest.StudyInstanceUID)
	if sum.NumberOfInstances != 2 {
		t.Errorf("restarted source announced %d instances, want 2", sum.NumberOfInstances)
	}
}

func TestLateInstanceReopensStudy(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	src, _ := runSource(t, b, dicomweb.SourceConfig{}, sk)
	ct := headCT(t, "late", 3)
	all := instancesOf(ct)
	typ, body := dicomweb.Multipart(all[:2]...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	sk.wait(t, ct.Manifest.StudyInstanceUID)
	typ, body = dicomweb.Multipart(all[2])
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	deadline := time.Now().Add(waitFor)
	for sk.count(t, ct.Manifest.StudyInstanceUID) < 2 && time.Now().Before(deadline) {
		select {
		case <-sk.got:
		case <-time.After(time.Until(deadline)):
		}
	}
	msgs := sk.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	if !strings.Contains(string(msgs[1].Body), `"number_of_instances":3`) || msgs[1].Meta["update"] != "true" {
		t.Errorf("second announcement: meta %v, body %.200s", msgs[1].Meta, msgs[1].Body)
	}
}

// TestConcurrentSTOWOfOneStudy splits a study over eight concurrent requests: every instance
// is counted and the study is announced once, with all of them.
func TestConcurrentSTOWOfOneStudy(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	src, _ := runSource(t, b, dicomweb.SourceConfig{QuietPeriod: 2 * time.Second}, sk)
	ct := headCT(t, "concurrent", 16)
	all := instancesOf(ct)
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for r := range 8 {
		typ, body := dicomweb.Multipart(all[r*2 : r*2+2]...)
		wg.Go(func() { statuses[r], _ = post(t, src.BaseURL()+"/studies", typ, body, "") })
	}
	wg.Wait()
	for r, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("request %d: status %d", r, s)
		}
	}
	_, sum := sk.wait(t, ct.Manifest.StudyInstanceUID)
	if sum.NumberOfInstances != 16 {
		t.Errorf("announced %d instances, want 16", sum.NumberOfInstances)
	}
	objs, err := dicom.DecodeJSONArray(body0(t, src.BaseURL()+"/studies?StudyInstanceUID="+ct.Manifest.StudyInstanceUID))
	if err != nil || len(objs) != 1 || objs[0].String(tag.NumberOfStudyRelatedInstances) != "16" {
		t.Errorf("QIDO-RS study count: %v %v", objs, err)
	}
	if n := sk.count(t, ct.Manifest.StudyInstanceUID); n != 1 {
		t.Errorf("announced %d times, want 1", n)
	}
}
