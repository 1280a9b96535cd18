package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
)

const (
	adminToken = "serve-test-admin-token"
	readToken  = "serve-test-read-token"
)

func serveConfig(dataDir, admin, in, out, filter string) string {
	return fmt.Sprintf(`server:
  data_dir: %s
  procs: 3
  admin:
    listen: %s
    tokens:
      - {name: ops, token: %s, role: admin}
      - {name: viewer, token: %s, role: read}
channels:
  - name: feed
    source: {mllp: {address: "%s"}}
    filter: '%s'
    destinations:
      - name: out
        mllp: {address: "%s", ack_timeout: 5s}
`, dataDir, admin, adminToken, readToken, in, filter, out)
}

func api(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sendOne(t *testing.T, addr, typ, id string) {
	t.Helper()
	if err := trySend(addr, typ, id); err != nil {
		t.Fatal(err)
	}
}

func trySend(addr, typ, id string) error {
	c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: addr})
	if err != nil {
		return err
	}
	defer c.Close()
	ack, _, err := c.Send(context.Background(), []byte("MSH|^~\\&|HIS|HOSP|RIS|RAD|20261201120000||"+typ+"|"+id+"|P|2.5.1\rPID|1||P1\r"))
	if err != nil || ack.Code != "AA" {
		return fmt.Errorf("send %s: ack %q, %v", id, ack.Code, err)
	}
	return nil
}

// messageStatus asks the admin API for the status of the message with control id cid.
func messageStatus(t *testing.T, admin, cid string) string {
	t.Helper()
	code, body := api(t, "GET", "http://"+admin+"/api/v1/messages?control_id="+cid, readToken)
	if code != http.StatusOK {
		t.Fatalf("search: %d %s", code, body)
	}
	var page struct {
		Messages []struct{ Status string } `json:"messages"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) == 0 {
		return ""
	}
	return page.Messages[0].Status
}

// TestServeReloadAuthAndGracefulStop runs the binary as an operator would: a broken reload is
// refused over the API and the running channel keeps delivering; the API enforces token
// roles; SIGHUP applies a good configuration; SIGTERM exits cleanly.
func TestServeReloadAuthAndGracefulStop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary; skipped in -short mode")
	}
	recv, out := startReceiver(t)
	dir := t.TempDir()
	in, admin := freePort(t), freePort(t)
	path := filepath.Join(dir, "osprey.yaml")
	write := func(filter string) {
		if err := os.WriteFile(path, []byte(serveConfig(filepath.Join(dir, "data"), admin, in, out, filter)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`msg.Type != ""`)
	p := start(t, nil, "serve", "-c", path)
	waitReady(t, admin, p)
	base := "http://" + admin

	// server.procs reaches the runtime, unless GOMAXPROCS (inherited from this test) wins.
	wantProcs := `"procs":3,"cpus":`
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		wantProcs = `"procs":` + v + `,"set_by":"GOMAXPROCS"`
	}
	if !strings.Contains(p.out.String(), wantProcs) {
		t.Errorf("serve did not log %s at start", wantProcs)
	}

	sendOne(t, in, "ORU^R01", "R1")
	pollUntil(t, "R1 delivered", 20*time.Second, func() bool { return recv.snapshot()["R1"] == 1 })

	// Auth: no token, unknown token, read token on a write route.
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/api/v1/channels", "", http.StatusUnauthorized},
		{"unknown token", "GET", "/api/v1/channels", "not-a-token-at-all", http.StatusUnauthorized},
		{"read token reads", "GET", "/api/v1/channels", readToken, http.StatusOK},
		{"read token cannot reload", "POST", "/api/v1/reload", readToken, http.StatusForbidden},
		{"metrics need no token", "GET", "/metrics", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := api(t, tc.method, base+tc.path, tc.token); code != tc.want {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
		})
	}
	if _, body := api(t, "GET", base+"/metrics", ""); !strings.Contains(body, `osprey_messages_received_total{channel="feed",verdict="accepted"} 1`) {
		t.Errorf("metrics do not count the received message:\n%.2000s", body)
	}

	// A broken configuration is refused with its position; the channel keeps running.
	write(`msg.Typo == "ADT"`)
	code, body := api(t, "POST", base+"/api/v1/reload", adminToken)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "osprey.yaml:") || !strings.Contains(body, "Typo") {
		t.Fatalf("reload of a broken config: %d %s, want 422 naming the file position and the field", code, body)
	}
	sendOne(t, in, "ORU^R01", "R2")
	pollUntil(t, "R2 delivered by the old configuration", 20*time.Second, func() bool { return recv.snapshot()["R2"] == 1 })

	// SIGHUP applies a good one: now only ADT passes.
	write(`msg.Type == "ADT"`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the new filter to apply", 30*time.Second, func() bool {
		id := fmt.Sprintf("R3-%d", time.Now().UnixNano())
		if err := trySend(in, "ORU^R01", id); err != nil {
			return false // the old source closed its connections as the reload replaced it; a sender retries
		}
		var st string
		for range 50 {
			if st = messageStatus(t, admin, id); st != "" && st != "received" && st != "queued" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return st == "filtered"
	})
	sendOne(t, in, "ADT^A08", "A1")
	pollUntil(t, "A1 delivered", 20*time.Second, func() bool { return recv.snapshot()["A1"] == 1 })

	p.stop(t)
	if !strings.Contains(p.out.String(), "stopping") {
		t.Errorf("no stop message in the log:\n%s", p.out.String())
	}
}

func TestProcsFor(t *testing.T) {
	tests := []struct {
		configured, cpus, want int
	}{
		{0, 2, 4},
		{0, 1, 2},
		{0, 16, 32},
		{0, 0, 2}, // never zero, whatever the runtime reports
		{3, 2, 3},
		{1, 64, 1},
	}
	for _, tc := range tests {
		if got := procsFor(tc.configured, tc.cpus); got != tc.want {
			t.Errorf("procsFor(%d, %d) = %d, want %d", tc.configured, tc.cpus, got, tc.want)
		}
	}
}
