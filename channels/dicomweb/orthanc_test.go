package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// Orthanc with its DICOMweb plugin, as Debian packages them (orthanc, orthanc-dicomweb).
var orthancPlugins = []string{
	"/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
	"/usr/lib/orthanc/libOrthancDicomWeb.so",
}

// skipOrFail skips a test whose service is absent, or fails it when CI requires services.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf(format+" (OSPREY_TEST_REQUIRE_SERVICES=1)", args...)
	}
	t.Skipf(format, args...)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// orthanc is one Orthanc process for a test.
type orthanc struct {
	url      string // REST root, http://127.0.0.1:port
	dicomweb string // DICOMweb root
}

// startOrthanc runs Orthanc with a config of its own in a temp dir: loopback only, no
// authentication, DICOMweb at /dicom-web/, StableAge 1 s, and the Lua script if given. It is
// killed when the test ends.
func startOrthanc(t *testing.T, port int, lua string) *orthanc {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		skipOrFail(t, "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
	}
	plugin := ""
	for _, p := range orthancPlugins {
		if _, err := os.Stat(p); err == nil {
			plugin = p
			break
		}
	}
	if plugin == "" {
		skipOrFail(t, "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
	}
	dir := t.TempDir()
	if port == 0 {
		port = freePort(t)
	}
	conf := map[string]any{
		"Name":                  "osprey-test",
		"StorageDirectory":      filepath.Join(dir, "storage"),
		"IndexDirectory":        filepath.Join(dir, "index"),
		"HttpPort":              port,
		"DicomPort":             freePort(t),
		"RemoteAccessAllowed":   false,
		"AuthenticationEnabled": false,
		"StableAge":             1,
		"Plugins":               []string{plugin},
		"DicomWeb": map[string]any{
			"Enable":     true,
			"Root":       "/dicom-web/",
			"EnableWado": true,
			"WadoRoot":   "/wado",
			"Ssl":        false,
		},
	}
	if lua != "" {
		p := filepath.Join(dir, "osprey-notify.lua")
		if err := os.WriteFile(p, []byte(lua), 0o600); err != nil {
			t.Fatal(err)
		}
		conf["LuaScripts"] = []string{p}
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	confFile := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "orthanc.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, confFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Orthanc: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("Orthanc log:\n%s", lastLines(string(log), 40))
		}
	})
	o := &orthanc{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	o.dicomweb = o.url + "/dicom-web"
	deadline := time.Now().Add(waitFor)
	for {
		resp, err := http.Get(o.url + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("Orthanc exited at start:\n%s", lastLines(string(log), 40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Orthanc did not answer /system")
		}
	}
	return o
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// upload stores instances in Orthanc through its REST API (POST /instances), as a modality's
// C-STORE would.
func (o *orthanc) upload(t *testing.T, instances [][]byte) {
	t.Helper()
	for i, in := range instances {
		resp, err := http.Post(o.url+"/instances", "application/dicom", bytes.NewReader(in))
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
	port := freePort(t)
	dicomwebURL := fmt.Sprintf("http://127.0.0.1:%d/dicom-web", port)
	notified := newSink()
	ns := runNotify(t, dicomweb.NotifyConfig{Tokens: []string{hookToken}, URL: dicomwebURL}, notified)
	o := startOrthanc(t, port, luaFor(t, "http://"+ns.Addr().String()+"/notify", dicomwebURL, hookToken))

	polled := newSink()
	runPoller(t, newBroker(t), dicomweb.PollConfig{URL: o.dicomweb, Interval: 200 * time.Millisecond, WaitStable: true}, polled)

	ct := headCT(t, "orthanc", 3)
	m := ct.Manifest
	o.upload(t, instancesOf(ct))

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
				len(sum.Series) != 1 || sum.Series[0].Modality != "CT" || sum.Retrieve.BaseURL != o.dicomweb {
				b, _ := json.Marshal(sum)
				t.Errorf("summary %s", b)
			}
		})
	}

	t.Run("metadata and frames from Orthanc", func(t *testing.T) {
		c, err := dicomweb.NewClient(o.dicomweb, dicomweb.ClientConfig{})
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
	o := startOrthanc(t, 0, "")
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: o.dicomweb}, engine.Resources{})
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
	c, _ := dicomweb.NewClient(o.dicomweb, dicomweb.ClientConfig{})
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
	o := startOrthanc(t, 0, "")
	sk := newSink()
	src, _ := runSource(t, newBroker(t), dicomweb.SourceConfig{}, sk)
	ct := headCT(t, "orthanc-forward", 4)
	typ, body := dicomweb.Multipart(instancesOf(ct)...)
	if status, _ := post(t, src.BaseURL()+"/studies", typ, body, ""); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	msg, _ := sk.wait(t, ct.Manifest.StudyInstanceUID)
	d, err := dicomweb.NewDestination(dicomweb.DestinationConfig{URL: o.dicomweb}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := d.Send(context.Background(), msg)
	if err != nil {
		t.Fatalf("forward: %v (%s)", err, reply.Summary)
	}
	t.Logf("reply %s %s", reply.Summary, reply.Body)
	c, _ := dicomweb.NewClient(o.dicomweb, dicomweb.ClientConfig{})
	found, err := c.SearchInstances(context.Background(), ct.Manifest.StudyInstanceUID, nil)
	if err != nil || len(found) != 4 {
		t.Fatalf("Orthanc holds %d instances of the study, want 4 (err %v)", len(found), err)
	}
}
