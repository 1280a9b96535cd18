package mllp_test

import (
	"context"
	"fmt"
	"log"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
)

// A source and a client on loopback: the source hands each message to a sink and answers
// with an ACK once the sink has decided; the client matches the ACK to its message.
func Example() {
	src, err := mllp.NewSource(mllp.SourceConfig{Address: "127.0.0.1:0"}, engine.Resources{Channel: "demo"})
	if err != nil {
		log.Fatal(err)
	}
	if err := src.Listen(); err != nil { // bind now, so Addr is known
		log.Fatal(err)
	}
	sink := engine.SinkFunc(func(_ context.Context, m *engine.Message) (engine.Receipt, error) {
		fmt.Printf("received %d bytes from the %s channel\n", len(m.Body), m.Channel)
		return engine.Receipt{ID: "1", Verdict: engine.Accepted}, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, sink) }()

	c, err := mllp.Dial(ctx, mllp.ClientConfig{Address: src.Addr().String()})
	if err != nil {
		log.Fatal(err)
	}
	msg := []byte("MSH|^~\\&|RIS|HOSP|OSPREY|HOSP|20260101120000||ADT^A01|MSG00001|P|2.5.1\rPID|1||12345^^^HOSP^MR\r")
	ack, _, err := c.Send(ctx, msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ack.Code, ack.ControlID)

	c.Close()
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// received 94 bytes from the demo channel
	// AA MSG00001
	// stopped: <nil>
}
