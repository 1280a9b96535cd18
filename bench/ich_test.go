package bench

import (
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/ich"
)

// ichSeries is the default synthetic head CT, 32 slices of 256 x 256, with a 12 mm bleed.
func ichSeries(b *testing.B) (data [][]byte, size int64) {
	b.Helper()
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "bench-ich"}, Bleed: &synth.Bleed{Side: "left"}})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range s.Instances {
		data = append(data, in.Data)
		size += int64(len(in.Data))
	}
	return data, size
}

// BenchmarkICH measures the demonstration haemorrhage detector end to end on a 32 x 256 x 256
// series: decoding the Part 10 instances to Hounsfield units, then detecting.
func BenchmarkICH(b *testing.B) {
	data, size := ichSeries(b)
	b.Run("osprey/slices=32/size=256", func(b *testing.B) {
		b.SetBytes(size)
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
}

// BenchmarkICHDetect measures detection alone, on an already decoded 32 x 256 x 256 volume.
func BenchmarkICHDetect(b *testing.B) {
	data, _ := ichSeries(b)
	v, err := ich.VolumeFromDICOM(data)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("osprey/slices=32/size=256", func(b *testing.B) {
		for b.Loop() {
			if r := ich.Detect(v, ich.Options{}); len(r.Findings) != 1 {
				b.Fatalf("%d findings, want 1", len(r.Findings))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "volumes/s")
	})
}
