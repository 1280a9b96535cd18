package broker

import "github.com/nats-io/nats-server/v2/server"

// ServerOf exposes the embedded server to the tests.
func ServerOf(b *Broker) *server.Server { return b.srv }

// HoldSlots makes c believe MaxInFlight records are in flight, so that commits queue up
// without being published, and returns the function that undoes it.
func HoldSlots(c *Committer) (release func()) {
	c.mu.Lock()
	c.inFlight += c.opts.MaxInFlight
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.inFlight -= c.opts.MaxInFlight
		c.cond.Signal()
		c.mu.Unlock()
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
