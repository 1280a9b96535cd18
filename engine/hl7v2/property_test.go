package hl7v2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/charmap"
)

// genMessage builds a random message: random delimiters (4 or 5 encoding characters),
// random segments with repetitions, components and subcomponents holding random Unicode
// text escaped with Escape, and a random terminator style. It returns the bytes and the
// value each leaf path must read back as.
func genMessage(r *rand.Rand) ([]byte, Delimiters, map[string]string) {
	latin1 := r.IntN(3) == 0 // else UTF-8
	const punct = "|^~\\&#!@%*+$?:;=/'`{}()<>_,.\"[]"
	// "/" is never a delimiter here: MSH-18 "8859/1" must stay one value.
	pick := []byte(strings.ReplaceAll(punct, "/", ""))
	r.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
	d := Delimiters{pick[0], pick[1], pick[2], pick[3], pick[4], 0}
	if r.IntN(3) == 0 {
		d.Truncation = pick[5]
	}
	term := []string{"\r", "\n", "\r\n"}[r.IntN(3)]
	want := map[string]string{}
	var b bytes.Buffer
	b.WriteString("MSH")
	b.WriteByte(d.Field)
	b.WriteString(d.Encoding())
	hdr := []string{"APP", "FAC", "RCV", "RFAC", "20260101", "", "ADT" + string(d.Component) + "A01", "C" + fmt.Sprint(r.IntN(1e6)), "P", "2.5", "", "", "", "", "", "UNICODE UTF-8"}
	if latin1 {
		hdr[len(hdr)-1] = "8859/1"
	}
	for _, f := range hdr {
		b.WriteByte(d.Field)
		b.WriteString(f)
	}
	b.WriteString(term)
	names := []string{"PID", "PV1", "OBX", "OBX", "NTE", "ZPI", "Z01"}
	count := map[string]int{}
	for s := r.IntN(6) + 1; s > 0; s-- {
		name := names[r.IntN(len(names))]
		count[name]++
		seg := fmt.Sprintf("%s[%d]", name, count[name])
		b.WriteString(name)
		for f := 1; f <= r.IntN(8)+1; f++ {
			b.WriteByte(d.Field)
			for rep := 1; rep <= r.IntN(3)+1; rep++ {
				if rep > 1 {
					b.WriteByte(d.Repetition)
				}
				for c := 1; c <= r.IntN(3)+1; c++ {
					if c > 1 {
						b.WriteByte(d.Component)
					}
					for sc := 1; sc <= r.IntN(3)+1; sc++ {
						if sc > 1 {
							b.WriteByte(d.Subcomponent)
						}
						v := randText(r, punct, latin1)
						b.WriteString(Escape(v, d))
						want[fmt.Sprintf("%s-%d[%d].%d.%d", seg, f, rep, c, sc)] = v
					}
				}
			}
		}
		b.WriteString(term)
	}
	if latin1 {
		out, err := charmap.ISO8859_1.NewEncoder().Bytes(b.Bytes())
		if err != nil {
			panic(err) // randText only picks Latin-1 characters
		}
		return out, d, want
	}
	return b.Bytes(), d, want
}

func randText(r *rand.Rand, punct string, latin1 bool) string {
	alphabet := []string{"a", "Z", "0", " ", "ü", "ë", "ß", "é", "\n", "\r", "\t", "\\", "\x00", "\x1c"}
	if !latin1 {
		alphabet = append(alphabet, "中", "文", "🩻")
	}
	for _, c := range punct {
		alphabet = append(alphabet, string(c))
	}
	var s strings.Builder
	for n := r.IntN(8); n > 0; n-- {
		s.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return s.String()
}

func TestPropertyRoundTrip(t *testing.T) {
	seeds := []uint64{1, 2, 3, 42, uint64(time.Now().UnixNano())}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			for i := 0; i < 300; i++ {
				data, d, want := genMessage(r)
				m, err := Parse(data)
				if err != nil {
					t.Fatalf("message %d: Parse: %v\n%q", i, err, data)
				}
				if m.Delimiters() != d {
					t.Fatalf("message %d: delimiters %+v, want %+v", i, m.Delimiters(), d)
				}
				if !bytes.Equal(m.Encode(), data) {
					t.Fatalf("message %d: round trip differs\n%q\n%q", i, m.Encode(), data)
				}
				for p, v := range want {
					if got := m.Get(p); got != v {
						t.Fatalf("message %d: Get(%q) = %q, want %q\n%q", i, p, got, v, data)
					}
				}
				// Get(Set(v)) == v at random paths, including new ones, and it survives Encode.
				set := map[string]string{}
				for k := 0; k < 5; k++ {
					p := fmt.Sprintf("%s[%d]-%d[%d].%d.%d", []string{"PID", "OBX", "ZXY"}[r.IntN(3)], r.IntN(2)+1, r.IntN(10)+1, r.IntN(3)+1, r.IntN(3)+1, r.IntN(3)+1)
					v := randText(r, "|^~\\&#", m.charset().cm != nil)
					if err := m.Set(p, v); err != nil {
						t.Fatalf("message %d: Set(%q): %v", i, p, err)
					}
					if got := m.Get(p); got != v {
						t.Fatalf("message %d: Get(%q) after Set = %q, want %q", i, p, got, v)
					}
					set[p] = v
					for q, w := range set { // a Set leaves every other value alone
						if got := m.Get(q); got != w {
							t.Fatalf("message %d: Get(%q) = %q after Set(%q), want %q", i, q, got, p, w)
						}
					}
				}
				m2, err := Parse(m.Encode())
				if err != nil {
					t.Fatalf("message %d: edited message does not parse: %v", i, err)
				}
				for p, v := range set {
					if got := m2.Get(p); got != v {
						t.Fatalf("message %d: Get(%q) after Set and re-parse = %q, want %q", i, p, got, v)
					}
				}
			}
		})
	}
}
