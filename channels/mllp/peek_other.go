//go:build !unix

package mllp

import "net"

// peek cannot look at a socket without reading it here, so a peer's close of an idle
// connection is found by the next Send instead.
func peek(net.Conn) peekResult { return peekUnknown }
