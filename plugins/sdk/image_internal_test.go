package sdk

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func TestModalityLUT(t *testing.T) {
	le := func(vs ...uint16) []byte {
		b := make([]byte, 2*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	tests := []struct {
		name      string
		raw       []byte
		allocated int
		order     binary.ByteOrder
		stored    int
		signed    bool
		slope     float64
		intercept float64
		want      []float32
	}{
		{"unsigned 16", le(0, 1024, 2000), 16, binary.LittleEndian, 16, false, 1, -1024, []float32{-1024, 0, 976}},
		{"signed 16", le(0xFC00, 0, 40), 16, binary.LittleEndian, 16, true, 1, 0, []float32{-1024, 0, 40}},
		// 12 bits stored: the top nibble carries junk (an overlay) and must be ignored.
		{"unsigned 12 with high bits set", le(0xF000|1064, 0x1000|1024), 16, binary.LittleEndian, 12, false, 1, -1024, []float32{40, 0}},
		{"signed 12", le(0x0FFF, 0x0800, 0x07FF), 16, binary.LittleEndian, 12, true, 1, 0, []float32{-1, -2048, 2047}},
		{"slope and fractional intercept", le(100, 101), 16, binary.LittleEndian, 16, false, 0.5, -10.25, []float32{39.75, 40.25}},
		{"big endian", []byte{0x04, 0x28}, 16, binary.BigEndian, 16, false, 1, -1024, []float32{40}},
		{"8 bit", []byte{0, 128, 255}, 8, binary.LittleEndian, 8, false, 1, 0, []float32{0, 128, 255}},
		{"8 bit signed", []byte{0xFF, 0x80}, 8, binary.LittleEndian, 8, true, 2, 0, []float32{-2, -256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := modalityLUT(tt.raw, tt.allocated, tt.order, tt.stored, tt.signed, tt.slope, tt.intercept)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCheckLengths feeds corrupt length fields that would make the parser allocate
// gigabytes: each must be refused before parsing.
func TestCheckLengths(t *testing.T) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "lengths"}, Slices: 2, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	good := s.Instances[0].Data
	if err := checkLengths(good); err != nil {
		t.Fatalf("valid instance: %v", err)
	}
	tests := []struct {
		name     string
		old, new string
	}{
		// ImageComments (0020,4000) LT with a 2-byte length of 0xFFFF: read as undefined.
		{"short length read as undefined", "\x20\x00\x00\x40LT", "\x20\x00\x00\x40LT\xff\xff"},
		// PixelData OW with a 4-byte length far beyond the file.
		{"pixel data too long", "\xe0\x7f\x10\x00OW\x00\x00", "\xe0\x7f\x10\x00OW\x00\x00\x00\x00\x00\xf0"},
		// The code sequence's item tag corrupted into an unknown (FFFE,E054) element.
		{"corrupt item tag", "\xfe\xff\x00\xe0\xff\xff\xff\xff", "\xfe\xff\x54\xe0\xff\xff\xff\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := strings.Index(string(good), tt.old)
			if i < 0 {
				t.Fatalf("%q not found", tt.old)
			}
			b := append([]byte(nil), good...)
			copy(b[i:], tt.new)
			if err := checkLengths(b); !errors.Is(err, ErrTruncated) {
				t.Errorf("checkLengths = %v, want ErrTruncated", err)
			}
			if _, err := DecodeImage(b); !errors.Is(err, ErrTruncated) {
				t.Errorf("DecodeImage = %v, want ErrTruncated", err)
			}
		})
	}
}
