package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

func cliMsg(id, sep string) string {
	return "MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260101120000||ORM^O01|" + id + "|P|2.5.1" + sep +
		"PID|1||12345^^^HOSP^MR||DOE^JANE" + sep
}

// mllpTestSource runs an MLLP source whose sink answers by control id: ids starting with
// REJ are rejected. It returns the address and a function listing the bodies received.
func mllpTestSource(t *testing.T) (string, func() []string) {
	t.Helper()
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	sink := engine.SinkFunc(func(_ context.Context, m *engine.Message) (engine.Receipt, error) {
		mu.Lock()
		got = append(got, string(m.Body))
		mu.Unlock()
		if strings.Contains(string(m.Body), "|REJ") {
			return engine.Receipt{Verdict: engine.Rejected, Reason: errors.New("unknown patient")}, nil
		}
		return engine.Receipt{Verdict: engine.Accepted}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() { cancel(); <-done })
	return src.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestSendCommand(t *testing.T) {
	addr, received := mllpTestSource(t)
	dir := t.TempDir()
	// A folder with two files, sent in name order: a multi-message file with LF endings
	// and a batch with CRLF endings.
	os.WriteFile(filepath.Join(dir, "b.hl7"), []byte("BHS|^~\\&|RIS\r\n"+strings.ReplaceAll(cliMsg("S3", "\n"), "\n", "\r\n")+"BTS|1\r\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "a.hl7"), []byte(cliMsg("S1", "\n")+"\n"+cliMsg("S2", "\n")), 0o600)
	os.Mkdir(filepath.Join(dir, "sub"), 0o700) // not a regular file: skipped

	var stdout, stderr bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(cliMsg("S4", "\r")), stdout: &stdout, stderr: &stderr}
	code := runCLI(context.Background(), env, []string{"send", "--to", addr, "--timeout", "10s", dir, "-"})
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	wantLines := []string{"1\tS1\tAA", "2\tS2\tAA", "3\tS3\tAA", "4\tS4\tAA"}
	if got := strings.Split(strings.TrimSpace(stdout.String()), "\n"); strings.Join(got, "|") != strings.Join(wantLines, "|") {
		t.Errorf("stdout lines %q, want %q", got, wantLines)
	}
	got := received()
	if len(got) != 4 {
		t.Fatalf("receiver got %d messages, want 4", len(got))
	}
	for i, id := range []string{"S1", "S2", "S3", "S4"} {
		if got[i] != cliMsg(id, "\r") {
			t.Errorf("message %d = %q, want %q (CR terminators only)", i+1, got[i], cliMsg(id, "\r"))
		}
	}
}

func TestSendCommandExitsOneOnRejection(t *testing.T) {
	addr, _ := mllpTestSource(t)
	var stdout, stderr bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(cliMsg("OK1", "\r") + cliMsg("REJ2", "\r")), stdout: &stdout, stderr: &stderr}
	code := runCLI(context.Background(), env, []string{"send", "--to", addr, "-"})
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %s stderr %s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "2\tREJ2\tAE\tunknown patient") {
		t.Errorf("stdout %q, want the AE line with its text", stdout.String())
	}
	if !strings.Contains(stderr.String(), "1 of 2 messages accepted") {
		t.Errorf("stderr %q, want a summary", stderr.String())
	}
}

func TestSendCommandUsage(t *testing.T) {
	var stderr bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &stderr}
	if code := runCLI(context.Background(), env, []string{"send", "file.hl7"}); code != 2 {
		t.Errorf("send without --to: exit %d, want 2", code)
	}
	if code := runCLI(context.Background(), env, []string{"send", "--to", "127.0.0.1:1", "-"}); code != 1 {
		t.Errorf("send of empty input: exit %d, want 1", code)
	}
}

func startListen(t *testing.T, args ...string) (addr string, stdout *bytes.Buffer, done <-chan int) {
	t.Helper()
	pr, pw := io.Pipe()
	stdout = &bytes.Buffer{}
	var mu sync.Mutex
	out := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return stdout.Write(p) })
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan int, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ch <- runCLI(ctx, &cliEnv{stdin: strings.NewReader(""), stdout: out, stderr: pw}, append([]string{"listen", "--port", "0"}, args...))
		pw.Close()
	}()
	go io.Copy(io.Discard, pr) // after the first line, keep stderr flowing
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("listen did not stop")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("listen printed nothing: %v", err)
	}
	m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listen said %q", line)
	}
	return m[1], stdout, ch
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestListenCommand(t *testing.T) {
	outDir := filepath.Join(t.TempDir(), "out")
	addr, stdout, done := startListen(t, "--count", "2", "--out", outDir)
	c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"L/1", "L2"} {
		ack, _, err := c.Send(context.Background(), []byte(cliMsg(id, "\r")))
		if err != nil || ack.Code != hl7v2.ApplicationAccept {
			t.Fatalf("%s: ACK %+v, %v; want AA", id, ack, err)
		}
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("listen exited %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not exit after --count 2")
	}
	for name, id := range map[string]string{"000001-L_1.hl7": "L/1", "000002-L2.hl7": "L2"} {
		b, err := os.ReadFile(filepath.Join(outDir, name))
		if err != nil || string(b) != cliMsg(id, "\r") {
			t.Errorf("%s = %q, %v; want the message as received", name, b, err)
		}
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "\tORM^O01\tL/1\t") {
		t.Errorf("stdout %q, want a line per message with MSH-9 and MSH-10", lines)
	}
}

func TestListenCommandAckCodes(t *testing.T) {
	for _, code := range []string{"AE", "AR"} {
		t.Run(code, func(t *testing.T) {
			addr, _, _ := startListen(t, "--ack", code)
			c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ack, _, err := c.Send(context.Background(), []byte(cliMsg("X1", "\r")))
			if err != nil || string(ack.Code) != code || ack.ControlID != "X1" {
				t.Errorf("ACK %+v, %v; want %s for X1", ack, err, code)
			}
		})
	}
}

func TestFileSafe(t *testing.T) {
	tests := map[string]string{
		"MSG00001":                     "MSG00001",
		"../../etc":                    ".._.._etc",
		"a b/c\\d":                     "a_b_c_d",
		"":                             "noid",
		".hidden":                      ".hidden",
		"v1.2":                         "v1.2",
		"日本":                           "__",
		"x" + strings.Repeat("y", 100): "x" + strings.Repeat("y", 63),
	}
	for in, want := range tests {
		if got := fileSafe(in); got != want {
			t.Errorf("fileSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
