package engine

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Message ids are 26-character, time-sortable identifiers (48 bits of milliseconds, then 80
// random bits, in Crockford base32, as ULIDs are): sorting ids sorts by arrival, and they are
// safe in URLs, file names and HL7 fields.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var idMu sync.Mutex

// NewID returns a new message id.
func NewID() string { return newIDAt(time.Now()) }

func newIDAt(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	idMu.Lock() // crypto/rand is safe concurrently; the lock only keeps ids from one ms distinct in order of issue
	_, _ = rand.Read(b[6:])
	idMu.Unlock()
	var sb strings.Builder
	sb.Grow(26)
	// 128 bits as 26 base32 digits, most significant first (the top 2 bits are padding).
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		shift := uint(i * 5)
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift > 59:
			v = lo>>shift | hi<<(64-shift)
		default:
			v = lo >> shift
		}
		sb.WriteByte(crockford[v&31])
	}
	return sb.String()
}
