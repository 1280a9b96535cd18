package hl7v2

import (
	"bytes"
	"fmt"
)

// segName is the segment's name: the bytes before the first field separator.
func segName(data []byte, fs byte) []byte {
	if i := bytes.IndexByte(data, fs); i >= 0 {
		return data[:i]
	}
	return data
}

// isHeader reports whether data is an MSH, BHS or FHS segment, whose field 1 is the field
// separator itself and field 2 the encoding characters.
func isHeader(data []byte, fs byte) bool {
	if len(data) < 4 || data[3] != fs {
		return false
	}
	switch string(data[:3]) {
	case "MSH", "BHS", "FHS":
		return true
	}
	return false
}

// is reports whether the segment is named name.
func (s *segment) is(name string, fs byte) bool {
	d := s.data
	return len(d) >= len(name) && string(d[:len(name)]) == name && (len(d) == len(name) || d[len(name)] == fs)
}

// shortScan is how far indexByte looks byte by byte before handing over to
// bytes.IndexByte: HL7 elements are mostly a few bytes long, where a plain loop beats the
// vectorised search's setup, but an OBX-5 can hold megabytes.
const shortScan = 32

func indexByte(b []byte, c byte) int {
	n := min(len(b), shortScan)
	for i := 0; i < n; i++ {
		if b[i] == c {
			return i
		}
	}
	if len(b) <= shortScan {
		return -1
	}
	if j := bytes.IndexByte(b[shortScan:], c); j >= 0 {
		return shortScan + j
	}
	return -1
}

// nthPart returns part n (1-based) of b split at sep, and whether b has that many parts.
// It walks b once; a part longer than shortScan is skipped with bytes.IndexByte.
func nthPart(b []byte, sep byte, n int) ([]byte, bool) {
	k, start := 1, 0
	for i := 0; i < len(b); i++ {
		if b[i] != sep {
			if i-start != shortScan {
				continue
			}
			j := bytes.IndexByte(b[i:], sep)
			if j < 0 {
				break
			}
			i += j
		}
		if k == n {
			return b[start:i], true
		}
		k, start = k+1, i+1
	}
	if k == n {
		return b[start:], true
	}
	return nil, false
}

// countParts is the number of parts of b split at sep (an empty b is one empty part).
func countParts(b []byte, sep byte) int {
	return bytes.Count(b, []byte{sep}) + 1
}

// field returns field n (HL7 numbering) of a segment, and whether the segment has it.
func (m *Message) field(data []byte, n int) ([]byte, bool) {
	fs := m.d.Field
	if isHeader(data, fs) {
		if n == 1 {
			return data[3:4], true
		}
		return nthPart(data[4:], fs, n-1)
	}
	i := indexByte(data, fs)
	if i < 0 {
		return nil, false
	}
	return nthPart(data[i+1:], fs, n)
}

// numFields is the highest field number a segment has.
func (m *Message) numFields(data []byte) int {
	n := bytes.Count(data, []byte{m.d.Field})
	if isHeader(data, m.d.Field) {
		n++
	}
	return n
}

// find returns the index of occurrence rep (1-based, 0 = first) of segment name, or -1.
func (m *Message) find(name string, rep int) int {
	if rep == 0 {
		rep = 1
	}
	for i := range m.segs {
		if m.segs[i].is(name, m.d.Field) {
			if rep--; rep == 0 {
				return i
			}
		}
	}
	return -1
}

// locateIn finds the element p names inside a segment (p.Segment and p.SegmentRep are not
// looked at). verbatim reports an element that must not be unescaped: a whole segment,
// MSH-1 or MSH-2.
func (m *Message) locateIn(data []byte, p Path) (raw []byte, present, verbatim bool) {
	if p.Field == 0 {
		return data, true, true
	}
	f, ok := m.field(data, p.Field)
	if !ok {
		return nil, false, false
	}
	if p.Field <= 2 && isHeader(data, m.d.Field) {
		if p.FieldRep > 1 || p.Component > 1 || p.Subcomponent > 1 {
			return nil, false, false
		}
		return f, true, true
	}
	if p.FieldRep == 0 && p.Component == 0 && p.Subcomponent == 0 {
		return f, true, false
	}
	rep, ok := nthPart(f, m.d.Repetition, max(p.FieldRep, 1))
	if !ok {
		return nil, false, false
	}
	if p.Component == 0 && p.Subcomponent == 0 {
		return rep, true, false
	}
	comp, ok := nthPart(rep, m.d.Component, max(p.Component, 1))
	if !ok || p.Subcomponent == 0 {
		return comp, ok, false
	}
	sub, ok := nthPart(comp, m.d.Subcomponent, p.Subcomponent)
	return sub, ok, false
}

func (m *Message) locate(p Path) (raw []byte, present, verbatim bool) {
	si := m.find(p.Segment, p.SegmentRep)
	if si < 0 {
		return nil, false, false
	}
	return m.locateIn(m.segs[si].data, p)
}

func (m *Message) charset() *charset {
	if m.cs == nil {
		return utf8Charset
	}
	return m.cs
}

// Get returns the value at an HL7 path, unescaped and in UTF-8, or "" when the path is
// absent or invalid. A path naming a structured element returns it with its delimiters:
// Get("PID-5") of "DOE^JOHN" is "DOE^JOHN", each part unescaped; Get("PID-3") holds every
// repetition, Get("PID-3.1") is component 1 of the first. Use Raw for the encoded form
// and Value to tell an empty element from an absent one. MSH-1 is the field separator
// and MSH-2 the encoding characters, both verbatim; a segment path ("PID") returns the
// segment as encoded. The HL7 null `""` is returned as the two characters `""`.
func (m *Message) Get(path string) string {
	v, _, _ := m.Value(path)
	return v
}

// Value is Get that also reports whether the element is present (the segment exists and
// the delimiters reach the element, even when it is empty: in "PID|1||" PID-2 is present
// and empty, PID-3 absent) and whether the path is valid.
func (m *Message) Value(path string) (string, bool, error) {
	p, err := ParsePath(path)
	if err != nil {
		return "", false, err
	}
	v, ok := m.At(p)
	return v, ok, nil
}

// At is Value for a path parsed once with ParsePath, for code reading the same paths from
// many messages.
func (m *Message) At(p Path) (string, bool) {
	raw, ok, verbatim := m.locate(p)
	if !ok {
		return "", false
	}
	if !verbatim {
		raw = unescapeBytes(raw, &m.d)
	}
	return m.charset().decode(raw), true
}

// Raw returns the element at path as encoded in the message, escape sequences and
// delimiters intact (converted to UTF-8), "" when absent or invalid. It is lossless where
// Get of a structured element is not: a component holding an escaped "^" reads as a
// separator in Get but as \S\ in Raw.
func (m *Message) Raw(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	return m.RawAt(p)
}

// RawAt is Raw for a path parsed with ParsePath.
func (m *Message) RawAt(p Path) string {
	raw, ok, _ := m.locate(p)
	if !ok {
		return ""
	}
	return m.charset().decode(raw)
}

// Type returns MSH-9.1, the message code, e.g. "ADT".
func (m *Message) Type() string { return m.Get("MSH-9.1") }

// Event returns MSH-9.2, the trigger event, e.g. "A01".
func (m *Message) Event() string { return m.Get("MSH-9.2") }

// ControlID returns MSH-10, the message control ID the ACK's MSA-2 must echo.
func (m *Message) ControlID() string { return m.Get("MSH-10") }

// Version returns MSH-12.1, the version ID, e.g. "2.5.1".
func (m *Message) Version() string { return m.Get("MSH-12.1") }

// Charset returns the first repetition of MSH-18 as declared ("" when absent, which HL7
// reads as ASCII).
func (m *Message) Charset() string { return m.charset().name }

// Delimiters returns the delimiters the message declares in MSH-1 and MSH-2.
func (m *Message) Delimiters() Delimiters { return m.d }

// Count returns the number of segments named segment.
func (m *Message) Count(segment string) int {
	n := 0
	for i := range m.segs {
		if m.segs[i].is(segment, m.d.Field) {
			n++
		}
	}
	return n
}

// Segments returns the segments in order. The slice is a snapshot: after Set or Delete
// adds or removes segments, call Segments again.
func (m *Message) Segments() []Segment {
	s := make([]Segment, len(m.segs))
	for i := range s {
		s[i] = Segment{m: m, i: i}
	}
	return s
}

// Encode returns the message as bytes in its own character set and delimiters, each
// segment followed by the terminator it had (segments added by Set get the first segment's
// terminator). For a well-formed input Encode(Parse(b)) is byte-identical to b; what a
// lenient parse dropped (byte order mark, blank lines, bytes before MSH) is not written.
func (m *Message) Encode() []byte {
	n := 0
	for i := range m.segs {
		n += len(m.segs[i].data) + len(terms[m.segs[i].term])
	}
	out := make([]byte, 0, n)
	for i := range m.segs {
		out = append(out, m.segs[i].data...)
		out = append(out, terms[m.segs[i].term]...)
	}
	return out
}

// Segment is one segment of a message, valid until Set or Delete adds or removes segments.
type Segment struct {
	m *Message
	i int
}

func (s Segment) data() []byte { return s.m.segs[s.i].data }

// Name returns the segment name, e.g. "PID".
func (s Segment) Name() string { return string(segName(s.data(), s.m.d.Field)) }

// Index returns the 1-based position of the segment in the message.
func (s Segment) Index() int { return s.i + 1 }

// Offset returns the byte offset of the segment in the parsed input, -1 for a segment
// added by Set.
func (s Segment) Offset() int { return s.m.segs[s.i].off }

// NumFields returns the highest field number the segment has (MSH counts MSH-1).
func (s Segment) NumFields() int { return s.m.numFields(s.data()) }

// Field returns field i unescaped, with Get's rules ("" when absent); field 0 is the
// segment name.
func (s Segment) Field(i int) string {
	v, _ := s.Value(i, 0, 0, 0)
	return v
}

// Value returns the element at field, repetition, component and subcomponent (1-based; 0 =
// not given, as in Path) unescaped, and whether it is present.
func (s Segment) Value(field, rep, comp, sub int) (string, bool) {
	if field <= 0 {
		return s.Name(), true
	}
	raw, ok, verbatim := s.m.locateIn(s.data(), Path{Field: field, FieldRep: rep, Component: comp, Subcomponent: sub})
	if !ok {
		return "", false
	}
	if !verbatim {
		raw = unescapeBytes(raw, &s.m.d)
	}
	return s.m.charset().decode(raw), true
}

// Repetitions returns how many repetitions field i has (0 when absent). MSH-1 and MSH-2
// have one.
func (s Segment) Repetitions(field int) int {
	raw, ok, verbatim := s.m.locateIn(s.data(), Path{Field: field})
	switch {
	case !ok:
		return 0
	case verbatim:
		return 1
	}
	return countParts(raw, s.m.d.Repetition)
}

// Components returns how many components repetition rep (1-based) of field i has.
func (s Segment) Components(field, rep int) int {
	raw, ok, verbatim := s.m.locateIn(s.data(), Path{Field: field, FieldRep: max(rep, 1)})
	switch {
	case !ok:
		return 0
	case verbatim:
		return 1
	}
	return countParts(raw, s.m.d.Component)
}

// Subcomponents returns how many subcomponents component comp of repetition rep of field
// i has.
func (s Segment) Subcomponents(field, rep, comp int) int {
	raw, ok, verbatim := s.m.locateIn(s.data(), Path{Field: field, FieldRep: max(rep, 1), Component: max(comp, 1)})
	switch {
	case !ok:
		return 0
	case verbatim:
		return 1
	}
	return countParts(raw, s.m.d.Subcomponent)
}

// Raw returns the segment as encoded (converted to UTF-8), without its terminator.
func (s Segment) Raw() string { return s.m.charset().decode(s.data()) }

// String returns the segment as encoded, like Raw.
func (s Segment) String() string { return s.Raw() }

var _ fmt.Stringer = Segment{}
