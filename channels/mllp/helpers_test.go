package mllp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// waitFor bounds every wait in these tests: long enough never to fire on a loaded machine,
// short enough that a hang fails the test instead of the whole run.
const waitFor = 10 * time.Second

// hl7Msg returns a small ORM^O01 with the given control id. extra is appended to MSH after
// MSH-12 (e.g. "|||AL|NE" to ask for enhanced acknowledgments).
func hl7Msg(id, extra string) []byte {
	return []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260101120000||ORM^O01|" + id + "|P|2.5.1" + extra + "\r" +
		"PID|1||12345^^^HOSP^MR||DOE^JANE||19700101|F\r" +
		"ORC|NW|ACC" + id + "\r" +
		"OBR|1|ACC" + id + "||CTHEAD^CT HEAD WO CONTRAST\r")
}

// ackMsg is an ACK written by hand, independent of the codec under test.
func ackMsg(code, id, text string) []byte {
	return []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260101120001||ACK^O01|ACK" + id + "|P|2.5.1\r" +
		"MSA|" + code + "|" + id + "|" + text + "\r")
}

// runSource starts a source on a free loopback port and stops it when the test ends.
// The returned stop cancels Run and returns its error.
func runSource(t *testing.T, cfg mllp.SourceConfig, sink engine.Sink) (addr string, stop func() error) {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	src, err := mllp.NewSource(cfg, engine.Resources{Channel: "test"})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	if err := src.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitFor):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("source Run: %v", err)
		}
	})
	return src.Addr().String(), stop
}

// acceptAll is a sink that accepts everything and remembers what it got.
type acceptAll struct {
	mu   sync.Mutex
	msgs []*engine.Message
}

func (s *acceptAll) Accept(_ context.Context, m *engine.Message) (engine.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	return engine.Receipt{ID: fmt.Sprint(len(s.msgs)), Verdict: engine.Accepted}, nil
}

func (s *acceptAll) got() []*engine.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*engine.Message(nil), s.msgs...)
}

// rawConn is a hand-driven MLLP peer connection.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	rd *mllp.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, rd: mllp.NewReader(nc, 0)}
}

func (c *rawConn) send(msg []byte) {
	c.t.Helper()
	if err := mllp.WriteFrame(c.nc, msg); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

func (c *rawConn) writeRaw(b string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(b)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame, failing the test if none comes within waitFor.
func (c *rawConn) read() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	f, err := c.rd.ReadFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClosed fails unless the peer closes the connection (without sending a frame).
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	f, err := c.rd.ReadFrame()
	if err == nil {
		c.t.Fatalf("got frame %q, want the connection closed", f)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %s", waitFor)
	}
}

// ack parses an ACK frame with the codec.
func parseAck(t *testing.T, f []byte) hl7v2.Ack {
	t.Helper()
	m, err := hl7v2.Parse(f)
	if err != nil {
		t.Fatalf("parse ACK %q: %v", f, err)
	}
	a, err := hl7v2.ReadAck(m)
	if err != nil {
		t.Fatalf("read ACK %q: %v", f, err)
	}
	return a
}

// segment returns the first segment of msg with the given name, "" if none.
func segment(msg []byte, name string) string {
	for _, s := range bytes.Split(msg, []byte("\r")) {
		if strings.HasPrefix(string(s), name+"|") {
			return string(s)
		}
	}
	return ""
}
