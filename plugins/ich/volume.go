package ich

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Errors of [VolumeFromDICOM]. Each is wrapped with the instance and the detail.
var (
	ErrNoInstances = errors.New("ich: no instances")
	ErrMissingTag  = errors.New("ich: missing or malformed attribute")
	ErrNotCT       = errors.New("ich: not a CT image")
	ErrMixedSeries = errors.New("ich: instances do not form one series")
	ErrUnsupported = errors.New("ich: unsupported encoding")
	ErrBadGeometry = errors.New("ich: unusable slice geometry")
	ErrTruncated   = errors.New("ich: truncated or unreadable instance")
)

const errNotSupported = "compressed transfer syntaxes are not supported; send uncompressed (Explicit or Implicit VR Little Endian) instances"

// The transfer syntaxes whose pixel data this package reads.
const (
	implicitVRLittleEndian = "1.2.840.10008.1.2"
	explicitVRLittleEndian = "1.2.840.10008.1.2.1"
	explicitVRBigEndian    = "1.2.840.10008.1.2.2"

	deflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
)

// ctImageStorage is the only SOP class accepted: single-frame CT images. Enhanced CT
// (multi-frame) is left out on purpose, because its geometry lives in functional groups.
const ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"

// Volume is one CT series as a stack of slices in Hounsfield units.
type Volume struct {
	// Slices are sorted by Position, the distance along the slice normal, ascending.
	Slices []Slice
	// RowSpacing is the distance between the centres of adjacent rows and ColSpacing between
	// adjacent columns (PixelSpacing[0] and [1]); SliceSpacing between adjacent slices; all mm.
	RowSpacing, ColSpacing, SliceSpacing float64
	Rows, Cols                           int
	// RowDirection and ColDirection are the direction cosines of ImageOrientationPatient:
	// the patient direction in which column and row indices increase. Zero values mean the
	// standard axial orientation, 1\0\0 and 0\1\0.
	RowDirection, ColDirection [3]float64
	SeriesInstanceUID          string
	// Contrast is the ContrastBolusAgent, empty for a series without contrast.
	Contrast string
}

// Slice is one image of a [Volume].
type Slice struct {
	SOPInstanceUID string
	InstanceNumber int
	// Position is ImagePositionPatient projected on the slice normal, in mm.
	Position float64
	// ImagePosition is ImagePositionPatient: the centre of the first pixel, LPS, in mm.
	ImagePosition [3]float64
	// HU holds Rows x Cols values, row by row, after RescaleSlope and RescaleIntercept,
	// clamped to the int16 range.
	HU []int16
}

// instance is what VolumeFromDICOM keeps of one parsed file before stacking.
type instance struct {
	seriesUID, sopUID, contrast string
	number                      int
	rows, cols                  int
	spacing                     [2]float64
	orientation                 [6]float64
	position                    [3]float64
	thickness                   float64
	hu                          []int16
}

// VolumeFromDICOM decodes Part 10 CT Image Storage instances of one series into a Volume.
// The instances may come in any order; they are sorted along the slice normal. Only
// uncompressed transfer syntaxes are read; compressed ones fail with [ErrUnsupported].
func VolumeFromDICOM(instances [][]byte) (*Volume, error) {
	if len(instances) == 0 {
		return nil, ErrNoInstances
	}
	parsed := make([]instance, 0, len(instances))
	for i, data := range instances {
		in, err := parseInstance(data)
		if err != nil {
			return nil, fmt.Errorf("ich: instance %d: %w", i+1, err)
		}
		parsed = append(parsed, in)
	}
	first := parsed[0]
	for i, in := range parsed[1:] {
		if err := sameSeries(first, in); err != nil {
			return nil, fmt.Errorf("ich: instance %d (%s): %w", i+2, in.sopUID, err)
		}
	}

	rowDir := [3]float64{first.orientation[0], first.orientation[1], first.orientation[2]}
	colDir := [3]float64{first.orientation[3], first.orientation[4], first.orientation[5]}
	normal := cross(rowDir, colDir)
	if n := norm(normal); n < 0.9 || n > 1.1 {
		return nil, fmt.Errorf("%w: ImageOrientationPatient %v is not two orthogonal unit vectors", ErrBadGeometry, first.orientation)
	}
	v := &Volume{
		Rows:              first.rows,
		Cols:              first.cols,
		RowSpacing:        first.spacing[0],
		ColSpacing:        first.spacing[1],
		RowDirection:      rowDir,
		ColDirection:      colDir,
		SeriesInstanceUID: first.seriesUID,
		Contrast:          first.contrast,
		Slices:            make([]Slice, len(parsed)),
	}
	for i, in := range parsed {
		v.Slices[i] = Slice{
			SOPInstanceUID: in.sopUID,
			InstanceNumber: in.number,
			Position:       dot(in.position, normal),
			ImagePosition:  in.position,
			HU:             in.hu,
		}
	}
	slices.SortStableFunc(v.Slices, func(a, b Slice) int { return cmpFloat(a.Position, b.Position) })
	spacing, err := sliceSpacing(v.Slices, first.thickness)
	if err != nil {
		return nil, err
	}
	v.SliceSpacing = spacing
	return v, nil
}

// sliceSpacing derives the spacing from the sorted positions: the detector measures volumes
// with it, so duplicated positions or uneven gaps are errors rather than guesses.
func sliceSpacing(s []Slice, thickness float64) (float64, error) {
	if len(s) == 1 {
		if thickness > 0 {
			return thickness, nil
		}
		return 0, fmt.Errorf("%w: a single slice without SliceThickness", ErrBadGeometry)
	}
	for i := 1; i < len(s); i++ {
		if s[i].Position-s[i-1].Position < 1e-3 {
			return 0, fmt.Errorf("%w: instances %d and %d are at the same position %.3f mm", ErrBadGeometry, s[i-1].InstanceNumber, s[i].InstanceNumber, s[i].Position)
		}
	}
	mean := (s[len(s)-1].Position - s[0].Position) / float64(len(s)-1)
	for i := 1; i < len(s); i++ {
		gap := s[i].Position - s[i-1].Position
		if math.Abs(gap-mean) > 0.1*mean {
			return 0, fmt.Errorf("%w: uneven slice spacing: %.3f mm between instances %d and %d, %.3f mm on average", ErrBadGeometry, gap, s[i-1].InstanceNumber, s[i].InstanceNumber, mean)
		}
	}
	return mean, nil
}

func sameSeries(a, b instance) error {
	switch {
	case a.seriesUID != b.seriesUID:
		return fmt.Errorf("%w: SeriesInstanceUID %s, expected %s", ErrMixedSeries, b.seriesUID, a.seriesUID)
	case a.rows != b.rows || a.cols != b.cols:
		return fmt.Errorf("%w: %dx%d pixels, expected %dx%d", ErrMixedSeries, b.rows, b.cols, a.rows, a.cols)
	case !closeAll(a.spacing[:], b.spacing[:], 1e-4):
		return fmt.Errorf("%w: PixelSpacing %v, expected %v", ErrMixedSeries, b.spacing, a.spacing)
	case !closeAll(a.orientation[:], b.orientation[:], 1e-4):
		return fmt.Errorf("%w: ImageOrientationPatient %v, expected %v", ErrMixedSeries, b.orientation, a.orientation)
	}
	return nil
}

// parseInstance reads one Part 10 file: the attributes the detector needs and the pixels in HU.
func parseInstance(data []byte) (in instance, err error) {
	// The parser panics on some malformed input; a detector fed from the network must not.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrTruncated, r)
		}
	}()
	if err := checkLengths(data); err != nil {
		return in, err
	}
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		return in, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	a := attrs{ds: &ds}

	ts := a.str(tag.TransferSyntaxUID)
	var order binary.ByteOrder = binary.LittleEndian
	switch ts {
	case implicitVRLittleEndian, explicitVRLittleEndian:
	case explicitVRBigEndian:
		order = binary.BigEndian
	case "":
		return in, fmt.Errorf("%w: TransferSyntaxUID", ErrMissingTag)
	default:
		return in, fmt.Errorf("%w: transfer syntax %s: %s", ErrUnsupported, ts, errNotSupported)
	}
	if modality := a.str(tag.Modality); modality != "CT" {
		return in, fmt.Errorf("%w: Modality %q", ErrNotCT, modality)
	}
	if class := a.str(tag.SOPClassUID); class != ctImageStorage {
		return in, fmt.Errorf("%w: SOPClassUID %q is not CT Image Storage", ErrNotCT, class)
	}

	in.seriesUID = a.required(tag.SeriesInstanceUID, "SeriesInstanceUID")
	in.sopUID = a.required(tag.SOPInstanceUID, "SOPInstanceUID")
	in.contrast = a.str(tag.ContrastBolusAgent)
	in.number = a.intOr(tag.InstanceNumber, 0)
	in.rows = a.requiredInt(tag.Rows, "Rows")
	in.cols = a.requiredInt(tag.Columns, "Columns")
	copy(in.spacing[:], a.requiredFloats(tag.PixelSpacing, "PixelSpacing", 2))
	copy(in.orientation[:], a.requiredFloats(tag.ImageOrientationPatient, "ImageOrientationPatient", 6))
	copy(in.position[:], a.requiredFloats(tag.ImagePositionPatient, "ImagePositionPatient", 3))
	in.thickness = a.floatOr(tag.SliceThickness, 0)
	samples := a.intOr(tag.SamplesPerPixel, 1)
	frames := a.intOr(tag.NumberOfFrames, 1)
	allocated := a.requiredInt(tag.BitsAllocated, "BitsAllocated")
	stored := a.requiredInt(tag.BitsStored, "BitsStored")
	high := a.intOr(tag.HighBit, stored-1)
	signed := a.requiredInt(tag.PixelRepresentation, "PixelRepresentation") == 1
	slope := a.floatOr(tag.RescaleSlope, 1)
	intercept := a.floatOr(tag.RescaleIntercept, 0)
	if a.err != nil {
		return in, a.err
	}
	switch {
	case in.rows < 1 || in.cols < 1:
		return in, fmt.Errorf("%w: %dx%d pixels", ErrBadGeometry, in.rows, in.cols)
	case !(in.spacing[0] > 0 && in.spacing[1] > 0):
		return in, fmt.Errorf("%w: PixelSpacing %v", ErrBadGeometry, in.spacing)
	case samples != 1 || frames != 1:
		return in, fmt.Errorf("%w: %d samples per pixel, %d frames: want single-frame greyscale", ErrUnsupported, samples, frames)
	case allocated != 16:
		return in, fmt.Errorf("%w: BitsAllocated %d: only 16 is read", ErrUnsupported, allocated)
	case stored < 1 || stored > 16 || high != stored-1:
		return in, fmt.Errorf("%w: BitsStored %d, HighBit %d", ErrUnsupported, stored, high)
	case slope == 0:
		return in, fmt.Errorf("%w: RescaleSlope 0", ErrMissingTag)
	}

	pe, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return in, fmt.Errorf("%w: PixelData", ErrMissingTag)
	}
	info, ok := pe.Value.GetValue().(dicom.PixelDataInfo)
	if !ok || info.IsEncapsulated {
		return in, fmt.Errorf("%w: encapsulated pixel data: %s", ErrUnsupported, errNotSupported)
	}
	raw := info.UnprocessedValueData
	n := in.rows * in.cols
	if len(raw) < 2*n {
		return in, fmt.Errorf("%w: %d bytes of pixel data for %dx%d pixels", ErrTruncated, len(raw), in.rows, in.cols)
	}
	in.hu = toHU(raw[:2*n], order, stored, signed, slope, intercept)
	return in, nil
}

// toHU applies the modality LUT. The bits above BitsStored are masked off (they may carry
// overlays in old files) and, for signed pixels, the sign is extended from bit BitsStored-1.
func toHU(raw []byte, order binary.ByteOrder, stored int, signed bool, slope, intercept float64) []int16 {
	out := make([]int16, len(raw)/2)
	mask := uint32(1)<<stored - 1
	signBit := uint32(1) << (stored - 1)
	identity := slope == 1 && intercept == math.Trunc(intercept)
	shift := int32(intercept)
	for i := range out {
		u := uint32(order.Uint16(raw[2*i:])) & mask
		s := int32(u)
		if signed && u&signBit != 0 {
			s -= int32(mask) + 1
		}
		var hu int32
		if identity {
			hu = s + shift
		} else {
			hu = int32(math.Round(float64(s)*slope + intercept))
		}
		out[i] = int16(min(max(hu, math.MinInt16), math.MaxInt16))
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

func (a *attrs) requiredFloats(t tag.Tag, name string, n int) []float64 {
	v, ok := a.floats(t)
	if !ok || len(v) != n {
		a.fail(name, fmt.Sprintf(" (want %d numbers)", n))
		return make([]float64, n)
	}
	return v
}

func (a *attrs) floatOr(t tag.Tag, def float64) float64 {
	if v, ok := a.floats(t); ok {
		return v[0]
	}
	return def
}

func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }

func norm(a [3]float64) float64 { return math.Sqrt(dot(a, a)) }

func closeAll(a, b []float64, tol float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
