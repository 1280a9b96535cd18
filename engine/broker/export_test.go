package broker

import "github.com/nats-io/nats-server/v2/server"

// ServerOf exposes the embedded server to the tests.
func ServerOf(b *Broker) *server.Server { return b.srv }

// HoldSlots takes every in-flight slot of c, so that commits queue up without being
// published, and returns the function that gives the slots back.
func HoldSlots(c *Committer) (release func()) {
	for range cap(c.slots) {
		c.slots <- struct{}{}
	}
	return func() {
		for range cap(c.slots) {
			<-c.slots
		}
	}
}

// Queued is the number of entries waiting in c's queue.
func Queued(c *Committer) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Closing reports whether Close was called on c.
func Closing(c *Committer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
