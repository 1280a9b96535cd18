package listen_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/internal/listen"
	"github.com/osprey-health/osprey/channels/internal/tlsconf"
)

func TestPoint(t *testing.T) {
	p := listen.New("127.0.0.1:0", nil)
	if p.Addr() != nil {
		t.Fatalf("Addr before Listen = %v, want nil", p.Addr())
	}
	ln, err := p.Listen()
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	again, err := p.Listen()
	if err != nil || again != ln {
		t.Errorf("second Listen = %v, %v; want the same listener", again, err)
	}
	if p.Addr() == nil || p.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr = %v, want %v", p.Addr(), ln.Addr())
	}
	select {
	case <-p.Ready():
		t.Fatal("Ready closed before MarkReady")
	default:
	}
	p.MarkReady()
	p.MarkReady() // a second Run must not panic on a closed channel
	select {
	case <-p.Ready():
	default:
		t.Error("Ready still open after MarkReady")
	}
}

func TestPointErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	tests := []struct {
		name string
		p    *listen.Point
		want string
	}{
		{"port taken", listen.New(taken.Addr().String(), nil), "listen"},
		{"certificate missing", listen.New("127.0.0.1:0", &tlsconf.Server{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}), "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.p.Listen(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Listen = %v, want an error mentioning %q", err, tc.want)
			}
			if tc.p.Addr() != nil {
				t.Errorf("Addr after a failed Listen = %v, want nil", tc.p.Addr())
			}
		})
	}
}

// TestServeLetsRequestsInFlightFinish cancels the context while a request is being handled:
// the request must still be answered, and Serve return nil once it has been.
func TestServeLetsRequestsInFlightFinish(t *testing.T) {
	p := listen.New("127.0.0.1:0", nil)
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "stored")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, srv) }()
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not become ready")
	}

	type answer struct {
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + p.Addr().String() + "/")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{string(b), err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the handler")
	}
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	close(release)
	select {
	case a := <-answered:
		if a.err != nil || a.body != "stored" {
			t.Errorf("answer = %q, %v; want it delivered after the cancel", a.body, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the request in flight")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil after ctx ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}
