package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb/orthanctest"
	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// The headline case, examples/ich-triage, run as an operator runs it: the real binary serves
// the example's own configuration, the shipped ich plugin answers, `osprey listen` is the RIS,
// `osprey fhir listen` the EHR and a real Orthanc with its DICOMweb plugin the PACS. Every
// output is then read back by something that is not Osprey: python-hl7 for the ORU, Orthanc's
// own tag dump and dciodvfy for the SR.

const (
	triageExample = "../../examples/ich-triage"
	triageWait    = 60 * time.Second

	triageSNOMEDICH     = "1386000"  // Intracranial hemorrhage
	triageSNOMEDPresent = "52101004" // Present
	triageSRClass       = "1.2.840.10008.5.1.4.1.1.88.34"
)

// triageMissing skips when a service or tool is absent, or fails when CI requires them.
func triageMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	orthanctest.Missing(t, format, args...)
}

// triagePort is the port of a free loopback address.
func triagePort(t *testing.T) (addr string, port int) {
	t.Helper()
	addr = freePort(t)
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err = strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return addr, port
}

// triageGet GETs a URL with an optional bearer token and decodes the JSON answer into v.
// It returns errors rather than failing, so pollers can call it while a service comes up.
func triageGet(rawURL, token string, v any) error {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json, application/dicom+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", rawURL, resp.StatusCode, b)
	}
	if len(bytes.TrimSpace(b)) == 0 { // Orthanc's QIDO-RS answers an empty body for no match
		b = []byte("[]")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", rawURL, err)
	}
	return nil
}

// triageDICOM is one DICOM JSON object (PS3.18 F.2) as QIDO-RS answers it.
type triageDICOM map[string]struct {
	VR    string `json:"vr"`
	Value []any  `json:"Value"`
}

func (d triageDICOM) str(tag string) string {
	if v := d[tag].Value; len(v) > 0 {
		if s, ok := v[0].(string); ok {
			return s
		}
	}
	return ""
}

// triageRun runs the binary to its end and returns its exit code and combined output.
func triageRun(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(osprey(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("osprey %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// triageFiles lists the regular files of dir, sorted; none when it does not exist yet.
func triageFiles(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	return files
}

// triageWaitTCP waits until addr accepts connections.
func triageWaitTCP(t *testing.T, what, addr string) {
	t.Helper()
	pollUntil(t, what+" on "+addr, triageWait, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// triageJob is the part of a job in GET /api/v1/jobs this test reads.
type triageJob struct {
	ID           string `json:"id"`
	MessageID    string `json:"message_id"`
	Plugin       string `json:"plugin"`
	StudyUID     string `json:"study_uid"`
	Accession    string `json:"accession"`
	Status       string `json:"status"`
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
}

// triageAnalysis is the part of GET /api/v1/messages/{id}/analysis this test reads.
type triageAnalysis struct {
	MessageID    string   `json:"message_id"`
	StudyUID     string   `json:"study_uid"`
	Accession    string   `json:"accession"`
	Status       string   `json:"status"`
	Priority     string   `json:"priority"`
	Destinations []string `json:"destinations"`
	Rules        []string `json:"rules"`
}

// triageSR is an SR found in Orthanc by QIDO-RS.
type triageSR struct {
	seriesUID, sopUID string
	otherSeries       []string // the study's series that are not SR
}

// triageFindSR looks in Orthanc, by QIDO-RS only, for an SR series in the study; ok is false while
// there is none.
func triageFindSR(dicomweb, studyUID string) (sr triageSR, ok bool, err error) {
	var series []triageDICOM
	if err := triageGet(dicomweb+"/studies/"+studyUID+"/series", "", &series); err != nil {
		return sr, false, err
	}
	for _, s := range series {
		if s.str("00080060") != "SR" {
			sr.otherSeries = append(sr.otherSeries, s.str("0020000E"))
			continue
		}
		sr.seriesUID = s.str("0020000E")
	}
	if sr.seriesUID == "" {
		return sr, false, nil
	}
	var inst []triageDICOM
	if err := triageGet(dicomweb+"/studies/"+studyUID+"/series/"+sr.seriesUID+"/instances", "", &inst); err != nil {
		return sr, false, err
	}
	if len(inst) != 1 {
		return sr, false, fmt.Errorf("SR series %s holds %d instances, want 1", sr.seriesUID, len(inst))
	}
	sr.sopUID = inst[0].str("00080018")
	return sr, true, nil
}

// triageOrthancID finds Orthanc's own id of an instance by its SOP Instance UID.
func triageOrthancID(t *testing.T, rest, sopUID string) string {
	t.Helper()
	resp, err := http.Post(rest+"/tools/lookup", "text/plain", strings.NewReader(sopUID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var found []struct{ ID, Type string }
	if err := json.NewDecoder(resp.Body).Decode(&found); err != nil {
		t.Fatalf("Orthanc /tools/lookup: %v", err)
	}
	for _, f := range found {
		if f.Type == "Instance" {
			return f.ID
		}
	}
	t.Fatalf("Orthanc does not know instance %s: %+v", sopUID, found)
	return ""
}

// triageOrder returns the first message of an example ORM file.
func triageOrder(t *testing.T, name string) *hl7v2.Message {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(triageExample, "messages", name))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := hl7v2.Split(raw)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("split %s: %d messages, %v", name, len(msgs), err)
	}
	m, err := hl7v2.Parse(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestICHTriageEndToEnd is the proof for examples/ich-triage: two ED head CT orders,
// one study with a bleed and one without; the positive one reaches the RIS, the EHR and the
// PACS, the negative one only the PACS, and everything the outputs say is checked where it
// landed.
func TestICHTriageEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary, its plugin and Orthanc; skipped in -short mode")
	}
	work := t.TempDir()
	data := filepath.Join(work, "data")
	risDir, ehrDir, brokerDir := filepath.Join(work, "ris"), filepath.Join(work, "ehr"), filepath.Join(work, "broker")

	admin, _ := triagePort(t)
	mllpIn, _ := triagePort(t)
	ormOut, ormPort := triagePort(t)
	risOut, risPort := triagePort(t)
	fhirAddr, fhirPort := triagePort(t)
	dicomwebAddr, _ := triagePort(t)
	natsAddr, _ := triagePort(t)
	_, pacsPort := triagePort(t)
	token := fmt.Sprintf("ich-triage-test-%d", time.Now().UnixNano())

	rest := orthanctest.Start(t, pacsPort, "").URL
	pacs := rest + "/dicom-web"
	ospreyDICOMweb := "http://" + dicomwebAddr + "/dicom-web"
	base := "http://" + admin
	natsURL := "nats://" + natsAddr

	env := []string{
		"OSPREY_DATA=" + data,
		"OSPREY_ADMIN=" + admin,
		"OSPREY_TOKEN=" + token,
		"OSPREY_TOKEN_KEY=",
		"OSPREY_MLLP_IN=" + mllpIn,
		"OSPREY_ORM_OUT=" + ormOut,
		"OSPREY_RIS_OUT=" + risOut,
		"OSPREY_FHIR_URL=http://" + fhirAddr + "/fhir",
		"OSPREY_DICOMWEB=" + dicomwebAddr,
		"OSPREY_NATS_LISTEN=" + natsAddr,
		"OSPREY_QUIET=2s",
		"OSPREY_PACS_URL=" + pacs,
		"OSPREY_VIEWER=" + rest,
	}

	start(t, nil, "listen", "--host", "127.0.0.1", "--port", strconv.Itoa(risPort), "--out", risDir)
	start(t, nil, "listen", "--host", "127.0.0.1", "--port", strconv.Itoa(ormPort), "--out", brokerDir)
	start(t, nil, "fhir", "listen", "--host", "127.0.0.1", "--port", strconv.Itoa(fhirPort), "--out", ehrDir)
	triageWaitTCP(t, "the RIS", risOut)
	triageWaitTCP(t, "the PACS broker", ormOut)
	triageWaitTCP(t, "the EHR", fhirAddr)

	serve := start(t, env, "serve", "-c", triageExample)
	waitReady(t, admin, serve)
	creds := filepath.Join(data, "creds", "ich.creds")
	pollUntil(t, "serve to write the plugin's credentials", triageWait, func() bool {
		st, err := os.Stat(creds)
		return err == nil && st.Size() > 0
	})
	start(t, nil, "plugin", "run", "ich", "--nats", natsURL, "--creds", creds)
	pollUntil(t, "the ich plugin to register", triageWait, func() bool {
		var pl struct {
			Plugins []struct {
				Name      string            `json:"name"`
				Instances []json.RawMessage `json:"instances"`
			} `json:"plugins"`
		}
		if triageGet(base+"/api/v1/plugins", token, &pl) != nil {
			return false
		}
		for _, p := range pl.Plugins {
			if p.Name == "ich" && len(p.Instances) > 0 {
				return true
			}
		}
		return false
	})

	// The orders, then the studies: to the PACS first (so the SR lands in a study the PACS
	// knows), then to Osprey.
	code, sendOut := triageRun(t, nil, "send", "--to", mllpIn, filepath.Join(triageExample, "messages"))
	if code != 0 {
		t.Fatalf("osprey send exited %d:\n%s", code, sendOut)
	}
	type study struct {
		name, accession, mrn string
		bleed                bool
		manifest             synth.Manifest
	}
	studies := []*study{
		{name: "positive", accession: "ICH0001", mrn: "MRN0001", bleed: true},
		{name: "negative", accession: "ICH0002", mrn: "MRN0002"},
	}
	for _, s := range studies {
		dir := filepath.Join(work, "ct-"+s.name)
		args := []string{"dicom", "synth", "--out", dir, "--seed", "ich-triage-test-" + s.name,
			"--accession", s.accession, "--patient-id", s.mrn}
		if s.bleed {
			args = append(args, "--bleed")
		}
		if code, out := triageRun(t, nil, args...); code != 0 {
			t.Fatalf("osprey %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		s.manifest = readManifest(t, dir)
		for _, target := range []string{pacs, ospreyDICOMweb} {
			if code, out := triageRun(t, nil, "dicom", "stow", "--url", target, "--token", token, dir); code != 0 {
				t.Fatalf("osprey dicom stow to %s: exit %d\n%s", target, code, out)
			}
		}
	}
	pos, neg := studies[0], studies[1]

	// Wait for the end state: both jobs completed, both analyses complete, an SR for each study
	// in Orthanc, an ORU at the RIS and a transaction at the EHR.
	var jobs []triageJob
	pollUntil(t, "two completed ich jobs", triageWait, func() bool {
		var page struct {
			Jobs []triageJob `json:"jobs"`
		}
		if triageGet(base+"/api/v1/jobs?plugin=ich&status=completed", token, &page) != nil {
			return false
		}
		jobs = page.Jobs
		return len(jobs) >= 2
	})
	jobOf := map[string]triageJob{}
	for _, j := range jobs {
		jobOf[j.Accession] = j
	}
	analyses := map[string]triageAnalysis{}
	for _, s := range studies {
		j, ok := jobOf[s.accession]
		if !ok {
			t.Fatalf("no completed job for accession %s: %+v", s.accession, jobs)
		}
		pollUntil(t, "the analysis of "+s.accession, triageWait, func() bool {
			var a triageAnalysis
			if triageGet(base+"/api/v1/messages/"+url.PathEscape(j.MessageID)+"/analysis", token, &a) != nil {
				return false
			}
			analyses[s.accession] = a
			return a.Status == "complete"
		})
	}
	srs := map[string]triageSR{}
	for _, s := range studies {
		pollUntil(t, "an SR of "+s.accession+" in Orthanc", triageWait, func() bool {
			sr, ok, err := triageFindSR(pacs, s.manifest.StudyInstanceUID)
			if ok && err == nil {
				srs[s.accession] = sr
			}
			return ok && err == nil
		})
	}
	pollUntil(t, "an ORU at the RIS", triageWait, func() bool { return len(triageFiles(risDir)) > 0 })
	pollUntil(t, "a FHIR transaction at the EHR", triageWait, func() bool { return len(triageFiles(ehrDir)) > 0 })
	// A study message is "sent" once every destination its analysis chose has confirmed, so
	// from then on what the RIS and the EHR hold is all they will get for it.
	deliveries := map[string]map[string]string{} // accession: destination: delivery status
	for _, s := range studies {
		pollUntil(t, "the "+s.name+" study's message to be sent", triageWait, func() bool {
			var d struct {
				Message struct {
					Status string `json:"status"`
				} `json:"message"`
				Deliveries []struct {
					Destination string `json:"destination"`
					Status      string `json:"status"`
				} `json:"deliveries"`
			}
			if triageGet(base+"/api/v1/messages/"+url.PathEscape(jobOf[s.accession].MessageID), token, &d) != nil {
				return false
			}
			deliveries[s.accession] = map[string]string{}
			for _, dl := range d.Deliveries {
				deliveries[s.accession][dl.Destination] = dl.Status
			}
			return d.Message.Status == "sent"
		})
	}

	t.Run("orders acknowledged AA", func(t *testing.T) {
		for _, cid := range []string{"RIS-ORM-ICH0001", "RIS-ORM-ICH0002"} {
			found := false
			for line := range strings.SplitSeq(sendOut, "\n") {
				f := strings.Fields(line)
				if len(f) >= 3 && f[1] == cid {
					found = true
					if f[2] != "AA" {
						t.Errorf("%s answered %q, want AA: %s", cid, f[2], line)
					}
				}
			}
			if !found {
				t.Errorf("osprey send printed no ACK for %s:\n%s", cid, sendOut)
			}
		}
		// The ris-orders channel forwards each order to the PACS broker.
		pollUntil(t, "both orders at the PACS broker", triageWait, func() bool { return len(triageFiles(brokerDir)) >= 2 })
		if got := triageFiles(brokerDir); len(got) != 2 {
			t.Errorf("the PACS broker got %d messages, want the 2 orders: %v", len(got), got)
		}
		for _, s := range studies {
			var inst []triageDICOM
			if err := triageGet(pacs+"/studies/"+s.manifest.StudyInstanceUID+"/series/"+s.manifest.Series[0].SeriesInstanceUID+"/instances", "", &inst); err != nil {
				t.Fatal(err)
			}
			if len(inst) != len(s.manifest.Series[0].Instances) {
				t.Errorf("Orthanc holds %d instances of the %s CT, want %d", len(inst), s.name, len(s.manifest.Series[0].Instances))
			}
		}
	})

	order := triageOrder(t, "01-orm-ct-head-ich.hl7")
	var oru *hl7v2.Message
	var oruRaw []byte
	t.Run("RIS gets one ORU for the positive study", func(t *testing.T) {
		files := triageFiles(risDir)
		if len(files) != 1 {
			t.Fatalf("the RIS got %d messages, want exactly 1 (the negative study has no RIS rule): %v", len(files), files)
		}
		raw, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7v2.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		oru, oruRaw = m, raw
		model := jobOf[pos.accession]
		for _, c := range []struct{ path, want string }{
			{"MSH-9.1", "ORU"},
			{"MSH-9.2", "R01"},
			{"PID-3.1", pos.mrn},
			{"PID-3.4", order.Get("PID-3.4")}, // the MRN's authority, as the RIS sent it
			{"PV1-2", order.Get("PV1-2")},     // E: the patient is in the emergency department
			{"ORC-2.1", order.Get("ORC-2.1")},
			{"ORC-3.1", order.Get("ORC-3.1")},
			{"OBR-2.1", order.Get("OBR-2.1")},
			{"OBR-3.1", order.Get("OBR-3.1")},
			{"OBR-4.1", order.Get("OBR-4.1")},
			{"OBR-18", pos.accession},
			{"OBR-25", "P"},
			{"TQ1-9.1", "S"},
		} {
			if got := m.Get(c.path); got != c.want || c.want == "" {
				t.Errorf("%s = %q, want %q", c.path, got, c.want)
			}
		}
		if model.ModelName == "" || model.ModelVersion == "" {
			t.Fatalf("the job does not name its model: %+v", model)
		}
		n := m.Count("OBX")
		finding := 0
		for i := 1; i <= n; i++ {
			obx := fmt.Sprintf("OBX[%d]", i)
			if m.Get(obx+"-3.1") == triageSNOMEDICH && m.Get(obx+"-3.3") == "SCT" {
				finding = i
			}
			if got := m.Get(obx + "-11"); got != "P" {
				t.Errorf("%s-11 = %q, want P (preliminary)", obx, got)
			}
			if got, want := m.Get(obx+"-18.1")+" "+m.Get(obx+"-18.2"), model.ModelName+" "+model.ModelVersion; got != want {
				t.Errorf("%s-18 = %q, want the model %q", obx, got, want)
			}
		}
		if finding == 0 {
			t.Fatalf("no OBX codes the finding SNOMED %s among %d OBX", triageSNOMEDICH, n)
		}
		obx := fmt.Sprintf("OBX[%d]", finding)
		if m.Get(obx+"-2") != "CWE" || m.Get(obx+"-5.1") != triageSNOMEDPresent || m.Get(obx+"-5.2") != "Present" || m.Get(obx+"-5.3") != "SCT" {
			t.Errorf("%s: type %q value %q, want CWE %s^Present^SCT", obx, m.Get(obx+"-2"), m.Raw(obx+"-5"), triageSNOMEDPresent)
		}
		if !triageHasDisclaimer(m) {
			t.Errorf("no NTE says the result is AI-generated and not verified")
		}
		if bytes.Contains(raw, []byte(neg.accession)) {
			t.Errorf("the ORU mentions the negative study's accession %s", neg.accession)
		}
	})

	t.Run("RIS ORU read by python-hl7", func(t *testing.T) {
		if oruRaw == nil {
			t.Skip("no ORU to read")
		}
		const py = "/usr/bin/python3"
		if err := exec.Command(py, "-c", "import hl7").Run(); err != nil {
			triageMissing(t, "%s with the hl7 module (Debian python3-hl7) is not available: %v", py, err)
		}
		cmd := exec.Command(py, "testdata/triage/read_oru.py")
		cmd.Stdin = bytes.NewReader(oruRaw)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python-hl7: %v\n%s", err, stderr.String())
		}
		var segs map[string][]map[string]string
		if err := json.Unmarshal(out, &segs); err != nil {
			t.Fatalf("python-hl7 output: %v\n%s", err, out)
		}
		one := func(seg, key string) string {
			if len(segs[seg]) == 0 {
				return ""
			}
			return segs[seg][0][key]
		}
		model := jobOf[pos.accession]
		for _, c := range []struct{ seg, key, want string }{
			{"MSH", "9.1", "ORU"},
			{"MSH", "9.2", "R01"},
			{"PID", "3.1", pos.mrn},
			{"ORC", "2.1", order.Get("ORC-2.1")},
			{"ORC", "3.1", order.Get("ORC-3.1")},
			{"OBR", "18.1", pos.accession},
			{"OBR", "25.1", "P"},
			{"TQ1", "9.1", "S"},
		} {
			if got := one(c.seg, c.key); got != c.want || c.want == "" {
				t.Errorf("python-hl7 reads %s-%s = %q, want %q", c.seg, c.key, got, c.want)
			}
		}
		found := false
		for i, obx := range segs["OBX"] {
			if obx["11.1"] != "P" {
				t.Errorf("python-hl7 reads OBX[%d]-11 = %q, want P", i+1, obx["11.1"])
			}
			if obx["18.1"] != model.ModelName || obx["18.2"] != model.ModelVersion {
				t.Errorf("python-hl7 reads OBX[%d]-18 = %q^%q, want %s^%s", i+1, obx["18.1"], obx["18.2"], model.ModelName, model.ModelVersion)
			}
			if obx["3.1"] == triageSNOMEDICH && obx["3.3"] == "SCT" {
				found = true
				if obx["5.1"] != triageSNOMEDPresent || obx["5.2"] != "Present" {
					t.Errorf("python-hl7 reads the finding's OBX-5 as %q^%q, want %s^Present", obx["5.1"], obx["5.2"], triageSNOMEDPresent)
				}
			}
		}
		if !found {
			t.Errorf("python-hl7 finds no OBX coding SNOMED %s: %v", triageSNOMEDICH, segs["OBX"])
		}
		disclaimer := false
		for _, nte := range segs["NTE"] {
			disclaimer = disclaimer || triageIsDisclaimer(nte["3.1"])
		}
		if !disclaimer {
			t.Errorf("python-hl7 finds no AI disclaimer in NTE: %v", segs["NTE"])
		}
		// Both parsers agree on the shape of the message.
		if oru != nil && len(segs["OBX"]) != oru.Count("OBX") {
			t.Errorf("python-hl7 counts %d OBX, Osprey %d", len(segs["OBX"]), oru.Count("OBX"))
		}
	})

	t.Run("EHR gets a valid transaction with the alert", func(t *testing.T) {
		files := triageFiles(ehrDir)
		if len(files) != 1 {
			t.Fatalf("the EHR got %d requests, want exactly 1 (the negative study has no EHR rule): %v", len(files), files)
		}
		bundle, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if rt, err := fhir.Validate(bundle); err != nil || rt != "Bundle" {
			t.Fatalf("bundle: %q, %v", rt, err)
		}
		var head struct{ Type string }
		_ = json.Unmarshal(bundle, &head)
		if head.Type != "transaction" {
			t.Errorf("Bundle.type %q, want transaction", head.Type)
		}
		entries, err := fhir.Entries(bundle)
		if err != nil {
			t.Fatal(err)
		}
		byType := map[string][]fhir.Entry{}
		fullURLs := map[string]bool{}
		for _, e := range entries {
			byType[e.ResourceType] = append(byType[e.ResourceType], e)
			fullURLs[e.FullURL] = true
			if rt, err := fhir.Validate(e.Resource); err != nil || rt != e.ResourceType {
				t.Errorf("%s entry: %q, %v", e.ResourceType, rt, err)
			}
			if e.Method == http.MethodPost && e.IfNoneExist == "" {
				t.Errorf("%s create has no ifNoneExist: a redelivery would duplicate it", e.ResourceType)
			}
		}
		for _, rt := range []string{"DiagnosticReport", "Observation", "Device", "ImagingStudy", "Communication"} {
			if len(byType[rt]) == 0 {
				t.Errorf("no %s in the bundle (has %v)", rt, slices.Sorted(func(yield func(string) bool) {
					for k := range byType {
						if !yield(k) {
							return
						}
					}
				}))
			}
		}
		// Every reference to another entry resolves inside the bundle.
		for _, e := range entries {
			refs, err := fhir.References(e.Resource)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				if strings.HasPrefix(r, "urn:uuid:") && !fullURLs[r] {
					t.Errorf("%s refers to %s, which is no entry of the bundle", e.ResourceType, r)
				}
			}
		}
		for _, e := range byType["DiagnosticReport"] {
			var dr struct {
				Status     string `json:"status"`
				Identifier []struct{ Value string }
			}
			_ = json.Unmarshal(e.Resource, &dr)
			if dr.Status != "preliminary" {
				t.Errorf("DiagnosticReport.status %q, want preliminary", dr.Status)
			}
		}
		for _, e := range byType["ImagingStudy"] {
			if !bytes.Contains(e.Resource, []byte("urn:oid:"+pos.manifest.StudyInstanceUID)) {
				t.Errorf("ImagingStudy does not identify the positive study %s", pos.manifest.StudyInstanceUID)
			}
		}
		coded := false
		for _, e := range byType["Observation"] {
			var obs struct {
				Code struct {
					Coding []struct{ System, Code string }
				}
			}
			_ = json.Unmarshal(e.Resource, &obs)
			for _, c := range obs.Code.Coding {
				coded = coded || (c.System == "http://snomed.info/sct" && c.Code == triageSNOMEDICH)
			}
		}
		if !coded {
			t.Errorf("no Observation codes SNOMED %s", triageSNOMEDICH)
		}
		alert := false
		for _, e := range byType["Communication"] {
			var c struct {
				Priority  string
				Recipient []struct{ Reference string }
				Payload   []struct {
					ContentAttachment struct{ URL string }
				}
			}
			_ = json.Unmarshal(e.Resource, &c)
			toTeam := slices.ContainsFunc(c.Recipient, func(r struct{ Reference string }) bool {
				return r.Reference == "PractitionerRole/ed-team"
			})
			if c.Priority == "stat" && toTeam {
				alert = true
			}
			viewer := false
			for _, p := range c.Payload {
				viewer = viewer || (strings.HasPrefix(p.ContentAttachment.URL, rest+"/") &&
					strings.Contains(p.ContentAttachment.URL, pos.manifest.StudyInstanceUID))
			}
			if !viewer {
				t.Errorf("Communication has no viewer link to %s for the study: %s", rest, e.Resource)
			}
		}
		if !alert {
			t.Errorf("no Communication with priority stat to PractitionerRole/ed-team: %v", byType["Communication"])
		}
	})

	var srFile string
	t.Run("PACS holds the SR in the CT's study", func(t *testing.T) {
		sr := srs[pos.accession]
		ct := pos.manifest.Series[0]
		if !slices.Equal(sr.otherSeries, []string{ct.SeriesInstanceUID}) {
			t.Errorf("the study's other series %v, want only the CT %s", sr.otherSeries, ct.SeriesInstanceUID)
		}
		id := triageOrthancID(t, rest, sr.sopUID)
		var tags map[string]json.RawMessage
		if err := triageGet(rest+"/instances/"+id+"/tags?simplify", "", &tags); err != nil {
			t.Fatal(err)
		}
		str := func(name string) string {
			var s string
			_ = json.Unmarshal(tags[name], &s)
			return s
		}
		for _, c := range []struct{ name, want string }{
			{"SOPClassUID", triageSRClass},
			{"Modality", "SR"},
			{"StudyInstanceUID", pos.manifest.StudyInstanceUID},
			{"SeriesInstanceUID", sr.seriesUID},
			{"PatientID", pos.manifest.Patient.ID},
			{"AccessionNumber", pos.accession},
			{"CompletionFlag", "COMPLETE"},
			{"VerificationFlag", "UNVERIFIED"},
		} {
			if got := str(c.name); got != c.want {
				t.Errorf("Orthanc's %s = %q, want %q", c.name, got, c.want)
			}
		}
		var requests []map[string]json.RawMessage
		_ = json.Unmarshal(tags["ReferencedRequestSequence"], &requests)
		if len(requests) != 1 {
			t.Errorf("ReferencedRequestSequence has %d items, want 1: %s", len(requests), tags["ReferencedRequestSequence"])
		} else {
			for name, want := range map[string]string{
				"AccessionNumber":                        pos.accession,
				"StudyInstanceUID":                       pos.manifest.StudyInstanceUID,
				"PlacerOrderNumberImagingServiceRequest": order.Get("ORC-2.1"),
				"FillerOrderNumberImagingServiceRequest": order.Get("ORC-3.1"),
			} {
				var got string
				_ = json.Unmarshal(requests[0][name], &got)
				if got != want {
					t.Errorf("ReferencedRequestSequence %s = %q, want %q", name, got, want)
				}
			}
		}
		var evidence []struct {
			StudyInstanceUID         string
			ReferencedSeriesSequence []struct {
				SeriesInstanceUID     string
				ReferencedSOPSequence []struct {
					ReferencedSOPClassUID    string
					ReferencedSOPInstanceUID string
				}
			}
		}
		if err := json.Unmarshal(tags["CurrentRequestedProcedureEvidenceSequence"], &evidence); err != nil || len(evidence) != 1 {
			t.Errorf("CurrentRequestedProcedureEvidenceSequence: %d studies (%v): %s", len(evidence), err, tags["CurrentRequestedProcedureEvidenceSequence"])
		} else {
			ev := evidence[0]
			if ev.StudyInstanceUID != pos.manifest.StudyInstanceUID {
				t.Errorf("evidence names study %s, want %s", ev.StudyInstanceUID, pos.manifest.StudyInstanceUID)
			}
			if len(ev.ReferencedSeriesSequence) != 1 || ev.ReferencedSeriesSequence[0].SeriesInstanceUID != ct.SeriesInstanceUID {
				t.Errorf("evidence series %+v, want the CT series %s alone", ev.ReferencedSeriesSequence, ct.SeriesInstanceUID)
			} else {
				var got, want []string
				for _, r := range ev.ReferencedSeriesSequence[0].ReferencedSOPSequence {
					got = append(got, r.ReferencedSOPInstanceUID)
					if r.ReferencedSOPClassUID != ct.SOPClassUID {
						t.Errorf("evidence instance %s has SOP class %s, want %s", r.ReferencedSOPInstanceUID, r.ReferencedSOPClassUID, ct.SOPClassUID)
					}
				}
				for _, in := range ct.Instances {
					want = append(want, in.SOPInstanceUID)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("evidence lists %d instances, want the CT's %d:\n got %v\nwant %v", len(got), len(want), got, want)
				}
			}
		}
		var templates []struct{ MappingResource, TemplateIdentifier string }
		_ = json.Unmarshal(tags["ContentTemplateSequence"], &templates)
		if len(templates) != 1 || templates[0].MappingResource != "DCMR" || templates[0].TemplateIdentifier != "1500" {
			t.Errorf("ContentTemplateSequence %s, want DCMR TID 1500", tags["ContentTemplateSequence"])
		}

		// The Part 10 file as Orthanc stores it, for dciodvfy.
		resp, err := http.Get(rest + "/instances/" + id + "/file")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET the SR file: %d, %v", resp.StatusCode, err)
		}
		srFile = filepath.Join(work, "sr.dcm")
		if err := os.WriteFile(srFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SR from the PACS passes dciodvfy", func(t *testing.T) {
		if srFile == "" {
			t.Skip("no SR retrieved")
		}
		bin, err := exec.LookPath("dciodvfy")
		if err != nil {
			triageMissing(t, "dciodvfy not found on PATH (apt-get install dicom3tools)")
		}
		out, err := exec.Command(bin, srFile).CombinedOutput()
		var errs []string
		for line := range strings.SplitSeq(string(out), "\n") {
			if strings.HasPrefix(line, "Error") {
				errs = append(errs, line)
			}
		}
		if len(errs) > 0 {
			t.Errorf("dciodvfy finds %d errors in the SR Orthanc stores:\n%s", len(errs), strings.Join(errs, "\n"))
		}
		if err != nil && len(bytes.TrimSpace(out)) == 0 {
			t.Errorf("dciodvfy did not run: %v", err)
		}
	})

	t.Run("negative study: SR only", func(t *testing.T) {
		a := analyses[neg.accession]
		if !slices.Equal(a.Destinations, []string{"pacs"}) || !slices.Equal(a.Rules, []string{"ich-negative"}) {
			t.Errorf("negative analysis: destinations %v rules %v, want [pacs] by [ich-negative]", a.Destinations, a.Rules)
		}
		if a.Priority == "stat" || a.Priority == "urgent" {
			t.Errorf("negative analysis has priority %q", a.Priority)
		}
		sr := srs[neg.accession]
		id := triageOrthancID(t, rest, sr.sopUID)
		var tags map[string]any
		if err := triageGet(rest+"/instances/"+id+"/tags?simplify", "", &tags); err != nil {
			t.Fatal(err)
		}
		if tags["SOPClassUID"] != triageSRClass || tags["PatientID"] != neg.mrn || tags["AccessionNumber"] != neg.accession {
			t.Errorf("negative SR: class %v patient %v accession %v", tags["SOPClassUID"], tags["PatientID"], tags["AccessionNumber"])
		}
		for _, dir := range []string{risDir, ehrDir} {
			for _, f := range triageFiles(dir) {
				b, _ := os.ReadFile(f)
				if bytes.Contains(b, []byte(neg.accession)) || bytes.Contains(b, []byte(neg.manifest.StudyInstanceUID)) {
					t.Errorf("%s is about the negative study", f)
				}
			}
		}
	})

	t.Run("jobs and analysis in the API", func(t *testing.T) {
		if len(jobs) != 2 {
			t.Errorf("%d completed ich jobs, want 2: %+v", len(jobs), jobs)
		}
		for _, s := range studies {
			j := jobOf[s.accession]
			if j.Plugin != "ich" || j.Status != "completed" || j.StudyUID != s.manifest.StudyInstanceUID || j.ModelName == "" || j.ModelVersion == "" {
				t.Errorf("%s job %+v", s.accession, j)
			}
		}
		a := analyses[pos.accession]
		if a.Priority != "stat" {
			t.Errorf("positive analysis priority %q, want stat", a.Priority)
		}
		if got := slices.Sorted(slices.Values(a.Destinations)); !slices.Equal(got, []string{"ehr", "pacs", "ris"}) {
			t.Errorf("positive analysis destinations %v, want ris, ehr, pacs", a.Destinations)
		}
		if !slices.Contains(a.Rules, "ich-stat") {
			t.Errorf("positive analysis rules %v, want ich-stat", a.Rules)
		}
		for _, s := range studies {
			want := map[string]string{"pacs": "sent"}
			if s == pos {
				want = map[string]string{"ris": "sent", "ehr": "sent", "pacs": "sent"}
			}
			if !maps.Equal(deliveries[s.accession], want) {
				t.Errorf("%s study's deliveries %v, want %v", s.name, deliveries[s.accession], want)
			}
		}
		if a.StudyUID != pos.manifest.StudyInstanceUID || a.Accession != pos.accession {
			t.Errorf("positive analysis is of study %s accession %s", a.StudyUID, a.Accession)
		}
	})

	t.Run("plugin check passes against the running plugin", func(t *testing.T) {
		code, out := triageRun(t, nil, "plugin", "check", "--plugin", "ich",
			"--creds", filepath.Join(data, "creds", "admin.creds"), "--nats", natsURL)
		if code != 0 {
			t.Errorf("osprey plugin check exited %d:\n%s", code, out)
		}
	})
}

// triageHasDisclaimer reports whether an NTE of m says the result is AI-generated and unverified.
func triageHasDisclaimer(m *hl7v2.Message) bool {
	for i := 1; i <= m.Count("NTE"); i++ {
		if triageIsDisclaimer(m.Get(fmt.Sprintf("NTE[%d]-3", i))) {
			return true
		}
	}
	return false
}

func triageIsDisclaimer(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "ai-generated") && strings.Contains(s, "not verified")
}
