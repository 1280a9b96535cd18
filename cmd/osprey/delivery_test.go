package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// These run the binary against real MLLP peers: a receiver that is not there yet, and one
// that answers AE.

// peer is an MLLP receiver on a fixed address that records MSH-10s in arrival order and
// answers with the verdict its sink gives.
type peer struct {
	mu    sync.Mutex
	order []string
	stop  func()
}

func startPeer(t *testing.T, addr string, verdict engine.Verdict) *peer {
	t.Helper()
	p := &peer{}
	src, err := mllp.NewSource(mllp.SourceConfig{Address: addr}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = src.Run(ctx, engine.SinkFunc(func(_ context.Context, m *engine.Message) (engine.Receipt, error) {
			msg, err := hl7v2.Parse(m.Body)
			if err != nil {
				return engine.Receipt{Verdict: engine.Rejected, Reason: err}, nil
			}
			p.mu.Lock()
			p.order = append(p.order, msg.ControlID())
			p.mu.Unlock()
			if verdict == engine.Rejected {
				return engine.Receipt{Verdict: engine.Rejected, Reason: errors.New("unknown patient")}, nil
			}
			return engine.Receipt{Verdict: engine.Accepted}, nil
		}))
	}()
	p.stop = func() { cancel(); <-done }
	t.Cleanup(p.stop)
	return p
}

func (p *peer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.order)
}

func deliveryConfig(t *testing.T, dir, admin, in, out string, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "osprey.yaml")
	cfg := fmt.Sprintf(`server:
  data_dir: %s
  admin:
    listen: %s
    tokens: [{name: t, token: %s, role: admin}, {name: r, token: %s, role: read}]
channels:
  - name: feed
    source: {mllp: {address: "%s"}}
    ordered: true
    destinations:
      - name: out
        mllp: {address: "%s", ack_timeout: 2s, connect_timeout: 1s}
%s`, filepath.Join(dir, "data"), admin, adminToken, readToken, in, out, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDestinationDownThenUpReceivesEverythingInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	in, admin, out := freePort(t), freePort(t), freePort(t)
	path := deliveryConfig(t, dir, admin, in, out, "        retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 200ms}\n")
	p := start(t, nil, "serve", "-c", path)
	waitReady(t, admin, p)

	var want []string
	for i := range 20 {
		id := fmt.Sprintf("Q%02d", i)
		want = append(want, id)
		sendOne(t, in, "ADT^A08", id) // AA: on disk, although nothing listens on the destination yet
	}
	// The destination stays down until the engine has tried (and failed) several times.
	pollUntil(t, "failed delivery attempts", 20*time.Second, func() bool {
		code, body := api(t, "GET", "http://"+admin+"/api/v1/messages/"+firstID(t, admin, "Q00"), adminToken)
		return code == 200 && strings.Count(body, `"ok":false`) >= 3
	})
	recv := startPeer(t, out, engine.Accepted)
	pollUntil(t, "all 20 delivered", 30*time.Second, func() bool { return len(recv.received()) >= 20 })
	if got := recv.received(); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v in order", got, want)
	}
	p.stop(t)
}

func TestDestinationAnsweringAEIsRetriedThenDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	in, admin, out := freePort(t), freePort(t), freePort(t)
	recv := startPeer(t, out, engine.Rejected)
	path := deliveryConfig(t, dir, admin, in, out, "        retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 100ms}\n")
	p := start(t, nil, "serve", "-c", path)
	waitReady(t, admin, p)

	sendOne(t, in, "ADT^A08", "AE1")
	pollUntil(t, "dead letter", 20*time.Second, func() bool {
		code, body := api(t, "GET", "http://"+admin+"/api/v1/deadletters", adminToken)
		return code == 200 && strings.Count(body, `"destination":"out"`) == 1
	})
	if got := recv.received(); !slices.Equal(got, []string{"AE1", "AE1", "AE1"}) {
		t.Errorf("peer saw %v, want AE1 three times (max_attempts 3)", got)
	}
	if st := messageStatus(t, admin, "AE1"); st != "error" {
		t.Errorf("message status %q, want error", st)
	}
	p.stop(t)
}

func firstID(t *testing.T, admin, cid string) string {
	t.Helper()
	_, body := api(t, "GET", "http://"+admin+"/api/v1/messages?control_id="+cid, readToken)
	const key = `"id":"`
	i := strings.Index(body, key)
	if i < 0 {
		return "none"
	}
	rest := body[i+len(key):]
	return rest[:strings.Index(rest, `"`)]
}
