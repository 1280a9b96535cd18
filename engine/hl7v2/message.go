package hl7v2

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// term is a segment terminator as it appeared in the input; Encode writes it back so the
// round trip is byte-identical.
type term uint8

const (
	termNone term = iota // the last segment of a message without a final terminator
	termCR
	termLF
	termCRLF
)

var terms = [...]string{"", "\r", "\n", "\r\n"}

type segment struct {
	data []byte // the segment without its terminator, in the message's character set
	off  int    // byte offset in the parsed input, -1 for segments added by Set
	term term
}

// Message is one HL7v2 message. Parsing records where the segments are and nothing more;
// fields, repetitions and components are found, unescaped and converted to UTF-8 only when
// asked for, so reading a few fields of a large message costs little.
//
// A Message is safe for concurrent readers (Get, Value, Encode, ...); Set and Delete need
// exclusive access.
type Message struct {
	d      Delimiters
	cs     *charset
	segs   []segment
	issues []Issue
	term   term // terminator for segments added by Set: the first segment's

	// inline holds the segments of a typical message, saving an allocation per parse.
	inline [12]segment
}

// Parse reads one message leniently: it accepts what a real interface sees (LF or CRLF
// terminators, mixed ones, blank lines, a byte order mark, trailing delimiters, a missing
// final terminator, unknown escape sequences, odd segment names, charset oddities) and
// records each oddity in Issues. It fails only when the message cannot be read at all: no
// MSH at the start, or MSH-1/MSH-2 not declaring usable delimiters. The error is then a
// *ParseError. Parse copies data; the caller may reuse it.
func Parse(data []byte) (*Message, error) {
	m, err := parse(data)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ParseStrict is Parse that treats every oddity Parse would record in Issues as an error,
// returned as a *ParseError naming the first one. It accepts exactly the messages for which
// Parse reports no issue.
func ParseStrict(data []byte) (*Message, error) {
	m, err := parse(data)
	if err != nil {
		return nil, err
	}
	if len(m.issues) > 0 {
		return nil, m.issueError(m.issues[0])
	}
	return m, nil
}

// Issues lists the oddities the lenient Parse tolerated, in input order.
func (m *Message) Issues() []Issue { return m.issues }

func (m *Message) issueError(is Issue) *ParseError {
	e := &ParseError{Segment: is.Segment, Field: is.Field, Offset: is.Offset, Msg: is.Msg}
	if is.Segment > 0 && is.Segment <= len(m.segs) {
		e.SegmentName = string(segName(m.segs[is.Segment-1].data, m.d.Field))
	}
	return e
}

// maxIssues bounds what a lenient parse records, so a hostile message (a megabyte of
// unknown escape sequences) cannot make it allocate without limit.
const maxIssues = 100

func (m *Message) addIssue(seg, field, off int, format string, args ...any) {
	switch {
	case len(m.issues) > maxIssues:
		return
	case len(m.issues) == maxIssues:
		m.issues = append(m.issues, Issue{Segment: seg, Field: field, Offset: off, Msg: "more issues not listed"})
		return
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	m.issues = append(m.issues, Issue{Segment: seg, Field: field, Offset: off, Msg: msg})
}

var (
	bom       = []byte{0xEF, 0xBB, 0xBF}
	mshPrefix = []byte("MSH")
)

func parse(data []byte) (*Message, *ParseError) {
	buf := make([]byte, len(data))
	copy(buf, data)
	m := &Message{}
	pos := 0
	if bytes.HasPrefix(buf, bom) {
		m.addIssue(0, 0, 0, "UTF-8 byte order mark before MSH")
		pos = len(bom)
	}
	if start := pos; pos < len(buf) && isSpaceOrFrame(buf[pos]) {
		for pos < len(buf) && isSpaceOrFrame(buf[pos]) {
			pos++
		}
		m.addIssue(0, 0, start, "blank lines, spaces or MLLP framing bytes before MSH")
	}
	rest := buf[pos:]
	if !bytes.HasPrefix(rest, mshPrefix) {
		msg := "no MSH segment at the start of the message"
		if bytes.HasPrefix(rest, []byte("FHS")) || bytes.HasPrefix(rest, []byte("BHS")) {
			msg = "input starts with a batch header; split it into messages with Split"
		}
		return nil, &ParseError{Segment: 1, SegmentName: lineName(rest), Offset: pos, Msg: msg}
	}
	d, perr := readDelimiters(buf, pos)
	if perr != nil {
		return nil, perr
	}
	m.d = d
	if n := bytes.Count(rest, []byte{'\r'}) + bytes.Count(rest, []byte{'\n'}) + 1; n <= len(m.inline) {
		m.segs = m.inline[:0]
	} else {
		m.segs = make([]segment, 0, n)
	}
	var seen [4]bool
	sc := lineScanner{b: buf, pos: pos, cr: -1, lf: -1}
	for {
		s, e, t, ok := sc.next()
		if !ok {
			break
		}
		if isBlank(buf[s:e]) {
			m.addIssue(0, 0, s, "blank line")
			continue
		}
		m.segs = append(m.segs, segment{data: buf[s:e], off: s, term: t})
		seen[t] = true
		m.checkSegment(len(m.segs))
	}
	m.term = m.segs[0].term
	if m.term == termNone {
		m.term = termCR
	}
	if n := btoi(seen[termCR]) + btoi(seen[termLF]) + btoi(seen[termCRLF]); n > 1 {
		m.addIssue(0, 0, 0, "mixed segment terminators (CR, LF, CRLF)")
	}
	if last := m.segs[len(m.segs)-1]; last.term == termNone {
		m.addIssue(len(m.segs), 0, last.off+len(last.data), "last segment has no terminator")
	}
	m.checkHeader(rest, pos)
	return m, nil
}

// readDelimiters reads MSH-1 and MSH-2 of the MSH starting at pos.
func readDelimiters(buf []byte, pos int) (Delimiters, *ParseError) {
	if len(buf)-pos < 8 {
		return Delimiters{}, &ParseError{Segment: 1, SegmentName: "MSH", Field: 1, Offset: pos,
			Msg: "MSH too short to declare the delimiters"}
	}
	fs := buf[pos+3]
	encStart := pos + 4
	e := encStart
	for e < len(buf) && buf[e] != fs && buf[e] != '\r' && buf[e] != '\n' {
		e++
	}
	enc := buf[encStart:e]
	if fs == '\r' || fs == '\n' {
		return Delimiters{}, &ParseError{Segment: 1, SegmentName: "MSH", Field: 1, Offset: pos + 3,
			Msg: "MSH-1 (field separator) missing"}
	}
	if len(enc) != 4 && len(enc) != 5 {
		return Delimiters{}, &ParseError{Segment: 1, SegmentName: "MSH", Field: 2, Offset: encStart,
			Msg: fmt.Sprintf("MSH-2 must hold 4 encoding characters (5 from v2.7), found %q", enc)}
	}
	d := Delimiters{Field: fs, Component: enc[0], Repetition: enc[1], Escape: enc[2], Subcomponent: enc[3]}
	if len(enc) == 5 {
		d.Truncation = enc[4]
	}
	if i, err := d.validate(); err != nil {
		pe := &ParseError{Segment: 1, SegmentName: "MSH", Field: 2, Offset: encStart + i - 1, Msg: err.Error()}
		if i == 0 {
			pe.Field, pe.Offset = 1, pos+3
		}
		return Delimiters{}, pe
	}
	return d, nil
}

// isVersion reports whether v looks like an HL7 version 2 version ID: 2.n or 2.n.n.
func isVersion(v []byte) bool {
	if len(v) < 3 || v[0] != '2' || v[1] != '.' {
		return false
	}
	dots, digits := 0, 0
	for _, c := range v[2:] {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0 && dots == 0:
			dots, digits = 1, 0
		default:
			return false
		}
	}
	return digits > 0
}

// checkHeader settles the character set and checks the MSH fields every message needs.
func (m *Message) checkHeader(body []byte, pos int) {
	msh := m.segs[0].data
	// One pass over the MSH: f[n] is MSH-n up to MSH-18, nil when absent.
	var f [19][]byte
	rest, n := msh[4:], 2
	for n <= 18 {
		i := bytes.IndexByte(rest, m.d.Field)
		if i < 0 {
			f[n] = rest
			break
		}
		f[n], rest = rest[:i], rest[i+1:]
		n++
	}
	off := func(n int) int {
		if f[n] == nil {
			return m.segs[0].off + len(msh)
		}
		return m.segs[0].off + cap(msh) - cap(f[n])
	}
	decl := f[18]
	if i := bytes.IndexByte(decl, m.d.Repetition); i >= 0 {
		decl = decl[:i]
	}
	cs, note := lookupCharset(decl, body)
	m.cs = cs
	if note != "" {
		at := off(18)
		switch {
		case cs.cm == nil && !utf8.Valid(body):
			at = pos + firstInvalidUTF8(body)
		case len(decl) == 0 || string(decl) == "ASCII":
			// The issue is about the content: point at the first byte that is not ASCII.
			for i, c := range body {
				if c >= 0x80 {
					at = pos + i
					break
				}
			}
		}
		m.addIssue(1, 18, at, "%s", note)
	}
	if len(f[9]) == 0 {
		m.addIssue(1, 9, off(9), "MSH-9 (message type) is empty")
	}
	if len(f[10]) == 0 {
		m.addIssue(1, 10, off(10), "MSH-10 (message control ID) is empty")
	}
	v := f[12]
	if i := bytes.IndexByte(v, m.d.Component); i >= 0 {
		v = v[:i]
	}
	switch {
	case len(f[12]) == 0:
		m.addIssue(1, 12, off(12), "MSH-12 (version ID) is empty")
	case !isVersion(v):
		m.addIssue(1, 12, off(12), "MSH-12 %q is not an HL7 version 2 version", v)
	}
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return 0
}

var segNameOK [256]bool

func init() {
	for c := 'A'; c <= 'Z'; c++ {
		segNameOK[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		segNameOK[c] = true
	}
}

// checkSegment records the oddities of segment si (1-based) that are cheap to see at parse
// time: its name, a second MSH, trailing field separators and broken escape sequences.
func (m *Message) checkSegment(si int) {
	s := m.segs[si-1]
	data, fs := s.data, m.d.Field
	name := segName(data, fs)
	if len(name) != 3 || !segNameOK[name[0]] || !segNameOK[name[1]] || !segNameOK[name[2]] || name[0] <= '9' {
		m.addIssue(si, 0, s.off, "invalid segment name %q", truncate(name, 20))
	}
	header := isHeader(data, fs)
	if si > 1 && header && string(name) == "MSH" {
		m.addIssue(si, 0, s.off, "second MSH: the input holds more than one message; use Split")
	}
	if data[len(data)-1] == fs && len(data) > len(name)+1+btoi(header)*4 {
		n := bytes.Count(data, []byte{fs})
		if header {
			n++
		}
		m.addIssue(si, n, s.off+len(data)-1, "trailing field separators")
	}
	skip := 0
	if header {
		skip = 4 + len(m.d.Encoding())
		if skip > len(data) {
			skip = len(data)
		}
	}
	if bytes.IndexByte(data[skip:], m.d.Escape) >= 0 {
		m.checkEscapes(si, skip)
	}
}

func (m *Message) checkEscapes(si, from int) {
	s := m.segs[si-1]
	data, d := s.data, &m.d
	for i := from; i < len(data); i++ {
		if data[i] != d.Escape {
			continue
		}
		j := i + 1
		for j < len(data) && data[j] != d.Escape && !d.isDelim(data[j]) {
			j++
		}
		if j >= len(data) || data[j] != d.Escape {
			m.addIssue(si, m.fieldAt(data, i), s.off+i, "unterminated escape sequence")
			i = j - 1
			continue
		}
		if seq := data[i+1 : j]; !knownSeq(seq, d) {
			m.addIssue(si, m.fieldAt(data, i), s.off+i, "unknown escape sequence %q (kept as is)", truncate(data[i:j+1], 20))
		}
		i = j
	}
}

// fieldAt is the HL7 field number that byte k of a segment belongs to.
func (m *Message) fieldAt(data []byte, k int) int {
	n := bytes.Count(data[:k], []byte{m.d.Field})
	if isHeader(data, m.d.Field) {
		n++
	}
	return n
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isSpaceOrFrame(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0x0b || c == 0x1c
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if !isSpaceOrFrame(c) {
			return false
		}
	}
	return true
}

// lineName is the segment name a line seems to start with (its leading letters and digits,
// when there are 2 to 4 of them), for error messages about lines that are not parsed.
func lineName(b []byte) string {
	n := 0
	for n < len(b) && n < 5 && isAlnum(b[n]) {
		n++
	}
	if n < 2 || n > 4 {
		return ""
	}
	return string(b[:n])
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		return b[:i]
	}
	return b
}

// lineScanner cuts a buffer at CR, LF and CRLF. It remembers the next CR and the next LF,
// so a file using only one of them is scanned once, not once per line.
type lineScanner struct {
	b           []byte
	pos, cr, lf int // cr/lf: index of the next CR/LF at or after pos, len(b) if none, -1 unknown
}

func (s *lineScanner) next() (start, end int, t term, ok bool) {
	if s.pos >= len(s.b) {
		return 0, 0, 0, false
	}
	if s.cr < s.pos {
		s.cr = indexFrom(s.b, s.pos, '\r')
	}
	if s.lf < s.pos {
		s.lf = indexFrom(s.b, s.pos, '\n')
	}
	start = s.pos
	switch {
	case s.cr == len(s.b) && s.lf == len(s.b):
		end, t, s.pos = len(s.b), termNone, len(s.b)
	case s.cr < s.lf:
		end = s.cr
		if s.cr+1 == s.lf && s.lf < len(s.b) {
			t, s.pos = termCRLF, s.cr+2
		} else {
			t, s.pos = termCR, s.cr+1
		}
	default:
		end, t, s.pos = s.lf, termLF, s.lf+1
	}
	return start, end, t, true
}

func indexFrom(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}
