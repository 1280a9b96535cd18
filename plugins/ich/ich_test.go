package ich

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/sdk/sdktest"
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

func TestVolumeFromDICOM(t *testing.T) {
	data, s := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "vol"}, Slices: 12, Size: 64, Signed: true})
	// Reverse the order: the reader must sort along the normal.
	reversed := make([][]byte, len(data))
	for i := range data {
		reversed[len(data)-1-i] = data[i]
	}
	v, err := VolumeFromDICOM(reversed)
	if err != nil {
		t.Fatal(err)
	}
	info := s.Manifest.Series[0]
	if v.Rows != 64 || v.Cols != 64 || len(v.Slices) != 12 {
		t.Fatalf("%dx%d with %d slices, want 64x64 with 12", v.Rows, v.Cols, len(v.Slices))
	}
	if v.RowSpacing != info.PixelSpacingMM[0] || v.ColSpacing != info.PixelSpacingMM[1] {
		t.Errorf("spacing %v x %v, want %v", v.RowSpacing, v.ColSpacing, info.PixelSpacingMM)
	}
	if math.Abs(v.SliceSpacing-info.SliceThicknessMM) > 1e-6 {
		t.Errorf("slice spacing %v, want %v", v.SliceSpacing, info.SliceThicknessMM)
	}
	for i, sl := range v.Slices {
		if sl.InstanceNumber != i+1 || sl.SOPInstanceUID != info.Instances[i].SOPInstanceUID {
			t.Errorf("slice %d is instance %d %s", i, sl.InstanceNumber, sl.SOPInstanceUID)
		}
	}
	for _, l := range info.Landmarks {
		got := v.Slices[l.Instance-1].HU[l.Row*v.Cols+l.Column]
		if float64(got) != l.Value {
			t.Errorf("landmark %s at instance %d (%d, %d) = %d HU, want %v", l.Name, l.Instance, l.Row, l.Column, got, l.Value)
		}
	}
}

func TestVolumeFromDICOMErrors(t *testing.T) {
	a, _ := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "err-a"}, Slices: 4, Size: 32})
	b, _ := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "err-b"}, Slices: 4, Size: 32})
	big, _ := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "err-a"}, Slices: 4, Size: 48})
	xr, err := synth.ChestXR(synth.XROptions{StudyOptions: synth.StudyOptions{Seed: "err-xr"}, Columns: 64})
	if err != nil {
		t.Fatal(err)
	}
	// Same length UIDs: Explicit VR Little Endian becomes RLE Lossless in the meta header.
	rle := [][]byte{sdktest.ReplaceOnce(t, a[0], "1.2.840.10008.1.2.1\x00", "1.2.840.10008.1.2.5\x00")}
	// PixelSpacing (0028,0030) renamed to ZoomFactor (0028,0031).
	noSpacing := [][]byte{sdktest.ReplaceOnce(t, a[0], "\x28\x00\x30\x00DS", "\x28\x00\x31\x00DS")}

	tests := []struct {
		name      string
		instances [][]byte
		want      error
		mention   string
	}{
		{"none", nil, ErrNoInstances, ""},
		{"mixed series", append(a[:2:2], b[2:]...), ErrMixedSeries, "SeriesInstanceUID"},
		{"mixed sizes", [][]byte{a[0], big[1]}, ErrMixedSeries, "pixels"},
		{"non-CT", [][]byte{xr.Instances[0].Data}, ErrNotCT, "Modality"},
		{"truncated", [][]byte{a[0][:len(a[0])/2]}, ErrTruncated, ""},
		{"truncated header", [][]byte{a[0][:100]}, ErrTruncated, ""},
		{"not DICOM", [][]byte{[]byte("hello, this is not a DICOM file at all")}, ErrTruncated, ""},
		{"compressed", rle, ErrUnsupported, "not supported"},
		{"missing pixel spacing", noSpacing, ErrMissingTag, "PixelSpacing"},
		{"duplicate slice", [][]byte{a[0], a[1], a[1]}, ErrBadGeometry, "same position"},
		{"gap", [][]byte{a[0], a[1], a[3]}, ErrBadGeometry, "uneven"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := VolumeFromDICOM(tt.instances)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if v != nil {
				t.Errorf("volume returned with an error")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestDetectHandmade(t *testing.T) {
	// A hand-built volume: a bone ring around a 30 HU disc, with a 70 HU block on the
	// patient's right (low column numbers in the standard orientation) and a speck too small
	// to report.
	const n, size = 6, 64
	v := &Volume{Rows: size, Cols: size, RowSpacing: 1, ColSpacing: 1, SliceSpacing: 5}
	for z := range n {
		hu := make([]int16, size*size)
		for r := range size {
			for c := range size {
				d := math.Hypot(float64(r-32), float64(c-32))
				switch {
				case d > 28:
					hu[r*size+c] = -1000
				case d > 24:
					hu[r*size+c] = 1000
				default:
					hu[r*size+c] = 30
				}
				if z >= 2 && z <= 3 && r >= 28 && r < 36 && c >= 14 && c < 22 {
					hu[r*size+c] = 70
				}
			}
		}
		hu[32*size+40] = 70
		v.Slices = append(v.Slices, Slice{SOPInstanceUID: "1.2.3." + string(rune('1'+z)), InstanceNumber: z + 1, Position: float64(5 * z), ImagePosition: [3]float64{-32, -32, float64(5 * z)}, HU: hu})
	}
	tests := []struct {
		name     string
		opts     Options
		rowDir   [3]float64
		findings int
		side     string
		voxels   int
	}{
		{"defaults", Options{}, [3]float64{}, 1, Right, 128},
		{"standard orientation", Options{}, [3]float64{1, 0, 0}, 1, Right, 128},
		// Columns increasing towards the patient's right: the block is now on the left.
		{"mirrored orientation", Options{}, [3]float64{-1, 0, 0}, 1, Left, 128},
		// The speck is one voxel per slice, stacked: one 6-connected column of six voxels.
		{"speck kept", Options{MinVolumeML: 0.001}, [3]float64{}, 2, Right, 128},
		{"range excludes", Options{MinHU: 75, MaxHU: 90}, [3]float64{}, 0, "", 0},
		{"no erosion keeps the block", Options{ErodeMM: 0.1}, [3]float64{}, 1, Right, 128},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vv := *v
			if tt.rowDir != ([3]float64{}) {
				vv.RowDirection, vv.ColDirection = tt.rowDir, [3]float64{0, 1, 0}
			}
			r := Detect(&vv, tt.opts)
			if len(r.Findings) != tt.findings {
				t.Fatalf("%d findings, want %d: %s", len(r.Findings), tt.findings, r.Summary)
			}
			if tt.findings == 0 {
				return
			}
			f := r.Findings[0]
			if f.Side != tt.side || f.Voxels != tt.voxels {
				t.Errorf("side %s with %d voxels, want %s with %d", f.Side, f.Voxels, tt.side, tt.voxels)
			}
			if f.FirstInstance != 3 || f.LastInstance != 4 || len(f.SOPInstanceUIDs) != 2 {
				t.Errorf("instances %d to %d (%v), want 3 to 4", f.FirstInstance, f.LastInstance, f.SOPInstanceUIDs)
			}
			if f.VolumeML != 0.64 {
				t.Errorf("volume %v mL, want 0.64", f.VolumeML)
			}
		})
	}
}

// TestDetectLargeVolume runs a 200-slice 512 x 512 volume: the flood fill and the labelling
// use explicit stacks, so a large region cannot exhaust the goroutine stack.
func TestDetectLargeVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 52 million voxel volume")
	}
	const n, size = 200, 512
	v := &Volume{Rows: size, Cols: size, RowSpacing: 0.5, ColSpacing: 0.5, SliceSpacing: 0.8}
	// Every slice: air, a bone ring 8 px thick, 32 HU brain; slices 40 to 159 hold a
	// 70 HU box of 120 x 100 x 120 voxels on the patient's left (high columns).
	template := make([]int16, size*size)
	for r := range size {
		for c := range size {
			d := math.Hypot(float64(r-256), float64(c-256))
			switch {
			case d > 240:
				template[r*size+c] = -1000
			case d > 232:
				template[r*size+c] = 1100
			default:
				template[r*size+c] = 32
			}
		}
	}
	for z := range n {
		hu := make([]int16, len(template))
		copy(hu, template)
		if z >= 40 && z < 160 {
			for r := 200; r < 300; r++ {
				for c := 300; c < 420; c++ {
					hu[r*size+c] = 70
				}
			}
		}
		v.Slices = append(v.Slices, Slice{InstanceNumber: z + 1, Position: 0.8 * float64(z), ImagePosition: [3]float64{-128, -128, 0.8 * float64(z)}, HU: hu})
	}
	r := Detect(v, Options{})
	if len(r.Findings) != 1 {
		t.Fatalf("%d findings, want 1: %s", len(r.Findings), r.Summary)
	}
	f := r.Findings[0]
	if want := 120 * 100 * 120; f.Voxels != want || f.Side != Left || f.FirstInstance != 41 || f.LastInstance != 160 {
		t.Errorf("%d voxels on the %s, instances %d to %d; want %d on the left, 41 to 160", f.Voxels, f.Side, f.FirstInstance, f.LastInstance, want)
	}
	if want := 120 * 100 * 120 * 0.5 * 0.5 * 0.8 / 1000; math.Abs(f.VolumeML-want) > 1e-3 {
		t.Errorf("volume %v mL, want %v", f.VolumeML, want)
	}
}

// TestDetectErosion checks that the brain mask keeps away from the inner table, where
// partial volume of bone gives blood-like densities: a 2 px 70 HU rim against the bone.
func TestDetectErosion(t *testing.T) {
	const n, size = 6, 64
	v := &Volume{Rows: size, Cols: size, RowSpacing: 1, ColSpacing: 1, SliceSpacing: 5}
	for z := range n {
		hu := make([]int16, size*size)
		for r := range size {
			for c := range size {
				d := math.Hypot(float64(r-32), float64(c-32))
				switch {
				case d > 28:
					hu[r*size+c] = -1000
				case d > 24:
					hu[r*size+c] = 1000
				case d > 22:
					hu[r*size+c] = 70
				default:
					hu[r*size+c] = 30
				}
			}
		}
		v.Slices = append(v.Slices, Slice{InstanceNumber: z + 1, Position: float64(5 * z), HU: hu})
	}
	tests := []struct {
		name     string
		erodeMM  float64
		findings int
	}{
		{"default erosion removes the rim", 0, 0},
		{"no erosion finds the rim", 0.4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Detect(v, Options{ErodeMM: tt.erodeMM})
			if len(r.Findings) != tt.findings {
				t.Errorf("%d findings, want %d: %s", len(r.Findings), tt.findings, r.Summary)
			}
		})
	}
}
