//go:build unix

package mllp

import (
	"errors"
	"net"
	"syscall"
)

// peek looks at a TCP connection without reading from it or waiting: MSG_PEEK leaves any
// data in the socket, MSG_DONTWAIT returns at once when there is none.
func peek(nc net.Conn) peekResult {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return peekUnknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekUnknown
	}
	var buf [1]byte
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness
	}); err != nil {
		return peekClosed
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
		return peekQuiet
	case rerr != nil, n == 0:
		return peekClosed // reset, or orderly shutdown by the peer
	}
	return peekData
}
