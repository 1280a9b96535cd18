package sdk

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

const undefinedLength = 0xFFFFFFFF

// checkLengths walks the element headers of a Part 10 file and fails if any defined value
// length runs past the end of the data. The DICOM parser allocates a value's length before
// reading it, so one corrupt length field would otherwise cost gigabytes of memory; this walk
// costs one pass over the headers, not the values.
func checkLengths(b []byte) error {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return fmt.Errorf("%w: no DICM prefix after the 128-byte preamble", ErrTruncated)
	}
	var (
		order     binary.ByteOrder = binary.LittleEndian
		implicit  bool
		meta      = true
		ts        string
		fragments int // nesting of encapsulated pixel data, whose items hold raw bytes
	)
	for pos := 132; pos < len(b); {
		if meta && (len(b)-pos < 2 || binary.LittleEndian.Uint16(b[pos:]) != 0x0002) {
			// The file meta group is always Explicit VR Little Endian; the dataset after it
			// follows the transfer syntax.
			meta = false
			switch ts {
			case implicitVRLittleEndian:
				implicit = true
			case explicitVRBigEndian:
				order = binary.BigEndian
			case deflatedExplicitVRLittleEndian:
				return fmt.Errorf("%w: transfer syntax %s (deflate): %s", ErrUnsupported, ts, errNotSupported)
			}
		}
		bo, imp := order, implicit
		if meta {
			bo, imp = binary.LittleEndian, false
		}
		if len(b)-pos < 8 {
			return fmt.Errorf("%w: element header cut short at byte %d", ErrTruncated, pos)
		}
		group, element := bo.Uint16(b[pos:]), bo.Uint16(b[pos+2:])
		t := tag.Tag{Group: group, Element: element}
		if fragments > 0 { // raw items: a tag and a 4-byte length, then bytes
			vl := bo.Uint32(b[pos+4:])
			pos += 8
			if element == 0xE0DD {
				fragments--
				continue
			}
			if vl == undefinedLength || uint64(vl) > uint64(len(b)-pos) {
				return fmt.Errorf("%w: pixel data fragment of %d bytes at byte %d, %d left", ErrTruncated, vl, pos-8, len(b)-pos)
			}
			pos += int(vl)
			continue
		}
		if t == tag.Item { // the parser reads items with a 4-byte length whatever the VR
			vl := bo.Uint32(b[pos+4:])
			pos += 8
			if vl != undefinedLength && uint64(vl) > uint64(len(b)-pos) {
				return fmt.Errorf("%w: item of %d bytes at byte %d, %d left", ErrTruncated, vl, pos-8, len(b)-pos)
			}
			continue // step into the item's elements
		}
		var vr string
		var vl uint32
		if imp {
			vl = bo.Uint32(b[pos+4:])
			pos += 8
			if info, err := tag.Find(t); err == nil {
				vr = info.VR
			}
		} else {
			vr = string(b[pos+4 : pos+6])
			// The VRs with a 4-byte length, as the parser reads them (it treats OV, SV and
			// UV as 2-byte): what matters is what the parser will allocate.
			switch vr {
			case "NA", "OB", "OD", "OF", "OL", "OW", "SQ", "UC", "UN", "UR", "UT":
				if len(b)-pos < 12 {
					return fmt.Errorf("%w: element header cut short at byte %d", ErrTruncated, pos)
				}
				vl = bo.Uint32(b[pos+8:])
				pos += 12
			default:
				vl = uint32(bo.Uint16(b[pos+6:]))
				if vl == 0xFFFF { // the parser reads this as an undefined length
					vl = undefinedLength
				}
				pos += 8
			}
		}
		switch {
		case vl == undefinedLength && vr == "SQ":
			// A sequence of undefined length: its items follow as elements.
		case vl == undefinedLength && t == tag.PixelData:
			fragments++
		case vl == undefinedLength:
			return fmt.Errorf("%w: %s with undefined length", ErrTruncated, t)
		case uint64(vl) > uint64(len(b)-pos):
			return fmt.Errorf("%w: %s of %d bytes at byte %d, %d left", ErrTruncated, t, vl, pos, len(b)-pos)
		case vr == "SQ":
			// A sequence of defined length: step into its items.
		default:
			if t == tag.TransferSyntaxUID {
				ts = strings.TrimRight(string(b[pos:pos+int(vl)]), " \x00")
			}
			pos += int(vl)
		}
	}
	return nil
}
