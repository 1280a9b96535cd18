package hl7v2

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// seedCorpus adds every test message to a fuzz target's seed corpus.
func seedCorpus(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*/*.hl7")
	more, _ := filepath.Glob("testdata/messages/*.hl7")
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(adt))
	f.Add([]byte("MSH|^~\\&#|\\P\\|\\X41\\|a\\.br\\b\\Zx\\|\\"))
	f.Add([]byte("MSH|^~\\&\r\r\nMSH|^~\\&\n"))
}

var fuzzPaths = []string{"MSH-1", "MSH-2", "MSH-3", "MSH-9.2", "MSH-12", "MSH-18", "PID-3", "PID-3[2].1", "PID-5.1.2", "OBX[2]-5", "ZZZ-1", "PID"}

// FuzzParse: no input panics; what Encode writes parses back to the same message; strict
// and lenient parsing agree; editing keeps the message parseable.
func FuzzParse(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		_, serr := ParseStrict(data)
		if err != nil {
			if serr == nil {
				t.Fatalf("ParseStrict accepted what Parse rejects: %v", err)
			}
			return
		}
		if (serr == nil) != (len(m.Issues()) == 0) {
			t.Fatalf("ParseStrict error %v with issues %v", serr, m.Issues())
		}
		enc := m.Encode()
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of Encode: %v\n%q", err, enc)
		}
		if !bytes.Equal(m2.Encode(), enc) {
			t.Fatalf("Encode not stable")
		}
		if len(m.issues) == 0 && !bytes.Equal(enc, data) {
			t.Fatalf("well-formed input does not round trip:\n%q\n%q", data, enc)
		}
		for _, p := range fuzzPaths {
			if a, b := m.Get(p), m2.Get(p); a != b {
				t.Fatalf("Get(%q) %q before, %q after re-parse", p, a, b)
			}
		}
		for _, s := range m.Segments() {
			_ = s.Name()
			for i := 0; i <= s.NumFields()+1; i++ {
				_ = s.Field(i)
				_ = s.Components(i, 1)
			}
		}
		_, _ = m.MarshalJSON()
		_ = NewAck(m, ApplicationAccept, AckOptions{Text: m.Get("PID-5")})
		for _, p := range []string{"PID-5.2", "MSH-10", "ZZZ[2]-3[2].1.2", "OBX-5"} {
			v := m.Get("MSH-3") + "|^~\\&\r\n"
			if err := m.Set(p, v); err != nil {
				continue // e.g. the charset cannot hold the value
			}
			if got := m.Get(p); got != v {
				t.Fatalf("Get(%q) after Set = %q, want %q", p, got, v)
			}
			m3, err := Parse(m.Encode())
			if err != nil {
				t.Fatalf("edited message does not parse: %v", err)
			}
			if got := m3.Get(p); got != v {
				t.Fatalf("Get(%q) after Set and re-parse = %q, want %q", p, got, v)
			}
		}
	})
}

// FuzzSplit: no input panics; every message found starts with MSH and lies inside the input.
func FuzzSplit(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := Split(data)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if !bytes.HasPrefix(m, []byte("MSH")) {
				t.Fatalf("message does not start with MSH: %q", m)
			}
			if !bytes.Contains(data, m) {
				t.Fatalf("message not from the input")
			}
		}
	})
}

// FuzzEscape: Unescape(Escape(s)) == s for any delimiters; an escaped value holds no
// delimiter and no line break; Unescape of anything does not panic.
func FuzzEscape(f *testing.F) {
	f.Add("a|b^c~d\\e&f#g\r\n\x00Müller", []byte("|^~\\&#"))
	f.Add(`\F\\S\\X0D0A\\.br\\H\`, []byte("#!@%*"))
	f.Fuzz(func(t *testing.T, s string, delims []byte) {
		d := DefaultDelimiters
		if len(delims) >= 5 {
			d = Delimiters{delims[0], delims[1], delims[2], delims[3], delims[4], 0}
			if len(delims) > 5 {
				d.Truncation = delims[5]
			}
			if d.Validate() != nil {
				d = DefaultDelimiters
			}
		}
		_ = Unescape(s, d)
		e := Escape(s, d)
		if got := Unescape(e, d); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q via %q", s, got, e)
		}
		for i := 0; i < len(e); i++ {
			c := e[i]
			if c == d.Field || c == d.Component || c == d.Repetition || c == d.Subcomponent || c == '\r' || c == '\n' ||
				d.Truncation != 0 && c == d.Truncation {
				t.Fatalf("Escape(%q) = %q holds delimiter %q", s, e, c)
			}
		}
	})
}

// FuzzAckBytes: whatever arrives, the ACK parses strictly and reads back.
func FuzzAckBytes(f *testing.F) {
	seedCorpus(f)
	f.Add([]byte("MSH|^~|A|B|C|D|20260301||ADT^A01|M2|P|2.3\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := AckBytes(data, ApplicationError, AckOptions{Text: string(data[:min(len(data), 40)]), Errors: []AckError{{Code: 102, Location: "PID-3", Text: "x"}}})
		// A well-formed message gets a well-formed ACK; otherwise the ACK echoes what it
		// salvaged (sender, control ID, version) as sent, so it only has to parse.
		parse := Parse
		if _, err := ParseStrict(data); err == nil {
			parse = ParseStrict
		}
		m, err := parse(out)
		if err != nil {
			t.Fatalf("ACK does not parse: %v\n%q", err, out)
		}
		// MSA-2 echoes the bytes of MSH-10 (compared as bytes: when the original's character
		// set had to be guessed, the ACK's guess may differ).
		if orig, err := Parse(data); err == nil {
			got, _, _ := m.locate(Path{Segment: "MSA", Field: 2})
			want, _, _ := orig.locate(Path{Segment: "MSH", Field: 10})
			if !bytes.Equal(got, want) {
				t.Fatalf("MSA-2 %q, want %q", got, want)
			}
		}
		a, err := ReadAck(m)
		if err != nil || a.Code != ApplicationError || len(a.Errors) != 1 || a.Errors[0].Location != "PID-3" {
			t.Fatalf("ReadAck = %+v, %v", a, err)
		}
	})
}
