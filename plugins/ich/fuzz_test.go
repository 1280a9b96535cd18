package ich

import (
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// FuzzVolumeFromDICOM feeds mutated instances to the reader and, when they decode, to the
// detector: neither may panic, and every report must carry the disclaimer.
func FuzzVolumeFromDICOM(f *testing.F) {
	data, _ := headCT(f, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "fuzz"}, Slices: 2, Size: 16})
	f.Add(data[0])
	f.Add(data[0][:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := VolumeFromDICOM([][]byte{b})
		if err != nil {
			if v != nil {
				t.Fatal("volume returned with an error")
			}
			return
		}
		if len(v.Slices) != 1 || len(v.Slices[0].HU) != v.Rows*v.Cols {
			t.Fatalf("%d slices, %d values for %dx%d", len(v.Slices), len(v.Slices[0].HU), v.Rows, v.Cols)
		}
		if v.Rows*v.Cols > 1<<20 {
			return // keep each execution quick
		}
		if r := Detect(v, Options{}); !strings.HasPrefix(r.Summary, Disclaimer) {
			t.Fatalf("summary %q", r.Summary)
		}
	})
}
