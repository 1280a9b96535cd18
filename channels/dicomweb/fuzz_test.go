package dicomweb

import (
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// FuzzValidate feeds STOW-RS part validation arbitrary bytes: it must answer (stored or a
// failure code), never panic, and accept only instances with every UID it needs.
func FuzzValidate(f *testing.F) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "fuzz"}, Slices: 1, Size: 16})
	if err != nil {
		f.Fatal(err)
	}
	good := s.Instances[0].Data
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:140])
	f.Add([]byte("not dicom"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, rec := validate(data, "")
		if (out.failure == 0) != (rec != nil) {
			t.Fatalf("failure %04X with record %v", out.failure, rec != nil)
		}
		if rec != nil && (rec.SOP == "" || rec.Study == "" || rec.Series == "" || rec.SOPClass == "") {
			t.Fatalf("accepted an instance without its UIDs: %+v", rec)
		}
	})
}
