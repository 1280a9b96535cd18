package dicom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrLength reports a Part 10 file whose element lengths do not fit the bytes it has.
var ErrLength = errors.New("dicom: element length exceeds the data")

// ErrUnsupportedSyntax reports a transfer syntax CheckLengths cannot walk (deflate).
var ErrUnsupportedSyntax = errors.New("dicom: unsupported transfer syntax")

// maxDepth bounds sequence nesting; real datasets nest a handful of levels.
const maxDepth = 64

// CheckLengths walks the element headers of a Part 10 file, sequences and items included,
// and reports the first length that reaches past the end of the data. The underlying parser
// allocates a value's buffer from its declared length before reading it, so a 200-byte file
// declaring a 4 GiB string would make it allocate 4 GiB: untrusted input (a STOW-RS part) goes
// through this check first.
func CheckLengths(data []byte) error {
	if len(data) < 132 || string(data[128:132]) != "DICM" {
		return fmt.Errorf("%w: no Part 10 header", ErrLength)
	}
	w := walker{data: data, order: binary.LittleEndian, explicit: true}
	// File Meta Information: explicit VR little endian, group 0002 only.
	pos := 132
	ts := ""
	for pos+8 <= len(data) && binary.LittleEndian.Uint16(data[pos:]) == 0x0002 {
		next, value, err := w.element(pos, len(data), 0)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(data[pos+2:]) == 0x0010 {
			ts = strings.TrimRight(string(value), " \x00")
		}
		pos = next
	}
	switch ts {
	case "1.2.840.10008.1.2":
		w.explicit = false
	case "1.2.840.10008.1.2.2":
		w.order = binary.BigEndian
	case "1.2.840.10008.1.2.1.99":
		return fmt.Errorf("%w: deflated explicit VR little endian", ErrUnsupportedSyntax)
	}
	return w.elements(pos, len(data), 0, false)
}

type walker struct {
	data     []byte
	order    binary.ByteOrder
	explicit bool
}

const undefined = 0xFFFFFFFF

// longVR are the explicit VRs with a reserved field and a 32-bit length (PS3.5 7.1.2).
var longVR = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true, "SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

// elements walks elements from pos to end; inItem stops at an item delimitation item.
func (w *walker) elements(pos, end, depth int, inItem bool) error {
	for pos < end {
		if pos+4 > end {
			return fmt.Errorf("%w: truncated element header at byte %d", ErrLength, pos)
		}
		if inItem && w.order.Uint16(w.data[pos:]) == 0xFFFE && w.order.Uint16(w.data[pos+2:]) == 0xE00D {
			return nil
		}
		next, _, err := w.element(pos, end, depth)
		if err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// element checks one element at pos and returns where the next begins and its value (when
// the length is defined).
func (w *walker) element(pos, end, depth int) (int, []byte, error) {
	d, o := w.data, w.order
	group, elem := o.Uint16(d[pos:]), o.Uint16(d[pos+2:])
	explicit := w.explicit || group == 0x0002
	var vr string
	var length uint32
	var head int
	switch {
	case group == 0xFFFE: // item or delimiter: tag and 32-bit length, no VR
		if pos+8 > end {
			return 0, nil, fmt.Errorf("%w: truncated item at byte %d", ErrLength, pos)
		}
		if elem != 0xE000 && elem != 0xE00D && elem != 0xE0DD {
			return 0, nil, fmt.Errorf("%w: (FFFE,%04X) at byte %d is not an item or delimiter", ErrLength, elem, pos)
		}
		length, head = o.Uint32(d[pos+4:]), 8
	case explicit:
		if pos+8 > end {
			return 0, nil, fmt.Errorf("%w: truncated element header at byte %d", ErrLength, pos)
		}
		vr = string(d[pos+4 : pos+6])
		if longVR[vr] {
			if pos+12 > end {
				return 0, nil, fmt.Errorf("%w: truncated element header at byte %d", ErrLength, pos)
			}
			length, head = o.Uint32(d[pos+8:]), 12
		} else {
			length, head = uint32(o.Uint16(d[pos+6:])), 8
		}
	default:
		if pos+8 > end {
			return 0, nil, fmt.Errorf("%w: truncated element header at byte %d", ErrLength, pos)
		}
		length, head = o.Uint32(d[pos+4:]), 8
		if info, err := tag.Find(tag.Tag{Group: group, Element: elem}); err == nil && strings.HasPrefix(info.VR, "SQ") {
			vr = "SQ"
		}
	}
	start := pos + head
	if length == undefined {
		if depth >= maxDepth {
			return 0, nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrLength, maxDepth)
		}
		var next int
		var err error
		switch {
		case group == 0xFFFE:
			next, err = w.itemUndefined(start, end, depth+1)
		case group == 0x7FE0 && elem == 0x0010:
			next, err = w.undefinedValue(start, end, depth+1, true)
		case vr == "UN":
			// A sequence of undefined length written as UN is implicit VR little endian
			// inside, whatever the transfer syntax (PS3.5 6.2.2).
			inner := walker{data: w.data, order: binary.LittleEndian, explicit: false}
			next, err = inner.undefinedValue(start, end, depth+1, false)
		default:
			next, err = w.undefinedValue(start, end, depth+1, false)
		}
		return next, nil, err
	}
	if int64(length) > int64(end-start) {
		return 0, nil, fmt.Errorf("%w: (%04X,%04X) at byte %d declares %d bytes, %d remain", ErrLength, group, elem, pos, length, end-start)
	}
	stop := start + int(length)
	if depth >= maxDepth {
		return 0, nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrLength, maxDepth)
	}
	if vr == "SQ" {
		if err := w.items(start, stop, depth+1); err != nil {
			return 0, nil, err
		}
	}
	return stop, d[start:stop], nil
}

// items walks the items of a sequence of defined length.
func (w *walker) items(pos, end, depth int) error {
	for pos < end {
		if pos+8 > end {
			return fmt.Errorf("%w: truncated item at byte %d", ErrLength, pos)
		}
		if w.order.Uint16(w.data[pos:]) != 0xFFFE || w.order.Uint16(w.data[pos+2:]) != 0xE000 {
			return fmt.Errorf("%w: expected an item at byte %d", ErrLength, pos)
		}
		length := w.order.Uint32(w.data[pos+4:])
		start := pos + 8
		if length == undefined {
			next, err := w.itemUndefined(start, end, depth)
			if err != nil {
				return err
			}
			pos = next
			continue
		}
		if int64(length) > int64(end-start) {
			return fmt.Errorf("%w: item at byte %d declares %d bytes, %d remain", ErrLength, pos, length, end-start)
		}
		if err := w.elements(start, start+int(length), depth+1, false); err != nil {
			return err
		}
		pos = start + int(length)
	}
	return nil
}

// undefinedValue walks a value of undefined length up to the sequence delimiter: a
// sequence's items, or the fragments of encapsulated pixel data.
func (w *walker) undefinedValue(pos, end, depth int, fragments bool) (int, error) {
	for pos+8 <= end {
		group, elem := w.order.Uint16(w.data[pos:]), w.order.Uint16(w.data[pos+2:])
		length := w.order.Uint32(w.data[pos+4:])
		if group != 0xFFFE {
			return 0, fmt.Errorf("%w: expected an item at byte %d", ErrLength, pos)
		}
		start := pos + 8
		switch {
		case elem == 0xE0DD: // sequence delimitation item, whose length is 0 (PS3.5 7.5.2)
			if length != 0 {
				return 0, fmt.Errorf("%w: sequence delimiter at byte %d has length %d", ErrLength, pos, length)
			}
			return start, nil
		case elem != 0xE000:
			return 0, fmt.Errorf("%w: (FFFE,%04X) at byte %d is not an item", ErrLength, elem, pos)
		case length == undefined:
			next, err := w.itemUndefined(start, end, depth)
			if err != nil {
				return 0, err
			}
			pos = next
		default:
			if int64(length) > int64(end-start) {
				return 0, fmt.Errorf("%w: item at byte %d declares %d bytes, %d remain", ErrLength, pos, length, end-start)
			}
			// A pixel data fragment is raw bytes; a sequence item holds elements whose
			// own lengths must fit too.
			if !fragments {
				if err := w.elements(start, start+int(length), depth+1, false); err != nil {
					return 0, err
				}
			}
			pos = start + int(length)
		}
	}
	return 0, fmt.Errorf("%w: value of undefined length has no delimiter", ErrLength)
}

// itemUndefined walks an item of undefined length up to its delimiter.
func (w *walker) itemUndefined(pos, end, depth int) (int, error) {
	for pos < end {
		if pos+8 > end {
			return 0, fmt.Errorf("%w: truncated item at byte %d", ErrLength, pos)
		}
		if w.order.Uint16(w.data[pos:]) == 0xFFFE && w.order.Uint16(w.data[pos+2:]) == 0xE00D {
			if n := w.order.Uint32(w.data[pos+4:]); n != 0 {
				return 0, fmt.Errorf("%w: item delimiter at byte %d has length %d", ErrLength, pos, n)
			}
			return pos + 8, nil
		}
		next, _, err := w.element(pos, end, depth)
		if err != nil {
			return 0, err
		}
		pos = next
	}
	return 0, fmt.Errorf("%w: item of undefined length has no delimiter", ErrLength)
}
