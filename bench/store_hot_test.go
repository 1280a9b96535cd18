package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/store"
)

// cpuNow is the process's user+system CPU time. On a shared two-core machine wall time per
// op also measures the neighbours; CPU per op measures the work.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hotBatch is what the processor stores for n ADT messages bound for one destination.
func hotBatch(n, start int) ([]store.Message, []store.Delivery) {
	now := time.Now().UTC()
	msgs := make([]store.Message, n)
	ds := make([]store.Delivery, n)
	for i := range msgs {
		id := fmt.Sprintf("m%09d", start+i)
		m := storeMessage(id, now)
		m.Raw, m.Accession, m.Status = adt(id), "", store.StatusQueued
		msgs[i] = m
		ds[i] = store.Delivery{MessageID: id, Channel: m.Channel, Destination: "out", Status: store.DeliveryQueued,
			UpdatedAt: now, Payload: m.Raw}
	}
	return msgs, ds
}

func sentAttempt(id string) store.Attempt {
	return store.Attempt{Destination: "out", Number: 1, At: time.Now(), Duration: time.Millisecond, OK: true,
		ReplySummary: "AA", Reply: []byte("MSH|^~\\&|PACS|RADIOLOGY|EPIC|GENHOSP|20261201083000||ACK|A" + id + "|P|2.5.1\rMSA|AA|" + id + "\r")}
}

// BenchmarkStoreProcess is what the processor writes per inbound batch of 16 messages: the
// messages, then their delivery rows. One op is one message.
func BenchmarkStoreProcess(b *testing.B) {
	for _, be := range storeBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			cpu0, n := cpuNow(), 0
			for b.Loop() {
				if n%16 == 0 {
					msgs, ds := hotBatch(16, n)
					if err := s.PutMessages(ctx, msgs); err != nil {
						b.Fatal(err)
					}
					if err := s.PutDeliveries(ctx, ds); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			b.ReportMetric(float64(cpuNow()-cpu0)/float64(n), "cpu_ns/op")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkStoreAttempt records one successful attempt per message from lanes goroutines at
// once, as the delivery workers do; with more than one, concurrent writes share commits.
func BenchmarkStoreAttempt(b *testing.B) {
	for _, be := range storeBackends {
		for _, lanes := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/lanes=%d", be.name, lanes), func(b *testing.B) {
				s := be.open(b)
				ctx := context.Background()
				const pre = 20000 // messages stored beforehand; ops beyond reuse them (recorded already: a no-op)
				for i := 0; i < pre; i += 500 {
					msgs, ds := hotBatch(500, i)
					if err := s.PutMessages(ctx, msgs); err != nil {
						b.Fatal(err)
					}
					if err := s.PutDeliveries(ctx, ds); err != nil {
						b.Fatal(err)
					}
				}
				ids := make(chan string)
				var wg sync.WaitGroup
				var failed sync.Once
				var failure error
				for range lanes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for id := range ids {
							if err := s.AddAttempt(ctx, id, sentAttempt(id), store.DeliverySent); err != nil {
								failed.Do(func() { failure = err })
							}
						}
					}()
				}
				cpu0, n, start := cpuNow(), 0, time.Now()
				for b.Loop() {
					ids <- fmt.Sprintf("m%09d", n%pre)
					n++
				}
				close(ids)
				wg.Wait()
				if failure != nil {
					b.Fatal(failure)
				}
				settled(b, s, fmt.Sprintf("m%09d", (n-1)%pre))
				b.ReportMetric(float64(cpuNow()-cpu0)/float64(n), "cpu_ns/op")
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "attempts/s")
			})
		}
	}
}

// settled reads the delivery of id, the last message an attempt was recorded for, so that the
// attempts are in the tables before the clock stops: the SQLite store records them in its
// attempt log first and applies them in bulk, before any read of delivery state.
func settled(b *testing.B, s store.Store, id string) {
	b.Helper()
	if d, err := s.Delivery(context.Background(), id, "out"); err != nil || d.Status != store.DeliverySent {
		b.Fatalf("delivery of %s after its attempt: %+v, %v", id, d, err)
	}
}

// BenchmarkStoreEngine is the engine's whole write pattern on the store: the processor's
// batches of 16 and eight delivery lanes recording one attempt per message, at once.
func BenchmarkStoreEngine(b *testing.B) {
	for _, be := range storeBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			ids := make(chan string, 256)
			var wg sync.WaitGroup
			var failed sync.Once
			var failure error
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for id := range ids {
						if err := s.AddAttempt(ctx, id, sentAttempt(id), store.DeliverySent); err != nil {
							failed.Do(func() { failure = err })
						}
					}
				}()
			}
			cpu0, n, start := cpuNow(), 0, time.Now()
			for b.Loop() {
				if n%16 == 0 {
					msgs, ds := hotBatch(16, n)
					if err := s.PutMessages(ctx, msgs); err != nil {
						b.Fatal(err)
					}
					if err := s.PutDeliveries(ctx, ds); err != nil {
						b.Fatal(err)
					}
					for _, m := range msgs {
						ids <- m.ID
					}
				}
				n++
			}
			close(ids)
			wg.Wait()
			if failure != nil {
				b.Fatal(failure)
			}
			settled(b, s, fmt.Sprintf("m%09d", n-1))
			b.ReportMetric(float64(cpuNow()-cpu0)/float64(n), "cpu_ns/op")
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// writtenBytes is what this process has handed to write(2) and pwrite(2) so far (wchar in
// /proc/self/io): the store's WAL, the checkpointer's copy into the database file, the
// attempt log. It counts what the store asks of the disk, whatever the page cache does.
func writtenBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("bytes written: %v (this benchmark reads /proc, which Linux has)", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}

// BenchmarkStoreLarge is the life of a large message (an ORU of about 100 KB, as a report
// with an embedded PDF makes) through the store: stored, queued for two destinations of
// which one sends a transformed copy, that one tried twice and the other once. It reports
// the bytes written per message (SQLite's, which are this process's), which is what large
// bodies cost a store.
func BenchmarkStoreLarge(b *testing.B) {
	body := func(seg string) []byte {
		raw := []byte("MSH|^~\\&|RIS|HOSP|EHR|HOSP|20261201083000||ORU^R01|" + seg + "|P|2.5.1\r")
		for i := 0; len(raw) < 100<<10; i++ {
			raw = append(raw, fmt.Sprintf("OBX|%d|ED|PDF^Report||^application^pdf^Base64^JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5n%s%06d\r", i+1, seg, i)...)
		}
		return raw
	}
	raw, transformed := body("A"), body("B")
	for _, be := range storeBackends {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			now := time.Now().UTC()
			cpu0, w0, n := cpuNow(), writtenBytes(b), 0
			for b.Loop() {
				id := fmt.Sprintf("m%09d", n)
				m := storeMessage(id, now)
				m.Raw, m.Status = raw, store.StatusQueued
				if err := s.PutMessages(ctx, []store.Message{m}); err != nil {
					b.Fatal(err)
				}
				if err := s.PutDeliveries(ctx, []store.Delivery{
					{MessageID: id, Destination: "ehr", Status: store.DeliveryQueued, UpdatedAt: now, Payload: transformed},
					{MessageID: id, Destination: "archive", Status: store.DeliveryQueued, UpdatedAt: now},
				}); err != nil {
					b.Fatal(err)
				}
				for _, a := range []struct {
					dest   string
					number int
					status store.DeliveryStatus
				}{{"ehr", 1, store.DeliveryQueued}, {"ehr", 2, store.DeliverySent}, {"archive", 1, store.DeliverySent}} {
					at := store.Attempt{Destination: a.dest, Number: a.number, At: time.Now(), OK: a.status == store.DeliverySent,
						ReplySummary: "AA"}
					if err := s.AddAttempt(ctx, id, at, a.status); err != nil {
						b.Fatal(err)
					}
				}
				n++
			}
			if d, err := s.Delivery(ctx, fmt.Sprintf("m%09d", n-1), "ehr"); err != nil || d.Status != store.DeliverySent {
				b.Fatalf("last message's delivery: %+v, %v", d.Status, err)
			}
			if be.name == "sqlite" { // PostgreSQL's writes are the server's; this process only sends
				b.ReportMetric(float64(writtenBytes(b)-w0)/1024/float64(n), "written_KB/msg")
			}
			b.ReportMetric(float64(cpuNow()-cpu0)/1e3/float64(n), "cpu_us/msg")
		})
	}
}
