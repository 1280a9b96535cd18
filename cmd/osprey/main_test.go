package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCLIDispatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"help lists every command", []string{"help"}, 0, "deadletters requeue", ""},
		{"no arguments is help", nil, 0, "serve", ""},
		{"version", []string{"version"}, 0, "osprey ", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"nested command found by its two words", []string{"hl7", "nope"}, 2, "", `unknown command "hl7 nope"`},
		{"usage error", []string{"hl7", "get"}, 2, "", "usage: osprey hl7 get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runCLI(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if !strings.Contains(out.String(), tc.inStdout) || !strings.Contains(errb.String(), tc.inStderr) {
				t.Errorf("stdout %q stderr %q: want %q and %q in them", out.String(), errb.String(), tc.inStdout, tc.inStderr)
			}
		})
	}
	var out bytes.Buffer
	runCLI(context.Background(), &cliEnv{stdout: &out, stderr: &out}, []string{"help"})
	for name := range commands {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("help does not list %q", name)
		}
	}
}
