package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileCommand(t *testing.T) {
	ts, _ := newAPITestServer(t)
	dir := t.TempDir()
	gzipMagic := []byte{0x1f, 0x8b}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"heap", []string{"heap"}},
		{"cpu", []string{"--seconds", "1"}}, // the default kind
		{"goroutine", []string{"goroutine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name+".pprof")
			r := runTestCLI(append([]string{"profile", "--api", ts.URL, "--token", apiTestAdmin, "-o", file}, tc.args...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "go tool pprof -top "+file) {
				t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
			}
			data, err := os.ReadFile(file)
			if err != nil || !bytes.HasPrefix(data, gzipMagic) {
				t.Fatalf("%s: %d bytes, %v; want a gzipped profile", file, len(data), err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"read token", []string{"--token", apiTestRead, "heap"}, "403"},
		{"no token", []string{"--token", "", "heap"}, "401"},
		{"unknown kind", []string{"--token", apiTestAdmin, "cpuu"}, `unknown profile "cpuu"`},
		{"seconds out of range", []string{"--token", apiTestAdmin, "--seconds", "0"}, "want 1 to 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OSPREY_TOKEN", "")
			file := filepath.Join(dir, "refused.pprof")
			r := runTestCLI(append([]string{"profile", "--api", ts.URL, "-o", file}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d stderr %q, want 1 and %q", r.code, r.stderr, tc.want)
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("a refused profile left %s", file)
			}
		})
	}
}
