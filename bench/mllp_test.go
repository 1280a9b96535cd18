package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// benchMessage is an ORM^O01 of a typical size (about 700 bytes).
var benchMessage = []byte(strings.Join([]string{
	"MSH|^~\\&|RIS|GENERAL HOSPITAL|OSPREY|GENERAL HOSPITAL|20260101120000||ORM^O01^ORM_O01|BENCH000001|P|2.5.1|||AL|NE",
	"PID|1||4455667^^^GH^MR~998877665^^^SSA^SS||DOE^JANE^Q^^^^L||19700101|F|||123 MAIN ST^^SPRINGFIELD^IL^62701^USA||^PRN^PH^^1^217^5551234",
	"PV1|1|E|ED^ROOM4^BED1^GH||||1234567^SMITH^JOHN^A^^^MD|||||||||||V0001234^^^GH^VN|||||||||||||||||||||||||20260101115500",
	"ORC|NW|ACC123456^RIS|||||^^^20260101120000^^S||20260101120000|CLERK^ORDER|||ED^^^GH",
	"OBR|1|ACC123456^RIS||CTHEAD^CT HEAD WITHOUT CONTRAST^L|S|20260101120000|||||||||1234567^SMITH^JOHN^A^^^MD||ACC123456|||||CT|||^^^20260101120000^^S||||FALL, HEADACHE, ON ANTICOAGULANTS",
	"DG1|1||R51^Headache^I10",
	"",
}, "\r"))

// BenchmarkMLLPRoundTrip measures messages per second through the MLLP source and client
// (frame, parse, hand to a sink that accepts at once, build the ACK, match it) beside a
// bare TCP exchange of the same sizes with no protocol work, over loopback. The bare TCP
// peer runs first in each configuration, so the table's ratio reads as MLLP's cost over it.
func BenchmarkMLLPRoundTrip(b *testing.B) {
	m, err := hl7v2.Parse(benchMessage)
	if err != nil {
		b.Fatal(err)
	}
	ackSize := len(hl7v2.NewAck(m, hl7v2.ApplicationAccept, hl7v2.AckOptions{}).Encode()) + 3
	frameSize := len(benchMessage) + 3

	for _, conns := range []int{1, 32} {
		b.Run(fmt.Sprintf("tcp/conns=%d", conns), func(b *testing.B) {
			addr, stop := startEcho(b, frameSize, ackSize)
			defer stop()
			out := make([]byte, frameSize)
			copy(out, benchMessage)
			nconns := make([]net.Conn, conns)
			bufs := make([][]byte, conns)
			for i := range nconns {
				if nconns[i], err = net.Dial("tcp", addr); err != nil {
					b.Fatal(err)
				}
				defer nconns[i].Close()
				bufs[i] = make([]byte, ackSize)
			}
			run(b, conns, func(i int) error {
				if _, err := nconns[i].Write(out); err != nil {
					return err
				}
				_, err := io.ReadFull(nconns[i], bufs[i])
				return err
			})
		})
		b.Run(fmt.Sprintf("mllp/conns=%d", conns), func(b *testing.B) {
			addr, stop := startSource(b)
			defer stop()
			clients := make([]*mllp.Client, conns)
			for i := range clients {
				if clients[i], err = mllp.Dial(context.Background(), mllp.ClientConfig{Address: addr}); err != nil {
					b.Fatal(err)
				}
				defer clients[i].Close()
			}
			run(b, conns, func(i int) error {
				ack, _, err := clients[i].Send(context.Background(), benchMessage)
				if err == nil && !ack.Code.Accepted() {
					err = fmt.Errorf("ACK %s", ack.Code)
				}
				return err
			})
		})
	}
}

// run spreads b.N round trips over conns goroutines, one per connection, and reports the
// rate.
func run(b *testing.B, conns int, roundTrip func(conn int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ResetTimer()
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := roundTrip(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

func startSource(b *testing.B) (string, func()) {
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{Channel: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		b.Fatal(err)
	}
	sink := engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
		return engine.Receipt{Verdict: engine.Accepted}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, sink) }()
	return src.Addr().String(), func() { cancel(); <-done }
}

// startEcho is the bare-TCP peer: it reads a request of frameSize bytes and answers
// ackSize bytes, like an MLLP receiver with no framing or HL7 work.
func startEcho(b *testing.B, frameSize, ackSize int) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	reply := make([]byte, ackSize)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, frameSize)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }
}
