// Package pyhl7test is a test helper: python-hl7 (Debian python3-hl7), an HL7v2 parser that is
// not ours, run in a subprocess so tests can check our messages against an independent reader.
// Each test brings its own script, since what it asks python-hl7 differs.
package pyhl7test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// Python is the interpreter Debian's python3-hl7 installs the hl7 module for.
const Python = "/usr/bin/python3"

// Find returns Python once it can import hl7. When it cannot the test is skipped with the
// reason, or failed when CI requires services (OSPREY_TEST_REQUIRE_SERVICES=1).
func Find(t testing.TB) string {
	t.Helper()
	if err := exec.Command(Python, "-c", "import hl7").Run(); err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("python3 with the hl7 module (Debian python3-hl7) is required: %v", err)
		}
		t.Skipf("skipping: %s with the hl7 module (Debian package python3-hl7) not available: %v", Python, err)
	}
	return Python
}

// Output runs py (from Find) with args and stdin and returns what it writes to stdout. It
// fails the test with Python's stderr when the run fails.
func Output(t testing.TB, py string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(py, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python-hl7: %v\n%s", err, stderr.String())
	}
	return out
}

// Run runs the Python source script with py (from Find), giving it reqs as a JSON array on
// stdin; the script must answer a JSON array with one result per request, in order. The
// interpreter is a parameter so a test can skip before it builds its requests.
func Run[Res, Req any](t testing.TB, py, script string, reqs []Req) []Res {
	t.Helper()
	in, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	out := Output(t, py, in, "-c", script)
	var res []Res
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(reqs) {
		t.Fatalf("python-hl7 output: %v (%d results for %d requests)", err, len(res), len(reqs))
	}
	return res
}
