// Package listen is the listening socket of the HTTP sources (source.fhir,
// source.dicomweb, source.dicomweb_notify) and the serving of it: bound once, either by an
// explicit Listen that reports a taken port or a missing certificate at start, or by Run
// itself; its address known from then on (useful with port 0); a Ready channel closed once
// requests are served; and a shutdown that lets requests in flight finish. source.mllp
// manages its listener with its own connection state and binds through tlsconf.Listen.
package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf"
)

// Point is one source's listening socket. The zero value is not usable; use New.
type Point struct {
	addr string
	tls  *tlsconf.Server

	mu        sync.Mutex
	ln        net.Listener
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a Point for TCP addr, served with TLS when t is set. Nothing is bound yet.
func New(addr string, t *tlsconf.Server) *Point {
	return &Point{addr: addr, tls: t, ready: make(chan struct{})}
}

// Listen binds the address on the first call and returns the listener; later calls
// return the same listener.
func (p *Point) Listen() (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return p.ln, nil
	}
	ln, err := tlsconf.Listen(p.addr, p.tls)
	if err != nil {
		return nil, err
	}
	p.ln = ln
	return ln, nil
}

// Addr is the bound address, nil before Listen.
func (p *Point) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Ready is closed by MarkReady.
func (p *Point) Ready() <-chan struct{} { return p.ready }

// MarkReady closes Ready; the source calls it once it serves requests. Calling it again
// does nothing.
func (p *Point) MarkReady() { p.readyOnce.Do(func() { close(p.ready) }) }

// shutdownWait bounds how long Serve waits for requests in flight once ctx ends.
const shutdownWait = 30 * time.Second

// Serve binds the address if Listen has not, serves srv on it and marks the Point ready,
// until ctx ends or serving fails. Then requests in flight get shutdownWait to finish:
// each one is waiting for its commit, and cutting it off would leave the sender not knowing
// whether its message is stored. A server stopped by ctx returns nil.
func (p *Point) Serve(ctx context.Context, srv *http.Server) error {
	ln, err := p.Listen()
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	p.MarkReady()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
