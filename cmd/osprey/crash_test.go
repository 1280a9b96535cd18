package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// receiver is an MLLP peer that ACKs AA and counts what it got, by MSH-10.
type receiver struct {
	mu    sync.Mutex
	count map[string]int
	order []string
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	r := &receiver{count: map[string]int{}}
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{})
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
			r.mu.Lock()
			r.count[msg.ControlID()]++
			r.order = append(r.order, msg.ControlID())
			r.mu.Unlock()
			return engine.Receipt{Verdict: engine.Accepted}, nil
		}))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r, src.Addr().String()
}

func (r *receiver) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.count))
	for k, v := range r.count {
		out[k] = v
	}
	return out
}

// TestSIGKILLUnderLoadLosesNothingAcknowledged is the promise an ACK makes: kill -9 the
// engine while 8 senders push messages, start it again, and every message that was answered
// AA reaches the destination. A repeat is allowed only for a message that was in flight to
// the destination at the kill: at most one, since the destination has one connection.
func TestSIGKILLUnderLoadLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the binary twice under load; skipped in -short mode")
	}
	recv, recvAddr := startReceiver(t)
	dir := t.TempDir()
	in, admin := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`server:
  data_dir: %s
  admin:
    listen: %s
    tokens: [{name: t, token: crash-test-token, role: admin}]
channels:
  - name: crash
    source: {mllp: {address: "%s"}}
    destinations:
      - name: out
        mllp: {address: "%s", ack_timeout: 5s}
        retry: {max_attempts: 0, initial_backoff: 50ms, max_backoff: 500ms}
`, filepath.Join(dir, "data"), admin, in, recvAddr)
	path := filepath.Join(dir, "osprey.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, nil, "serve", "-c", path)
	waitReady(t, admin, p)

	var acked sync.Map
	var nAcked atomic.Int64
	ctx, stopSenders := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mllp.Dial(ctx, mllp.ClientConfig{Address: in, AckTimeout: 10 * time.Second})
			if err != nil {
				return
			}
			defer c.Close()
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("K%d-%05d", g, n)
				msg := "MSH|^~\\&|HIS|HOSP|RIS|RAD|20261201120000||ADT^A08|" + id + "|P|2.5.1\rPID|1||P" + id + "\r"
				ack, _, err := c.Send(ctx, []byte(msg))
				if err != nil {
					return // the engine died under us; this message was not acknowledged
				}
				if ack.Code == "AA" {
					acked.Store(id, true)
					nAcked.Add(1)
				}
			}
		}()
	}
	pollUntil(t, "400 acknowledged messages", 60*time.Second, func() bool { return nAcked.Load() >= 400 })
	p.kill(t)
	stopSenders()
	wg.Wait()

	var want []string
	acked.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	t.Logf("%d messages acknowledged before SIGKILL; restarting", len(want))

	p2 := start(t, nil, "serve", "-c", path)
	waitReady(t, admin, p2)
	pollUntil(t, "every acknowledged message at the destination", 90*time.Second, func() bool {
		got := recv.snapshot()
		for _, id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	repeats := 0
	for id, n := range recv.snapshot() {
		if n > 2 {
			t.Errorf("%s delivered %d times", id, n)
		}
		if n == 2 {
			repeats++
			t.Logf("%s delivered twice (in flight to the destination at the kill)", id)
		}
	}
	if repeats > 1 {
		t.Errorf("%d messages delivered twice; at most one (the one in flight on the single destination connection) may be", repeats)
	}
	p2.stop(t)
}
