// Package listentest runs a source in a test the way the engine does: Run in its own
// goroutine, the test going on only once the source is ready, and the source stopped and
// its Run error checked when the test ends.
package listentest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine"
)

// Wait bounds each wait: for the source to be ready, and for Run to return once stopped.
const Wait = 20 * time.Second

// Source is what Run needs of a source.
type Source interface {
	Run(ctx context.Context, sink engine.Sink) error
	Ready() <-chan struct{}
}

// Run starts src with sink and returns once it is ready, failing the test if Run returns
// first or readiness takes longer than Wait. stop cancels Run and reports an error it
// returns; it runs at the end of the test too, and only the first call does anything.
func Run(t testing.TB, src Source, sink engine.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	select {
	case <-src.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(Wait):
		cancel()
		t.Fatal("source not ready")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(Wait):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
