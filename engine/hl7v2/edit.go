package hl7v2

import (
	"bytes"
	"errors"
	"fmt"
)

// New returns a message holding only "MSH" and the delimiters d (MSH-1, MSH-2), to be
// filled with Set. Segments are terminated with CR.
func New(d Delimiters) (*Message, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	data := append([]byte{'M', 'S', 'H', d.Field}, d.Encoding()...)
	return &Message{d: d, cs: asciiCharset, term: termCR, segs: []segment{{data: data, off: -1, term: termCR}}}, nil
}

// Set writes value at path. The value is converted to the message's character set (an
// ErrCharset error when it has no such character) and escaped, so a delimiter or a line
// break in it stays data: Set("PID-5", "A^B") writes A\S\B; set components one by one,
// or use SetRaw for encoded text. Missing fields, repetitions and components are created;
// a missing segment is created after the last one of that name, or at the end of the
// message. Setting "" where nothing exists changes nothing. The segment changed is
// normalised: trailing empty fields, repetitions and components are dropped. MSH-1 and
// MSH-2 cannot be set (ErrReadOnly). Setting MSH-18 converts the whole message to the new
// character set.
func (m *Message) Set(path, value string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.SetAt(p, value)
}

// SetAt is Set for a path parsed with ParsePath.
func (m *Message) SetAt(p Path, value string) error {
	if p.Segment == "MSH" && p.Field == 18 && p.SegmentRep <= 1 {
		return m.setCharset(p, value)
	}
	enc, err := m.charset().encode(value)
	if err != nil {
		return fmt.Errorf("hl7v2: set %s: %w", p, err)
	}
	if err := m.set(p, appendEscaped(nil, enc, &m.d)); err != nil {
		return fmt.Errorf("hl7v2: set %s: %w", p, err)
	}
	return nil
}

// SetRaw writes value at path as already encoded text in the message's delimiters (UTF-8;
// it is converted to the message's character set): Set("PID-5", "DOE^JOHN") would escape
// the "^", SetRaw makes two components. The value must not hold a segment terminator, nor
// a delimiter of a level above the path (a field separator anywhere; a repetition
// separator in a repetition or below; ...), so it cannot change the structure around it.
func (m *Message) SetRaw(path, value string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.SetRawAt(p, value)
}

// SetRawAt is SetRaw for a path parsed with ParsePath.
func (m *Message) SetRawAt(p Path, value string) error {
	if p.Segment == "MSH" && p.Field == 18 {
		return fmt.Errorf("hl7v2: set %s: use Set for MSH-18", p)
	}
	enc, err := m.charset().encode(value)
	if err != nil {
		return fmt.Errorf("hl7v2: set %s: %w", p, err)
	}
	forbidden := []byte{'\r', '\n', m.d.Field}
	if p.FieldRep > 0 || p.Component > 0 || p.Subcomponent > 0 {
		forbidden = append(forbidden, m.d.Repetition)
	}
	if p.Component > 0 || p.Subcomponent > 0 {
		forbidden = append(forbidden, m.d.Component)
	}
	if p.Subcomponent > 0 {
		forbidden = append(forbidden, m.d.Subcomponent)
	}
	if i := bytes.IndexAny(enc, string(forbidden)); i >= 0 {
		return fmt.Errorf("hl7v2: set %s: raw value holds %q, a delimiter above this level", p, enc[i])
	}
	if err := m.set(p, enc); err != nil {
		return fmt.Errorf("hl7v2: set %s: %w", p, err)
	}
	return nil
}

// Delete clears the element at path. A segment path ("ZPI", "OBX[2]") removes that segment
// (the first of its name when no occurrence is given); the MSH cannot be removed. Deleting
// something absent is not an error.
func (m *Message) Delete(path string) error {
	p, err := ParsePath(path)
	if err != nil {
		return err
	}
	return m.DeleteAt(p)
}

// DeleteAt is Delete for a path parsed with ParsePath.
func (m *Message) DeleteAt(p Path) error {
	if p.Field > 0 {
		if err := m.set(p, nil); err != nil {
			return fmt.Errorf("hl7v2: delete %s: %w", p, err)
		}
		return nil
	}
	si := m.find(p.Segment, p.SegmentRep)
	if si < 0 {
		return nil
	}
	if si == 0 {
		return fmt.Errorf("hl7v2: delete %s: %w", p, ErrReadOnly)
	}
	last := si == len(m.segs)-1
	t := m.segs[si].term
	m.segs = append(m.segs[:si], m.segs[si+1:]...)
	if last {
		m.segs[len(m.segs)-1].term = t // keep the message's final-terminator style
	}
	return nil
}

var errNoMessage = errors.New("empty message; build one with Parse or New")

// set writes the encoded value enc at p, creating what is missing unless enc is empty.
func (m *Message) set(p Path, enc []byte) error {
	if len(m.segs) == 0 {
		return errNoMessage
	}
	if p.Field == 0 {
		return errors.New("path names a segment; Set needs a field")
	}
	if p.Subcomponent > 0 && p.Component == 0 {
		p.Component = 1
	}
	si := m.find(p.Segment, p.SegmentRep)
	if si < 0 {
		if len(enc) == 0 {
			return nil
		}
		if p.Segment == "MSH" {
			return errors.New("a message has one MSH")
		}
		si = m.addSegments(p.Segment, max(p.SegmentRep, 1))
	}
	s := &m.segs[si]
	fs := m.d.Field
	part := p.Field + 1 // part 1 of a segment split at the field separator is its name
	if isHeader(s.data, fs) {
		if p.Field <= 2 {
			return ErrReadOnly
		}
		part = p.Field // MSH-2 is part 2: MSH|^~\&|MSH-3
	}
	if len(enc) == 0 {
		if _, ok, _ := m.locateIn(s.data, p); !ok {
			return nil
		}
	}
	data := replacePart(s.data, fs, part, func(f []byte) []byte { return m.spliceField(f, p, enc) })
	s.data = bytes.TrimRight(data, string(fs)) // MSH-2 never ends in the field separator
	return nil
}

func (m *Message) spliceField(f []byte, p Path, enc []byte) []byte {
	if p.FieldRep == 0 && p.Component == 0 {
		return enc
	}
	d := &m.d
	out := replacePart(f, d.Repetition, max(p.FieldRep, 1), func(rep []byte) []byte {
		if p.Component == 0 {
			return enc
		}
		out := replacePart(rep, d.Component, p.Component, func(comp []byte) []byte {
			if p.Subcomponent == 0 {
				return enc
			}
			return bytes.TrimRight(replacePart(comp, d.Subcomponent, p.Subcomponent, func([]byte) []byte { return enc }), string(d.Subcomponent))
		})
		return bytes.TrimRight(out, string(d.Component))
	})
	return bytes.TrimRight(out, string(d.Repetition))
}

// replacePart returns a copy of b with part n (1-based) of b split at sep replaced by
// fn(part), adding separators when b has fewer parts.
func replacePart(b []byte, sep byte, n int, fn func([]byte) []byte) []byte {
	start, k := 0, 1
	for ; k < n; k++ {
		i := bytes.IndexByte(b[start:], sep)
		if i < 0 {
			break
		}
		start += i + 1
	}
	if k < n {
		nv := fn(nil)
		out := make([]byte, 0, len(b)+n-k+len(nv))
		out = append(out, b...)
		for ; k < n; k++ {
			out = append(out, sep)
		}
		return append(out, nv...)
	}
	end := len(b)
	if i := bytes.IndexByte(b[start:], sep); i >= 0 {
		end = start + i
	}
	nv := fn(b[start:end])
	out := make([]byte, 0, len(b)-(end-start)+len(nv))
	out = append(out, b[:start]...)
	out = append(out, nv...)
	return append(out, b[end:]...)
}

// addSegments appends empty segments named name until there are rep of them, after the
// last existing one (keeping a group together) or at the end, and returns the index of the
// last one added.
func (m *Message) addSegments(name string, rep int) int {
	at := len(m.segs)
	n := 0
	for i := range m.segs {
		if m.segs[i].is(name, m.d.Field) {
			at, n = i+1, n+1
		}
	}
	add := rep - n
	last := termNone
	if at == len(m.segs) && m.segs[at-1].term == termNone {
		// The message ends without a terminator: the new last segment keeps that style.
		m.segs[at-1].term = m.term
	} else {
		last = m.term
	}
	news := make([]segment, add)
	for i := range news {
		news[i] = segment{data: []byte(name), off: -1, term: m.term}
	}
	news[add-1].term = last
	m.segs = append(m.segs[:at], append(news, m.segs[at:]...)...)
	return at + add - 1
}

// setCharset changes MSH-18 and converts every segment to the new character set.
func (m *Message) setCharset(p Path, value string) error {
	if p.FieldRep > 1 || p.Component > 1 || p.Subcomponent > 1 {
		enc, err := m.charset().encode(value)
		if err != nil {
			return fmt.Errorf("hl7v2: set %s: %w", p, err)
		}
		return m.set(p, appendEscaped(nil, enc, &m.d))
	}
	to, _ := lookupCharset([]byte(value), nil)
	from := m.charset()
	segs := make([]segment, len(m.segs))
	copy(segs, m.segs)
	if from.cm != to.cm {
		for i := range segs {
			b, err := to.encode(from.decode(segs[i].data))
			if err != nil {
				return fmt.Errorf("hl7v2: set %s: converting %s: %w", p, segName(segs[i].data, m.d.Field), err)
			}
			segs[i].data = b
		}
	}
	old := m.segs
	m.segs = segs
	enc, err := to.encode(value)
	if err == nil {
		err = m.set(p, appendEscaped(nil, enc, &m.d))
	}
	if err != nil {
		m.segs = old
		return fmt.Errorf("hl7v2: set %s: %w", p, err)
	}
	m.cs = to
	return nil
}
