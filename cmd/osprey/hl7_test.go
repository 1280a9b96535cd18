package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

const hl7TestORM = "MSH|^~\\&|RIS|RAD|OSPREY|HOSP|20260301120000||ORM^O01^ORM_O01|ORM1|P|2.5.1||||||UNICODE UTF-8\r" +
	"PID|1||4711^^^MRN~999^^^SSN||Müller^Zoë||19720304|F\r" +
	"OBR|1|PLC1||CTHEAD^CT Head^L|||||||||line1\\.br\\line2 \\T\\ more\r"

// runHL7 runs the CLI with stdin and returns the exit code, stdout and stderr.
func runHL7(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
	code := runCLI(context.Background(), env, args)
	return code, out.String(), errOut.String()
}

func writeHL7(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg.hl7")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHL7Get(t *testing.T) {
	file := writeHL7(t, hl7TestORM)
	batch := writeHL7(t, "BHS|^~\\&\r"+hl7TestORM+strings.Replace(hl7TestORM, "ORM1", "ORM2", 1)+"BTS|2\r")
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string
		err   string
	}{
		{"values", "", []string{"hl7", "get", file, "MSH-10", "PID-5.1", "PID-3[2].1", "PID-99"}, 0, "ORM1\nMüller\n999\n\n", ""},
		{"unescaped", "", []string{"hl7", "get", file, "OBR-13"}, 0, "line1\nline2 & more\n", ""},
		{"raw", "", []string{"hl7", "get", "--raw", file, "OBR-13", "PID-5"}, 0, "line1\\.br\\line2 \\T\\ more\nMüller^Zoë\n", ""},
		{"stdin", hl7TestORM, []string{"hl7", "get", "-", "MSH-9"}, 0, "ORM^O01^ORM_O01\n", ""},
		{"batch: one block per message", "", []string{"hl7", "get", batch, "MSH-10", "PID-5.2"}, 0, "ORM1\nZoë\n\nORM2\nZoë\n", ""},
		{"bad path", "", []string{"hl7", "get", file, "PID-0"}, 2, "", "invalid path"},
		{"no path", "", []string{"hl7", "get", file}, 2, "", "usage: osprey hl7 get"},
		{"missing file", "", []string{"hl7", "get", filepath.Join(t.TempDir(), "nope"), "PID-5"}, 1, "", "no such file"},
		{"not hl7", "hello", []string{"hl7", "get", "-", "PID-5"}, 1, "", "outside a message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runHL7(t, tc.stdin, tc.args...)
			if code != tc.code || out != tc.out || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr containing %q", code, out, errOut, tc.code, tc.out, tc.err)
			}
		})
	}
}

func TestHL7Fmt(t *testing.T) {
	lf := strings.ReplaceAll(hl7TestORM, "\r", "\n") + "ZPI|x|\n\n"
	code, out, errOut := runHL7(t, lf, "hl7", "fmt", "-")
	want := strings.ReplaceAll(hl7TestORM, "\r", "\n") + "ZPI|x|\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stdout %q; want %q", code, out, want)
	}
	if !strings.Contains(errOut, "-: warning: segment 4 field 2 at byte") || !strings.Contains(errOut, "trailing field separators") {
		t.Errorf("stderr %q does not warn about the trailing separator", errOut)
	}

	code, out, _ = runHL7(t, hl7TestORM, "hl7", "fmt", "--json", "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var views []struct {
		Segments []struct {
			Segment string `json:"segment"`
			Fields  []struct {
				Path        string `json:"path"`
				Value       string `json:"value"`
				Repetitions []struct {
					Path       string `json:"path"`
					Components []struct {
						Path  string `json:"path"`
						Value string `json:"value"`
					} `json:"components"`
				} `json:"repetitions"`
			} `json:"fields"`
		} `json:"segments"`
	}
	if err := json.Unmarshal([]byte(out), &views); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if len(views) != 1 || len(views[0].Segments) != 3 || views[0].Segments[1].Segment != "PID" {
		t.Fatalf("unexpected structure: %s", out)
	}
	pid := views[0].Segments[1]
	var pid3 []string
	for _, f := range pid.Fields {
		if f.Path == "PID-3" {
			for _, r := range f.Repetitions {
				for _, c := range r.Components {
					pid3 = append(pid3, c.Path+"="+c.Value)
				}
			}
		}
	}
	if got := strings.Join(pid3, " "); got != "PID-3[1].1=4711 PID-3[1].4=MRN PID-3[2].1=999 PID-3[2].4=SSN" {
		t.Errorf("PID-3 components %q", got)
	}
	if !strings.Contains(out, `"value": "line1\nline2 & more"`) {
		t.Errorf("OBR-13 not unescaped in JSON: %s", out)
	}
}

func TestHL7Ack(t *testing.T) {
	file := writeHL7(t, hl7TestORM)
	enhanced := writeHL7(t, strings.Replace(hl7TestORM, "2.5.1||||||", "2.5.1|||AL|NE|||", 1))
	tests := []struct {
		name string
		in   string
		args []string
		want map[string]string
	}{
		{"accept", "", []string{file}, map[string]string{"MSA-1": "AA", "MSA-2": "ORM1", "MSH-3": "OSPREY", "MSH-5": "RIS", "MSH-9": "ACK^O01^ACK", "MSH-10": "A1"}},
		{"enhanced", "", []string{enhanced}, map[string]string{"MSA-1": "CA", "MSA-2": "ORM1"}},
		{"error", "", []string{"--error", "MRN unknown | check", "--error-code", "204", "--location", "PID-3", file},
			map[string]string{"MSA-1": "AE", "ERR-2": "PID^1^3", "ERR-3": "204^Unknown key identifier^HL70357", "ERR-8": "MRN unknown | check"}},
		{"explicit code", "", []string{"--code", "AR", file}, map[string]string{"MSA-1": "AR"}},
		{"unparseable", "MSH|^~|SEND|FAC|||||ADT^A01|X9|P|2.3\r", []string{"-"}, map[string]string{"MSA-1": "AR", "MSA-2": "X9", "MSH-5": "SEND", "MSH-12": "2.3"}},
		{"garbage", "not hl7", []string{"-"}, map[string]string{"MSA-1": "AR", "MSA-2": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"hl7", "ack", "--control-id", "A1"}, tc.args...)
			code, out, errOut := runHL7(t, tc.in, args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if strings.Contains(out, "\r") || !strings.HasPrefix(out, "MSH|") {
				t.Fatalf("output is not one segment per line: %q", out)
			}
			m, err := hl7v2.Parse([]byte(out))
			if err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			for p, want := range tc.want {
				if got := m.Get(p); got != want {
					t.Errorf("%s = %q, want %q\n%s", p, got, want, out)
				}
			}
		})
	}
	if code, _, errOut := runHL7(t, "", "hl7", "ack", "--code", "XX", file); code != 2 || !strings.Contains(errOut, "--code") {
		t.Errorf("bad --code: exit %d, stderr %q", code, errOut)
	}
}
