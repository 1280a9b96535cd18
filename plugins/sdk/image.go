package sdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Errors of [DecodeImage]. Each is wrapped with the detail; a handler returning one of them
// gets a failed result with code invalid_input.
var (
	ErrMissingTag  = errors.New("sdk: missing or malformed attribute")
	ErrUnsupported = errors.New("sdk: unsupported encoding")
	ErrTruncated   = errors.New("sdk: truncated or unreadable instance")
)

const errNotSupported = "compressed transfer syntaxes are not supported; send uncompressed (Explicit or Implicit VR Little Endian) instances"

// The transfer syntaxes whose pixel data DecodeImage reads.
const (
	implicitVRLittleEndian = "1.2.840.10008.1.2"
	explicitVRLittleEndian = "1.2.840.10008.1.2.1"
	explicitVRBigEndian    = "1.2.840.10008.1.2.2"

	deflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
)

// Image is one decoded greyscale instance: its identifiers, its geometry and its pixel values
// after the modality LUT, so Hounsfield units for CT.
type Image struct {
	SOPInstanceUID, SeriesInstanceUID, StudyInstanceUID, SOPClassUID string
	Modality                                                         string
	InstanceNumber                                                   int
	// ContrastBolusAgent is empty for an acquisition without contrast.
	ContrastBolusAgent string
	// PhotometricInterpretation is MONOCHROME2 (higher is brighter) or MONOCHROME1 (higher is
	// darker); the values are not inverted for MONOCHROME1.
	PhotometricInterpretation string
	Rows, Cols, Frames        int
	// BitsAllocated (8 or 16) and BitsStored are the stored depth, for a model that
	// normalises by it.
	BitsAllocated, BitsStored int
	// Pixels holds Frames x Rows x Cols values, frame by frame and row by row: the stored
	// values masked to BitsStored, sign-extended when PixelRepresentation is 1, then
	// multiplied by RescaleSlope and offset by RescaleIntercept when the instance has them.
	// For CT they are Hounsfield units; otherwise grey values in the instance's own scale.
	Pixels []float32
	// The geometry, nil when the instance has no such attribute: PixelSpacing (row spacing,
	// column spacing, mm), ImagePositionPatient (the centre of the first pixel, LPS, mm),
	// ImageOrientationPatient (the row then the column direction cosines).
	PixelSpacing     []float64
	ImagePosition    []float64
	ImageOrientation []float64
	// SliceThickness in mm, 0 when absent.
	SliceThickness float64
}

// Frame returns the values of frame i (0-based) of im, sharing im.Pixels.
func (im *Image) Frame(i int) []float32 {
	n := im.Rows * im.Cols
	return im.Pixels[i*n : (i+1)*n : (i+1)*n]
}

// maxPixels bounds what DecodeImage allocates for one instance (one gigabyte of float32).
const maxPixels = 1 << 28

// DecodeImage decodes one Part 10 instance of a greyscale image (single or multi-frame,
// 8 or 16 bits allocated) in an uncompressed transfer syntax: Implicit VR Little Endian,
// Explicit VR Little Endian or Explicit VR Big Endian. Compressed transfer syntaxes fail
// with [ErrUnsupported]; fetch them uncompressed (WADO-RS transfer-syntax negotiation) or
// decode them yourself.
//
// Before parsing, a walk over the element headers checks that no value length runs past the
// end of data, so a corrupt length cannot make the parser allocate gigabytes; a parser panic
// is reported as [ErrTruncated]. Data from the network is safe to pass.
func DecodeImage(data []byte) (im *Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			im, err = nil, fmt.Errorf("%w: %v", ErrTruncated, r)
		}
	}()
	if err := checkLengths(data); err != nil {
		return nil, err
	}
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	a := attrs{ds: &ds}

	ts := a.str(tag.TransferSyntaxUID)
	var order binary.ByteOrder = binary.LittleEndian
	switch ts {
	case implicitVRLittleEndian, explicitVRLittleEndian:
	case explicitVRBigEndian:
		order = binary.BigEndian
	case "":
		return nil, fmt.Errorf("%w: TransferSyntaxUID", ErrMissingTag)
	default:
		return nil, fmt.Errorf("%w: transfer syntax %s: %s", ErrUnsupported, ts, errNotSupported)
	}
	im = &Image{
		SOPInstanceUID:            a.required(tag.SOPInstanceUID, "SOPInstanceUID"),
		SeriesInstanceUID:         a.str(tag.SeriesInstanceUID),
		StudyInstanceUID:          a.str(tag.StudyInstanceUID),
		SOPClassUID:               a.str(tag.SOPClassUID),
		Modality:                  a.str(tag.Modality),
		InstanceNumber:            a.intOr(tag.InstanceNumber, 0),
		ContrastBolusAgent:        a.str(tag.ContrastBolusAgent),
		PhotometricInterpretation: a.str(tag.PhotometricInterpretation),
		Rows:                      a.requiredInt(tag.Rows, "Rows"),
		Cols:                      a.requiredInt(tag.Columns, "Columns"),
		Frames:                    a.intOr(tag.NumberOfFrames, 1),
		PixelSpacing:              a.optionalFloats(tag.PixelSpacing, "PixelSpacing", 2),
		ImagePosition:             a.optionalFloats(tag.ImagePositionPatient, "ImagePositionPatient", 3),
		ImageOrientation:          a.optionalFloats(tag.ImageOrientationPatient, "ImageOrientationPatient", 6),
		SliceThickness:            a.floatOr(tag.SliceThickness, 0),
	}
	samples := a.intOr(tag.SamplesPerPixel, 1)
	allocated := a.requiredInt(tag.BitsAllocated, "BitsAllocated")
	stored := a.requiredInt(tag.BitsStored, "BitsStored")
	high := a.intOr(tag.HighBit, stored-1)
	signed := a.requiredInt(tag.PixelRepresentation, "PixelRepresentation") == 1
	slope := a.floatOr(tag.RescaleSlope, 1)
	intercept := a.floatOr(tag.RescaleIntercept, 0)
	if a.err != nil {
		return nil, a.err
	}
	im.BitsAllocated, im.BitsStored = allocated, stored
	n := int64(im.Rows) * int64(im.Cols) * int64(im.Frames)
	switch {
	case im.Rows < 1 || im.Cols < 1 || im.Frames < 1:
		return nil, fmt.Errorf("%w: %dx%d pixels, %d frames", ErrMissingTag, im.Rows, im.Cols, im.Frames)
	case n > maxPixels:
		return nil, fmt.Errorf("%w: %d frames of %dx%d pixels is too large", ErrUnsupported, im.Frames, im.Rows, im.Cols)
	case samples != 1:
		return nil, fmt.Errorf("%w: %d samples per pixel: want greyscale", ErrUnsupported, samples)
	case allocated != 8 && allocated != 16:
		return nil, fmt.Errorf("%w: BitsAllocated %d: only 8 and 16 are read", ErrUnsupported, allocated)
	case stored < 1 || stored > allocated || high != stored-1:
		return nil, fmt.Errorf("%w: BitsStored %d, HighBit %d", ErrUnsupported, stored, high)
	case slope == 0:
		return nil, fmt.Errorf("%w: RescaleSlope 0", ErrMissingTag)
	}

	pe, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil, fmt.Errorf("%w: PixelData", ErrMissingTag)
	}
	info, ok := pe.Value.GetValue().(dicom.PixelDataInfo)
	if !ok || info.IsEncapsulated {
		return nil, fmt.Errorf("%w: encapsulated pixel data: %s", ErrUnsupported, errNotSupported)
	}
	raw := info.UnprocessedValueData
	size := int(n) * allocated / 8
	if len(raw) < size {
		return nil, fmt.Errorf("%w: %d bytes of pixel data for %d frames of %dx%d pixels", ErrTruncated, len(raw), im.Frames, im.Rows, im.Cols)
	}
	im.Pixels = modalityLUT(raw[:size], allocated, order, stored, signed, slope, intercept)
	return im, nil
}

// modalityLUT turns stored values into output values. The bits above BitsStored are masked
// off (they may carry overlays in old files) and, for signed pixels, the sign is extended
// from bit BitsStored-1.
func modalityLUT(raw []byte, allocated int, order binary.ByteOrder, stored int, signed bool, slope, intercept float64) []float32 {
	width := allocated / 8
	out := make([]float32, len(raw)/width)
	mask := uint32(1)<<stored - 1
	signBit := uint32(1) << (stored - 1)
	for i := range out {
		var u uint32
		if width == 2 {
			u = uint32(order.Uint16(raw[2*i:]))
		} else {
			u = uint32(raw[i])
		}
		u &= mask
		s := int32(u)
		if signed && u&signBit != 0 {
			s -= int32(mask) + 1
		}
		out[i] = float32(float64(s)*slope + intercept)
	}
	return out
}

// attrs reads attributes, remembering the first missing or malformed one so that the
// caller can check once.
type attrs struct {
	ds  *dicom.Dataset
	err error
}

func (a *attrs) strings(t tag.Tag) []string {
	e, err := a.ds.FindElementByTag(t)
	if err != nil {
		return nil
	}
	v, _ := e.Value.GetValue().([]string)
	return v
}

func (a *attrs) str(t tag.Tag) string {
	v := a.strings(t)
	if len(v) == 0 {
		return ""
	}
	return strings.TrimRight(strings.TrimSpace(v[0]), "\x00")
}

func (a *attrs) fail(name, detail string) {
	if a.err == nil {
		a.err = fmt.Errorf("%w: %s%s", ErrMissingTag, name, detail)
	}
}

func (a *attrs) required(t tag.Tag, name string) string {
	s := a.str(t)
	if s == "" {
		a.fail(name, "")
	}
	return s
}

// integer reads US/SS/UL values as well as IS strings.
func (a *attrs) integer(t tag.Tag) (int, bool) {
	e, err := a.ds.FindElementByTag(t)
	if err != nil {
		return 0, false
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		if len(v) > 0 {
			return v[0], true
		}
	case []string:
		if len(v) > 0 {
			n, err := strconv.Atoi(strings.TrimSpace(v[0]))
			return n, err == nil
		}
	}
	return 0, false
}

func (a *attrs) requiredInt(t tag.Tag, name string) int {
	n, ok := a.integer(t)
	if !ok {
		a.fail(name, "")
	}
	return n
}

func (a *attrs) intOr(t tag.Tag, def int) int {
	if n, ok := a.integer(t); ok {
		return n
	}
	return def
}

func (a *attrs) floats(t tag.Tag) ([]float64, bool) {
	e, err := a.ds.FindElementByTag(t)
	if err != nil {
		return nil, false
	}
	switch v := e.Value.GetValue().(type) {
	case []float64:
		return v, len(v) > 0
	case []string:
		out := make([]float64, 0, len(v))
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, false
			}
			out = append(out, f)
		}
		return out, len(out) > 0
	}
	return nil, false
}

// optionalFloats returns nil when the attribute is absent and fails when it is present but
// does not hold n numbers: geometry read wrong is worse than geometry missing.
func (a *attrs) optionalFloats(t tag.Tag, name string, n int) []float64 {
	if _, err := a.ds.FindElementByTag(t); err != nil {
		return nil
	}
	v, ok := a.floats(t)
	if !ok || len(v) != n {
		a.fail(name, fmt.Sprintf(" (want %d numbers)", n))
		return nil
	}
	return v
}

func (a *attrs) floatOr(t tag.Tag, def float64) float64 {
	if v, ok := a.floats(t); ok {
		return v[0]
	}
	return def
}
