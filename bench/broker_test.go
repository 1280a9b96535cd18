package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
)

// BenchmarkCommit measures durable writes of 400-byte entries (an HL7 order is about that
// size) to one stream of the embedded server, through the group Committer and, side by side,
// as one JetStream message per entry, with sync always and with the opt-in fast mode.
//
//	go test -run '^$' -bench BenchmarkCommit -benchtime 20000x ./bench
//
// It reports msgs/s (entries acknowledged per second) and the p50_ms and p99_ms latency from
// a call until its acknowledgement.
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{"group", "single"} {
		for _, syncMode := range []string{broker.SyncAlways, broker.SyncFast} {
			for _, publishers := range []int{1, 32} {
				name := fmt.Sprintf("%s/sync=%s/publishers=%d", mode, syncMode, publishers)
				b.Run(name, func(b *testing.B) { benchCommit(b, mode, syncMode, publishers) })
			}
		}
	}
}

func benchCommit(b *testing.B, mode, syncMode string, publishers int) {
	ctx := context.Background()
	br, err := broker.Start(ctx, broker.Config{StoreDir: b.TempDir(), Sync: syncMode}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	const subject = "bench.in"
	if _, err := br.EnsureStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{subject}}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 400)
	for i := range body {
		body[i] = 'A' + byte(i%26)
	}

	var send func(ctx context.Context, i int64) error
	var committer *broker.Committer
	switch mode {
	case "group":
		committer = br.NewCommitter(subject, broker.CommitterOptions{})
		send = func(ctx context.Context, i int64) error {
			return committer.Commit(ctx, broker.Entry{ID: fmt.Sprint(i), Body: body})
		}
	case "single":
		js := br.JetStream()
		send = func(ctx context.Context, _ int64) error {
			_, err := js.Publish(ctx, subject, body)
			return err
		}
	}

	var next atomic.Int64
	latencies := make([][]time.Duration, publishers)
	errs := make([]error, publishers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := send(ctx, i); err != nil {
					errs[p] = err
					return
				}
				latencies[p] = append(latencies[p], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	if committer != nil {
		if err := committer.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(commitPercentile(all, 0.50), "p50_ms")
	b.ReportMetric(commitPercentile(all, 0.99), "p99_ms")
}

// commitPercentile is the q quantile of sorted durations, in milliseconds.
func commitPercentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}
