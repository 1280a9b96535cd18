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

// probeWait is how long Alive reads when bytes arrived unasked, to tell TLS housekeeping
// (a TLS 1.3 server sends session tickets after the handshake) from a close or a frame.
const probeWait = 5 * time.Millisecond

// aLongTimeAgo is a deadline in the past, set to interrupt a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// Client is one MLLP connection to a peer, sending one message at a time. Send may be called
// from several goroutines; they take turns.
//
// After a timeout or an I/O error the client closes its connection and every later Send
// returns ErrClosed. That is deliberate: the peer may still be working on the message and
// answer late, and a late ACK on a connection that carries the next message could be taken
// for that message's. A fresh connection carries no old ACK, and a resend after a timeout
// never queues behind the original on a slow receiver's socket.
//
// A connection the peer closed while idle is not noticed until something reads it; call
// Alive before sending on a connection that has been idle, and dial again when it reports
// false, so a message is not lost into a dead connection.
type Client struct {
	conn net.Conn // what Send reads and writes: TLS or TCP
	raw  net.Conn // the TCP connection, for the liveness probe
	rd   *Reader
	addr string
	ack  time.Duration
	log  *slog.Logger

	mu     sync.Mutex // one message in flight
	closed bool
	wbuf   []byte
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
	raw := nc
	if tc, ok := nc.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	return &Client{
		conn: nc,
		raw:  raw,
		rd:   NewReader(nc, maxAckSize),
		addr: cfg.Address,
		ack:  cfg.AckTimeout,
		log:  log.With("peer", cfg.Address),
	}, nil
}

// Addr is the peer's address as given to Dial.
func (c *Client) Addr() string { return c.addr }

// Send writes msg in an MLLP frame and waits for the ACK whose MSA-2 equals msg's MSH-10.
// ACKs for other control ids (late ACKs for earlier messages) are logged and discarded; they
// are never taken for this message's. It returns the parsed ACK and its raw bytes whatever
// the code: the caller decides what AE or AR mean. An error means the message may or may not
// have arrived and the client is closed, except for ErrInvalidMessage: nothing was sent.
func (c *Client) Send(ctx context.Context, msg []byte) (hl7v2.Ack, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return hl7v2.Ack{}, nil, ErrClosed
	}
	id, err := controlID(msg)
	if err != nil {
		return hl7v2.Ack{}, nil, err
	}
	if c.wbuf, err = AppendFrame(c.wbuf[:0], msg); err != nil {
		return hl7v2.Ack{}, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if err := ctx.Err(); err != nil {
		return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: %w", c.addr, err)
	}

	// One deadline covers the write and the wait for the ACK; cancelling ctx moves it to
	// the past, which wakes the blocked call.
	deadline := time.Now().Add(c.ack)
	byCtx := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, byCtx = d, true
	}
	c.conn.SetDeadline(deadline)
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
		defer stop()
	}
	fail := func(what string, err error) (hl7v2.Ack, []byte, error) {
		c.closeLocked()
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.As(err, &ne) && ne.Timeout():
			if byCtx {
				err = context.DeadlineExceeded
			} else {
				return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: no ACK to %s within %s: %w", c.addr, id, c.ack, ErrAckTimeout)
			}
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
		return hl7v2.Ack{}, nil, fmt.Errorf("mllp: %s: %s %s: %w", c.addr, what, id, err)
	}

	if _, err := c.conn.Write(c.wbuf); err != nil {
		return fail("write", err)
	}
	for {
		f, err := c.rd.ReadFrame()
		if err != nil {
			return fail("waiting for ACK to", err)
		}
		ack, err := readAck(f)
		if err != nil {
			c.closeLocked()
			return hl7v2.Ack{}, f, fmt.Errorf("mllp: %s: reply to %s: %w", c.addr, id, err)
		}
		if ack.ControlID != id {
			c.log.Warn("discarding ACK for another message (late or misdirected)",
				"msa_2", ack.ControlID, "waiting_for", id, "code", string(ack.Code))
			continue
		}
		c.conn.SetDeadline(time.Time{})
		return ack, f, nil
	}
}

// Alive reports whether the connection is still usable: not closed, not closed by the peer,
// and with nothing waiting that the peer sent unasked. It costs one non-blocking system call
// when all is quiet. A connection found dead is closed.
func (c *Client) Alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	if c.rd.buffered() == 0 {
		switch peek(c.raw) {
		case peekQuiet, peekUnknown:
			return true
		case peekClosed:
			c.closeLocked()
			return false
		}
	}
	// Bytes arrived that no Send asked for. Read them briefly: TLS records such as session
	// tickets are consumed by the TLS layer and leave the connection quiet; frames are
	// logged and dropped; a close or an error ends the connection.
	c.conn.SetReadDeadline(time.Now().Add(probeWait))
	for {
		f, err := c.rd.ReadFrame()
		if err == nil {
			c.log.Warn("discarding unsolicited frame from peer", "bytes", len(f))
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.conn.SetReadDeadline(time.Time{})
			return true
		}
		c.closeLocked()
		return false
	}
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
	return c.conn.Close()
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
