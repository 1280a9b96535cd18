package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// DefaultAddress is where a Source listens when its config names no address: loopback and
// the port IANA registered for HL7 over MLLP (2575), so an unconfigured source is never
// reachable from the network by accident.
const DefaultAddress = "127.0.0.1:2575"

// AckMode chooses between HL7's original and enhanced acknowledgment codes.
type AckMode string

const (
	// AckAuto answers in enhanced mode (CA/CE/CR) when the message asks for it in MSH-15 or
	// MSH-16, and in original mode (AA/AE/AR) otherwise.
	AckAuto AckMode = "auto"
	// AckOriginal always answers AA, AE or AR.
	AckOriginal AckMode = "original"
	// AckEnhanced always answers with the commit codes CA, CE or CR.
	AckEnhanced AckMode = "enhanced"
)

const (
	// writeTimeout bounds how long an ACK may take to leave: a peer that stops reading must
	// not hold a connection goroutine forever.
	writeTimeout = 30 * time.Second
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 30 * time.Second
	// errInternal is HL7 table 0357 code 207, "application internal error".
	errInternal = 207
)

// SourceConfig configures a Source. The zero value is a plain-TCP source on DefaultAddress.
type SourceConfig struct {
	Address        string        // host:port to listen on; "" means DefaultAddress
	TLS            *ServerTLS    // nil: plain TCP
	MaxMessageSize int           // largest frame accepted, in bytes; 0 means DefaultMaxSize
	IdleTimeout    time.Duration // close a connection silent this long; 0: never
	MaxConnections int           // connections beyond this are closed at once; 0: unlimited
	AckMode        AckMode       // "" means AckAuto
}

// Source is an MLLP listener. Each frame it receives becomes an engine.Message handed to the
// sink; the ACK goes back only after the sink has answered, so a sender holding an AA knows
// the message is on disk:
//
//	sink verdict            original   enhanced
//	Accepted, Duplicate     AA         CA
//	Rejected                AE + ERR   CE + ERR
//	Accept returned error   AR + ERR   CR + ERR   (nothing was stored; the sender should retry)
//	frame over the limit    AR + ERR   CR + ERR   (and the connection is closed)
//
// The ERR segment carries the rejection's reason with HL7 table 0357 code 207 (application
// internal error), unless the Reason error has a method `HL7ErrorCode() int` (found with
// errors.As) that names a better one. A message that does not parse is still handed to the
// sink, which keeps it for the analyst; its ACK is built from whatever of its MSH could be
// read. Empty frames are keep-alives: they are ignored and get no ACK.
//
// Listening is an explicit step: Listen binds the address and reports errors at once, and
// Addr then tells where (useful with port 0). Run calls Listen itself when it has not been
// called, so the engine only needs Run.
type Source struct {
	cfg SourceConfig
	res engine.Resources
	log *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	running  bool
	closed   bool
	stopping bool
	conns    map[*conn]struct{}
}

// NewSource checks cfg and returns a Source. It opens nothing: no files, no sockets.
func NewSource(cfg SourceConfig, res engine.Resources) (*Source, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("mllp: source address %q: %w", cfg.Address, err)
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxSize
	}
	switch cfg.AckMode {
	case "":
		cfg.AckMode = AckAuto
	case AckAuto, AckOriginal, AckEnhanced:
	default:
		return nil, fmt.Errorf("mllp: ack_mode %q: want original, enhanced or auto", cfg.AckMode)
	}
	if cfg.IdleTimeout < 0 || cfg.MaxConnections < 0 {
		return nil, errors.New("mllp: idle_timeout and max_connections must not be negative")
	}
	if cfg.TLS != nil {
		if err := cfg.TLS.validate(); err != nil {
			return nil, fmt.Errorf("mllp: %w", err)
		}
	}
	log := res.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "source.mllp")
	return &Source{cfg: cfg, res: res, log: log, conns: map[*conn]struct{}{}}, nil
}

// Listen loads the TLS files and binds the address. Calling it again is a no-op.
func (s *Source) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.ln != nil {
		return nil
	}
	// NewSource validated the TLS settings mllp adds to tlsconf's.
	ln, err := tlsconf.Listen(s.cfg.Address, s.cfg.TLS.server())
	if err != nil {
		return fmt.Errorf("mllp: %w", err)
	}
	s.ln = ln
	s.log.Info("listening", "address", ln.Addr().String(), "tls", s.cfg.TLS != nil)
	return nil
}

// Addr is the address the source listens on, nil before Listen.
func (s *Source) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close releases a listener bound by Listen when Run was never called. Run's own shutdown
// happens on context cancellation.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ln != nil && !s.running {
		return s.ln.Close()
	}
	return nil
}

// Run serves connections until ctx is cancelled. Then it stops accepting, lets every message
// already handed to the sink finish and its ACK go out, closes the connections and returns
// nil. Messages still being received are abandoned: their senders got no ACK and will resend.
// The sink is called with a context that is not cancelled with ctx, so a commit in progress
// is never cut short.
func (s *Source) Run(ctx context.Context, sink engine.Sink) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("mllp: source is already running")
	}
	s.running = true
	ln := s.ln
	s.mu.Unlock()

	var wg sync.WaitGroup
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- s.accept(ctx, ln, sink, &wg) }()

	var err error
	select {
	case <-ctx.Done():
		ln.Close()
		<-acceptDone
	case err = <-acceptDone:
		ln.Close()
	}
	s.stopConns()
	wg.Wait()
	s.log.Info("stopped", "address", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("mllp: accept on %s: %w", ln.Addr(), err)
	}
	return nil
}

// accept runs the accept loop until the listener is closed (nil) or fails for good.
func (s *Source) accept(ctx context.Context, ln net.Listener, sink engine.Sink, wg *sync.WaitGroup) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// Out of file descriptors and the like: wait and try again rather than
			// taking the whole channel down.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "retry_in", delay)
				select {
				case <-time.After(delay):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return err
		}
		delay = 0
		c := &conn{nc: nc, idle: s.cfg.IdleTimeout}
		if ok, full := s.track(c); !ok {
			if full {
				s.log.Warn("connection refused: max_connections reached",
					"remote", nc.RemoteAddr().String(), "max_connections", s.cfg.MaxConnections)
			}
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.serve(ctx, c, sink)
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track registers c. It refuses when the source is stopping, or full (then full is true).
func (s *Source) track(c *conn) (ok, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false, false
	}
	if s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections {
		return false, true
	}
	s.conns[c] = struct{}{}
	return true, false
}

func (s *Source) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// stopConns tells every connection to finish: a connection waiting for its next frame stops
// at once, one inside the sink stops after its ACK is written.
func (s *Source) stopConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for c := range s.conns {
		c.stop()
	}
}

// conn is one accepted connection. Its reads go through Read below, which keeps the idle
// deadline fresh and refuses to start once the source is stopping.
type conn struct {
	nc   net.Conn
	idle time.Duration

	mu       sync.Mutex
	stopping bool
}

var errStopping = errors.New("mllp: source stopping")

// Read implements io.Reader for the framer. Checking stopping and setting the deadline
// under mu, against stop doing the same, guarantees a stop is never overwritten by a fresh
// idle deadline.
func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return 0, errStopping
	}
	if c.idle > 0 {
		c.nc.SetReadDeadline(time.Now().Add(c.idle))
	}
	c.mu.Unlock()
	return c.nc.Read(p)
}

func (c *conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	c.nc.SetReadDeadline(time.Now()) // wakes a blocked Read
}

func (c *conn) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// serve reads frames from one connection and answers each, one at a time.
func (s *Source) serve(ctx context.Context, c *conn, sink engine.Sink) {
	defer c.nc.Close()
	remote := c.nc.RemoteAddr().String()
	log := s.log.With("remote", remote)
	meta := map[string]string{"remote_addr": remote, "local_addr": c.nc.LocalAddr().String()}

	if tc, ok := c.nc.(*tls.Conn); ok {
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Warn("tls handshake failed", "error", err)
			return
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			subj := certs[0].Subject.CommonName
			if subj == "" {
				subj = certs[0].Subject.String()
			}
			meta["tls_subject"] = subj
		}
	}
	log.Debug("connection opened", "tls_subject", meta["tls_subject"])

	// The sink's context outlives a stop: a commit in progress is never cut short.
	acceptCtx := context.WithoutCancel(ctx)
	rd := NewReader(c, s.cfg.MaxMessageSize)
	var out []byte
	for {
		frame, err := rd.ReadFrame()
		if n := rd.Skipped(); n > 0 {
			log.Warn("skipped bytes outside MLLP frames", "bytes", n)
		}
		if err != nil {
			s.readFailed(c, log, frame, err)
			return
		}
		if len(bytes.TrimSpace(frame)) == 0 {
			log.Debug("empty frame ignored")
			continue
		}
		ack := s.handle(acceptCtx, log, frame, meta, sink)
		if out, err = AppendFrame(out[:0], ack); err != nil {
			log.Error("ack cannot be framed", "error", err)
			return
		}
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.nc.Write(out); err != nil {
			log.Warn("ack not sent", "error", err)
			return
		}
	}
}

// readFailed reports why a connection's read loop ended and answers an oversized frame.
func (s *Source) readFailed(c *conn, log *slog.Logger, frame []byte, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		text := "message exceeds " + strconv.Itoa(s.cfg.MaxMessageSize) + " bytes"
		log.Warn("frame too large; closing connection", "limit", s.cfg.MaxMessageSize)
		enhanced := s.cfg.AckMode == AckEnhanced
		if s.cfg.AckMode == AckAuto {
			if m, perr := hl7v2.Parse(frame); perr == nil {
				enhanced = hl7v2.EnhancedMode(m)
			}
		}
		ack := hl7v2.AckBytes(frame, code(hl7v2.ApplicationReject, enhanced), hl7v2.AckOptions{
			Now:    time.Now(),
			Text:   text,
			Errors: []hl7v2.AckError{{Code: errInternal, Severity: "E", Text: text}},
		})
		if out, ferr := AppendFrame(nil, ack); ferr == nil {
			c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			c.nc.Write(out)
		}
	case errors.Is(err, io.EOF):
		log.Debug("connection closed by peer")
	case errors.Is(err, errStopping) || c.isStopping():
		log.Debug("connection closed: source stopping")
	case errors.As(err, &ne) && ne.Timeout():
		log.Debug("connection closed: idle", "idle_timeout", s.cfg.IdleTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		log.Warn("connection closed inside a frame")
	default:
		log.Warn("connection read failed", "error", err)
	}
}

// handle hands one message to the sink and returns the ACK to send. ctx is not cancelled
// when the source stops.
func (s *Source) handle(ctx context.Context, log *slog.Logger, frame []byte, meta map[string]string, sink engine.Sink) []byte {
	now := time.Now()
	msg, perr := hl7v2.Parse(frame)
	m := &engine.Message{
		Channel:     s.res.Channel,
		ContentType: engine.ContentHL7v2,
		Body:        frame,
		ReceivedAt:  now.UTC(),
		Meta:        make(map[string]string, len(meta)),
	}
	for k, v := range meta {
		m.Meta[k] = v
	}
	controlID := ""
	if perr == nil {
		controlID = msg.ControlID()
	}
	rcpt, err := sink.Accept(ctx, m)

	enhanced := s.cfg.AckMode == AckEnhanced || s.cfg.AckMode == AckAuto && perr == nil && hl7v2.EnhancedMode(msg)
	opts := hl7v2.AckOptions{Now: time.Now()}
	var ack hl7v2.AckCode
	switch {
	case err != nil:
		ack = code(hl7v2.ApplicationReject, enhanced)
		opts.Text = "message not stored; try again later"
		opts.Errors = []hl7v2.AckError{{Code: errInternal, Severity: "E", Text: opts.Text}}
		log.Warn("message not accepted", "control_id", controlID, "error", err)
	case rcpt.Verdict == engine.Rejected:
		ack = code(hl7v2.ApplicationError, enhanced)
		opts.Text = "message rejected"
		errCode := errInternal
		if rcpt.Reason != nil {
			opts.Text = rcpt.Reason.Error()
			var c interface{ HL7ErrorCode() int }
			if errors.As(rcpt.Reason, &c) {
				errCode = c.HL7ErrorCode()
			}
		}
		opts.Errors = []hl7v2.AckError{{Code: errCode, Severity: "E", Text: opts.Text}}
		log.Info("message rejected", "control_id", controlID, "id", rcpt.ID, "reason", opts.Text)
	default:
		ack = code(hl7v2.ApplicationAccept, enhanced)
		log.Debug("message accepted", "control_id", controlID, "id", rcpt.ID, "verdict", rcpt.Verdict.String(), "bytes", len(frame))
	}
	if perr != nil {
		return hl7v2.AckBytes(frame, ack, opts)
	}
	return hl7v2.AckFor(msg, ack, opts)
}

// code maps an original-mode code to its enhanced-mode counterpart when enhanced is set.
func code(original hl7v2.AckCode, enhanced bool) hl7v2.AckCode {
	if !enhanced {
		return original
	}
	switch original {
	case hl7v2.ApplicationAccept:
		return hl7v2.CommitAccept
	case hl7v2.ApplicationError:
		return hl7v2.CommitError
	}
	return hl7v2.CommitReject
}

// Interface guards.
var (
	_ engine.Source = (*Source)(nil)
	_ engine.Closer = (*Source)(nil)
)
