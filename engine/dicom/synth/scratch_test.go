package synth

import "testing"

func TestScratch(t *testing.T) {
	s, err := HeadCT(CTOptions{StudyOptions: StudyOptions{Seed: "x"}, Slices: 8, Size: 128, Bleed: &Bleed{CenterSlice: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteDir("/tmp/synthtry/out"); err != nil {
		t.Fatal(err)
	}
}
