package dicomweb_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/channels/dicomweb"
)

// TestCurlSTOW sends real STOW-RS requests with curl: a multipart body built by hand in a
// file, as an integrator would, then a chunked request over the size limit. Whatever Osprey
// stored is then read back by WADO-RS and checked with DCMTK's dcmdump.
func TestCurlSTOW(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		skipOrFail(t, "curl is not installed")
	}
	src, _ := runSource(t, newBroker(t), dicomweb.SourceConfig{Tokens: []string{"curl-token"}, MaxRequestSize: 1 << 20}, newSink())
	ct := headCT(t, "curl", 2)
	dir := t.TempDir()

	// The body an integrator writes: CRLF boundaries, one part per file.
	const boundary = "DICOMwebBoundary42"
	var body bytes.Buffer
	for _, in := range ct.Instances {
		fmt.Fprintf(&body, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
		body.Write(in.Data)
		body.WriteString("\r\n")
	}
	fmt.Fprintf(&body, "--%s--\r\n", boundary)
	bodyFile := filepath.Join(dir, "stow.bin")
	if err := os.WriteFile(bodyFile, body.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.bin")
	bigBody := append([]byte("--"+boundary+"\r\nContent-Type: application/dicom\r\n\r\n"), bytes.Repeat([]byte("x"), 2<<20)...)
	if err := os.WriteFile(big, bigBody, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (status string, out string) {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "-o", filepath.Join(dir, "out"), "-w", "%{http_code}"}, args...)...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, b)
		}
		o, _ := os.ReadFile(filepath.Join(dir, "out"))
		return string(b), string(o)
	}
	url := src.BaseURL() + "/studies"
	tests := []struct {
		name   string
		args   []string
		status string
		want   string // in the answer
	}{
		{"stow", []string{"-H", `Content-Type: multipart/related; type="application/dicom"; boundary=` + boundary, "-H", "Authorization: Bearer curl-token", "--data-binary", "@" + bodyFile, url}, "200", ct.Instances[1].SOPInstanceUID},
		{"no token", []string{"-H", `Content-Type: multipart/related; type="application/dicom"; boundary=` + boundary, "--data-binary", "@" + bodyFile, url}, "401", "bearer token"},
		{"chunked over the limit", []string{"-H", "Transfer-Encoding: chunked", "-H", `Content-Type: multipart/related; type="application/dicom"; boundary=` + boundary, "-H", "Authorization: Bearer curl-token", "--data-binary", "@" + big, url}, "413", "max_request_size"},
		{"wrong content type", []string{"-H", "Content-Type: application/dicom", "-H", "Authorization: Bearer curl-token", "--data-binary", "@" + bodyFile, url}, "415", "multipart/related"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, out := run(tc.args...)
			if status != tc.status {
				t.Fatalf("status %s, want %s: %s", status, tc.status, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("answer %q does not contain %q", out, tc.want)
			}
		})
	}

	dcmdump, err := exec.LookPath("dcmdump")
	if err != nil {
		skipOrFail(t, "dcmdump (dcmtk) is not installed")
	}
	m := ct.Manifest
	resp, b := get(t, src.BaseURL()+"/studies/"+m.StudyInstanceUID+"/series/"+m.Series[0].SeriesInstanceUID+"/instances/"+m.Series[0].Instances[0].SOPInstanceUID, "", "curl-token")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("WADO-RS status %d", resp.StatusCode)
	}
	got := parts(t, resp, b, "application/dicom")
	f := filepath.Join(dir, "back.dcm")
	if err := os.WriteFile(f, got[0], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(dcmdump, "-q", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), m.Series[0].Instances[0].SOPInstanceUID) {
		t.Errorf("dcmdump of the retrieved instance: %v\n%.500s", err, out)
	}
}
