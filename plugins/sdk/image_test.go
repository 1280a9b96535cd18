package sdk_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/sdk"
	"github.com/osprey-health/osprey/plugins/sdk/sdktest"
)

func headCT(t testing.TB, opts synth.CTOptions) *synth.Series {
	t.Helper()
	s, err := synth.HeadCT(opts)
	if err != nil {
		t.Fatalf("synth.HeadCT: %v", err)
	}
	return s
}

func TestDecodeImageCT(t *testing.T) {
	tests := []struct {
		name string
		opts synth.CTOptions
	}{
		{"unsigned", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "img-u"}, Slices: 6, Size: 64}},
		{"signed", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "img-s"}, Slices: 6, Size: 64, Signed: true}},
		{"contrast", synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "img-c"}, Slices: 6, Size: 64, Contrast: "IOHEXOL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := headCT(t, tt.opts)
			info := s.Manifest.Series[0]
			for i, in := range s.Instances {
				im, err := sdk.DecodeImage(in.Data)
				if err != nil {
					t.Fatalf("instance %d: %v", i+1, err)
				}
				if im.Rows != 64 || im.Cols != 64 || im.Frames != 1 || len(im.Pixels) != 64*64 || len(im.Frame(0)) != 64*64 {
					t.Fatalf("%dx%d, %d frames, %d values", im.Rows, im.Cols, im.Frames, len(im.Pixels))
				}
				if im.SOPInstanceUID != in.SOPInstanceUID || im.SeriesInstanceUID != info.SeriesInstanceUID ||
					im.StudyInstanceUID != s.Manifest.StudyInstanceUID || im.InstanceNumber != in.InstanceNumber || im.Modality != "CT" {
					t.Errorf("identifiers %+v", im)
				}
				if im.BitsAllocated != 16 || im.BitsStored < 12 {
					t.Errorf("%d bits stored in %d", im.BitsStored, im.BitsAllocated)
				}
				if im.ContrastBolusAgent != tt.opts.Contrast {
					t.Errorf("contrast %q, want %q", im.ContrastBolusAgent, tt.opts.Contrast)
				}
				if !slices.Equal(im.PixelSpacing, info.PixelSpacingMM[:]) || im.SliceThickness != info.SliceThicknessMM {
					t.Errorf("spacing %v, thickness %v; want %v, %v", im.PixelSpacing, im.SliceThickness, info.PixelSpacingMM, info.SliceThicknessMM)
				}
				if !slices.Equal(im.ImageOrientation, []float64{1, 0, 0, 0, 1, 0}) || len(im.ImagePosition) != 3 {
					t.Errorf("orientation %v, position %v", im.ImageOrientation, im.ImagePosition)
				}
			}
			// Landmarks are noise-free values the phantom fixes, in HU after rescale.
			for _, l := range info.Landmarks {
				im, err := sdk.DecodeImage(s.Instances[l.Instance-1].Data)
				if err != nil {
					t.Fatal(err)
				}
				if got := im.Pixels[l.Row*im.Cols+l.Column]; float64(got) != l.Value {
					t.Errorf("landmark %s = %v %s, want %v", l.Name, got, l.Unit, l.Value)
				}
			}
		})
	}
}

func TestDecodeImageXR(t *testing.T) {
	s, err := synth.ChestXR(synth.XROptions{StudyOptions: synth.StudyOptions{Seed: "img-xr"}, Columns: 100})
	if err != nil {
		t.Fatal(err)
	}
	im, err := sdk.DecodeImage(s.Instances[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if im.Modality == "CT" || im.Cols != 100 || im.Rows != 120 || im.PhotometricInterpretation != "MONOCHROME2" {
		t.Errorf("%s %dx%d %s", im.Modality, im.Rows, im.Cols, im.PhotometricInterpretation)
	}
	for _, l := range s.Manifest.Series[0].Landmarks {
		if got := im.Pixels[l.Row*im.Cols+l.Column]; float64(got) != l.Value {
			t.Errorf("landmark %s = %v, want %v %s", l.Name, got, l.Value, l.Unit)
		}
	}
}

func TestDecodeImageErrors(t *testing.T) {
	good := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "img-err"}, Slices: 2, Size: 32}).Instances[0].Data
	tests := []struct {
		name    string
		data    []byte
		want    error
		mention string
	}{
		{"truncated", good[:len(good)/2], sdk.ErrTruncated, ""},
		{"truncated header", good[:100], sdk.ErrTruncated, "DICM"},
		{"not DICOM", []byte("hello, this is not a DICOM file at all"), sdk.ErrTruncated, ""},
		// Same length UIDs: Explicit VR Little Endian becomes RLE Lossless in the meta header.
		{"compressed", sdktest.ReplaceOnce(t, good, "1.2.840.10008.1.2.1\x00", "1.2.840.10008.1.2.5\x00"), sdk.ErrUnsupported, "not supported"},
		// Rows (0028,0010) renamed to (0028,0012), which no reader knows.
		{"missing rows", sdktest.ReplaceOnce(t, good, "\x28\x00\x10\x00US", "\x28\x00\x12\x00US"), sdk.ErrMissingTag, "Rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := sdk.DecodeImage(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if im != nil {
				t.Error("image returned with an error")
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// FuzzDecodeImage feeds mutated instances to the decoder: it may refuse them but never
// panic, and what it accepts is consistent.
func FuzzDecodeImage(f *testing.F) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "fuzz"}, Slices: 2, Size: 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Instances[0].Data)
	f.Add(s.Instances[0].Data[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := sdk.DecodeImage(b)
		if err != nil {
			if im != nil {
				t.Fatal("image returned with an error")
			}
			return
		}
		if len(im.Pixels) != im.Rows*im.Cols*im.Frames {
			t.Fatalf("%d values for %d frames of %dx%d", len(im.Pixels), im.Frames, im.Rows, im.Cols)
		}
	})
}
