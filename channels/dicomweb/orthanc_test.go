package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/channels/dicomweb/orthanctest"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// skipOrFail skips a test whose service is absent, or fails it when CI requires services.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	orthanctest.Missing(t, format, args...)
}

// upload stores instances in Orthanc through its REST API (POST /instances), as a modality's
// C-STORE would.
func upload(t *testing.T, o *orthanctest.Server, instances [][]byte) {
	t.Helper()
	for i, in := range instances {
		resp, err := http.Post(o.URL+"/instances", "application/dicom", bytes.NewReader(in))
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("upload %d: status %d", i, resp.StatusCode)
		}
	}
}

// luaFor returns the example Orthanc script with Osprey's notify URL, Orthanc's DICOMweb
// root and the token filled in.
func luaFor(t *testing.T, notifyURL, dicomwebURL, token string) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/studies/orthanc-notify.lua")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for old, repl := range map[string]string{
		`local OSPREY_NOTIFY_URL = "http://127.0.0.1:8082/notify"`:   `local OSPREY_NOTIFY_URL = "` + notifyURL + `"`,
		`local ORTHANC_DICOMWEB = "http://127.0.0.1:8042/dicom-web"`: `local ORTHANC_DICOMWEB = "` + dicomwebURL + `"`,
		`local OSPREY_TOKEN = ""`:                                    `local OSPREY_TOKEN = "` + token + `"`,
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("orthanc-notify.lua no longer has %q", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	return s
}

// TestOrthancStudyReachesOsprey uploads a synthetic CT to Orthanc; the study must reach Osprey
// both through the Lua notification and through the QIDO-RS poller, each with a summary read
// from Orthanc's metadata. Osprey then fetches a frame from Orthanc and compares it with the
// pixels it sent.
func TestOrthancStudyReachesOsprey(t *testing.T) {
	const hookToken = "orthanc-hook-token"
	// Orthanc's port is chosen first: the notify source must know Orthanc's DICOMweb root,
	// and the Lua script Orthanc loads must know the notify source's address.
	port := orthanctest.FreePort(t)
	dicomwebURL := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", port)
	notified := newSink()
	ns := runNotify(t, dicomweb.NotifyConfig{Tokens: []string{hookToken}, URL: dicomwebURL}, notified)
	o := orthanctest.Start(t, port, luaFor(t, "http://"+ns.Addr().String()+"/notify", dicomwebURL, hookToken))

	polled := newSink()
	runPoller(t, newBroker(t), dicomweb.PollConfig{URL: o.DICOMweb, Interval: 200 * time.Millisecond, WaitStable: true}, polled)

	ct := headCT(t, "orthanc", 3)
	m := ct.Manifest
	upload(t, o, instancesOf(ct))

	// What Osprey summarises from Orthanc's metadata must equal what it summarises from the
	// instances themselves, Retrieve aside.
	var parsed []*dcm.Dataset
	for _, in := range ct.Instances {
		ds, err := dcm.Parse(bytes.NewReader(in.Data), int64(len(in.Data)), nil, dcm.SkipPixelData())
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, &ds)
	}
	want, err := dicom.SummarizeInstances(parsed)
	if err != nil {
		t.Fatal(err)
	}
	for name, sk := range map[string]*sink{"lua notification": notified, "qido poller": polled} {
		t.Run(name, func(t *testing.T) {
			msg, sum := sk.wait(t, m.StudyInstanceUID)
			got := sum
			got.Retrieve = dicom.Retrieve{}
			if !reflect.DeepEqual(got, want) {
				a, _ := json.Marshal(got)
				b, _ := json.Marshal(want)
				t.Errorf("summary from Orthanc's metadata:\n%s\nfrom the instances:\n%s", a, b)
			}
			if msg.ContentType != engine.ContentStudy {
				t.Errorf("content type %q", msg.ContentType)
			}
			if sum.NumberOfInstances != 3 || sum.AccessionNumber != m.AccessionNumber || sum.PatientID != m.Patient.ID ||
				len(sum.Series) != 1 || sum.Series[0].Modality != "CT" || sum.Retrieve.BaseURL != o.DICOMweb {
				b, _ := json.Marshal(sum)
				t.Errorf("summary %s", b)
			}
		})
	}

	t.Run("metadata and frames from Orthanc", func(t *testing.T) {
		c, err := dicomweb.NewClient(o.DICOMweb, dicomweb.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		meta, err := c.Metadata(context.Background(), m.StudyInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := dicom.DecodeJSONArray(meta)
		if err != nil || len(objs) != 3 {
			t.Fatalf("%d metadata objects, err %v", len(objs), err)
		}
		in := ct.Instances[1]
		series := m.Series[0].SeriesInstanceUID
		frames, err := c.Frames(context.Background(), m.StudyInstanceUID, series, in.SOPInstanceUID, 1)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := dcm.Parse(bytes.NewReader(in.Data), int64(len(in.Data)), nil, dcm.SkipProcessingPixelDataValue())
		if err != nil {
			t.Fatal(err)
		}
		want, err := dicom.NativeFrame(&ds, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 || !bytes.Equal(frames[0], want) {
			t.Errorf("frame from Orthanc (%d parts) differs from the pixels uploaded", len(frames))
		}
		found, err := c.SearchStudies(context.Background(), url.Values{"AccessionNumber": {m.AccessionNumber}})
		if err != nil || len(found) != 1 || found[0].String(tag.StudyInstanceUID) != m.StudyInstanceUID {
			t.Errorf("QIDO-RS by accession on Orthanc: %d results, err %v", len(found), err)
		}
	})
}

// TestOrthancDestination STOW-RS's an instance to Orthanc through destination.dicomweb and
// finds it there by QIDO-RS; sending it again is delivered too (Orthanc keeps one copy).
func TestOrthancDestination(t *testing.T) {
	o := orthanctest.Start(t, 0, "")
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: o.DICOMweb}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	ct := headCT(t, "orthanc-dest", 1)
	in := ct.Instances[0]
	for i := range 2 {
		reply, err := d.Send(context.Background(), &engine.Message{ID: fmt.Sprint("m", i), ContentType: dicomweb.ContentDICOM, Body: in.Data})
		if err != nil {
			t.Fatalf("send %d: %v (%s: %s)", i, err, reply.Summary, reply.Body)
		}
		if !strings.Contains(string(reply.Body), in.SOPInstanceUID) {
			t.Errorf("reply %s does not reference the instance", reply.Body)
		}
	}
	c, _ := dicomweb.NewClient(o.DICOMweb, dicomweb.ClientConfig{})
	found, err := c.SearchInstances(context.Background(), ct.Manifest.StudyInstanceUID, url.Values{"SOPInstanceUID": {in.SOPInstanceUID}})
	if err != nil || len(found) != 1 {
		t.Fatalf("QIDO-RS found %d instances, err %v", len(found), err)
	}
	got, err := c.Instance(context.Background(), ct.Manifest.StudyInstanceUID, ct.Manifest.Series[0].SeriesInstanceUID, in.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dcm.Parse(bytes.NewReader(got), int64(len(got)), nil); err != nil {
		t.Errorf("instance retrieved from Orthanc does not parse: %v", err)
	}
}

// TestOrthancForwardStudy: a study STOW-RS'd to Osprey is forwarded, as a study message, to
// Orthanc, where QIDO-RS then finds every instance.
func TestOrthancForwardStudy(t *testing.T) {
	o := orthanctest.Start(t, 0, "")
	sk := newSink()
	src, _ := runSource(t, newBroker(t), dicomweb.SourceConfig{}, sk)
	ct := headCT(t, "orthanc-forward", 4)
	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	msg, _ := sk.wait(t, ct.Manifest.StudyInstanceUID)
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: o.DICOMweb}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := d.Send(context.Background(), msg)
	if err != nil {
		t.Fatalf("forward: %v (%s)", err, reply.Summary)
	}
	t.Logf("reply %s %s", reply.Summary, reply.Body)
	c, _ := dicomweb.NewClient(o.DICOMweb, dicomweb.ClientConfig{})
	found, err := c.SearchInstances(context.Background(), ct.Manifest.StudyInstanceUID, nil)
	if err != nil || len(found) != 4 {
		t.Fatalf("Orthanc holds %d instances of the study, want 4 (err %v)", len(found), err)
	}
}
