package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/store/sqlite"
)

// pipeline is a whole Osprey in process: embedded NATS (sync as given), SQLite, one channel
// from an MLLP source to an MLLP destination whose peer ACKs at once. What the benchmark
// measures is what a sender sees: ACKs of durably committed messages.
type pipeline struct {
	in   string
	peer *peer
}

// peer is a destination's receiver: an MLLP listener that ACKs at once and counts.
type peer struct {
	addr      string
	delivered atomic.Int64
}

// startPeer starts a peer for the rest of the benchmark.
func startPeer(b *testing.B) *peer {
	b.Helper()
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		b.Fatal(err)
	}
	p := &peer{addr: src.Addr().String()}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = src.Run(ctx, engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
			p.delivered.Add(1)
			return engine.Receipt{Verdict: engine.Accepted}, nil
		}))
	}()
	b.Cleanup(func() { stop(); <-done })
	return p
}

// waitDelivered waits until the peer has received n messages and returns when that was.
func (p *peer) waitDelivered(b *testing.B, n int) time.Time {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for p.delivered.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d messages in two minutes", p.delivered.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Now()
}

// processing is what a channel does between its source and its destination: nothing, or
// the filter and transform most channels have, which record stages for every message.
const (
	passThrough     = ""
	filterTransform = `    filter: 'msg.Type == "ADT"'
    transform:
      - set: {path: MSH-5, value: RIS}
`
)

func startPipeline(b *testing.B, syncMode, processing string) *pipeline {
	b.Helper()
	br := brokertest.New(b, brokertest.WithConfig(func(c *broker.Config) { c.Sync = syncMode }))
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "osprey.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })

	p := &pipeline{peer: startPeer(b)}

	in := freeAddr(b)
	yaml := fmt.Sprintf(`channels:
  - name: bench
    source: {mllp: {address: "%s"}}
%s    destinations:
      - name: out
        mllp: {address: "%s", connections: 4}
`, in, processing, p.peer.addr)
	path := filepath.Join(dir, "osprey.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, lints := config.Load(path, engine.Global)
	if cfg == nil {
		b.Fatalf("config: %v", lints)
	}
	eng := engine.New(engine.Options{Registry: engine.Global, Broker: br.Broker, Store: st, DataDir: dir,
		Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		eng.Shutdown(ctx)
	})
	if err := eng.Apply(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	// The source listens once Run has started; wait until it takes connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: in})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("source never listened: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.in = in
	return p
}

// adt returns a 400-byte-class ADT^A08 with a unique control id.
func adt(id string) []byte {
	return []byte("MSH|^~\\&|EPIC|GENHOSP|PACS|RADIOLOGY|20261201083000||ADT^A08^ADT_A01|" + id + "|P|2.5.1\r" +
		"EVN|A08|20261201083000\r" +
		"PID|1||MRN" + id + "^^^GENHOSP^MR||Doe^Jane^Q^^^^L||19680412|F|||12 High St^^Springfield^IL^62701^USA||555-0100\r" +
		"PV1|1|E|ER^01^A^GENHOSP||||1234^Adams^Ann^^^Dr|||MED||||||||V100001\r")
}

// drive sends n messages over conns connections, each connection pacing itself to
// perConnRate messages per second when it is positive, and returns every ACK latency.
func drive(b *testing.B, addr string, conns, n int, perConnRate float64) []time.Duration {
	b.Helper()
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	var failed sync.Once
	var failure error
	per := (n + conns - 1) / conns
	for g := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mllp.Dial(context.Background(), mllp.ClientConfig{Address: addr, AckTimeout: 30 * time.Second})
			if err != nil {
				failed.Do(func() { failure = err })
				return
			}
			defer c.Close()
			var tick *time.Ticker
			if perConnRate > 0 {
				// Connections start out of phase, so that together they send a steady stream
				// rather than all at once every period: a burst of one message per connection
				// is a different load from the rate asked for.
				period := time.Duration(float64(time.Second) / perConnRate)
				time.Sleep(period * time.Duration(g) / time.Duration(conns))
				tick = time.NewTicker(period)
				defer tick.Stop()
			}
			for i := range per {
				if tick != nil {
					<-tick.C
				}
				t0 := time.Now()
				ack, _, err := c.Send(context.Background(), adt("B"+strconv.Itoa(g)+"-"+strconv.Itoa(i)))
				if err != nil || ack.Code != "AA" {
					failed.Do(func() { failure = fmt.Errorf("send: %v (ack %q)", err, ack.Code) })
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		b.Fatal(failure)
	}
	return slices.Concat(lat...)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}

// rss is the process's resident set (VmRSS) in MB at the end of a run, with the engine still
// up: the whole engine plus the benchmark's own clients, since they share the process.
func rss() float64 { return rssOf("self") }

// rssOf is the resident set in MB of the process pid names ("self" for this one), 0 if
// /proc does not say.
func rssOf(pid string) float64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkIngest: sustained MLLP ingest with an ACK after the durable commit, the default
// (fsync before every ACK, group commit) beside the opt-in fast mode; and, at 32
// connections, a channel with a filter and a transform beside the plain one.
func BenchmarkIngest(b *testing.B) {
	type run struct {
		name, mode, processing string
		conns                  int
	}
	var runs []run
	for _, mode := range []string{broker.SyncAlways, broker.SyncFast} {
		for _, conns := range []int{1, 32} {
			runs = append(runs, run{fmt.Sprintf("sync=%s/conns=%d", mode, conns), mode, passThrough, conns})
		}
	}
	runs = append(runs, run{"sync=always/conns=32/filter+transform", broker.SyncAlways, filterTransform, 32})
	for _, r := range runs {
		b.Run(r.name, func(b *testing.B) {
			p := startPipeline(b, r.mode, r.processing)
			b.ResetTimer()
			cpu0 := cpuNow()
			start := time.Now()
			lat := drive(b, p.in, r.conns, max(b.N, r.conns), 0)
			elapsed := time.Since(start)
			// ACKs can run ahead of delivery while the queues absorb the difference; the
			// rate at which messages reach the destination is what the engine sustains.
			all := p.peer.waitDelivered(b, len(lat)).Sub(start)
			// CPU per message is steadier than a rate on a shared virtual machine; it
			// counts the whole process, senders and peer included.
			b.ReportMetric(float64(cpuNow()-cpu0)/1e3/float64(len(lat)), "cpu_us/msg")
			b.StopTimer()
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(len(lat))/all.Seconds(), "delivered/s")
			reportLatency(b, lat)
			b.ReportMetric(rss(), "rss_MB")
		})
	}
}

// BenchmarkAckLatency: ACK latency at a steady 1,000 messages/s over 32 connections, the
// load of a large hospital's busiest feed, for the whole engine and, beside it, for the
// acknowledgement path alone (startAckPath): the difference is what processing, the store and
// delivery on the same two cores and the same disk add to a sender's wait.
func BenchmarkAckLatency(b *testing.B) {
	for _, mode := range []string{broker.SyncAlways, broker.SyncFast} {
		for _, path := range []string{"engine", "ack-only"} {
			b.Run(fmt.Sprintf("sync=%s/rate=1000/conns=32/path=%s", mode, path), func(b *testing.B) {
				var addr string
				if path == "engine" {
					addr = startPipeline(b, mode, passThrough).in
				} else {
					addr = startAckPath(b, mode)
				}
				b.ResetTimer()
				lat := drive(b, addr, 32, max(b.N, 3000), 1000.0/32)
				b.StopTimer()
				reportLatency(b, lat)
			})
		}
	}
}

func freeAddr(b *testing.B) string {
	b.Helper()
	c, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		b.Fatal(err)
	}
	addr := c.Addr().String()
	c.Close(context.Background())
	return addr
}

// startAckPath is the acknowledgement path alone: MLLP framing, HL7 parse, group commit to a
// JetStream stream with the same settings as a channel's inbound stream, and the ACK, with
// nothing consuming the stream. It returns the address to send to.
func startAckPath(b *testing.B, syncMode string) string {
	b.Helper()
	br := brokertest.New(b, brokertest.WithConfig(func(c *broker.Config) { c.Sync = syncMode }))
	ctx := context.Background()
	if _, err := br.EnsureStream(ctx, jetstream.StreamConfig{Name: "INGEST", Subjects: []string{"ingest"},
		Retention: jetstream.LimitsPolicy}); err != nil {
		b.Fatal(err)
	}
	c := br.NewCommitter("ingest", broker.CommitterOptions{Stream: "INGEST"})
	b.Cleanup(func() { c.Close(context.Background()) })
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		b.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = src.Run(sctx, engine.SinkFunc(func(ctx context.Context, m *engine.Message) (engine.Receipt, error) {
			if _, err := hl7v2.Parse(m.Body); err != nil {
				return engine.Receipt{Verdict: engine.Rejected, Reason: err}, nil
			}
			if err := c.Commit(ctx, broker.Entry{ID: engine.NewID(), Body: m.Body}); err != nil {
				return engine.Receipt{}, err
			}
			return engine.Receipt{Verdict: engine.Accepted}, nil
		}))
	}()
	b.Cleanup(func() { stop(); <-done })
	return src.Addr().String()
}

// BenchmarkIngestPath is BenchmarkIngest's load on the acknowledgement path alone
// (startAckPath). BenchmarkIngest runs the same load with the whole engine behind it
// (processing, SQLite history, delivery) on the same two cores, so the two side by side show
// what the durable path costs and what the rest of the engine takes from it.
func BenchmarkIngestPath(b *testing.B) {
	for _, mode := range []string{broker.SyncAlways, broker.SyncFast} {
		for _, conns := range []int{1, 32} {
			b.Run(fmt.Sprintf("sync=%s/conns=%d", mode, conns), func(b *testing.B) {
				addr := startAckPath(b, mode)
				b.ResetTimer()
				cpu0 := cpuNow()
				start := time.Now()
				lat := drive(b, addr, conns, max(b.N, conns), 0)
				elapsed := time.Since(start)
				b.ReportMetric(float64(cpuNow()-cpu0)/1e3/float64(len(lat)), "cpu_us/msg")
				b.StopTimer()
				b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "msgs/s")
				reportLatency(b, lat)
			})
		}
	}
}

// BenchmarkDiskFsync is the floor under every durable ACK: append a 500-byte record to a file
// in the benchmark's temporary directory (the file system the data directory is on) and fsync
// it, 1,000 times a second as BenchmarkAckLatency sends, with nothing else running. An ACK
// waits for at least one such fsync, so its p99 cannot be better than this one's, and a
// virtual disk's tail moves from hour to hour: compare the ACK latencies with this, measured
// in the same run.
func BenchmarkDiskFsync(b *testing.B) {
	b.Run("rate=1000", func(b *testing.B) {
		f, err := os.OpenFile(filepath.Join(b.TempDir(), "fsync"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rec := make([]byte, 500)
		n := max(b.N, 3000)
		lat := make([]time.Duration, 0, n)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		b.ResetTimer()
		for range n {
			<-tick.C
			t0 := time.Now()
			if _, err := f.Write(rec); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
}
