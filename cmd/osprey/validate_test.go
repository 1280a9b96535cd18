package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/validate/*.golden from the current output")

// runValidate runs `osprey validate` in-process and returns its exit code and output.
func runValidate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCLI(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb},
		append([]string{"validate"}, args...))
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		golden string // testdata/validate/<golden>.golden holds the expected stdout
		stdout string // or the exact stdout
		stderr string
	}{
		{name: "good file", args: []string{"testdata/validate/good.yaml"}, code: 0, stdout: "ok: 1 channel in 1 file\n"},
		{name: "broken file", args: []string{"testdata/validate/broken.yaml"}, code: 1, golden: "broken", stderr: "invalid: 9 errors\n"},
		{name: "folder with a duplicate channel and server", args: []string{"testdata/validate/split"}, code: 1, golden: "split", stderr: "invalid: 3 errors\n"},
		{name: "several paths", args: []string{"testdata/validate/good.yaml", "testdata/validate/good.yaml"}, code: 0,
			stdout: "ok: 2 channels in 2 files\n"},
		{name: "missing path", args: []string{"testdata/validate/nope.yaml"}, code: 1,
			stdout: "testdata/validate/nope.yaml: cannot read configuration: stat testdata/validate/nope.yaml: no such file or directory\n",
			stderr: "invalid: 1 error\n"},
		{name: "no path", args: nil, code: 2, stderr: "usage: osprey validate PATH...\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OSPREY_TEST_UNSET_ADDR", "")
			os.Unsetenv("OSPREY_TEST_UNSET_ADDR")
			code, stdout, stderr := runValidate(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			want := tt.stdout
			if tt.golden != "" {
				path := filepath.Join("testdata", "validate", tt.golden+".golden")
				if *updateGolden {
					if err := os.WriteFile(path, []byte(stdout), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				want = string(b)
			}
			if stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
			if stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", stderr, tt.stderr)
			}
		})
	}
}
