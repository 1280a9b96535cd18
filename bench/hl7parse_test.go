package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lenaten "github.com/lenaten/hl7"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// hl7Corpus loads the HL7v2 test corpus (engine/hl7v2/testdata) split into messages, keeping
// only those github.com/lenaten/hl7 parses without panicking or failing, so both
// implementations parse exactly the same bytes.
func hl7Corpus(b testing.TB) [][]byte {
	b.Helper()
	files, _ := filepath.Glob("../engine/hl7v2/testdata/corpus/*/*.hl7")
	more, _ := filepath.Glob("../engine/hl7v2/testdata/messages/*.hl7")
	var msgs [][]byte
	skipped := 0
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		parts, err := hl7v2.Split(data)
		if err != nil {
			continue
		}
		for _, p := range parts {
			if _, err := hl7v2.Parse(p); err != nil || !lenatenParses(p) {
				skipped++
				continue
			}
			msgs = append(msgs, p)
		}
	}
	if len(msgs) < 20 {
		b.Fatalf("only %d corpus messages", len(msgs))
	}
	b.Logf("%d messages (%d skipped: lenaten/hl7 cannot parse them)", len(msgs), skipped)
	return msgs
}

func lenatenParses(p []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return lenaten.NewMessage(lenatenBuf(p)).Parse() == nil
}

// lenatenBuf copies p with spare capacity: lenaten/hl7 checks its read position against
// cap(input) and fails on a buffer without a few spare bytes.
func lenatenBuf(p []byte) []byte {
	buf := make([]byte, len(p), len(p)+16)
	copy(buf, p)
	return buf
}

// hl7Big is an ORU^R01 carrying a 5 MB base64 PDF in OBX-5.
func hl7Big() []byte {
	var b bytes.Buffer
	b.WriteString("MSH|^~\\&|PACS|F|EHR|F|20260101||ORU^R01^ORU_R01|BIG1|P|2.5.1\rPID|1||4711^^^MRN||DOE^JANE\rOBR|1||ACC1|CTHEAD^CT HEAD\r")
	b.WriteString("OBX|1|ED|PDF^Report||^application^pdf^Base64^")
	b.Write(bytes.Repeat([]byte("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+"), 5<<20/80))
	b.WriteString("||||||F\r")
	return b.Bytes()
}

// The five paths a typical route reads, in each library's syntax (lenaten/hl7 numbers
// components from 0).
var (
	ospreyPaths  = []string{"MSH-9.2", "MSH-10", "PID-3.1", "PID-5.1", "OBR-4.2"}
	lenatenPaths = []string{"MSH.9.1", "MSH.10", "PID.3.0", "PID.5.0", "OBR.4.1"}
)

func hl7Configs(b *testing.B) []struct {
	name string
	msgs [][]byte
} {
	return []struct {
		name string
		msgs [][]byte
	}{{"corpus", hl7Corpus(b)}, {"oru-5MB", [][]byte{hl7Big()}}}
}

func reportHL7(b *testing.B, msgs [][]byte) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	b.SetBytes(int64(n))
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkParse compares parsing alone: Osprey indexes segments and defers the rest to
// Get; lenaten/hl7 splits everything down to subcomponents up front.
func BenchmarkParse(b *testing.B) {
	for _, cfg := range hl7Configs(b) {
		b.Run("osprey/"+cfg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range cfg.msgs {
					if _, err := hl7v2.Parse(p); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportHL7(b, cfg.msgs)
		})
		bufs := make([][]byte, len(cfg.msgs))
		for i, p := range cfg.msgs {
			bufs[i] = lenatenBuf(p)
		}
		b.Run("lenaten/"+cfg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range bufs {
					if err := lenaten.NewMessage(p).Parse(); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportHL7(b, cfg.msgs)
		})
	}
}

// BenchmarkParseGet is parse plus reading five typical fields, the work of a routing rule.
func BenchmarkParseGet(b *testing.B) {
	for _, cfg := range hl7Configs(b) {
		b.Run("osprey/"+cfg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range cfg.msgs {
					m, err := hl7v2.Parse(p)
					if err != nil {
						b.Fatal(err)
					}
					for _, path := range ospreyPaths {
						_ = m.Get(path)
					}
				}
			}
			reportHL7(b, cfg.msgs)
		})
		bufs := make([][]byte, len(cfg.msgs))
		for i, p := range cfg.msgs {
			bufs[i] = lenatenBuf(p)
		}
		b.Run("lenaten/"+cfg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range bufs {
					m := lenaten.NewMessage(p)
					if err := m.Parse(); err != nil {
						b.Fatal(err)
					}
					for _, path := range lenatenPaths {
						_, _ = m.Find(path)
					}
				}
			}
			reportHL7(b, cfg.msgs)
		})
	}
}

// TestHL7BenchPathsAgree checks that the two path lists address the same values, so the
// ParseGet pair does the same work. Differences that are lenaten/hl7 bugs (it keeps the CR
// of a segment's last field and cuts multi-byte UTF-8 short) are logged, not failed.
func TestHL7BenchPathsAgree(t *testing.T) {
	agree, differ := 0, 0
	for _, p := range hl7Corpus(t) {
		o, _ := hl7v2.Parse(p)
		l := lenaten.NewMessage(lenatenBuf(p))
		if err := l.Parse(); err != nil {
			t.Fatal(err)
		}
		for i := range ospreyPaths {
			lv, err := l.Find(lenatenPaths[i])
			if err != nil {
				continue // absent in this message
			}
			if ov := o.Get(ospreyPaths[i]); ov != lv {
				differ++
				t.Logf("%s = %q, lenaten %s = %q", ospreyPaths[i], ov, lenatenPaths[i], lv)
				continue
			}
			agree++
		}
	}
	if agree < 100 || differ*5 > agree {
		t.Errorf("%d values agree, %d differ: the path lists do not address the same fields", agree, differ)
	}
	t.Log(fmt.Sprint(agree, " values agree, ", differ, " differ"))
}
