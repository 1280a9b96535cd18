package synth

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// The validators come from Debian's dicom3tools (dciodvfy, dcentvfy) and dcmtk (dcmdump).
// CI installs both and sets OSPREY_TEST_REQUIRE_SERVICES=1, so there a missing tool fails.

// tool returns the path of a validator, or skips (fails under OSPREY_TEST_REQUIRE_SERVICES=1)
// when it is not installed.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found on PATH (apt-get install " + pkg + ")"
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg + "; OSPREY_TEST_REQUIRE_SERVICES=1 requires it")
	}
	t.Skip(msg)
	return ""
}

// writeSeries writes a series under a fresh temporary folder and returns the folder.
func writeSeries(t *testing.T, s *Series) string {
	t.Helper()
	dir := t.TempDir()
	if err := s.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func files(dir string, s *Series) []string {
	out := make([]string, len(s.Instances))
	for i, in := range s.Instances {
		out[i] = filepath.Join(dir, filepath.FromSlash(in.File))
	}
	return out
}

// dicom3toolsProblems returns the lines of a dicom3tools report that are errors or warnings.
// None are accepted: the generated datasets are meant to be clean, and a warning today (a
// dubious value, a missing conditional attribute) is the error of a stricter reader tomorrow.
func dicom3toolsProblems(out []byte) []string {
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "Error") || strings.Contains(line, "Warning") {
			bad = append(bad, line)
		}
	}
	return bad
}

// dciodvfy checks each file against its IOD.
func dciodvfy(t *testing.T, paths ...string) {
	t.Helper()
	bin := tool(t, "dciodvfy", "dicom3tools")
	for _, p := range paths {
		out, err := exec.Command(bin, p).CombinedOutput()
		if bad := dicom3toolsProblems(out); len(bad) > 0 || err != nil {
			t.Errorf("dciodvfy %s: %v\n%s", filepath.Base(p), err, strings.Join(bad, "\n"))
		}
	}
}

// dcentvfy checks that the files agree on patient, study, series and frame of reference.
func dcentvfy(t *testing.T, paths ...string) {
	t.Helper()
	bin := tool(t, "dcentvfy", "dicom3tools")
	out, err := exec.Command(bin, paths...).CombinedOutput()
	if bad := dicom3toolsProblems(out); len(bad) > 0 || err != nil {
		t.Errorf("dcentvfy: %v\n%s", err, out)
	}
}

var dumpLine = regexp.MustCompile(`^\s*\(([0-9a-f]{4}),([0-9a-f]{4})\) [A-Za-z]{2} (.*?)\s+#`)

// dcmdump returns the top-level and File Meta elements of a file as DCMTK prints them, keyed
// "gggg,eeee" in lower case: "[CT]" for a string, "=CTImageStorage" for a known UID, "16" for
// a number.
func dcmdump(t *testing.T, path string) map[string]string {
	t.Helper()
	bin := tool(t, "dcmdump", "dcmtk")
	out, err := exec.Command(bin, "-q", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", path, err, out)
	}
	got := map[string]string{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(line) > 0 && line[0] == ' ' { // inside a sequence
			continue
		}
		if m := dumpLine.FindSubmatch(line); m != nil {
			got[string(m[1])+","+string(m[2])] = string(m[3])
		}
	}
	if len(got) == 0 {
		t.Fatalf("dcmdump %s printed no elements:\n%s", path, out)
	}
	return got
}

func checkDump(t *testing.T, path string, want map[string]string, absent ...string) {
	t.Helper()
	got := dcmdump(t, path)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("dcmdump %s: (%s) = %q, want %q", filepath.Base(path), k, got[k], v)
		}
	}
	for _, k := range absent {
		if v, ok := got[k]; ok {
			t.Errorf("dcmdump %s: (%s) = %q, want absent", filepath.Base(path), k, v)
		}
	}
}

// TestValidatorsSeeProblems guards the checks above against passing vacuously: a CT dataset
// that lacks most of its IOD must draw errors from dciodvfy.
func TestValidatorsSeeProblems(t *testing.T) {
	bin := tool(t, "dciodvfy", "dicom3tools")
	var b dicom.Builder
	b.Add(tag.SOPClassUID, CTImageStorage)
	b.Add(tag.SOPInstanceUID, dicom.NameUID("synth-test", "broken"))
	b.Add(tag.Modality, "CT")
	ds, err := b.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	data, err := dicom.Encode(ds)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "broken.dcm")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, p).CombinedOutput()
	if bad := dicom3toolsProblems(out); len(bad) == 0 {
		t.Errorf("dciodvfy found nothing wrong with an incomplete CT dataset:\n%s", out)
	}
}
