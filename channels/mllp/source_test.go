package mllp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/internal/tlsconf/tlsconftest"
	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

func TestSourceAcksOnlyAfterSinkReturns(t *testing.T) {
	entered := make(chan *engine.Message, 1)
	release := make(chan struct{})
	sink := engine.SinkFunc(func(_ context.Context, m *engine.Message) (engine.Receipt, error) {
		entered <- m
		<-release
		return engine.Receipt{ID: "m1", Verdict: engine.Accepted}, nil
	})
	addr, _ := runSource(t, mllp.SourceConfig{}, sink)
	c := dialRaw(t, addr)
	c.send(hl7Msg("CTRL1", ""))

	var m *engine.Message
	select {
	case m = <-entered:
	case <-time.After(waitFor):
		t.Fatal("sink never called")
	}
	// The sink is holding the message: nothing may have been answered yet.
	c.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if f, err := c.rd.ReadFrame(); err == nil {
		t.Fatalf("got %q before the sink returned", f)
	}
	close(release)
	// The read above timed out having consumed nothing, so the same reader goes on.
	ack := parseAck(t, c.read())
	if ack.Code != hl7v2.ApplicationAccept || ack.ControlID != "CTRL1" {
		t.Errorf("ACK = %s for %q, want AA for CTRL1", ack.Code, ack.ControlID)
	}

	if string(m.Body) != string(hl7Msg("CTRL1", "")) {
		t.Errorf("body = %q, want the message as sent", m.Body)
	}
	if m.Channel != "test" || m.ContentType != engine.ContentHL7v2 || m.ReceivedAt.IsZero() {
		t.Errorf("message = channel %q, content type %q, received %v", m.Channel, m.ContentType, m.ReceivedAt)
	}
	if m.Meta["remote_addr"] != c.nc.LocalAddr().String() || m.Meta["local_addr"] != addr {
		t.Errorf("meta = %v, want remote_addr %s and local_addr %s", m.Meta, c.nc.LocalAddr(), addr)
	}
	if _, ok := m.Meta["tls_subject"]; ok {
		t.Errorf("tls_subject set on a plain TCP connection: %v", m.Meta)
	}
}

func TestSourceManyConnections(t *testing.T) {
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{}, sink)
	const conns, perConn = 16, 10
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				nc, err := net.DialTimeout("tcp", addr, waitFor)
				if err != nil {
					return err
				}
				defer nc.Close()
				rd := mllp.NewReader(nc, 0)
				for j := range perConn {
					id := fmt.Sprintf("C%02dM%02d", i, j)
					if err := mllp.WriteFrame(nc, hl7Msg(id, "")); err != nil {
						return err
					}
					nc.SetReadDeadline(time.Now().Add(waitFor))
					f, err := rd.ReadFrame()
					if err != nil {
						return fmt.Errorf("%s: %w", id, err)
					}
					m, err := hl7v2.Parse(f)
					if err != nil {
						return err
					}
					ack, err := hl7v2.ReadAck(m)
					if err != nil {
						return err
					}
					if ack.Code != hl7v2.ApplicationAccept || ack.ControlID != id {
						return fmt.Errorf("ACK %s for %q, want AA for %s", ack.Code, ack.ControlID, id)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(sink.got()); n != conns*perConn {
		t.Errorf("sink got %d messages, want %d", n, conns*perConn)
	}
}

// codedError is a rejection reason that names its own HL7 table 0357 code.
type codedError struct{ code int }

func (e codedError) Error() string     { return "unknown patient identifier" }
func (e codedError) HL7ErrorCode() int { return e.code }

func TestSourceAckCodes(t *testing.T) {
	tests := []struct {
		name     string
		mode     mllp.AckMode
		msh      string // appended after MSH-12
		receipt  engine.Receipt
		err      error
		wantCode hl7v2.AckCode
		wantText string // in MSA-3 or ERR
		wantERR  int    // ERR-3 code; 0: no ERR expected
	}{
		{name: "accepted", receipt: engine.Receipt{Verdict: engine.Accepted}, wantCode: hl7v2.ApplicationAccept},
		{name: "duplicate", receipt: engine.Receipt{Verdict: engine.Duplicate}, wantCode: hl7v2.ApplicationAccept},
		{name: "rejected", receipt: engine.Receipt{Verdict: engine.Rejected, Reason: errors.New("missing PID-3")},
			wantCode: hl7v2.ApplicationError, wantText: "missing PID-3", wantERR: 207},
		{name: "rejected with code", receipt: engine.Receipt{Verdict: engine.Rejected, Reason: fmt.Errorf("lookup: %w", codedError{204})},
			wantCode: hl7v2.ApplicationError, wantText: "unknown patient identifier", wantERR: 204},
		{name: "sink error", err: errors.New("nats: no responders"), wantCode: hl7v2.ApplicationReject, wantText: "try again", wantERR: 207},
		{name: "enhanced accepted", mode: mllp.AckEnhanced, receipt: engine.Receipt{Verdict: engine.Accepted}, wantCode: hl7v2.CommitAccept},
		{name: "enhanced rejected", mode: mllp.AckEnhanced, receipt: engine.Receipt{Verdict: engine.Rejected, Reason: errors.New("bad")},
			wantCode: hl7v2.CommitError, wantText: "bad", wantERR: 207},
		{name: "enhanced sink error", mode: mllp.AckEnhanced, err: errors.New("down"), wantCode: hl7v2.CommitReject, wantText: "try again", wantERR: 207},
		{name: "auto follows MSH-15", mode: mllp.AckAuto, msh: "|||AL|NE", receipt: engine.Receipt{Verdict: engine.Accepted}, wantCode: hl7v2.CommitAccept},
		{name: "auto without MSH-15", mode: mllp.AckAuto, receipt: engine.Receipt{Verdict: engine.Accepted}, wantCode: hl7v2.ApplicationAccept},
		{name: "original ignores MSH-15", mode: mllp.AckOriginal, msh: "|||AL|NE", receipt: engine.Receipt{Verdict: engine.Accepted}, wantCode: hl7v2.ApplicationAccept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
				return tt.receipt, tt.err
			})
			addr, _ := runSource(t, mllp.SourceConfig{AckMode: tt.mode}, sink)
			c := dialRaw(t, addr)
			c.send(hl7Msg("ID42", tt.msh))
			f := c.read()
			ack := parseAck(t, f)
			if ack.Code != tt.wantCode || ack.ControlID != "ID42" {
				t.Fatalf("ACK %s for %q, want %s for ID42: %q", ack.Code, ack.ControlID, tt.wantCode, f)
			}
			if tt.wantText != "" && !strings.Contains(ack.Text, tt.wantText) {
				t.Errorf("MSA-3 = %q, want it to contain %q", ack.Text, tt.wantText)
			}
			if tt.wantERR == 0 {
				if len(ack.Errors) != 0 {
					t.Errorf("unexpected ERR: %+v", ack.Errors)
				}
				return
			}
			if len(ack.Errors) != 1 || ack.Errors[0].Code != tt.wantERR || !strings.Contains(ack.Errors[0].Text, tt.wantText) {
				t.Errorf("ERR = %+v, want code %d with %q", ack.Errors, tt.wantERR, tt.wantText)
			}
		})
	}
}

func TestSourceUnparseableMessage(t *testing.T) {
	var got []byte
	sink := engine.SinkFunc(func(_ context.Context, m *engine.Message) (engine.Receipt, error) {
		got = m.Body
		return engine.Receipt{Verdict: engine.Rejected, Reason: errors.New("not an HL7 message")}, nil
	})
	addr, _ := runSource(t, mllp.SourceConfig{}, sink)
	c := dialRaw(t, addr)
	c.send([]byte("this is not HL7"))
	f := c.read()
	ack := parseAck(t, f)
	if ack.Code != hl7v2.ApplicationError || !strings.Contains(ack.Text, "not an HL7 message") {
		t.Errorf("ACK %s %q, want AE with the reason: %q", ack.Code, ack.Text, f)
	}
	if string(got) != "this is not HL7" {
		t.Errorf("sink got %q, want the frame as sent", got)
	}
}

func TestSourceFraming(t *testing.T) {
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{}, sink)
	c := dialRaw(t, addr)

	// Garbage before the frame, an empty keep-alive frame, and a frame without its final CR:
	// each still gets exactly one ACK, for the real messages only.
	c.writeRaw("\r\nnoise")
	c.send(nil)
	c.send(hl7Msg("F1", ""))
	if a := parseAck(t, c.read()); a.ControlID != "F1" {
		t.Fatalf("first ACK is for %q, want F1", a.ControlID)
	}
	c.writeRaw("\x0b" + string(hl7Msg("F2", "")) + "\x1c")
	if a := parseAck(t, c.read()); a.ControlID != "F2" {
		t.Fatalf("second ACK is for %q, want F2", a.ControlID)
	}
	if n := len(sink.got()); n != 2 {
		t.Errorf("sink got %d messages, want 2", n)
	}
}

func TestSourceOversizeFrame(t *testing.T) {
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{MaxMessageSize: 1024}, sink)
	c := dialRaw(t, addr)
	big := append(hl7Msg("BIG1", ""), []byte("NTE|1||"+strings.Repeat("x", 4096)+"\r")...)
	c.send(big)
	f := c.read()
	ack := parseAck(t, f)
	if ack.Code != hl7v2.ApplicationReject || !strings.Contains(ack.Text, "exceeds 1024 bytes") {
		t.Errorf("ACK %s %q, want AR saying the message exceeds 1024 bytes: %q", ack.Code, ack.Text, f)
	}
	if ack.ControlID != "BIG1" {
		t.Errorf("ACK is for %q, want BIG1 (from the start of the frame)", ack.ControlID)
	}
	c.expectClosed()
	if n := len(sink.got()); n != 0 {
		t.Errorf("sink got %d messages, want none", n)
	}
}

func TestSourceIdleTimeout(t *testing.T) {
	addr, _ := runSource(t, mllp.SourceConfig{IdleTimeout: 50 * time.Millisecond}, &acceptAll{})
	c := dialRaw(t, addr)
	c.send(hl7Msg("I1", ""))
	c.read()
	c.expectClosed() // quietly: no frame, just the close
}

func TestSourceMaxConnections(t *testing.T) {
	addr, _ := runSource(t, mllp.SourceConfig{MaxConnections: 1}, &acceptAll{})
	first := dialRaw(t, addr)
	first.send(hl7Msg("A1", "")) // a round trip proves the first connection is being served
	first.read()
	second := dialRaw(t, addr)
	second.expectClosed()
	first.send(hl7Msg("A2", ""))
	if a := parseAck(t, first.read()); a.ControlID != "A2" {
		t.Errorf("first connection broken after refusing the second: ACK for %q", a.ControlID)
	}
}

func TestSourceGracefulStop(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	sink := engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
		close(entered)
		<-release
		return engine.Receipt{Verdict: engine.Accepted}, nil
	})
	addr, stop := runSource(t, mllp.SourceConfig{IdleTimeout: 0}, sink)
	busy := dialRaw(t, addr)
	idle := dialRaw(t, addr) // connected, never sends
	busy.send(hl7Msg("S1", ""))
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The idle connection is closed at once, even with no idle timeout...
	idle.expectClosed()
	// ...and Run waits for the message in the sink.
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a message was in the sink", err)
	default:
	}
	close(release)
	if a := parseAck(t, busy.read()); a.Code != hl7v2.ApplicationAccept || a.ControlID != "S1" {
		t.Errorf("in-flight message got %s for %q, want AA for S1", a.Code, a.ControlID)
	}
	busy.expectClosed()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting connections after stop")
	}
}

func TestSourceTLSClientCertificates(t *testing.T) {
	pki := tlsconftest.New(t, "ris-prod")
	sink := &acceptAll{}
	addr, _ := runSource(t, mllp.SourceConfig{TLS: &mllp.ServerTLS{
		CertFile: pki.ServerCert, KeyFile: pki.ServerKey,
		ClientCAFile: pki.CAFile, RequireClientCert: true,
	}}, sink)

	t.Run("with certificate", func(t *testing.T) {
		c, err := mllp.Dial(context.Background(), mllp.ClientConfig{
			Address: addr,
			TLS:     &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{pki.Client}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ack, _, err := c.Send(context.Background(), hl7Msg("T1", ""))
		if err != nil || ack.Code != hl7v2.ApplicationAccept {
			t.Fatalf("Send = %+v, %v; want AA", ack, err)
		}
		msgs := sink.got()
		if len(msgs) != 1 || msgs[0].Meta["tls_subject"] != "ris-prod" {
			t.Errorf("sink got %d messages (first: %+v), want one with tls_subject ris-prod", len(msgs), msgs)
		}
	})
	t.Run("without certificate", func(t *testing.T) {
		c, err := mllp.Dial(context.Background(), mllp.ClientConfig{
			Address: addr, TLS: &tls.Config{RootCAs: pki.Pool}, AckTimeout: waitFor,
		})
		if err == nil {
			// TLS 1.3 finishes the client side of the handshake before the server has checked
			// the certificate; the refusal then arrives on the first exchange.
			_, _, err = c.Send(context.Background(), hl7Msg("T2", ""))
			c.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate got a message through")
		}
		if n := len(sink.got()); n != 1 {
			t.Errorf("sink got %d messages, want only the one from the authenticated client", n)
		}
	})
	t.Run("plain TCP to a TLS port", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(hl7Msg("T3", ""))
		c.expectClosed()
	})
}

func TestNewSourceErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  mllp.SourceConfig
		want string
	}{
		{"bad address", mllp.SourceConfig{Address: "nope"}, "address"},
		{"bad ack mode", mllp.SourceConfig{AckMode: "loud"}, "ack_mode"},
		{"tls without key", mllp.SourceConfig{TLS: &mllp.ServerTLS{CertFile: "a.crt"}}, "key_file"},
		{"client cert without CA", mllp.SourceConfig{TLS: &mllp.ServerTLS{CertFile: "a", KeyFile: "b", RequireClientCert: true}}, "client_ca_file"},
		{"bad tls version", mllp.SourceConfig{TLS: &mllp.ServerTLS{CertFile: "a", KeyFile: "b", MinVersion: "1.0"}}, "min_version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mllp.NewSource(tt.cfg, engine.Resources{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewSource = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestSourceListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src, err := mllp.NewSource(mllp.SourceConfig{Address: ln.Addr().String()}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background(), &acceptAll{}); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a taken port = %v, want a listen error", err)
	}
	missing, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0", TLS: &mllp.ServerTLS{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}}, engine.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if err := missing.Listen(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Listen with missing certificate files = %v, want a certificate error", err)
	}
}

func TestSourceTLSReloadsRenewedCertificate(t *testing.T) {
	old, renewed := tlsconftest.New(t, "c1"), tlsconftest.New(t, "c2")
	certFile, keyFile := filepath.Join(t.TempDir(), "server.crt"), filepath.Join(t.TempDir(), "server.key")
	old.InstallServer(t, certFile, keyFile, time.Now().Add(-time.Hour))
	addr, _ := runSource(t, mllp.SourceConfig{TLS: &mllp.ServerTLS{CertFile: certFile, KeyFile: keyFile}}, &acceptAll{})

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(mustRead(t, old.CAFile))
	roots.AppendCertsFromPEM(mustRead(t, renewed.CAFile))
	servedBy := func() string {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			t.Fatalf("tls dial: %v", err)
		}
		defer c.Close()
		return string(c.ConnectionState().PeerCertificates[0].Raw)
	}
	leaf := func(pki *tlsconftest.PKI) string {
		b, _ := pem.Decode(mustRead(t, pki.ServerCert))
		return string(b.Bytes)
	}
	if servedBy() != leaf(old) {
		t.Fatal("source does not serve the installed certificate")
	}
	renewed.InstallServer(t, certFile, keyFile, time.Now())
	if servedBy() != leaf(renewed) {
		t.Error("source still serves the old certificate after the files were renewed")
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
