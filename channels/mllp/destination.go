package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// Defaults for DestinationConfig fields left zero.
const (
	DefaultReconnectBackoff = time.Second
	DefaultMaxBackoff       = 30 * time.Second
)

// DestinationConfig configures a Destination.
type DestinationConfig struct {
	Address          string        // host:port of the receiver; required
	TLS              *ClientTLS    // nil: plain TCP
	AckTimeout       time.Duration // 0 means DefaultAckTimeout
	ConnectTimeout   time.Duration // 0 means DefaultConnectTimeout
	Connections      int           // connections kept open for concurrent sends; 0 means 1
	KeepAlive        time.Duration // TCP keep-alive period; 0 turns keep-alive off
	ReconnectBackoff time.Duration // wait after a failed connect, doubled each time; 0 means DefaultReconnectBackoff
	MaxBackoff       time.Duration // cap on that wait; 0 means DefaultMaxBackoff
}

// Destination delivers messages to an MLLP receiver and waits for each one's ACK. It keeps
// its connections open between messages and reconnects lazily, on the Send after a failure,
// waiting a doubling backoff between failed connects (never longer than the Send's context
// allows).
//
// An ACK with code AA or CA confirms delivery. AE, AR, CE and CR return the reply with an
// error wrapping engine.ErrRejected. A timeout or a broken connection returns a plain error
// and closes that connection; see Client for why that protects a slow receiver from
// duplicates.
//
// Send is safe for concurrent use: each call takes one of Connections connections, so an
// ordered channel (which sends one at a time) uses one, and an unordered channel may have
// up to Connections messages in flight.
type Destination struct {
	cfg DestinationConfig
	log *slog.Logger

	slots chan *slot

	tlsOnce sync.Once
	tlsConf *tls.Config
	tlsErr  error
}

// slot is one connection of the pool and its reconnect state; whoever holds it owns it.
type slot struct {
	client  *Client
	backoff time.Duration // the last wait; 0 after a success
	next    time.Time     // no connect attempt before this
	lastErr error         // why the last connect failed
}

// NewDestination checks cfg and returns a Destination. It connects to nothing.
func NewDestination(cfg DestinationConfig, res engine.Resources) (*Destination, error) {
	if cfg.Address == "" {
		return nil, errors.New("mllp: destination needs an address")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("mllp: destination address %q: %w", cfg.Address, err)
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 1
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ReconnectBackoff <= 0 {
		cfg.ReconnectBackoff = DefaultReconnectBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.ReconnectBackoff)
	if cfg.TLS != nil {
		if _, err := tlsVersion(cfg.TLS.MinVersion); err != nil {
			return nil, fmt.Errorf("mllp: %w", err)
		}
	}
	log := res.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Destination{
		cfg:   cfg,
		log:   log.With("component", "destination.mllp", "peer", cfg.Address),
		slots: make(chan *slot, cfg.Connections),
	}
	for range cfg.Connections {
		d.slots <- &slot{}
	}
	return d, nil
}

// Provision loads the TLS files, so a missing certificate is reported at start rather than
// at the first message.
func (d *Destination) Provision(context.Context) error {
	_, err := d.tls()
	return err
}

func (d *Destination) tls() (*tls.Config, error) {
	d.tlsOnce.Do(func() {
		if d.cfg.TLS != nil {
			if d.tlsConf, d.tlsErr = d.cfg.TLS.Config(); d.tlsErr != nil {
				d.tlsErr = fmt.Errorf("mllp: destination tls: %w", d.tlsErr)
			}
		}
	})
	return d.tlsConf, d.tlsErr
}

// Parallelism is the number of connections: the engine keeps at most this many messages
// sent and not yet recorded, so a crash repeats at most one message per connection.
func (d *Destination) Parallelism() int { return d.cfg.Connections }

// Send delivers m.Body and returns the peer's ACK.
func (d *Destination) Send(ctx context.Context, m *engine.Message) (engine.Reply, error) {
	var s *slot
	select {
	case s = <-d.slots:
	case <-ctx.Done():
		return engine.Reply{}, fmt.Errorf("mllp: %s: waiting for a free connection: %w", d.cfg.Address, ctx.Err())
	}
	defer func() { d.slots <- s }()

	if s.client != nil && !s.client.Alive() {
		// The peer closed the connection while it was idle (many receivers drop idle
		// connections after a few minutes): reconnect now rather than fail this message.
		s.client.Close()
		s.client = nil
	}
	if s.client == nil {
		if err := d.connect(ctx, s); err != nil {
			return engine.Reply{}, err
		}
	}
	ack, raw, err := s.client.Send(ctx, m.Body)
	if err != nil {
		if s.client.isClosed() {
			s.client = nil
		}
		if errors.Is(err, ErrInvalidMessage) {
			// Nothing was sent and no retry can change that: dead-letter it at once.
			return engine.Reply{}, fmt.Errorf("%w: %w", err, engine.ErrUndeliverable)
		}
		return engine.Reply{}, err
	}
	reply := engine.Reply{ContentType: engine.ContentHL7v2, Body: raw, Summary: summary(ack)}
	switch ack.Code {
	case hl7v2.ApplicationAccept, hl7v2.CommitAccept:
		return reply, nil
	}
	return reply, fmt.Errorf("mllp: %s answered %s: %w", d.cfg.Address, reply.Summary, engine.ErrRejected)
}

// summary is the one-line form of an ACK: "AA", or "AE: unknown patient".
func summary(ack hl7v2.Ack) string {
	text := ack.Text
	if text == "" {
		for _, e := range ack.Errors {
			if e.Text != "" {
				text = e.Text
				break
			}
		}
	}
	if text == "" {
		return string(ack.Code)
	}
	return string(ack.Code) + ": " + text
}

// connect opens s's connection, first waiting out its backoff.
func (d *Destination) connect(ctx context.Context, s *slot) error {
	if wait := time.Until(s.next); wait > 0 {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("mllp: %s: not reconnecting for another %s (after this send's deadline); last attempt: %w",
				d.cfg.Address, wait.Round(time.Millisecond), s.lastErr)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mllp: %s: waiting to reconnect: %w", d.cfg.Address, ctx.Err())
		}
	}
	tlsConf, err := d.tls()
	if err != nil {
		return err
	}
	keepAlive := d.cfg.KeepAlive
	if keepAlive == 0 {
		keepAlive = -1
	}
	c, err := Dial(ctx, ClientConfig{
		Address:        d.cfg.Address,
		TLS:            tlsConf,
		ConnectTimeout: d.cfg.ConnectTimeout,
		AckTimeout:     d.cfg.AckTimeout,
		KeepAlive:      keepAlive,
		Logger:         d.log,
	})
	if err != nil {
		if ctx.Err() == nil { // a send given up by its caller says nothing about the peer
			s.backoff = min(max(2*s.backoff, d.cfg.ReconnectBackoff), d.cfg.MaxBackoff)
			s.next = time.Now().Add(s.backoff)
			s.lastErr = err
			d.log.Warn("connect failed", "error", err, "retry_in", s.backoff)
		}
		return err
	}
	if s.backoff > 0 {
		d.log.Info("reconnected")
	}
	s.backoff, s.next, s.lastErr = 0, time.Time{}, nil
	s.client = c
	return nil
}

// Close closes every connection, waiting for sends in progress (or ctx).
func (d *Destination) Close(ctx context.Context) error {
	for range d.cfg.Connections {
		select {
		case s := <-d.slots:
			if s.client != nil {
				s.client.Close()
				s.client = nil
			}
			defer func() { d.slots <- s }()
		case <-ctx.Done():
			return fmt.Errorf("mllp: close %s: %w", d.cfg.Address, ctx.Err())
		}
	}
	return nil
}

// Interface guards.
var (
	_ engine.Destination = (*Destination)(nil)
	_ engine.Provisioner = (*Destination)(nil)
	_ engine.Closer      = (*Destination)(nil)
)

var (
	_ engine.Destination = (*Destination)(nil)
	_ engine.Parallel    = (*Destination)(nil)
)
