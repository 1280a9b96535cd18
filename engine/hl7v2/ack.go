package hl7v2

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// AckCode is MSA-1, HL7 table 0008.
type AckCode string

// The acknowledgment codes. Original mode answers with the application codes; enhanced
// mode (see EnhancedMode) answers receipt with the commit codes and may follow with an
// application acknowledgment.
const (
	ApplicationAccept AckCode = "AA"
	ApplicationError  AckCode = "AE"
	ApplicationReject AckCode = "AR"
	CommitAccept      AckCode = "CA"
	CommitError       AckCode = "CE"
	CommitReject      AckCode = "CR"
)

// Valid reports whether c is one of the six codes of table 0008.
func (c AckCode) Valid() bool {
	switch c {
	case ApplicationAccept, ApplicationError, ApplicationReject, CommitAccept, CommitError, CommitReject:
		return true
	}
	return false
}

// Accepted reports whether c says the message was accepted (AA or CA).
func (c AckCode) Accepted() bool { return c == ApplicationAccept || c == CommitAccept }

// ErrNoMSA is returned by ReadAck for a message without an MSA segment.
var ErrNoMSA = errors.New("hl7v2: no MSA segment: not an acknowledgment")

// AckError is one ERR segment.
type AckError struct {
	Code     int    // HL7 table 0357: 0 accepted, 100 segment sequence error, 101 required field missing, 102 data type error, 103 table value not found, 104 value too long, 200 unsupported message type, 201 unsupported event code, 202 unsupported processing id, 203 unsupported version id, 204 unknown key identifier, 205 duplicate key identifier, 206 application record locked, 207 application internal error
	Severity string // ERR-4, table 0516: E error (the default), W warning, I information
	Location string // ERR-2 as an HL7 path like "PID-3" or "OBX[2]-5", "" for none
	Text     string // ERR-8, the user message
}

// table0357 holds the texts HL7 gives the error codes, written in ERR-3.2.
var table0357 = map[int]string{
	0:   "Message accepted",
	100: "Segment sequence error",
	101: "Required field missing",
	102: "Data type error",
	103: "Table value not found",
	104: "Value too long",
	200: "Unsupported message type",
	201: "Unsupported event code",
	202: "Unsupported processing id",
	203: "Unsupported version id",
	204: "Unknown key identifier",
	205: "Duplicate key identifier",
	206: "Application record locked",
	207: "Application internal error",
}

// ErrorText returns the HL7 table 0357 text for an error code, "" when unknown.
func ErrorText(code int) string { return table0357[code] }

// AckOptions tune NewAck and AckBytes.
type AckOptions struct {
	ControlID       string     // MSH-10 of the ACK; "" generates a unique one
	Now             time.Time  // MSH-7; zero means time.Now()
	Text            string     // MSA-3, the text message
	Errors          []AckError // one ERR segment each
	SendingApp      string     // MSH-3 of the ACK; "" means the original's MSH-5
	SendingFacility string     // MSH-4 of the ACK; "" means the original's MSH-6
}

// ackSource is what an ACK copies from the message it answers, as encoded bytes.
type ackSource struct {
	d                                  Delimiters
	cs                                 *charset
	sendApp, sendFac, recvApp, recvFac []byte // MSH-3..6 of the original
	event, controlID, procID, version  []byte // MSH-9.2, MSH-10, MSH-11, MSH-12
	charsets                           []byte // MSH-18
}

// NewAck builds the acknowledgment of orig: an MSH with sender and receiver swapped (MSH-3/4
// from the original's MSH-5/6 unless opts overrides them, MSH-5/6 from its MSH-3/4), a new
// control ID, the original's processing ID, version, character set and delimiters, MSH-9
// "ACK^<event>^ACK"; an MSA with code, the original's MSH-10 and opts.Text; an ERR segment
// per opts.Errors in the v2.5 layout (ERR-2 location, ERR-3 code^text^HL70357, ERR-4
// severity, ERR-8 text), with ERR-1 filled as well for versions before 2.5. Texts are
// escaped; characters the message's character set lacks become "?". orig may be nil.
func NewAck(orig *Message, code AckCode, opts AckOptions) *Message {
	src := newAckSource(orig)
	return buildAck(&src, code, opts)
}

// AckFor is NewAck(orig, code, opts).Encode() without building the Message: the bytes an
// MLLP source writes back, on the hot path of every message it receives.
func AckFor(orig *Message, code AckCode, opts AckOptions) []byte {
	src := newAckSource(orig)
	return ackBytes(&src, code, opts)
}

// The MSH paths an ACK copies, parsed once.
var (
	pathMSH3, pathMSH4, pathMSH5, pathMSH6 = mustPath("MSH-3"), mustPath("MSH-4"), mustPath("MSH-5"), mustPath("MSH-6")
	pathMSH9e, pathMSH10, pathMSH11        = mustPath("MSH-9.2"), mustPath("MSH-10"), mustPath("MSH-11")
	pathMSH12, pathMSH18                   = mustPath("MSH-12"), mustPath("MSH-18")
)

func mustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

func newAckSource(orig *Message) ackSource {
	if orig == nil || len(orig.segs) == 0 {
		return ackSource{d: DefaultDelimiters, cs: asciiCharset}
	}
	raw := func(p Path) []byte {
		b, _, _ := orig.locate(p)
		return b
	}
	return ackSource{
		d: orig.d, cs: orig.charset(),
		sendApp: raw(pathMSH3), sendFac: raw(pathMSH4), recvApp: raw(pathMSH5), recvFac: raw(pathMSH6),
		event: raw(pathMSH9e), controlID: raw(pathMSH10), procID: raw(pathMSH11), version: raw(pathMSH12),
		charsets: raw(pathMSH18),
	}
}

func buildAck(src *ackSource, code AckCode, opts AckOptions) *Message {
	m, err := Parse(ackBytes(src, code, opts))
	if err != nil {
		// Unreachable: the header is built from delimiters a parse accepted. Answer anyway.
		ctrl := opts.ControlID
		if ctrl == "" {
			ctrl = newControlID()
		}
		m, _ = Parse([]byte("MSH|^~\\&|||||||ACK|" + string(appendEscaped(nil, []byte(ctrl), &DefaultDelimiters)) + "|P|2.5\rMSA|" + string(code) + "\r"))
	}
	return m
}

func ackBytes(src *ackSource, code AckCode, opts AckOptions) []byte {
	d, cs := &src.d, src.cs
	text := func(s string) []byte { return appendEscaped(nil, encodeLossy(cs, s), d) }
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ctrl := opts.ControlID
	if ctrl == "" {
		ctrl = newControlID()
	}
	sendApp, sendFac := src.recvApp, src.recvFac
	if opts.SendingApp != "" {
		sendApp = text(opts.SendingApp)
	}
	if opts.SendingFacility != "" {
		sendFac = text(opts.SendingFacility)
	}
	procID := src.procID
	if len(procID) == 0 {
		procID = []byte("P")
	}
	version := src.version
	if len(version) == 0 {
		version = []byte("2.5")
	}
	var b bytes.Buffer
	fs := []byte{d.Field}
	b.WriteString("MSH")
	b.WriteByte(d.Field)
	b.WriteString(d.Encoding())
	for _, f := range [][]byte{sendApp, sendFac, src.sendApp, src.sendFac, []byte(now.Format("20060102150405-0700")), nil} {
		b.Write(fs)
		b.Write(f)
	}
	b.Write(fs)
	b.WriteString("ACK")
	if len(src.event) > 0 {
		b.WriteByte(d.Component)
		b.Write(src.event)
		b.WriteByte(d.Component)
		b.WriteString("ACK")
	}
	for _, f := range [][]byte{text(ctrl), procID, version} {
		b.Write(fs)
		b.Write(f)
	}
	if len(src.charsets) > 0 {
		b.Write(bytes.Repeat(fs, 6))
		b.Write(src.charsets)
	}
	b.WriteByte('\r')

	b.WriteString("MSA")
	b.Write(fs)
	b.Write(text(string(code)))
	if len(src.controlID) > 0 || opts.Text != "" {
		b.Write(fs)
		b.Write(src.controlID)
	}
	if opts.Text != "" {
		b.Write(fs)
		b.Write(text(opts.Text))
	}
	b.WriteByte('\r')

	old := versionBefore25(version, d)
	for _, e := range opts.Errors {
		writeErr(&b, e, old, d, text)
	}
	return b.Bytes()
}

func writeErr(b *bytes.Buffer, e AckError, old bool, d *Delimiters, text func(string) []byte) {
	sev := e.Severity
	if sev == "" {
		sev = "E"
	}
	codeStr := strconv.Itoa(e.Code)
	codeText := table0357[e.Code]
	var loc []string // ERL components: segment, sequence, field, repetition, component, subcomponent
	if p, err := ParsePath(e.Location); err == nil {
		loc = []string{p.Segment, strconv.Itoa(max(p.SegmentRep, 1))}
		for _, n := range []int{p.Field, p.FieldRep, p.Component, p.Subcomponent} {
			if n == 0 {
				break
			}
			loc = append(loc, strconv.Itoa(n))
		}
	}
	b.WriteString("ERR")
	b.WriteByte(d.Field)
	if old {
		// ERR-1 (ELD, before v2.5): segment^sequence^field^code&text&HL70357.
		for i := 0; i < 3; i++ {
			if i < len(loc) {
				b.WriteString(loc[i])
			}
			b.WriteByte(d.Component)
		}
		b.WriteString(codeStr)
		b.WriteByte(d.Subcomponent)
		b.Write(appendEscaped(nil, codeText, d))
		b.WriteByte(d.Subcomponent)
		b.WriteString("HL70357")
	}
	b.WriteByte(d.Field)
	for i, c := range loc {
		if i > 0 {
			b.WriteByte(d.Component)
		}
		b.WriteString(c)
	}
	b.WriteByte(d.Field)
	b.WriteString(codeStr)
	b.WriteByte(d.Component)
	b.Write(appendEscaped(nil, codeText, d))
	b.WriteByte(d.Component)
	b.WriteString("HL70357")
	b.WriteByte(d.Field)
	b.Write(text(sev))
	if e.Text != "" {
		b.Write(bytes.Repeat([]byte{d.Field}, 4))
		b.Write(text(e.Text))
	}
	b.WriteByte('\r')
}

// versionBefore25 reports whether MSH-12 names a version older than 2.5, whose ERR segment
// has only ERR-1.
func versionBefore25(v []byte, d *Delimiters) bool {
	if i := bytes.IndexByte(v, d.Component); i >= 0 {
		v = v[:i]
	}
	if !isVersion(v) {
		return false
	}
	minor := v[2:]
	if i := bytes.IndexByte(minor, '.'); i >= 0 {
		minor = minor[:i]
	}
	n, err := strconv.Atoi(string(minor))
	return err == nil && n < 5
}

// encodeLossy converts s to the character set, writing "?" for what it cannot hold; an ACK
// must always be produced.
func encodeLossy(cs *charset, s string) []byte {
	if b, err := cs.encode(s); err == nil {
		return b
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, err := cs.encode(string(r)); err == nil && r != utf8.RuneError {
			out = append(out, b...)
		} else {
			out = append(out, '?')
		}
	}
	return out
}

const controlIDAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// newControlID returns 20 random characters (100 bits): unique without coordination and
// within the 20 characters MSH-10 allows before v2.7.
func newControlID() string {
	// math/rand/v2's global source is ChaCha8 seeded from the OS: 100 random bits make a
	// repeat practically impossible without a getrandom system call on every ACK.
	var r [20]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range r {
		if i < 12 {
			r[i] = controlIDAlphabet[a&31]
			a >>= 5
		} else {
			r[i] = controlIDAlphabet[b&31]
			b >>= 5
		}
	}
	return string(r[:])
}

// EnhancedMode reports whether m asks for enhanced acknowledgment: MSH-15 (accept
// acknowledgment type) or MSH-16 (application acknowledgment type) is valued. The receiver
// then answers receipt with a commit code (CA, CE, CR) instead of AA, AE, AR.
func EnhancedMode(m *Message) bool {
	if m == nil {
		return false
	}
	return m.Get("MSH-15") != "" || m.Get("MSH-16") != ""
}

// AckBytes acknowledges raw bytes that may not parse. When they do, it is NewAck. When they
// do not, it salvages what it can of the MSH (delimiters, MSH-3..6, MSH-10, MSH-11, MSH-12,
// MSH-18) and builds the ACK from that, so the sender always gets a well-formed answer to
// correlate (MSA-2 is empty when no control ID was found).
func AckBytes(raw []byte, code AckCode, opts AckOptions) []byte {
	if m, err := Parse(raw); err == nil {
		return NewAck(m, code, opts).Encode()
	}
	src := salvage(raw)
	return buildAck(&src, code, opts).Encode()
}

// salvage reads an MSH as far as it goes.
func salvage(raw []byte) ackSource {
	src := ackSource{d: DefaultDelimiters, cs: asciiCharset}
	i := bytes.Index(raw, mshPrefix)
	if i < 0 {
		return src
	}
	line := firstLine(raw[i:])
	if len(line) < 4 {
		return src
	}
	d := DefaultDelimiters
	d.Field = line[3]
	if rest := line[4:]; len(rest) >= 4 {
		e := bytes.IndexByte(rest, d.Field)
		if e < 0 {
			e = len(rest)
		}
		if enc := rest[:e]; len(enc) == 4 || len(enc) == 5 {
			d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
			if len(enc) == 5 {
				d.Truncation = enc[4]
			}
		}
	}
	if d.Validate() != nil {
		d = DefaultDelimiters
		d.Field = line[3]
		if d.Validate() != nil {
			return src // not even the field separator is usable
		}
	}
	src.d = d
	parts := bytes.Split(line[4:], []byte{d.Field}) // parts[0] is MSH-2, parts[k] MSH-(k+2)
	get := func(n int) []byte {
		if n-2 < len(parts) {
			return sanitize(parts[n-2])
		}
		return nil
	}
	src.sendApp, src.sendFac, src.recvApp, src.recvFac = get(3), get(4), get(5), get(6)
	src.controlID, src.procID, src.version, src.charsets = get(10), get(11), get(12), get(18)
	if t := get(9); len(t) > 0 {
		if ev, ok := nthPart(t, d.Component, 2); ok {
			src.event = ev
		}
	}
	decl := src.charsets
	if k := bytes.IndexByte(decl, d.Repetition); k >= 0 {
		decl = decl[:k]
	}
	src.cs, _ = lookupCharset(decl, raw)
	return src
}

// sanitize drops control bytes from a salvaged value: they have no place in an MSH and an
// MLLP framing byte would break the ACK's frame.
func sanitize(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= ' ' && c != 0x7f {
			out = append(out, c)
		}
	}
	return out
}

// Ack is what ReadAck finds in an acknowledgment.
type Ack struct {
	Code      AckCode    // MSA-1
	ControlID string     // MSA-2: MSH-10 of the message acknowledged
	Text      string     // MSA-3
	Errors    []AckError // one per ERR segment (or per ERR-1 repetition before v2.5)
}

// ReadAck reads the MSA and ERR segments of an acknowledgment. It understands the v2.5 ERR
// layout and, when ERR-3 is empty, the older ERR-1. The error is ErrNoMSA when m has no MSA.
func ReadAck(m *Message) (Ack, error) {
	if m == nil || m.find("MSA", 1) < 0 {
		return Ack{}, ErrNoMSA
	}
	a := Ack{Code: AckCode(m.Get("MSA-1")), ControlID: m.Get("MSA-2"), Text: m.Get("MSA-3")}
	for _, s := range m.Segments() {
		if s.Name() != "ERR" {
			continue
		}
		if s.Field(3) != "" || s.Field(1) == "" {
			code, _ := strconv.Atoi(fieldVal(s, 3, 1, 1))
			e := AckError{Code: code, Severity: s.Field(4), Text: s.Field(8)}
			if e.Text == "" {
				e.Text = fieldVal(s, 3, 1, 2)
			}
			e.Location = erlPath(s, 2, 1)
			a.Errors = append(a.Errors, e)
			continue
		}
		for r := 1; r <= s.Repetitions(1); r++ { // ERR-1 ELD: segment^sequence^field^code&text
			code, _ := s.Value(1, r, 4, 1)
			n, _ := strconv.Atoi(code)
			text, _ := s.Value(1, r, 4, 2)
			a.Errors = append(a.Errors, AckError{Code: n, Severity: s.Field(4), Location: erlPath(s, 1, r), Text: text})
		}
	}
	return a, nil
}

func fieldVal(s Segment, field, rep, comp int) string {
	v, _ := s.Value(field, rep, comp, 0)
	return v
}

// erlPath turns an ERL (or the first three components of an ELD) into a path.
func erlPath(s Segment, field, rep int) string {
	name := fieldVal(s, field, rep, 1)
	if len(name) != 3 {
		return ""
	}
	p := Path{Segment: name}
	nums := []*int{&p.SegmentRep, &p.Field, &p.FieldRep, &p.Component, &p.Subcomponent}
	last := len(nums)
	if field == 1 {
		last = 2 // an ELD stops at the field
	}
	for i := 0; i <= last-1; i++ {
		n, err := strconv.Atoi(fieldVal(s, field, rep, i+2))
		if err != nil || n < 1 || n > maxIndex {
			break
		}
		*nums[i] = n
	}
	if p.SegmentRep == 1 {
		p.SegmentRep = 0
	}
	if _, err := ParsePath(p.String()); err != nil {
		return ""
	}
	return p.String()
}
