package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
)

// streamFor creates a stream for the test and returns it with a subject inside it.
func streamFor(t *testing.T, s *brokertest.Server, name string) (jetstream.Stream, string) {
	t.Helper()
	subject := s.Subject(name)
	st, err := s.EnsureStream(testContext(t), jetstream.StreamConfig{Name: s.Stream(name), Subjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	return st, subject
}

// storedRecord is one record as read back from a stream.
type storedRecord struct {
	seq     uint64
	entries []broker.Entry
}

// readRecords reads every message of the stream and decodes it as a record.
func readRecords(t *testing.T, st jetstream.Stream) []storedRecord {
	t.Helper()
	ctx := testContext(t)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []storedRecord
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == "" {
			t.Errorf("message %d has no %s header", seq, jetstream.MsgIDHeader)
		}
		entries, err := broker.DecodeRecord(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, storedRecord{seq: seq, entries: entries})
	}
	return out
}

// entryIDs flattens the records' entries to their ids in stream order.
func entryIDs(records []storedRecord) []string {
	var ids []string
	for _, r := range records {
		for _, e := range r.entries {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func closeCommitter(t *testing.T, c *broker.Committer) {
	t.Helper()
	if err := c.Close(testContext(t)); err != nil {
		t.Errorf("Committer.Close: %v", err)
	}
}

func TestCommitConcurrent(t *testing.T) {
	brokertest.Each(t, func(t *testing.T, s *brokertest.Server) {
		const publishers, perPublisher = 32, 40
		st, subject := streamFor(t, s, "CONC")
		c := s.NewCommitter(subject, broker.CommitterOptions{Stream: s.Stream("CONC")})
		ctx := testContext(t)
		errs := make(chan error, publishers*perPublisher)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perPublisher {
					e := broker.Entry{
						ID:      fmt.Sprintf("p%02d-%03d", p, i),
						Headers: map[string]string{"publisher": fmt.Sprint(p)},
						Body:    bytes.Repeat([]byte{byte(i)}, 400),
					}
					errs <- c.Commit(ctx, e)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
		}
		closeCommitter(t, c)

		records := readRecords(t, st)
		seen := map[string]int{}
		last := map[string]int{} // publisher -> last index seen, for order
		for _, r := range records {
			for _, e := range r.entries {
				seen[e.ID]++
				var p, i int
				if _, err := fmt.Sscanf(e.ID, "p%02d-%03d", &p, &i); err != nil {
					t.Fatalf("unexpected entry id %q", e.ID)
				}
				if e.Headers["publisher"] != fmt.Sprint(p) || len(e.Body) != 400 || e.Body[0] != byte(i) {
					t.Errorf("entry %s came back altered: headers %v, %d bytes", e.ID, e.Headers, len(e.Body))
				}
				key := fmt.Sprint(p)
				if prev, ok := last[key]; ok && i <= prev {
					t.Errorf("publisher %d: entry %d stored after entry %d", p, i, prev)
				}
				last[key] = i
			}
		}
		if len(seen) != publishers*perPublisher {
			t.Errorf("%d distinct entries in the stream, want %d", len(seen), publishers*perPublisher)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("entry %s stored %d times", id, n)
			}
		}
		t.Logf("%d entries in %d records", publishers*perPublisher, len(records))
	})
}

// TestCommitDurableOnReturn reads the stream right after each Commit: the entry is there.
func TestCommitDurableOnReturn(t *testing.T) {
	brokertest.Each(t, func(t *testing.T, s *brokertest.Server) {
		ctx := testContext(t)
		st, subject := streamFor(t, s, "RET")
		c := s.NewCommitter(subject, broker.CommitterOptions{})
		defer closeCommitter(t, c)
		for i := range 20 {
			id := fmt.Sprintf("m%d", i)
			if err := c.Commit(ctx, broker.Entry{ID: id, Body: []byte("MSH|^~\\&|")}); err != nil {
				t.Fatalf("Commit %s: %v", id, err)
			}
			m, err := st.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				t.Fatalf("after Commit %s: %v", id, err)
			}
			entries, err := broker.DecodeRecord(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].ID != id {
				t.Fatalf("last record after Commit %s holds %v", id, entryIDs([]storedRecord{{entries: entries}}))
			}
		}
	})
}

func TestCommitSequentialOrder(t *testing.T) {
	s := brokertest.New(t)
	ctx := testContext(t)
	st, subject := streamFor(t, s, "ORDER")
	c := s.NewCommitter(subject, broker.CommitterOptions{MaxInFlight: 8})
	var want []string
	for i := range 50 {
		id := fmt.Sprintf("%03d", i)
		want = append(want, id)
		if err := c.Commit(ctx, broker.Entry{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	closeCommitter(t, c)
	got := entryIDs(readRecords(t, st))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream order %v, want %v", got, want)
	}
}

func TestCommitTooLarge(t *testing.T) {
	brokertest.Each(t, func(t *testing.T, s *brokertest.Server) {
		ctx := testContext(t)
		st, subject := streamFor(t, s, "BIG")
		c := s.NewCommitter(subject, broker.CommitterOptions{MaxBytes: 64 << 10})
		defer closeCommitter(t, c)
		max := int(s.Conn().MaxPayload())
		if got := s.MaxRecord(); got <= 0 || got >= max {
			t.Errorf("MaxRecord() = %d with max_payload %d", got, max)
		}
		// The largest entry MaxRecord allows is accepted.
		fit := broker.Entry{ID: "fit"}
		fit.Body = make([]byte, s.MaxRecord()-broker.RecordSize([]broker.Entry{fit})-8)
		for broker.RecordSize([]broker.Entry{fit}) < s.MaxRecord() {
			fit.Body = append(fit.Body, 0)
		}
		if err := c.Commit(ctx, fit); err != nil {
			t.Errorf("entry filling MaxRecord exactly: %v", err)
		}

		err := c.Commit(ctx, broker.Entry{ID: "huge", Body: make([]byte, max)})
		if !errors.Is(err, broker.ErrTooLarge) {
			t.Errorf("entry of the server's max payload: error %v, want ErrTooLarge", err)
		}

		// Above MaxBytes but within the server's limit: written alone, while small entries
		// committed at the same time go in other records.
		var wg sync.WaitGroup
		errs := make([]error, 9)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := broker.Entry{ID: fmt.Sprintf("small%d", i), Body: make([]byte, 100)}
				if i == 0 {
					e = broker.Entry{ID: "big", Body: make([]byte, 200<<10)}
				}
				errs[i] = c.Commit(ctx, e)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
		}
		found := false
		for _, r := range readRecords(t, st) {
			for _, e := range r.entries {
				if e.ID == "big" {
					found = true
					if len(r.entries) != 1 || len(e.Body) != 200<<10 {
						t.Errorf("big entry shares record %d with %d others", r.seq, len(r.entries)-1)
					}
				}
			}
		}
		if !found {
			t.Error("big entry not in the stream")
		}
	})
}

// waitFor polls cond until it holds or the test's deadline nears.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCommitterClose queues commits that cannot be published yet, closes the committer, and
// checks that Close writes them all before it returns and refuses commits from then on.
func TestCommitterClose(t *testing.T) {
	s := brokertest.New(t)
	ctx := testContext(t)
	st, subject := streamFor(t, s, "CLOSE")
	c := s.NewCommitter(subject, broker.CommitterOptions{MaxInFlight: 2, MaxEntries: 4})
	release := broker.HoldSlots(c)

	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.Commit(ctx, broker.Entry{ID: fmt.Sprintf("e%02d", i), Body: []byte("x")}) }()
	}
	waitFor(t, "all commits queued", func() bool { return broker.Queued(c) == n })

	closed := make(chan error, 1)
	go func() { closed <- c.Close(ctx) }()
	waitFor(t, "Close to start", func() bool { return broker.Closing(c) })
	if err := c.Commit(ctx, broker.Entry{ID: "late"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Commit during Close: %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returned: every queued entry is in the stream already.
	if got := len(entryIDs(readRecords(t, st))); got != n {
		t.Errorf("%d entries stored when Close returned, want %d", got, n)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("queued commit: %v", err)
		}
	}
	if err := c.Commit(ctx, broker.Entry{ID: "later"}); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCommitGroups queues entries while the committer cannot publish, then lets it go:
// they leave in as few records as the limits allow, in queue order.
func TestCommitGroups(t *testing.T) {
	tests := []struct {
		name  string
		opts  broker.CommitterOptions
		n     int
		sizes []int // entries per record
	}{
		{"one record", broker.CommitterOptions{}, 10, []int{10}},
		{"max entries", broker.CommitterOptions{MaxEntries: 4}, 10, []int{4, 4, 2}},
		{"max entries pipelined", broker.CommitterOptions{MaxEntries: 3, MaxInFlight: 1}, 7, []int{3, 3, 1}},
		// Each entry encodes to 1+3 (id) + 1 (no headers) + 1+100 (body) = 106 bytes; the
		// committer counts 18 for the record around them.
		{"max bytes", broker.CommitterOptions{MaxBytes: 18 + 3*106}, 7, []int{3, 3, 1}},
		{"max bytes less one", broker.CommitterOptions{MaxBytes: 18 + 3*106 - 1}, 7, []int{2, 2, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := brokertest.New(t)
			ctx := testContext(t)
			st, subject := streamFor(t, s, "GROUP")
			c := s.NewCommitter(subject, tt.opts)
			release := broker.HoldSlots(c)
			errs := make(chan error, tt.n)
			var want []string
			for i := range tt.n {
				id := fmt.Sprintf("g%02d", i)
				want = append(want, id)
				go func() { errs <- c.Commit(ctx, broker.Entry{ID: id, Body: make([]byte, 100)}) }()
				waitFor(t, id+" to queue", func() bool { return broker.Queued(c) == i+1 })
			}
			release()
			for range tt.n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			closeCommitter(t, c)
			records := readRecords(t, st)
			var sizes []int
			for _, r := range records {
				sizes = append(sizes, len(r.entries))
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.sizes) {
				t.Errorf("records of %v entries, want %v", sizes, tt.sizes)
			}
			if got := entryIDs(records); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stream order %v, want %v", got, want)
			}
			wantStats := broker.CommitterStats{Records: uint64(len(tt.sizes)), Entries: uint64(tt.n)}
			if got := c.Stats(); got != wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, wantStats)
			}
		})
	}
}

// TestCommitAbandoned: an entry whose caller gives up while it is still queued is not
// written.
func TestCommitAbandoned(t *testing.T) {
	s := brokertest.New(t)
	st, subject := streamFor(t, s, "ABANDON")
	c := s.NewCommitter(subject, broker.CommitterOptions{})
	release := broker.HoldSlots(c)
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- c.Commit(ctx, broker.Entry{ID: "abandoned"}) }()
	waitFor(t, "the commit to queue", func() bool { return broker.Queued(c) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned Commit: %v, want context.Canceled", err)
	}
	release()
	if err := c.Commit(testContext(t), broker.Entry{ID: "kept"}); err != nil {
		t.Fatal(err)
	}
	closeCommitter(t, c)
	if got := entryIDs(readRecords(t, st)); fmt.Sprint(got) != "[kept]" {
		t.Errorf("stream holds %v, want [kept]", got)
	}
}

func TestCommitContextDone(t *testing.T) {
	s := brokertest.New(t)
	st, subject := streamFor(t, s, "CTX")
	c := s.NewCommitter(subject, broker.CommitterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Commit(ctx, broker.Entry{ID: "cancelled"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a cancelled context: %v, want context.Canceled", err)
	}
	closeCommitter(t, c)
	if ids := entryIDs(readRecords(t, st)); len(ids) != 0 {
		t.Errorf("cancelled entry was written: %v", ids)
	}
}

func TestCommitNoStream(t *testing.T) {
	s := brokertest.New(t)
	c := s.NewCommitter(s.Subject("nowhere"), broker.CommitterOptions{})
	defer closeCommitter(t, c)
	err := c.Commit(testContext(t), broker.Entry{ID: "lost"})
	if err == nil {
		t.Fatal("Commit to a subject without a stream succeeded")
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("error %v, want it to wrap jetstream.ErrNoStreamResponse", err)
	}
	if st := c.Stats(); st.FailedRecords != 1 || st.FailedEntries != 1 || st.Records != 0 {
		t.Errorf("Stats() = %+v, want one failed record of one entry", st)
	}
}

func TestCommitWrongStream(t *testing.T) {
	s := brokertest.New(t)
	_, subject := streamFor(t, s, "REAL")
	c := s.NewCommitter(subject, broker.CommitterOptions{Stream: s.Stream("OTHER")})
	defer closeCommitter(t, c)
	if err := c.Commit(testContext(t), broker.Entry{ID: "misrouted"}); err == nil {
		t.Error("Commit to a subject of another stream than CommitterOptions.Stream succeeded")
	}
}

// TestCommitServerStopped stops the embedded server under load: every Commit returns an
// error, promptly rather than at its context deadline, and every entry that was acknowledged
// is in the stream after a restart.
func TestCommitServerStopped(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	b, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := &brokertest.Server{Broker: b, Prefix: "T0"}
	_, subject := streamFor(t, s, "STOP")
	c := s.NewCommitter(subject, broker.CommitterOptions{AckTimeout: time.Minute})

	const publishers = 16
	type result struct {
		acked   []string
		lastErr error
	}
	results := make(chan result, publishers)
	started := make(chan struct{}, publishers)
	commitCtx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	for p := range publishers {
		go func() {
			var r result
			for i := 0; ; i++ {
				id := fmt.Sprintf("p%d-%d", p, i)
				if err := c.Commit(commitCtx, broker.Entry{ID: id, Body: make([]byte, 400)}); err != nil {
					r.lastErr = err
					break
				}
				r.acked = append(r.acked, id)
				if i == 0 {
					started <- struct{}{}
				}
			}
			results <- r
		}()
	}
	for range publishers {
		<-started
	}
	broker.ServerOf(b).Shutdown()

	var acked []string
	for range publishers {
		r := <-results
		if errors.Is(r.lastErr, context.DeadlineExceeded) {
			t.Errorf("Commit hung until its context ended: %v", r.lastErr)
		}
		acked = append(acked, r.acked...)
		t.Logf("publisher stopped by: %v", r.lastErr)
	}
	closeCommitter(t, c)
	b.Close()

	// Everything acknowledged before the stop survives it.
	b2, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	st, err := b2.JetStream().Stream(ctx, s.Stream("STOP"))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range entryIDs(readRecords(t, st)) {
		stored[id] = true
	}
	for _, id := range acked {
		if !stored[id] {
			t.Errorf("acknowledged entry %s lost", id)
		}
	}
	t.Logf("%d entries acknowledged before the stop, %d stored", len(acked), len(stored))
}

// TestRestartDurability commits entries, closes the broker, starts a new one on the same
// store and finds every entry.
func TestRestartDurability(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	ctx := testContext(t)
	const n = 300
	b, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &brokertest.Server{Broker: b, Prefix: "T0"}
	_, subject := streamFor(t, s, "DURABLE")
	c := s.NewCommitter(subject, broker.CommitterOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Commit(ctx, broker.Entry{ID: fmt.Sprintf("d%03d", i), Body: []byte(fmt.Sprint(i))})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	closeCommitter(t, c)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer b2.Close()
	st, err := b2.JetStream().Stream(ctx, s.Stream("DURABLE"))
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	seen := map[string]bool{}
	for _, r := range readRecords(t, st) {
		for _, e := range r.entries {
			if e.ID != fmt.Sprintf("d%03s", e.Body) {
				t.Errorf("entry %s has body %q", e.ID, e.Body)
			}
			seen[e.ID] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d entries after restart, want %d", len(seen), n)
	}
}

// TestCommitAckTimeout: a record whose acknowledgement never comes fails its commits after
// AckTimeout and frees its slot for the next record.
func TestCommitAckTimeout(t *testing.T) {
	s := brokertest.New(t)
	subject := s.Subject("blackhole")
	// A plain subscriber takes the records and never answers, as a stuck server would.
	sub, err := s.Conn().SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c := s.NewCommitter(subject, broker.CommitterOptions{AckTimeout: 100 * time.Millisecond, MaxInFlight: 1})
	defer closeCommitter(t, c)
	for i := range 2 { // the second proves the first freed the only slot
		err := c.Commit(testContext(t), broker.Entry{ID: fmt.Sprint(i)})
		if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Errorf("commit %d: %v, want jetstream.ErrAsyncPublishTimeout", i, err)
		}
	}
}
