// Package orthanctest is a test helper: a real Orthanc with its DICOMweb plugin (Debian's
// orthanc and orthanc-dicomweb), started per test with a configuration of its own, so that
// Osprey's DICOMweb sources and destinations are tested against a PACS nobody here wrote.
package orthanctest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startWait bounds how long Start waits for Orthanc to answer.
const startWait = 60 * time.Second

// Orthanc with its DICOMweb plugin, as Debian packages them (orthanc, orthanc-dicomweb).
var Plugins = []string{
	"/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
	"/usr/lib/orthanc/libOrthancDicomWeb.so",
}

// Missing skips a test whose service is absent, or fails it when CI requires services
// (OSPREY_TEST_REQUIRE_SERVICES=1).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf(format+" (OSPREY_TEST_REQUIRE_SERVICES=1)", args...)
	}
	t.Skipf(format, args...)
}

// FreePort returns a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Server is one Orthanc process for a test.
type Server struct {
	URL      string // REST root, http://127.0.0.1:port
	DICOMweb string // DICOMweb root
}

// Start runs Orthanc with a config of its own in a temp dir: loopback only, no
// authentication, DICOMweb at /dicom-web/, StableAge 1 s, and the Lua script if given. It is
// killed when the test ends.
func Start(t testing.TB, port int, lua string) *Server {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		Missing(t, "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
	}
	plugin := ""
	for _, p := range Plugins {
		if _, err := os.Stat(p); err == nil {
			plugin = p
			break
		}
	}
	if plugin == "" {
		Missing(t, "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
	}
	dir := t.TempDir()
	if port == 0 {
		port = FreePort(t)
	}
	conf := map[string]any{
		"Name":                  "osprey-test",
		"StorageDirectory":      filepath.Join(dir, "storage"),
		"IndexDirectory":        filepath.Join(dir, "index"),
		"HttpPort":              port,
		"DicomPort":             FreePort(t),
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
	o := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	o.DICOMweb = o.URL + "/dicom-web"
	deadline := time.Now().Add(startWait)
	for {
		resp, err := http.Get(o.URL + "/system")
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
