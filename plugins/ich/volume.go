package ich

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/osprey-health/osprey/plugins/sdk"
)

// Errors of [VolumeFromDICOM]. Each is wrapped with the instance and the detail. The
// decoding errors are the SDK's, so errors.Is works with either name.
var (
	ErrNoInstances = errors.New("ich: no instances")
	ErrNotCT       = errors.New("ich: not a CT image")
	ErrMixedSeries = errors.New("ich: instances do not form one series")
	ErrBadGeometry = errors.New("ich: unusable slice geometry")
	ErrMissingTag  = sdk.ErrMissingTag
	ErrUnsupported = sdk.ErrUnsupported
	ErrTruncated   = sdk.ErrTruncated
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

// parseInstance decodes one Part 10 file with the SDK and keeps what the detector needs.
func parseInstance(data []byte) (instance, error) {
	im, err := sdk.DecodeImage(data)
	if err != nil {
		return instance{}, err
	}
	switch {
	case im.Modality != "CT":
		return instance{}, fmt.Errorf("%w: Modality %q", ErrNotCT, im.Modality)
	case im.SOPClassUID != ctImageStorage:
		return instance{}, fmt.Errorf("%w: SOPClassUID %q is not CT Image Storage", ErrNotCT, im.SOPClassUID)
	case im.SeriesInstanceUID == "":
		return instance{}, fmt.Errorf("%w: SeriesInstanceUID", ErrMissingTag)
	case im.PixelSpacing == nil:
		return instance{}, fmt.Errorf("%w: PixelSpacing", ErrMissingTag)
	case im.ImageOrientation == nil:
		return instance{}, fmt.Errorf("%w: ImageOrientationPatient", ErrMissingTag)
	case im.ImagePosition == nil:
		return instance{}, fmt.Errorf("%w: ImagePositionPatient", ErrMissingTag)
	case !(im.PixelSpacing[0] > 0 && im.PixelSpacing[1] > 0):
		return instance{}, fmt.Errorf("%w: PixelSpacing %v", ErrBadGeometry, im.PixelSpacing)
	case im.Frames != 1:
		return instance{}, fmt.Errorf("%w: %d frames: want single-frame images", ErrUnsupported, im.Frames)
	case im.BitsAllocated != 16:
		return instance{}, fmt.Errorf("%w: BitsAllocated %d: only 16 is read", ErrUnsupported, im.BitsAllocated)
	}
	in := instance{
		seriesUID: im.SeriesInstanceUID,
		sopUID:    im.SOPInstanceUID,
		contrast:  im.ContrastBolusAgent,
		number:    im.InstanceNumber,
		rows:      im.Rows,
		cols:      im.Cols,
		thickness: im.SliceThickness,
		hu:        make([]int16, len(im.Pixels)),
	}
	copy(in.spacing[:], im.PixelSpacing)
	copy(in.orientation[:], im.ImageOrientation)
	copy(in.position[:], im.ImagePosition)
	for i, v := range im.Pixels {
		in.hu[i] = int16(min(max(math.Round(float64(v)), math.MinInt16), math.MaxInt16))
	}
	return in, nil
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
