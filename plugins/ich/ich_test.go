package ich

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// headCT generates a synthetic series and returns its instances and ground truth.
func headCT(t testing.TB, opts synth.CTOptions) ([][]byte, *synth.Series) {
	t.Helper()
	s, err := synth.HeadCT(opts)
	if err != nil {
		t.Fatalf("synth.HeadCT: %v", err)
	}
	data := make([][]byte, len(s.Instances))
	for i, in := range s.Instances {
		data[i] = in.Data
	}
	return data, s
}

func detectSeries(t *testing.T, opts synth.CTOptions) (Report, *Volume, *synth.Series) {
	t.Helper()
	data, s := headCT(t, opts)
	v, err := VolumeFromDICOM(data)
	if err != nil {
		t.Fatalf("VolumeFromDICOM: %v", err)
	}
	return Detect(v, Options{}), v, s
}

func TestDetectBleed(t *testing.T) {
	tests := []struct {
		name string
		opts synth.CTOptions
	}{
		{"left default", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "l12"}, Bleed: &synth.Bleed{Side: "left"}}},
		{"right default", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "r12"}, Bleed: &synth.Bleed{Side: "right"}}},
		{"left small", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "l6"}, Bleed: &synth.Bleed{Side: "left", RadiusMM: 6}}},
		{"right large", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "r18"}, Bleed: &synth.Bleed{Side: "right", RadiusMM: 18}}},
		{"right dense high", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "rh"}, Bleed: &synth.Bleed{Side: "right", RadiusMM: 9, HU: 85, CenterSlice: 20}}},
		{"left faint low", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "lf"}, Bleed: &synth.Bleed{Side: "left", RadiusMM: 10, HU: 55, CenterSlice: 14}}},
		{"left noisy", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "ln"}, NoiseHU: 4, Bleed: &synth.Bleed{Side: "left", RadiusMM: 12}}},
		{"right signed thin slices", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "rs"}, Signed: true, Slices: 64, Bleed: &synth.Bleed{Side: "right", RadiusMM: 8}}},
		{"right 512 matrix", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "r512"}, Size: 512, Slices: 24, Bleed: &synth.Bleed{Side: "right", RadiusMM: 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, s := detectSeries(t, tt.opts)
			truth := s.Manifest.Series[0].Bleed
			if !strings.HasPrefix(r.Summary, Disclaimer) {
				t.Errorf("summary %q does not start with the disclaimer", r.Summary)
			}
			if r.Model != (Model{Name: "osprey-ich-demo", Version: "0.1.0"}) {
				t.Errorf("model = %+v", r.Model)
			}
			if !r.Present || len(r.Findings) != 1 {
				t.Fatalf("present %v with %d findings, want exactly one: %s", r.Present, len(r.Findings), r.Summary)
			}
			f := r.Findings[0]
			if f.Side != truth.Side {
				t.Errorf("side = %s, want %s", f.Side, truth.Side)
			}
			if rel := math.Abs(f.VolumeML-truth.VolumeML) / truth.VolumeML; rel > 0.15 {
				t.Errorf("volume = %.3f mL, manifest %.3f mL (%.0f%% off)", f.VolumeML, truth.VolumeML, 100*rel)
			}
			if f.LastInstance < truth.FirstInstance || f.FirstInstance > truth.LastInstance {
				t.Errorf("instances %d to %d do not overlap the manifest's %d to %d", f.FirstInstance, f.LastInstance, truth.FirstInstance, truth.LastInstance)
			}
			if len(f.SOPInstanceUIDs) != f.LastInstance-f.FirstInstance+1 {
				t.Errorf("%d SOP instance UIDs for instances %d to %d", len(f.SOPInstanceUIDs), f.FirstInstance, f.LastInstance)
			}
			for k := range 3 {
				if d := math.Abs(f.CentroidMM[k] - truth.CenterMM[k]); d > 2 {
					t.Errorf("centroid %v mm, manifest centre %v", f.CentroidMM, truth.CenterMM)
					break
				}
			}
			if math.Abs(f.MeanHU-truth.HU) > 3 {
				t.Errorf("mean density %.1f HU, manifest %.0f", f.MeanHU, truth.HU)
			}
			if r.Confidence != f.Confidence || f.Confidence <= 0 || f.Confidence > 1 {
				t.Errorf("confidence report %v, finding %v: want equal and in (0, 1]", r.Confidence, f.Confidence)
			}
			if !strings.Contains(r.Summary, "patient's "+truth.Side) {
				t.Errorf("summary %q does not name the side", r.Summary)
			}
		})
	}
}

func TestDetectNoBleed(t *testing.T) {
	tests := []struct {
		name string
		opts synth.CTOptions
	}{
		{"seed a", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "a"}}},
		{"seed b noisy", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "b"}, NoiseHU: 4}},
		{"seed c noisy", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "c"}, NoiseHU: 6}},
		{"seed d signed", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "d"}, Signed: true}},
		{"seed e thin", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "e"}, Slices: 80, NoiseHU: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := detectSeries(t, tt.opts)
			if r.Present || len(r.Findings) != 0 || r.Confidence != 0 {
				t.Errorf("present %v, %d findings, confidence %v: want nothing: %s", r.Present, len(r.Findings), r.Confidence, r.Summary)
			}
			if r.NotApplicable != "" {
				t.Errorf("not applicable: %s", r.NotApplicable)
			}
			if !strings.HasPrefix(r.Summary, Disclaimer) || !strings.Contains(r.Summary, "No hyperdense") {
				t.Errorf("summary %q", r.Summary)
			}
		})
	}
}

func TestDetectContrast(t *testing.T) {
	tests := []struct {
		name        string
		allow       bool
		applicable  bool
		wantPresent bool
	}{
		{"not applicable by default", false, false, false},
		{"allowed", true, true, true},
	}
	data, _ := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "contrast"}, Contrast: "IOHEXOL", Bleed: &synth.Bleed{Side: "left"}})
	v, err := VolumeFromDICOM(data)
	if err != nil {
		t.Fatal(err)
	}
	if v.Contrast != "IOHEXOL" {
		t.Fatalf("contrast = %q, want IOHEXOL", v.Contrast)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Detect(v, Options{AllowContrast: tt.allow})
			if (r.NotApplicable == "") != tt.applicable {
				t.Errorf("not applicable %q, want applicable %v", r.NotApplicable, tt.applicable)
			}
			if r.Present != tt.wantPresent {
				t.Errorf("present %v, want %v", r.Present, tt.wantPresent)
			}
			if !strings.HasPrefix(r.Summary, Disclaimer) {
				t.Errorf("summary %q", r.Summary)
			}
		})
	}
}
