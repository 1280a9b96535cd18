package hl7v2

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every ParseError, so callers can test for a message that could
// not be parsed with errors.Is without caring where it broke.
var ErrMalformed = errors.New("hl7v2: malformed message")

// ErrPath is wrapped by the errors ParsePath returns for a path it cannot read.
var ErrPath = errors.New("hl7v2: invalid path")

// ErrReadOnly is returned by Set and Delete for MSH-1 and MSH-2 (the delimiters) and by
// Delete for the MSH segment: changing them would change how every other byte is read.
var ErrReadOnly = errors.New("hl7v2: element cannot be changed")

// ErrCharset is returned by Set when a value cannot be written in the message's character
// set (MSH-18), for example "€" in an 8859/1 message.
var ErrCharset = errors.New("hl7v2: value not representable in the message character set")

// Issue is an oddity a lenient Parse tolerated. ParseStrict turns the first one into a
// ParseError.
type Issue struct {
	Segment int    // 1-based index of the segment in the message, 0 when between segments
	Field   int    // HL7 field number (MSH-1 is the field separator), 0 when not about a field
	Offset  int    // byte offset in the input given to Parse
	Msg     string // what is odd, e.g. "trailing field separators"
}

func (i Issue) String() string {
	return location(i.Segment, "", i.Field, i.Offset) + i.Msg
}

// ParseError says where a message could not be parsed: segment index (1-based), HL7 field
// number and byte offset in the input.
type ParseError struct {
	Segment     int    // 1-based segment index, 0 when the error is not in a segment
	SegmentName string // e.g. "PID", "" when unknown
	Field       int    // HL7 field number, 0 when not about a field
	Offset      int    // byte offset in the input
	Msg         string
}

// Error formats the position the way analysts read it, e.g.
// "hl7v2: segment 3 (PID) field 5 at byte 120: unterminated escape sequence".
func (e *ParseError) Error() string {
	return "hl7v2: " + location(e.Segment, e.SegmentName, e.Field, e.Offset) + e.Msg
}

// Unwrap makes every ParseError match ErrMalformed.
func (e *ParseError) Unwrap() error { return ErrMalformed }

func location(seg int, name string, field, off int) string {
	s := ""
	if seg > 0 {
		s = fmt.Sprintf("segment %d ", seg)
		if name != "" {
			s += "(" + name + ") "
		}
	}
	if field > 0 {
		s += fmt.Sprintf("field %d ", field)
	}
	return s + fmt.Sprintf("at byte %d: ", off)
}
