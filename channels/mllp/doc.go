// Package mllp is Osprey's HL7v2 connector over MLLP (the Minimal Lower Layer Protocol):
// a Source that listens for HL7 messages and acknowledges each one only after the engine
// has committed it, a Destination that delivers messages to a peer and waits for its ACK,
// the Client both the destination and `osprey send` use, and the framer underneath them.
//
// Importing the package registers "source.mllp" and "destination.mllp" in engine.Global.
//
// MLLP is synchronous: on one connection a peer sends a message and waits for its ACK before
// it sends the next. The Source serves many connections at once, one message at a time on
// each; the Destination keeps a small pool of connections, one message in flight on each.
package mllp
