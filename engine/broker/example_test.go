package broker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/engine/broker"
)

// Commit messages from concurrent senders to a channel's inbound stream, then consume the
// records and unpack their entries.
func Example() {
	dir, err := os.MkdirTemp("", "osprey-nats")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	b, err := broker.Start(ctx, broker.Config{StoreDir: dir}, nil) // embedded, sync always
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	stream, err := b.EnsureStream(ctx, jetstream.StreamConfig{
		Name:      "OSPREY_IN_ADT",
		Subjects:  []string{"osprey.in.adt"},
		Retention: jetstream.WorkQueuePolicy,
	})
	if err != nil {
		log.Fatal(err)
	}

	c := b.NewCommitter("osprey.in.adt", broker.CommitterOptions{Stream: "OSPREY_IN_ADT"})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { // e.g. three MLLP connections
			defer wg.Done()
			err := c.Commit(ctx, broker.Entry{
				ID:      fmt.Sprintf("msg-%d", i),
				Headers: map[string]string{"content_type": "application/hl7-v2"},
				Body:    []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20240101120000||ADT^A01|" + fmt.Sprint(i) + "|P|2.5\r"),
			})
			if err != nil {
				log.Print(err) // the sender gets AR and retries
			}
			// nil: the message is on disk; answer AA.
		}()
	}
	wg.Wait()
	if err := c.Close(ctx); err != nil {
		log.Fatal(err)
	}

	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "processor", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		log.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		entries, err := broker.DecodeRecord(m.Data())
		if err != nil {
			log.Fatal(err) // a real consumer would dead-letter the record
		}
		n += len(entries)
		if err := m.Ack(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("entries consumed:", n)
	// Output: entries consumed: 3
}
