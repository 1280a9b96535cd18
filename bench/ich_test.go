package bench

import (
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/ich"
)

// BenchmarkICH measures the demonstration haemorrhage detector on the default synthetic head
// CT (32 slices of 256 x 256 with a 12 mm bleed): decode/ decodes the Part 10 instances and
// detects, detect/ runs the detector on an already decoded volume.
func BenchmarkICH(b *testing.B) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "bench-ich"}, Bleed: &synth.Bleed{Side: "left"}})
	if err != nil {
		b.Fatal(err)
	}
	data := make([][]byte, len(s.Instances))
	var size int
	for i, in := range s.Instances {
		data[i] = in.Data
		size += len(in.Data)
	}
	v, err := ich.VolumeFromDICOM(data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode/slices=32/size=256", func(b *testing.B) {
		b.SetBytes(int64(size))
		for b.Loop() {
			v, err := ich.VolumeFromDICOM(data)
			if err != nil {
				b.Fatal(err)
			}
			if r := ich.Detect(v, ich.Options{}); len(r.Findings) != 1 {
				b.Fatalf("%d findings, want 1", len(r.Findings))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "volumes/s")
	})
	b.Run("detect/slices=32/size=256", func(b *testing.B) {
		for b.Loop() {
			if r := ich.Detect(v, ich.Options{}); len(r.Findings) != 1 {
				b.Fatalf("%d findings, want 1", len(r.Findings))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "volumes/s")
	})
}
