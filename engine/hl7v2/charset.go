package hl7v2

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// charset is how the bytes of a message map to text. Every supported character set is
// ASCII-compatible and, except UTF-8, one byte per character, so the parser can find the
// (ASCII) delimiters in the raw bytes and convert only the values it hands out: nothing is
// transcoded on parse, and Encode writes the original bytes back unchanged.
type charset struct {
	name string           // the HL7 table 0211 name as declared, "" for ASCII/none
	cm   *charmap.Charmap // nil: UTF-8 (ASCII is a subset)
}

var utf8Charset = &charset{name: "UNICODE UTF-8"}

// charsets maps HL7 table 0211 names to encodings; aliases map to the canonical name and
// are reported as issues because a receiver may not understand them.
var charsets = map[string]*charmap.Charmap{
	"8859/1":  charmap.ISO8859_1,
	"8859/2":  charmap.ISO8859_2,
	"8859/3":  charmap.ISO8859_3,
	"8859/4":  charmap.ISO8859_4,
	"8859/5":  charmap.ISO8859_5,
	"8859/6":  charmap.ISO8859_6,
	"8859/7":  charmap.ISO8859_7,
	"8859/8":  charmap.ISO8859_8,
	"8859/9":  charmap.ISO8859_9,
	"8859/15": charmap.ISO8859_15,
}

var charsetAliases = map[string]string{
	"UTF-8": "UNICODE UTF-8", "UTF8": "UNICODE UTF-8",
	"ISO-8859-1": "8859/1", "ISO8859-1": "8859/1", "ISO_8859-1": "8859/1", "LATIN1": "8859/1",
	"ISO-8859-15": "8859/15", "ISO8859-15": "8859/15", "LATIN9": "8859/15",
}

// The charsets of well-formed messages are shared values, so parsing one allocates nothing
// for its character set.
var (
	asciiCharset  = &charset{}
	knownCharsets = func() map[string]*charset {
		m := map[string]*charset{"ASCII": {name: "ASCII"}, "UNICODE UTF-8": utf8Charset, "UNICODE": {name: "UNICODE"}}
		for name, cm := range charsets {
			m[name] = &charset{name: name, cm: cm}
		}
		return m
	}()
)

// lookupCharset resolves the first repetition of MSH-18. It returns the charset to read the
// message with and a non-empty note when the declaration is odd.
func lookupCharset(declared []byte, body []byte) (*charset, string) {
	if cs, ok := knownCharsets[string(declared)]; ok || len(declared) == 0 {
		if !ok {
			cs = asciiCharset
		}
		switch {
		case cs.cm != nil:
			return cs, ""
		case cs == utf8Charset || cs.name == "UNICODE":
			if !utf8.Valid(body) {
				return cs, "message declares UTF-8 but is not valid UTF-8"
			}
			return cs, ""
		case isASCII(body):
			return cs, ""
		}
	}
	decl := string(declared)
	name := strings.ToUpper(strings.TrimSpace(decl))
	note := ""
	if canon, ok := charsetAliases[name]; ok {
		note = fmt.Sprintf("MSH-18 %q is not an HL7 character set name; read as %s", decl, canon)
		name = canon
	} else if name != decl && knownCharsets[name] != nil {
		note = fmt.Sprintf("MSH-18 %q is not written as HL7 writes it (%s)", decl, name)
	}
	switch name {
	case "", "ASCII":
		if isASCII(body) {
			return &charset{name: decl}, note
		}
		if utf8.Valid(body) {
			return &charset{name: decl}, "MSH-18 declares ASCII but the message holds non-ASCII bytes; read as UTF-8"
		}
		return &charset{name: decl, cm: charmap.ISO8859_1}, "MSH-18 declares ASCII but the message holds bytes that are not UTF-8; read as 8859/1"
	case "UNICODE UTF-8", "UNICODE":
		if !utf8.Valid(body) {
			note = "message declares UTF-8 but is not valid UTF-8"
		}
		return &charset{name: decl}, note
	}
	if cm, ok := charsets[name]; ok {
		return &charset{name: decl, cm: cm}, note
	}
	if utf8.Valid(body) {
		return &charset{name: decl}, fmt.Sprintf("unsupported character set MSH-18 %q; read as UTF-8", decl)
	}
	return &charset{name: decl, cm: charmap.ISO8859_1}, fmt.Sprintf("unsupported character set MSH-18 %q; read as 8859/1", decl)
}

// isASCII checks eight bytes at a time: it runs on every parse.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// decode converts raw message bytes to a UTF-8 string.
func (cs *charset) decode(b []byte) string {
	if cs.cm == nil || isASCII(b) {
		return string(b)
	}
	r := make([]byte, 0, len(b)+len(b)/2)
	for _, c := range b {
		if c < 0x80 {
			r = append(r, c)
		} else {
			r = utf8.AppendRune(r, cs.cm.DecodeByte(c))
		}
	}
	return string(r)
}

// encode converts a UTF-8 string to the message's bytes.
func (cs *charset) encode(s string) ([]byte, error) {
	if cs.cm == nil {
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: value is not valid UTF-8", ErrCharset)
		}
		return []byte(s), nil
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < 0x80 {
			b = append(b, byte(r))
			continue
		}
		c, ok := cs.cm.EncodeRune(r)
		if !ok || r == utf8.RuneError {
			return nil, fmt.Errorf("%w: %q in %s", ErrCharset, r, cs.label())
		}
		b = append(b, c)
	}
	return b, nil
}

func (cs *charset) label() string {
	if cs.name == "" {
		return "ASCII"
	}
	return cs.name
}
