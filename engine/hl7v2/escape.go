package hl7v2

import (
	"bytes"
	"strings"
)

const hexDigits = "0123456789ABCDEF"

// Escape encodes s for use as a single value (a field, component or subcomponent without
// structure) in a message with delimiters d: each delimiter becomes its escape sequence
// (\F\ \S\ \T\ \R\ \E\, and \P\ for the v2.7 truncation character), a line feed becomes
// \.br\ (\X0A\ in the odd message where "." is a delimiter) and the other control
// characters (carriage return, the MLLP framing bytes, ...) become \Xhh\, so no value can
// start a new field, segment or frame. Tab is kept. Unescape(Escape(s, d), d) == s for
// every s.
func Escape(s string, d Delimiters) string {
	if !needsEscape(s, &d) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, &d))
}

func needsEscape(s string, d *Delimiters) bool {
	for i := 0; i < len(s); i++ {
		if escapeCode(s[i], d) != 0 {
			return true
		}
	}
	return false
}

// escapeCode returns the escape letter for c, 'X' for a control character that is written
// as hex, '.' for line feed, or 0 when c is written as is. A zero delimiter means "none".
func escapeCode(c byte, d *Delimiters) byte {
	switch {
	case c == '\n':
		return '.'
	case c < ' ' && c != '\t', c == 0x7f:
		return 'X'
	case c == d.Escape:
		return 'E'
	case c == d.Field:
		return 'F'
	case c == d.Component:
		return 'S'
	case c == d.Subcomponent:
		return 'T'
	case c == d.Repetition:
		return 'R'
	case c == d.Truncation:
		return 'P'
	}
	return 0
}

func appendEscaped[T string | []byte](dst []byte, s T, d *Delimiters) []byte {
	esc := d.Escape
	if esc == 0 {
		esc = '\\'
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch code := escapeCode(c, d); code {
		case 0:
			dst = append(dst, c)
		case '.':
			if d.isDelim('.') || esc == '.' || d.Truncation == '.' {
				dst = append(dst, esc, 'X', '0', 'A', esc) // \.br\ would be cut at the '.'
			} else {
				dst = append(dst, esc, '.', 'b', 'r', esc)
			}
		case 'X':
			dst = append(dst, esc, 'X', hexDigits[c>>4], hexDigits[c&15], esc)
		default:
			dst = append(dst, esc, code, esc)
		}
	}
	return dst
}

// Unescape decodes the escape sequences of an encoded value: \F\ \S\ \T\ \R\ \E\ become the
// delimiters of d, \P\ the truncation character (when d has one), \Xhhhh\ the bytes given
// in hex, and \.br\ a line feed ("\n", the line break HL7 means; Escape writes "\n" back as
// \.br\). Every other sequence (\H\ \N\ highlighting, \.sp\ and the other formatting
// commands, \C..\ \M..\ character set switches, local \Z..\) and an escape character
// without its closing one are kept intact, so no information is lost.
func Unescape(s string, d Delimiters) string {
	if d.Escape == 0 || strings.IndexByte(s, d.Escape) < 0 {
		return s
	}
	return string(appendUnescaped(make([]byte, 0, len(s)), s, &d))
}

func unescapeBytes(b []byte, d *Delimiters) []byte {
	if d.Escape == 0 || bytes.IndexByte(b, d.Escape) < 0 {
		return b
	}
	return appendUnescaped(make([]byte, 0, len(b)), b, d)
}

func appendUnescaped[T string | []byte](dst []byte, s T, d *Delimiters) []byte {
	esc := d.Escape
	for i := 0; i < len(s); {
		c := s[i]
		if c != esc {
			dst = append(dst, c)
			i++
			continue
		}
		// Find the closing escape character; a sequence never spans a delimiter.
		j := i + 1
		for j < len(s) && s[j] != esc && !d.isDelim(s[j]) {
			j++
		}
		if j >= len(s) || s[j] != esc {
			dst = append(dst, c)
			i++
			continue
		}
		seq := s[i+1 : j]
		if out, ok := decodeSeq(dst, seq, d); ok {
			dst = out
		} else {
			dst = append(dst, s[i:j+1]...)
		}
		i = j + 1
	}
	return dst
}

// decodeSeq appends the decoded form of the escape sequence body seq, or reports false
// when the sequence is one Unescape keeps as written.
func decodeSeq[T string | []byte](dst []byte, seq T, d *Delimiters) ([]byte, bool) {
	if len(seq) == 0 {
		return dst, false
	}
	if len(seq) == 1 {
		var c byte
		switch seq[0] {
		case 'F':
			c = d.Field
		case 'S':
			c = d.Component
		case 'T':
			c = d.Subcomponent
		case 'R':
			c = d.Repetition
		case 'E':
			c = d.Escape
		case 'P':
			c = d.Truncation
		}
		if c == 0 {
			return dst, false
		}
		return append(dst, c), true
	}
	if string(seq) == ".br" {
		return append(dst, '\n'), true
	}
	if seq[0] == 'X' && len(seq) >= 3 && len(seq)%2 == 1 {
		for k := 1; k < len(seq); k++ {
			if unhex(seq[k]) < 0 {
				return dst, false
			}
		}
		for k := 1; k < len(seq); k += 2 {
			dst = append(dst, byte(unhex(seq[k])<<4|unhex(seq[k+1])))
		}
		return dst, true
	}
	return dst, false
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

// knownSeq reports whether seq (the text between two escape characters) is an escape
// sequence HL7 defines, so the parser can flag the rest as issues.
func knownSeq(seq []byte, d *Delimiters) bool {
	if len(seq) == 0 {
		return false
	}
	if len(seq) == 1 {
		switch seq[0] {
		case 'F', 'S', 'T', 'R', 'E', 'H', 'N':
			return true
		case 'P':
			return d.Truncation != 0
		}
		return false
	}
	switch seq[0] {
	case 'X':
		if len(seq)%2 == 0 {
			return false
		}
		return allHex(seq[1:])
	case 'C':
		return len(seq) == 5 && allHex(seq[1:])
	case 'M':
		return (len(seq) == 5 || len(seq) == 7) && allHex(seq[1:])
	case 'Z':
		return true
	case '.':
		cmd := string(seq[1:min(len(seq), 3)])
		arg := seq[min(len(seq), 3):]
		switch cmd {
		case "br", "fi", "nf", "ce":
			return len(arg) == 0
		case "sp", "in", "ti":
			return isNumArg(arg)
		}
	}
	return false
}

func allHex(b []byte) bool {
	for _, c := range b {
		if unhex(c) < 0 {
			return false
		}
	}
	return true
}

// isNumArg accepts the optional argument of .sp .in .ti: spaces, a sign and digits.
func isNumArg(b []byte) bool {
	b = bytes.TrimLeft(b, " ")
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
