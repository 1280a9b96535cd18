package synth

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// DXImageStorageForPresentation is the SOP class of the chest radiograph.
const DXImageStorageForPresentation = "1.2.840.10008.5.1.4.1.1.1.1"

// The chest radiograph's detector field: 36 cm wide, 43.2 cm high.
const (
	xrWidthMM  = 360
	xrHeightMM = 432
	// DefaultXRColumns gives 0.36 mm pixels, 1000 x 1200.
	DefaultXRColumns = 1000
	xrStation        = "SYNDX01"
	xrModel          = "CHEST PHANTOM DX"
)

// XROptions configure [ChestXR].
type XROptions struct {
	StudyOptions
	// Columns is the image width in pixels; the height is 1.2 times it. Default 1000.
	Columns      int
	SeriesNumber int // default 1
	// Noise is the standard deviation of Gaussian noise in stored pixel values; 0 means none.
	Noise float64
}

// ChestXR generates a PA chest radiograph as one Digital X-Ray Image Storage - For
// Presentation instance: MONOCHROME2, 12 bits stored in 16, with a phantom of the chest wall,
// lungs, heart, mediastinum, spine, ribs and clavicles. Higher pixel values mean more
// attenuation, so bone is bright and lung dark.
func ChestXR(opts XROptions) (*Series, error) {
	if opts.Columns == 0 {
		opts.Columns = DefaultXRColumns
	}
	if opts.SeriesNumber == 0 {
		opts.SeriesNumber = 1
	}
	switch {
	case opts.Columns < 50 || opts.Columns > 4000:
		return nil, fmt.Errorf("%w: columns %d: want 50 to 4000", ErrOptions, opts.Columns)
	case opts.SeriesNumber < 1 || opts.SeriesNumber > 999:
		return nil, fmt.Errorf("%w: series number %d: want 1 to 999", ErrOptions, opts.SeriesNumber)
	case !(opts.Noise >= 0 && opts.Noise <= 1000):
		return nil, fmt.Errorf("%w: noise %g: want 0 to 1000", ErrOptions, opts.Noise)
	}
	s, err := opts.resolve("chest-xr")
	if err != nil {
		return nil, err
	}
	spacing := dsValue(float64(xrWidthMM) / float64(opts.Columns))
	rows := int(math.Round(xrHeightMM / spacing))
	cols := opts.Columns
	// pos maps a pixel centre to millimetres from the image centre: u to the image's right
	// (the patient's left, as a PA film is viewed), v downwards (to the feet).
	pos := func(r, c int) (u, v float64) {
		return (float64(c)+0.5)*spacing - xrWidthMM/2, (float64(r)+0.5)*spacing - float64(rows)*spacing/2
	}

	const description = "XR CHEST PA"
	m := s.manifest(description, "DX")
	info := SeriesInfo{
		SeriesInstanceUID: s.uid("series", fmt.Sprint(opts.SeriesNumber)),
		SeriesNumber:      opts.SeriesNumber,
		SeriesDescription: "CHEST PA",
		Modality:          "DX",
		SOPClassUID:       DXImageStorageForPresentation,
		Rows:              rows,
		Columns:           cols,
		PixelSpacingMM:    [2]float64{spacing, spacing},
	}

	rng := rand.New(rand.NewPCG(s.hash("chest-xr", "noise", "1"), s.hash("chest-xr", "noise", "2")))
	pixels := make([]byte, 2*rows*cols)
	for r := range rows {
		for c := range cols {
			v, _ := chestAt(pos(r, c))
			if opts.Noise > 0 {
				v += rng.NormFloat64() * opts.Noise
			}
			binary.LittleEndian.PutUint16(pixels[2*(r*cols+c):], uint16(min(max(math.Round(v), 0), 4095)))
		}
	}
	info.Landmarks = chestLandmarks(rows, cols, spacing, pos)

	in := Instance{
		InstanceNumber: 1,
		SOPInstanceUID: s.uid("series", fmt.Sprint(opts.SeriesNumber), "instance", "1"),
		File:           instanceFile(opts.SeriesNumber, 1),
	}
	b := xrDataset(s, &info, description, in, spacing, pixels)
	ds, err := b.Dataset()
	if err != nil {
		return nil, fmt.Errorf("synth: chest xr: %w", err)
	}
	if in.Data, err = dicom.Encode(ds); err != nil {
		return nil, fmt.Errorf("synth: chest xr: %w", err)
	}
	info.Instances = []InstanceInfo{{InstanceNumber: 1, SOPInstanceUID: in.SOPInstanceUID, File: in.File}}
	m.Series = []SeriesInfo{info}
	return &Series{Instances: []Instance{in}, Manifest: m}, nil
}

// Chest phantom structures, named as landmarks.
const (
	xrAir         = "air"
	xrSoftTissue  = "soft tissue"
	xrLung        = "lung"
	xrHeart       = "heart"
	xrMediastinum = "mediastinum"
	xrSpine       = "spine"
	xrRib         = "rib"
	xrClavicle    = "clavicle"
)

// chestAt returns the noise-free stored value at (u, v) mm (see ChestXR) and the structure
// that dominates there. The value is a sum of projected thicknesses: a torso that fades at its
// edges, lungs that subtract, heart and mediastinum that replace lung, and bone that adds.
func chestAt(u, v float64) (float64, string) {
	value := 100.0 // direct exposure beside the patient
	s := math.Pow(math.Abs(u/155), 3) + math.Pow(math.Abs((v-40)/260), 3)
	if s >= 1 {
		return value, xrAir
	}
	value += 2000 * math.Sqrt(1-s)
	label := xrSoftTissue

	heart := ellipse(u, v, 22, 50, 62, 52)
	mediastinum := ellipse(u, v, 0, -50, 34, 130) < 1
	switch {
	case heart < 1:
		value += 350 * math.Sqrt(1-heart)
		label = xrHeart
	case mediastinum:
		value += 250
		label = xrMediastinum
	default:
		// Lung bases are cut by the diaphragm domes, the right one higher over the liver and
		// both lower at the costophrenic angles.
		lung := 1.0
		if right := ellipse(u, v, -68, -20, 52, 125); right < 1 && v < 62+0.006*(u+55)*(u+55) {
			lung = right
		}
		if left := ellipse(u, v, 70, -15, 50, 120); left < 1 && v < 72+0.006*(u-55)*(u-55) {
			lung = left
		}
		if lung < 1 {
			value -= 1300 * math.Sqrt(1-lung)
			label = xrLung
		}
	}
	if math.Abs(u) < 17 {
		value += 700
		label = xrSpine
	}
	// Posterior ribs: ten a side, sloping down and out from the spine, ending at the chest wall.
	if a := math.Abs(u); a > 18 && s < 0.9 {
		for k := range 10 {
			path := -165 + float64(k)*21 + 0.0045*(a-18)*(a-18)
			if math.Abs(v-path) < 4.5 {
				value += 450
				label = xrRib
				break
			}
		}
	}
	// Clavicles, from the sternal notch out to the shoulders.
	if segmentDistance(math.Abs(u), v, 25, -160, 140, -185) < 6 {
		value += 500
		label = xrClavicle
	}
	return value, label
}

// ellipse returns the normalised squared radius of (u, v) in an ellipse: below 1 is inside.
func ellipse(u, v, cu, cv, ru, rv float64) float64 {
	du, dv := (u-cu)/ru, (v-cv)/rv
	return du*du + dv*dv
}

func segmentDistance(u, v, u0, v0, u1, v1 float64) float64 {
	du, dv := u1-u0, v1-v0
	t := min(max(((u-u0)*du+(v-v0)*dv)/(du*du+dv*dv), 0), 1)
	return math.Hypot(u-(u0+t*du), v-(v0+t*dv))
}

// chestLandmarks picks a pixel for each structure, the nearest to a typical spot whose
// structure is the one named, so the landmark avoids ribs crossing a lung.
func chestLandmarks(rows, cols int, spacing float64, pos func(r, c int) (float64, float64)) []Landmark {
	targets := []struct {
		name, want string
		u, v       float64
	}{
		{"air", xrAir, -175, -210},
		{"lung-right", xrLung, -70, -30},
		{"lung-left", xrLung, 72, -30},
		{"heart", xrHeart, 30, 60},
		{"spine", xrSpine, 0, -100},
		{"rib", xrRib, -80, -60},
	}
	var out []Landmark
	for _, t := range targets {
		c0 := int((t.u + xrWidthMM/2) / spacing)
		r0 := int((t.v + float64(rows)*spacing/2) / spacing)
		// Search outwards in square rings, up to 20 mm away.
		found := false
		for d := 0; d <= int(20/spacing) && !found; d++ {
			for r := r0 - d; r <= r0+d && !found; r++ {
				for c := c0 - d; c <= c0+d && !found; c++ {
					if r < 0 || r >= rows || c < 0 || c >= cols || max(abs(r-r0), abs(c-c0)) != d {
						continue
					}
					if v, label := chestAt(pos(r, c)); label == t.want {
						out = append(out, Landmark{Name: t.name, Instance: 1, Row: r, Column: c, Value: math.Round(v), Unit: "stored"})
						found = true
					}
				}
			}
		}
	}
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// xrDataset builds the radiograph's dataset following the DX Image IOD (PS3.3 A.26): Patient,
// General Study, Patient Study, General Series, DX Series, General Equipment, General
// Acquisition, General Image, Image Pixel, DX Anatomy Imaged, DX Image, DX Detector, DX
// Positioning, X-Ray Acquisition Dose, Acquisition Context, VOI LUT and SOP Common.
func xrDataset(s *study, info *SeriesInfo, description string, in Instance, spacing float64, pixels []byte) *dicom.Builder {
	acquired := s.time.Add(time.Minute)
	b := &dicom.Builder{}
	b.Add(tag.SOPClassUID, DXImageStorageForPresentation)
	b.Add(tag.SOPInstanceUID, in.SOPInstanceUID)
	b.Add(tag.InstanceCreationDate, acquired)
	b.Add(tag.InstanceCreationTime, acquired)
	s.addPatientStudy(b, description)
	// General Series, DX Series
	b.Add(tag.Modality, "DX")
	b.Add(tag.SeriesInstanceUID, info.SeriesInstanceUID)
	b.Add(tag.SeriesNumber, info.SeriesNumber)
	b.Add(tag.SeriesDate, acquired)
	b.Add(tag.SeriesTime, acquired)
	b.Add(tag.SeriesDescription, info.SeriesDescription)
	b.Add(tag.ProtocolName, "CHEST PA")
	b.Add(tag.BodyPartExamined, "CHEST")
	b.Add(tag.PresentationIntentType, "FOR PRESENTATION")
	// General Equipment
	b.Add(tag.Manufacturer, manufacturer)
	b.Add(tag.InstitutionName, s.institution)
	b.Add(tag.StationName, xrStation)
	b.Add(tag.ManufacturerModelName, xrModel)
	b.Add(tag.SoftwareVersions, Generator)
	// General Acquisition, General Image
	b.Add(tag.AcquisitionNumber, 1)
	b.Add(tag.AcquisitionDate, acquired)
	b.Add(tag.AcquisitionTime, acquired)
	b.Add(tag.InstanceNumber, in.InstanceNumber)
	b.Add(tag.PatientOrientation, []string{"L", "F"})
	b.Add(tag.ContentDate, acquired)
	b.Add(tag.ContentTime, acquired)
	b.Add(tag.ImageType, []string{"ORIGINAL", "PRIMARY"})
	b.Add(tag.ImageComments, Comment)
	b.Add(tag.BurnedInAnnotation, "NO")
	b.Add(tag.LossyImageCompression, "00")
	// Image Pixel, DX Image
	b.Add(tag.SamplesPerPixel, 1)
	b.Add(tag.PhotometricInterpretation, "MONOCHROME2")
	b.Add(tag.Rows, info.Rows)
	b.Add(tag.Columns, info.Columns)
	b.Add(tag.BitsAllocated, 16)
	b.Add(tag.BitsStored, 12)
	b.Add(tag.HighBit, 11)
	b.Add(tag.PixelRepresentation, 0)
	b.Add(tag.PixelIntensityRelationship, "LOG")
	b.Add(tag.PixelIntensityRelationshipSign, -1) // higher values, less beam
	b.Add(tag.RescaleIntercept, 0.0)
	b.Add(tag.RescaleSlope, 1.0)
	b.Add(tag.RescaleType, "US")
	b.Add(tag.PresentationLUTShape, "IDENTITY")
	// DX Anatomy Imaged
	b.Add(tag.ImageLaterality, "U")
	b.Sequence(tag.AnatomicRegionSequence, code("51185008", "SCT", "Chest"))
	// DX Detector
	b.Add(tag.DetectorType, "SCINTILLATOR")
	b.Add(tag.DetectorConfiguration, "AREA")
	b.Add(tag.DetectorID, "SYNDET01")
	b.Add(tag.ImagerPixelSpacing, []float64{spacing, spacing})
	b.Add(tag.FieldOfViewShape, "RECTANGLE")
	b.Add(tag.FieldOfViewDimensions, []int{int(math.Round(float64(info.Rows) * spacing)), xrWidthMM})
	// DX Positioning
	b.Add(tag.PositionerType, "NONE") // a chest stand, not a C-arm or column
	b.Add(tag.ViewPosition, "PA")
	b.Sequence(tag.ViewCodeSequence, code("399348003", "SCT", "postero-anterior"))
	b.Add(tag.DistanceSourceToDetector, 1800.0)
	b.Add(tag.DistanceSourceToPatient, 1650.0)
	b.Add(tag.EstimatedRadiographicMagnificationFactor, 1.0909)
	// X-Ray Acquisition Dose
	b.Add(tag.KVP, 120.0)
	b.Add(tag.ExposureTime, 5)
	b.Add(tag.XRayTubeCurrent, 400)
	b.Add(tag.Exposure, 2)
	b.Add(tag.ExposureInuAs, 2000)
	// Acquisition Context: type 2, present and empty.
	b.Sequence(tag.AcquisitionContextSequence)
	// VOI LUT
	b.Add(tag.WindowCenter, 2000.0)
	b.Add(tag.WindowWidth, 3800.0)
	b.Add(tag.WindowCenterWidthExplanation, "DEFAULT")
	b.Add(tag.PixelData, pixels)
	return b
}
