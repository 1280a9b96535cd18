package bench

import (
	"context"
	"fmt"
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
