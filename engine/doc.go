// Package engine is Osprey's runtime: the message model, the contracts sources and
// destinations implement, the component registry, and the channel runtime that carries a
// message from a source through filter and transforms to durable per-destination queues.
//
// The engine never imports a connector. Connectors (channels/...) register themselves into
// Global from init(); cmd/osprey imports channels/all for that side effect.
package engine
