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
	"sync"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// Defaults for ClientConfig fields left zero.
const (
	DefaultAckTimeout     = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	// maxAckSize bounds a reply frame; an ACK is a few hundred bytes even with ERR segments.
	maxAckSize = 1 << 20
)

var (
	// ErrAckTimeout is returned by Client.Send when no ACK for the message arrived in time.
	ErrAckTimeout = errors.New("mllp: ack timeout")
	// ErrClosed is returned by Client.Send on a closed client. A client closes itself after
	// any failure of its connection; dial a new one.
	ErrClosed = errors.New("mllp: client closed")
	// ErrInvalidMessage is returned by Client.Send for a message it cannot send: no MSH
	// segment, no MSH-10 control id to match the ACK with, or MLLP block characters inside.
	// The connection stays usable.
	ErrInvalidMessage = errors.New("mllp: invalid message")
)

// ClientConfig configures Dial.
type ClientConfig struct {
	Address        string        // host:port of the peer
	TLS            *tls.Config   // nil: plain TCP; ServerName defaults to the address's host
	ConnectTimeout time.Duration // 0 means DefaultConnectTimeout
	AckTimeout     time.Duration // how long Send waits for the ACK; 0 means DefaultAckTimeout
	KeepAlive      time.Duration // TCP keep-alive period as in net.Dialer: 0 default, < 0 off
	Logger         *slog.Logger  // late and unsolicited frames are reported here; nil: silent
}

// Client is one MLLP connection to a peer, sending one message at a time. Send may be called
// from several goroutines; they take turns.
//
// A background goroutine reads every frame the peer sends, so a connection the peer closed
// while idle is noticed before the next Send rather than by losing a message into it.
//
// After a timeout or an I/O error the client closes its connection and every later Send
// returns ErrClosed. That is deliberate: the peer may still be working on the message and
// answer late, and a late ACK on a connection that carries the next message could be taken
// for that message's. A fresh connection carries no old ACK, and a resend after a timeout
// never queues behind the original on a slow receiver's socket.
type Client struct {
	conn net.Conn
	addr string
	ack  time.Duration
	log  *slog.Logger

	mu     sync.Mutex // one message in flight
	closed bool
	wbuf   []byte

	frames  chan []byte   // frames from the peer, in order
	quit    chan struct{} // closed by Close, so the read loop never blocks on frames forever
	done    chan struct{} // closed when the read loop ends
	readErr error         // why it ended; written before done is closed
}

// Dial connects to the peer (and completes the TLS handshake) within ConnectTimeout or ctx,
// whichever ends first.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: cfg.KeepAlive}
	var nc net.Conn
	var err error
	if cfg.TLS != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: cfg.TLS}).DialContext(ctx, "tcp", cfg.Address)
	} else {
		nc, err = d.DialContext(ctx, "tcp", cfg.Address)
	}
	if err != nil {
		return nil, fmt.Errorf("mllp: dial %s: %w", cfg.Address, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // the default, stated: each frame is one write and must go at once
	}
	c := &Client{
		conn:   nc,
		addr:   cfg.Address,
		ack:    cfg.AckTimeout,
		log:    log.With("peer", cfg.Address),
		frames: make(chan []byte, 4),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

func (c *Client) readLoop() {
	defer close(c.done)
	rd := NewReader(c.conn, maxAckSize)
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			c.readErr = err
			return
		}
		select {
		case c.frames <- f:
		case <-c.quit:
			return
		}
	}
}

// Addr is the peer's address as given to Dial.
func (c *Client) Addr() string { return c.addr }

// Send writes msg in an MLLP frame and waits for the ACK whose MSA-2 equals msg's MSH-10.
// ACKs for other control ids (late ACKs for earlier messages) are logged and discarded; they
// are never taken for this message's. It returns the parsed ACK and its raw bytes whatever
// the code: the caller decides what AE or AR mean. An error means the message may or may not
// have arrived and the client is closed, except for ErrInvalidMessage, sent nothing.
func (c *Client) Send(ctx context.Context, msg []byte) (hl7v2.Ack, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return hl7v2.Ack{}, nil, ErrClosed
	}
	select {
	case <-c.done:
		c.closeLocked()
		return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: connection lost: %w", c.addr, c.lostErr())
	default:
	}
	c.drain()

	id, err := controlID(msg)
	if err != nil {
		return hl7v2.Ack{}, nil, err
	}
	if c.wbuf, err = AppendFrame(c.wbuf[:0], msg); err != nil {
		return hl7v2.Ack{}, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	deadline := time.Now().Add(c.ack)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetWriteDeadline(deadline)
	if _, err := c.conn.Write(c.wbuf); err != nil {
		c.closeLocked()
		return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: write: %w", c.addr, err)
	}

	timer := time.NewTimer(c.ack)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if ack, ok, err := c.match(f, id); ok || err != nil {
				return ack, f, err
			}
		case <-c.done:
			// The peer may have answered and then closed: frames read before the close
			// are still queued, and select picks among ready cases at random.
			// The read loop has ended, so nothing is added to frames any more.
			for len(c.frames) > 0 {
				f := <-c.frames
				if ack, ok, err := c.match(f, id); ok || err != nil {
					return ack, f, err
				}
			}
			c.closeLocked()
			return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: connection lost waiting for ACK to %s: %w", c.addr, id, c.lostErr())
		case <-timer.C:
			c.closeLocked()
			return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: no ACK to %s within %s: %w", c.addr, id, c.ack, ErrAckTimeout)
		case <-ctx.Done():
			c.closeLocked()
			return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: waiting for ACK to %s: %w", c.addr, id, ctx.Err())
		}
	}
}

// match reports whether frame f is the ACK to control id. A frame that is no ACK at all is
// an error and closes the connection; an ACK to another message is logged and skipped.
func (c *Client) match(f []byte, id string) (hl7v2.Ack, bool, error) {
	ack, err := readAck(f)
	if err != nil {
		c.closeLocked()
		return hl7v2.Ack{}, false, fmt.Errorf("mllp: %s: reply to %s: %w", c.addr, id, err)
	}
	if ack.ControlID != id {
		c.log.Warn("discarding ACK for another message (late or misdirected)",
			"msa_2", ack.ControlID, "waiting_for", id, "code", string(ack.Code))
		return hl7v2.Ack{}, false, nil
	}
	return ack, true, nil
}

// drain discards frames that arrived while no message was in flight: ACKs to messages
// whose Send already gave up cannot arrive here (the connection was closed), so these are
// frames the peer sent on its own.
func (c *Client) drain() {
	for {
		select {
		case f := <-c.frames:
			c.log.Warn("discarding unsolicited frame from peer", "bytes", len(f))
		default:
			return
		}
	}
}

// lostErr is why the read loop ended; only valid after done is closed.
func (c *Client) lostErr() error {
	if c.readErr == nil || errors.Is(c.readErr, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return c.readErr
}

// Close closes the connection. It waits for a Send in progress.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	c.closed = true
	close(c.quit)
	return c.conn.Close()
}

// alive reports whether the client is open and its peer has not closed the connection.
func (c *Client) alive() bool {
	if c.isClosed() {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// isClosed reports whether the client closed itself after a failure.
func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// readAck parses a reply frame as an ACK.
func readAck(f []byte) (hl7v2.Ack, error) {
	m, err := hl7v2.Parse(f)
	if err != nil {
		return hl7v2.Ack{}, fmt.Errorf("unreadable ACK: %w", err)
	}
	ack, err := hl7v2.ReadAck(m)
	if err != nil {
		return hl7v2.Ack{}, fmt.Errorf("not an ACK: %w", err)
	}
	return ack, nil
}

// controlID returns MSH-10 of msg. It reads the MSH segment directly instead of parsing the
// whole message, which matters on the hot path; an id with an escape sequence is left to the
// full parser, so it compares equal to the peer's MSA-2 as ReadAck decodes it.
func controlID(msg []byte) (string, error) {
	if len(msg) < 8 || !bytes.HasPrefix(msg, []byte("MSH")) {
		return "", fmt.Errorf("%w: does not start with an MSH segment", ErrInvalidMessage)
	}
	seg := msg
	if i := bytes.IndexAny(seg, "\r\n"); i >= 0 {
		seg = seg[:i]
	}
	sep := seg[3]
	// seg[3] is MSH-1 itself, so after it the k-th separator ends MSH-(k+1).
	rest := seg[4:]
	escape := byte(0)
	for field := 2; ; field++ {
		end := bytes.IndexByte(rest, sep)
		if end < 0 {
			end = len(rest)
		}
		switch field {
		case 2:
			if end >= 3 {
				escape = rest[2]
			}
		case 10:
			id := rest[:end]
			if len(id) == 0 {
				return "", fmt.Errorf("%w: no MSH-10 control id to match the ACK with", ErrInvalidMessage)
			}
			if escape != 0 && bytes.IndexByte(id, escape) >= 0 {
				if m, err := hl7v2.Parse(msg); err == nil {
					return m.ControlID(), nil
				}
			}
			return string(id), nil
		}
		if end == len(rest) {
			return "", fmt.Errorf("%w: no MSH-10 control id to match the ACK with", ErrInvalidMessage)
		}
		rest = rest[end+1:]
	}
}
