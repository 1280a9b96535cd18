package mllp

// peekResult is what a look at an idle connection found.
type peekResult int

const (
	peekQuiet   peekResult = iota // open, nothing to read
	peekData                      // open, bytes waiting
	peekClosed                    // closed or reset by the peer
	peekUnknown                   // cannot tell on this platform or connection type
)
