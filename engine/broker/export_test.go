package broker

import "github.com/nats-io/nats-server/v2/server"

// ServerOf exposes the embedded server to the tests.
func ServerOf(b *Broker) *server.Server { return b.srv }
