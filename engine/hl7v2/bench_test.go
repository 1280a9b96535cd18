package hl7v2

import (
	"os"
	"testing"
)

// Micro-benchmarks for the codec's own hot paths; the comparison with a peer library is in
// bench/hl7parse_test.go.

func BenchmarkGet(b *testing.B) {
	data, err := os.ReadFile("testdata/messages/adt-a01-admit.hl7")
	if err != nil {
		b.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"MSH-10", "PID-5.1", "PID-3[2].1", "PV1-44"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.Get(path)
			}
		})
	}
}

func BenchmarkParseMessage(b *testing.B) {
	data, err := os.ReadFile("testdata/messages/oru-r01-radiology.hl7")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
