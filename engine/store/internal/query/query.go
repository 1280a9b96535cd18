// Package query holds what both store implementations must do identically so that a
// search answers the same on SQLite and PostgreSQL: page sizes, the opaque keyset cursors,
// time precision and the case folding behind Query.Text.
package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/osprey-health/osprey/engine/store"
)

// Limit applies the documented page size rules.
func Limit(n int) int { return limit(n, store.MaxLimit) }

// limit is n with zero or less meaning store.DefaultLimit, capped at most.
func limit(n, most int) int {
	switch {
	case n <= 0:
		return store.DefaultLimit
	case n > most:
		return most
	}
	return n
}

// Time normalises t to what the store keeps: UTC, truncated to the microsecond (the
// precision of a PostgreSQL timestamptz, applied to SQLite too so both backends return
// the same instant and their cursors agree).
func Time(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// Micros is t as microseconds since the Unix epoch, the SQLite representation.
func Micros(t time.Time) int64 { return Time(t).UnixMicro() }

// FromMicros is the inverse of Micros, in UTC.
func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Cursor kinds keep a search cursor from being replayed against the dead letter list.
const (
	kindMessages    = "m"
	kindDeadLetters = "d"
)

// cursor is the position after the last row of a page, in sort-key order.
type cursor struct {
	Kind string `json:"k"`
	At   int64  `json:"t"`           // microseconds since the epoch
	ID   string `json:"i"`           // message id
	Dest string `json:"d,omitempty"` // destination, dead letters only
}

func encode(c cursor) string {
	b, err := json.Marshal(c)
	if err != nil {
		// A struct of strings and an int always marshals.
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decode(s, kind string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, store.ErrInvalidCursor
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Kind != kind || c.ID == "" {
		return c, store.ErrInvalidCursor
	}
	return c, nil
}

// MessageCursor is the cursor after a search row with these sort keys.
func MessageCursor(receivedAt time.Time, id string) string {
	return encode(cursor{Kind: kindMessages, At: Micros(receivedAt), ID: id})
}

// ParseMessageCursor reverses MessageCursor; anything else is store.ErrInvalidCursor.
func ParseMessageCursor(s string) (receivedAt time.Time, id string, err error) {
	c, err := decode(s, kindMessages)
	if err != nil {
		return time.Time{}, "", err
	}
	return FromMicros(c.At), c.ID, nil
}

// DeadLetterCursor is the cursor after a dead letter row with these sort keys.
func DeadLetterCursor(updatedAt time.Time, messageID, destination string) string {
	return encode(cursor{Kind: kindDeadLetters, At: Micros(updatedAt), ID: messageID, Dest: destination})
}

// ParseDeadLetterCursor reverses DeadLetterCursor; anything else is store.ErrInvalidCursor.
func ParseDeadLetterCursor(s string) (updatedAt time.Time, messageID, destination string, err error) {
	c, err := decode(s, kindDeadLetters)
	if err != nil {
		return time.Time{}, "", "", err
	}
	return FromMicros(c.At), c.ID, c.Dest, nil
}

// Fold is the text Query.Text is matched against: raw lower-cased with Unicode rules, so
// "MÜLLER" finds "Müller", with each byte that is not valid UTF-8, and each NUL, replaced
// by the one byte SUB (0x1a). That keeps Latin-1 or binary content searchable by its
// ASCII parts, storable in a PostgreSQL text column, and no larger than raw (U+FFFD
// would triple a binary body). The needle goes through the same function, which makes
// the match case-insensitive.
func Fold(raw []byte) string {
	// Fast path for the common case of plain ASCII HL7: one pass, one allocation.
	ascii := true
	for _, c := range raw {
		if asciiLower[c] == 0 {
			ascii = false
			break
		}
	}
	if ascii {
		b := make([]byte, len(raw))
		for i, c := range raw {
			b[i] = asciiLower[c]
		}
		return string(b)
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			b.WriteByte(sub)
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
		i += size
	}
	return b.String()
}

// sub replaces what Fold cannot keep.
const sub = 0x1a

// FoldString is Fold for a needle.
func FoldString(s string) string { return Fold([]byte(s)) }

// LikePrefix is a LIKE pattern matching strings that start with prefix, with the LIKE
// wildcards in prefix escaped by backslash (use ESCAPE '\').
func LikePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(prefix) + "%"
}

// GlobPrefix is a SQLite GLOB pattern (case-sensitive, unlike SQLite's LIKE) matching
// strings that start with prefix; its wildcards are made literal by bracketing them.
func GlobPrefix(prefix string) string {
	r := strings.NewReplacer(`*`, `[*]`, `?`, `[?]`, `[`, `[[]`)
	return r.Replace(prefix) + "*"
}

// Message applies the write defaults to m and checks it: a message needs an id; a zero
// ReceivedAt or UpdatedAt becomes now, an empty Status StatusReceived; times are
// normalised with Time.
func Message(m *store.Message, now time.Time) error {
	if m.ID == "" {
		return errors.New("message has no id")
	}
	if m.ReceivedAt.IsZero() {
		m.ReceivedAt = now
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = now
	}
	m.ReceivedAt, m.UpdatedAt = Time(m.ReceivedAt), Time(m.UpdatedAt)
	if m.Status == "" {
		m.Status = store.StatusReceived
	}
	return CheckStatus(m.Status)
}

// Stage applies the write defaults to a stage: a zero At becomes now.
func Stage(s *store.Stage, now time.Time) {
	if s.At.IsZero() {
		s.At = now
	}
	s.At = Time(s.At)
}

// Attempt applies the write defaults to a and checks it, with the delivery status it
// leaves behind: it needs a destination and a positive number; a zero At becomes now.
func Attempt(a *store.Attempt, status store.DeliveryStatus, now time.Time) error {
	if a.Destination == "" {
		return errors.New("attempt has no destination")
	}
	if a.Number < 1 {
		return fmt.Errorf("attempt number %d: must be 1 or more", a.Number)
	}
	if a.At.IsZero() {
		a.At = now
	}
	a.At = Time(a.At)
	return CheckDeliveryStatus(status)
}

// Delivery applies the write defaults to d and checks it: it needs a message id and a
// destination; an empty Status is DeliveryQueued; a zero UpdatedAt becomes now.
func Delivery(d *store.Delivery, now time.Time) error {
	if d.MessageID == "" || d.Destination == "" {
		return errors.New("delivery needs a message id and a destination")
	}
	if d.Status == "" {
		d.Status = store.DeliveryQueued
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = now
	}
	d.UpdatedAt = Time(d.UpdatedAt)
	return CheckDeliveryStatus(d.Status)
}

// CheckStatus reports whether s is one of the Status constants.
func CheckStatus(s store.Status) error {
	switch s {
	case store.StatusReceived, store.StatusRejected, store.StatusDuplicate, store.StatusFiltered,
		store.StatusQueued, store.StatusSent, store.StatusError:
		return nil
	}
	return fmt.Errorf("unknown message status %q", s)
}

// CheckDeliveryStatus reports whether s is one of the DeliveryStatus constants.
func CheckDeliveryStatus(s store.DeliveryStatus) error {
	switch s {
	case store.DeliveryQueued, store.DeliverySent, store.DeliveryDeadLetter:
		return nil
	}
	return fmt.Errorf("unknown delivery status %q", s)
}

// DefaultBatch is the Prune batch size used when the caller passes zero or less.
const DefaultBatch = 1000

// lowerBufs recycles the buffers ContainsFold lowers ASCII bodies into: a text search
// calls it once per row, and most bodies are plain ASCII HL7.
var lowerBufs = sync.Pool{New: func() any { return new([]byte) }}

// ContainsFold reports whether Fold(raw) contains folded, a needle already passed through
// FoldString, without allocating for ASCII bodies.
func ContainsFold(raw []byte, folded string) bool {
	bp := lowerBufs.Get().(*[]byte)
	defer lowerBufs.Put(bp)
	if cap(*bp) < len(raw) {
		*bp = make([]byte, len(raw))
	}
	b := (*bp)[:len(raw)]
	for i, c := range raw {
		l := asciiLower[c]
		if l == 0 {
			return strings.Contains(Fold(raw), folded)
		}
		b[i] = l
	}
	return bytes.Contains(b, []byte(folded))
}

// asciiLower maps ASCII bytes to lower case and everything Fold would change beyond
// that (NUL, bytes of multi-byte sequences) to 0.
var asciiLower = func() (t [256]byte) {
	for c := 1; c < utf8.RuneSelf; c++ {
		t[c] = byte(c)
		if 'A' <= c && c <= 'Z' {
			t[c] += 'a' - 'A'
		}
	}
	return t
}()
