package mllp_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf/tlsconftest"
	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
)

// peerReply is what the fake peer does with one message: write these frames (in order),
// then hang up if hangup is set.
type peerReply struct {
	frames [][]byte
	hangup bool
}

// received is one message as the fake peer saw it.
type received struct {
	conn int // 1-based connection number, in accept order
	id   string
}

// fakePeer is a scripted MLLP receiver for faults a real one cannot be made to show.
type fakePeer struct {
	t      *testing.T
	addr   string
	script func(conn int, id string) peerReply

	mu     sync.Mutex
	ln     net.Listener
	open   map[int]net.Conn
	nconns int
	got    []received
	eof    map[int]bool // connections the client closed
	wg     sync.WaitGroup
}

func newPeer(t *testing.T, script func(conn int, id string) peerReply) *fakePeer {
	t.Helper()
	p := &fakePeer{t: t, addr: "127.0.0.1:0", script: script, open: map[int]net.Conn{}, eof: map[int]bool{}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

// ackWith answers every message with code and text.
func ackWith(code, text string) func(int, string) peerReply {
	return func(_ int, id string) peerReply { return peerReply{frames: [][]byte{ackMsg(code, id, text)}} }
}

func (p *fakePeer) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("fake peer listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.nconns++
			n := p.nconns
			p.open[n] = nc
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(n, nc)
			}()
		}
	}()
}

func (p *fakePeer) serve(n int, nc net.Conn) {
	defer nc.Close()
	rd := mllp.NewReader(nc, 0)
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			p.mu.Lock()
			p.eof[n] = true
			p.mu.Unlock()
			return
		}
		id := mshField(f, 10)
		p.mu.Lock()
		p.got = append(p.got, received{n, id})
		p.mu.Unlock()
		r := p.script(n, id)
		for _, out := range r.frames {
			if err := mllp.WriteFrame(nc, out); err != nil {
				return
			}
		}
		if r.hangup {
			return
		}
	}
}

// stop closes the listener and every connection, as a receiver that goes down would.
func (p *fakePeer) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *fakePeer) received() []received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]received(nil), p.got...)
}

func (p *fakePeer) conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nconns
}

// waitClosedByClient waits until the client has closed connection n.
func (p *fakePeer) waitClosedByClient(n int) {
	p.t.Helper()
	poll(p.t, fmt.Sprintf("client to close connection %d", n), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.eof[n]
	})
}

// poll waits until cond holds, failing the test after waitFor.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mshField returns MSH-n of msg (n >= 3), read by hand.
func mshField(msg []byte, n int) string {
	fields := strings.Split(segment(msg, "MSH"), "|")
	if len(fields) < n {
		return ""
	}
	return fields[n-1]
}

func newDest(t *testing.T, cfg mllp.DestinationConfig) *mllp.Destination {
	t.Helper()
	d, err := mllp.NewDestination(cfg, engine.Resources{Channel: "test"})
	if err != nil {
		t.Fatalf("NewDestination: %v", err)
	}
	if err := d.Provision(context.Background()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

func send(t *testing.T, d *mllp.Destination, id string) (engine.Reply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return d.Send(ctx, &engine.Message{ID: "m-" + id, Body: hl7Msg(id, ""), ContentType: engine.ContentHL7v2})
}

func TestDestinationAckCodes(t *testing.T) {
	tests := []struct {
		code, text   string
		wantSummary  string
		wantRejected bool
	}{
		{"AA", "", "AA", false},
		{"CA", "", "CA", false},
		{"AA", "ok", "AA: ok", false},
		{"AE", "unknown patient", "AE: unknown patient", true},
		{"AR", "system down", "AR: system down", true},
		{"CE", "", "CE", true},
		{"CR", "bad version", "CR: bad version", true},
	}
	for _, tt := range tests {
		t.Run(tt.code+" "+tt.text, func(t *testing.T) {
			p := newPeer(t, ackWith(tt.code, tt.text))
			d := newDest(t, mllp.DestinationConfig{Address: p.addr})
			reply, err := send(t, d, "D1")
			if got := errors.Is(err, engine.ErrRejected); got != tt.wantRejected || (!tt.wantRejected && err != nil) {
				t.Fatalf("Send error = %v, want rejected=%v", err, tt.wantRejected)
			}
			if reply.Summary != tt.wantSummary {
				t.Errorf("Summary = %q, want %q", reply.Summary, tt.wantSummary)
			}
			if reply.ContentType != engine.ContentHL7v2 || !strings.Contains(string(reply.Body), "MSA|"+tt.code+"|D1") {
				t.Errorf("reply = %s %q, want the ACK", reply.ContentType, reply.Body)
			}
		})
	}
}

func TestDestinationIgnoresLateAck(t *testing.T) {
	p := newPeer(t, func(_ int, id string) peerReply {
		// First the answer to a message the client gave up on, then the right one.
		return peerReply{frames: [][]byte{ackMsg("AE", "EARLIER", "late"), ackMsg("AA", id, "")}}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr})
	reply, err := send(t, d, "NOW1")
	if err != nil || reply.Summary != "AA" || !strings.Contains(string(reply.Body), "MSA|AA|NOW1") {
		t.Fatalf("Send = %+v, %v; want the AA for NOW1", reply, err)
	}
}

func TestDestinationWrongAckTimesOut(t *testing.T) {
	p := newPeer(t, func(int, string) peerReply {
		return peerReply{frames: [][]byte{ackMsg("AA", "SOMEONE-ELSE", "")}}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr, AckTimeout: 100 * time.Millisecond})
	_, err := send(t, d, "W1")
	if !errors.Is(err, mllp.ErrAckTimeout) || errors.Is(err, engine.ErrRejected) {
		t.Fatalf("Send = %v, want ErrAckTimeout (an AA for another control id is not this message's)", err)
	}
	p.waitClosedByClient(1)
}

func TestDestinationResendAfterTimeoutUsesNewConnection(t *testing.T) {
	p := newPeer(t, func(conn int, id string) peerReply {
		if conn == 1 {
			return peerReply{} // a receiver too slow to answer in time
		}
		return peerReply{frames: [][]byte{ackMsg("AA", id, "")}}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr, AckTimeout: 100 * time.Millisecond})
	if _, err := send(t, d, "R1"); !errors.Is(err, mllp.ErrAckTimeout) {
		t.Fatalf("first Send = %v, want ErrAckTimeout", err)
	}
	if reply, err := send(t, d, "R1"); err != nil || reply.Summary != "AA" {
		t.Fatalf("resend = %+v, %v; want AA", reply, err)
	}
	p.waitClosedByClient(1)
	want := []received{{1, "R1"}, {2, "R1"}}
	if got := p.received(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("peer received %v, want %v: the resend must not queue behind the original", got, want)
	}
}

func TestDestinationConnectionDrop(t *testing.T) {
	p := newPeer(t, func(conn int, id string) peerReply {
		if conn == 1 {
			return peerReply{hangup: true}
		}
		return peerReply{frames: [][]byte{ackMsg("AA", id, "")}}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr})
	_, err := send(t, d, "X1")
	if err == nil || errors.Is(err, engine.ErrRejected) || errors.Is(err, mllp.ErrAckTimeout) {
		t.Fatalf("Send over a dropped connection = %v, want a connection error", err)
	}
	if reply, err := send(t, d, "X1"); err != nil || reply.Summary != "AA" {
		t.Fatalf("Send after reconnect = %+v, %v; want AA", reply, err)
	}
}

func TestDestinationReconnectsAfterIdleClose(t *testing.T) {
	p := newPeer(t, func(_ int, id string) peerReply {
		// Answer, then drop the connection, as receivers with an idle timeout do.
		return peerReply{frames: [][]byte{ackMsg("AA", id, "")}, hangup: true}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr})
	if _, err := send(t, d, "I1"); err != nil {
		t.Fatal(err)
	}
	poll(t, "destination to notice the close", func() bool { return mllp.LiveConnections(d) == 0 })
	if reply, err := send(t, d, "I2"); err != nil || reply.Summary != "AA" {
		t.Fatalf("Send after the peer closed an idle connection = %+v, %v; want AA on a new connection", reply, err)
	}
	if n := p.conns(); n != 2 {
		t.Errorf("peer saw %d connections, want 2", n)
	}
}

func TestDestinationReconnectAfterPeerRestart(t *testing.T) {
	p := newPeer(t, ackWith("AA", ""))
	d := newDest(t, mllp.DestinationConfig{Address: p.addr, ReconnectBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if _, err := send(t, d, "P1"); err != nil {
		t.Fatal(err)
	}
	p.stop()
	if _, err := send(t, d, "P2"); err == nil {
		t.Fatal("Send to a stopped peer succeeded")
	}
	p.start()
	var last error
	poll(t, "a send to succeed after the peer restarted", func() bool {
		_, last = send(t, d, "P3")
		return last == nil
	})
}

func TestDestinationBackoffNeverOutlastsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	d := newDest(t, mllp.DestinationConfig{Address: addr, ReconnectBackoff: time.Hour})
	if _, err := send(t, d, "B1"); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err = d.Send(ctx, &engine.Message{Body: hl7Msg("B2", "")})
	if err == nil || !strings.Contains(err.Error(), "not reconnecting") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send during a backoff longer than its deadline = %v, want an immediate backoff error", err)
	}
}

func TestDestinationContextCancelWhileWaiting(t *testing.T) {
	got := make(chan struct{}, 1)
	p := newPeer(t, func(int, string) peerReply { got <- struct{}{}; return peerReply{} })
	d := newDest(t, mllp.DestinationConfig{Address: p.addr, AckTimeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, err := d.Send(ctx, &engine.Message{Body: hl7Msg("C1", "")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	p.waitClosedByClient(1)
}

func TestDestinationConcurrentConnections(t *testing.T) {
	const n = 4
	var mu sync.Mutex
	inFlight := 0
	all := make(chan struct{})
	p := newPeer(t, func(_ int, id string) peerReply {
		mu.Lock()
		inFlight++
		if inFlight == n {
			close(all)
		}
		mu.Unlock()
		// Answer only once all n are in flight at once: this passes only if the destination
		// really has n connections sending in parallel.
		select {
		case <-all:
		case <-time.After(waitFor):
		}
		return peerReply{frames: [][]byte{ackMsg("AA", id, "")}}
	})
	d := newDest(t, mllp.DestinationConfig{Address: p.addr, Connections: n})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			_, err := d.Send(ctx, &engine.Message{Body: hl7Msg(fmt.Sprint("P", i), "")})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	select {
	case <-all:
	default:
		t.Errorf("the peer never had %d messages in flight at once", n)
	}
	if c := p.conns(); c != n {
		t.Errorf("peer saw %d connections, want %d", c, n)
	}
}

func TestDestinationInvalidMessage(t *testing.T) {
	p := newPeer(t, ackWith("AA", ""))
	d := newDest(t, mllp.DestinationConfig{Address: p.addr})
	tests := []struct{ name, body string }{
		{"not HL7", "hello"},
		{"no control id", "MSH|^~\\&|A|B|C|D|20260101||ADT^A01||P|2.5\rPID|1\r"},
		{"block character inside", string(hl7Msg("V1", "")) + "\x1c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Send(context.Background(), &engine.Message{Body: []byte(tt.body)})
			if !errors.Is(err, mllp.ErrInvalidMessage) {
				t.Errorf("Send = %v, want ErrInvalidMessage", err)
			}
		})
	}
	if _, err := send(t, d, "V2"); err != nil {
		t.Fatalf("valid message after invalid ones: %v", err)
	}
	if n := p.conns(); n != 1 {
		t.Errorf("peer saw %d connections, want 1: an invalid message must not cost the connection", n)
	}
}

func TestDestinationTLS(t *testing.T) {
	pki := tlsconftest.New(t, "osprey")
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{TLS: &mllp.ServerTLS{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile, RequireClientCert: true,
	}}, sink)
	t.Run("trusted", func(t *testing.T) {
		d := newDest(t, mllp.DestinationConfig{Address: addr, TLS: &mllp.ClientTLS{
			CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey,
		}})
		for _, id := range []string{"TLS1", "TLS2", "TLS3"} {
			if reply, err := send(t, d, id); err != nil || reply.Summary != "AA" {
				t.Fatalf("Send %s = %+v, %v; want AA", id, reply, err)
			}
		}
		m := sink.got()
		if len(m) != 3 || m[0].Meta["tls_subject"] != "osprey" {
			t.Fatalf("source saw %+v, want three messages with tls_subject osprey", m)
		}
		// TLS 1.3 session tickets arrive unasked after the handshake; they must not make
		// the destination think the connection is dead.
		if m[0].Meta["remote_addr"] != m[2].Meta["remote_addr"] {
			t.Errorf("messages came over different connections (%s, %s), want one kept open",
				m[0].Meta["remote_addr"], m[2].Meta["remote_addr"])
		}
	})
	t.Run("unknown server CA", func(t *testing.T) {
		other := tlsconftest.New(t, "x")
		d := newDest(t, mllp.DestinationConfig{Address: addr, TLS: &mllp.ClientTLS{
			CAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey,
		}})
		if _, err := send(t, d, "TLS2"); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Send to a server signed by an unknown CA = %v, want a certificate error", err)
		}
	})
}

func TestNewDestinationErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  mllp.DestinationConfig
	}{
		{"no address", mllp.DestinationConfig{}},
		{"bad address", mllp.DestinationConfig{Address: "ris"}},
		{"bad tls version", mllp.DestinationConfig{Address: "ris:2575", TLS: &mllp.ClientTLS{MinVersion: "1.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mllp.NewDestination(tt.cfg, engine.Resources{}); err == nil {
				t.Error("NewDestination succeeded, want an error")
			}
		})
	}
}
