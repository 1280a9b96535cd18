package dicom_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	dcm "github.com/suyashkumar/dicom"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func TestCheckLengths(t *testing.T) {
	ct, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "lengths"}, Slices: 1, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	good := ct.Instances[0].Data
	if err := dicom.CheckLengths(good); err != nil {
		t.Fatalf("a valid file: %v", err)
	}
	// Sequences of defined length (the synth CT has code sequences) are walked too: a
	// nested length past the end must be found.
	withLen := func(at int, n uint32) []byte {
		d := append([]byte(nil), good...)
		binary.LittleEndian.PutUint32(d[at:], n)
		return d
	}
	// The first long-VR element of the dataset proper after the meta group: find the first
	// "UI" element of group 0008 and declare a huge length on a 16-bit field's neighbour.
	tests := []struct {
		name string
		data []byte
	}{
		{"truncated", good[:len(good)-10]},
		{"huge length in the meta group", withLen(148, 0xFFFFFFF0)},
		{"no header", good[128:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := dicom.CheckLengths(tc.data); !errors.Is(err, dicom.ErrLength) {
				t.Errorf("err = %v, want ErrLength", err)
			}
		})
	}
	// A huge length written anywhere in the file is refused, or else harmless: what passes
	// the check parses without the parser allocating anything like the declared size.
	for i := 132; i+4 < len(good); i++ {
		d := withLen(i, 0xFFFFFFF0)
		if dicom.CheckLengths(d) != nil {
			continue
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		func() {
			defer func() { _ = recover() }() // the parser panics on some input; callers recover
			_, _ = dcm.Parse(bytes.NewReader(d), int64(len(d)), nil, dcm.SkipProcessingPixelDataValue())
		}()
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Fatalf("length at byte %d passed the check and made the parser allocate %d MiB", i, grew>>20)
		}
	}
}

// TestCheckLengthsOnDCMTKFiles walks real files with sequences of undefined length and
// encapsulated pixel data when the system has DCMTK's sample data.
func TestCheckLengthsOnDCMTKFiles(t *testing.T) {
	files, _ := filepath.Glob("/usr/share/dcmtk*/**/*.dcm")
	more, _ := filepath.Glob("/usr/share/dcmtk*/*.dcm")
	files = append(files, more...)
	if len(files) == 0 {
		t.Skip("no DCMTK sample files on this system")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if err := dicom.CheckLengths(data); err != nil && !errors.Is(err, dicom.ErrUnsupportedSyntax) {
			t.Errorf("%s: %v", f, err)
		}
	}
}
