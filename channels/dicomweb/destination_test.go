package dicomweb_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
)

func TestDestinationAnswers(t *testing.T) {
	inst := headCT(t, "dest", 1).Instances[0].Data
	const dupFailure = `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]},"00081197":{"vr":"US","Value":[273]}}]}}`
	const otherFailure = `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]},"00081197":{"vr":"US","Value":[43264]}}]}}`
	const stored = `{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]}}]}}`
	tests := []struct {
		name      string
		status    int
		body      string
		delay     time.Duration
		delivered bool
		rejected  bool
	}{
		{"stored", 200, stored, 0, true, false},
		{"already exists", 409, dupFailure, 0, true, false},
		{"refused by pacs", 409, otherFailure, 0, false, true},
		{"empty status report", 200, `{}`, 0, false, true},
		{"stored with warnings", 202, stored, 0, true, false},
		{"bad request", 400, `{}`, 0, false, true},
		{"unauthorized", 401, ``, 0, false, true},
		{"server error", 503, ``, 0, false, false},
		{"timeout", 200, stored, 2 * time.Second, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gotType, gotAuth string
			var gotBody []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotType, gotAuth = r.Header.Get("Content-Type"), r.Header.Get("Authorization")
				gotBody, _ = io.ReadAll(r.Body)
				if tc.delay > 0 {
					select {
					case <-time.After(tc.delay):
					case <-r.Context().Done():
					}
				}
				if r.URL.Path != "/dicom-web/studies" {
					w.WriteHeader(404)
					return
				}
				w.Header().Set("Content-Type", "application/dicom+json")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{
				URL:    srv.URL + "/dicom-web",
				Client: dicomweb.ClientConfig{Auth: dicomweb.Auth{Username: "osprey", Password: "pw"}, Timeout: 300 * time.Millisecond},
			}, engine.Resources{})
			if err != nil {
				t.Fatal(err)
			}
			reply, err := d.Send(context.Background(), &engine.Message{ID: "m1", ContentType: dicomweb.ContentDICOM, Body: inst})
			if tc.delivered != (err == nil) {
				t.Fatalf("err = %v, delivered want %v", err, tc.delivered)
			}
			if tc.rejected != errors.Is(err, engine.ErrRejected) {
				t.Errorf("err = %v, rejected want %v", err, tc.rejected)
			}
			if tc.delay == 0 {
				if !strings.HasPrefix(gotType, `multipart/related; type="application/dicom"`) || !strings.HasPrefix(gotAuth, "Basic ") || !strings.Contains(string(gotBody), string(inst[128:200])) {
					t.Errorf("request: type %q auth %q, %d bytes", gotType, gotAuth, len(gotBody))
				}
				if string(reply.Body) != tc.body || reply.Summary == "" {
					t.Errorf("reply %q / %q, want the response dataset", reply.Summary, reply.Body)
				}
			}
		})
	}
	t.Run("not DICOM", func(t *testing.T) {
		d, _ := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: "http://127.0.0.1:1/dicom-web"}, engine.Resources{})
		_, err := d.Send(context.Background(), &engine.Message{ContentType: dicomweb.ContentDICOM, Body: []byte("hello")})
		if !errors.Is(err, engine.ErrRejected) {
			t.Errorf("err = %v, want ErrRejected", err)
		}
	})
}

// TestDestinationToOsprey stores an instance in another Osprey's source.dicomweb, then finds
// it there by QIDO-RS; a second send of the same instance is delivered too.
func TestDestinationToOsprey(t *testing.T) {
	src, _ := runSource(t, newBroker(t), dicomweb.SourceConfig{Tokens: []string{"tok"}}, newSink())
	ct := headCT(t, "dest-osprey", 1)
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: src.BaseURL(), Client: dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "tok"}}}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if reply, err := d.Send(context.Background(), &engine.Message{ContentType: dicomweb.ContentDICOM, Body: ct.Instances[0].Data}); err != nil {
			t.Fatalf("send %d: %v (%s)", i, err, reply.Summary)
		}
	}
	c, err := dicomweb.NewClient(src.BaseURL(), dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "tok"}})
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.SearchInstances(context.Background(), ct.Manifest.StudyInstanceUID, nil)
	if err != nil || len(found) != 1 {
		t.Fatalf("QIDO found %d instances, err %v", len(found), err)
	}
}

// TestDestinationForwardsStudy forwards a study message: the destination fetches the study
// from the Osprey that announced it and stores it in another DICOMweb server.
func TestDestinationForwardsStudy(t *testing.T) {
	b := newBroker(t)
	sk := newSink()
	from, _ := runSource(t, b, dicomweb.SourceConfig{Tokens: []string{"from"}}, sk)
	to, _ := runSource(t, newBroker(t), dicomweb.SourceConfig{Tokens: []string{"to"}, QuietPeriod: time.Hour}, newSink())
	ct := headCT(t, "forward", 3)
	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	if status, _ := post(t, from.BaseURL()+"/studies", typ, body, "from"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	msg, _ := sk.wait(t, ct.Manifest.StudyInstanceUID)
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{
		URL:      to.BaseURL(),
		Client:   dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "to"}},
		Retrieve: dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "from"}},
	}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if reply, err := d.Send(context.Background(), msg); err != nil {
		t.Fatalf("forward: %v (%s)", err, reply.Summary)
	}
	c, _ := dicomweb.NewClient(to.BaseURL(), dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: "to"}})
	found, err := c.SearchInstances(context.Background(), ct.Manifest.StudyInstanceUID, nil)
	if err != nil || len(found) != 3 {
		t.Fatalf("forwarded study has %d instances there, want 3 (err %v)", len(found), err)
	}
	t.Run("study gone is a rejection", func(t *testing.T) {
		gone := *msg
		gone.Body = []byte(strings.Replace(string(msg.Body), ct.Manifest.StudyInstanceUID, "1.2.3.999", 1))
		if _, err := d.Send(context.Background(), &gone); !errors.Is(err, engine.ErrRejected) {
			t.Errorf("err = %v, want ErrRejected", err)
		}
	})
}
