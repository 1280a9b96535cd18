package synth

import (
	"math"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Equipment written to every generated dataset. It names a synthetic scanner on purpose.
const (
	manufacturer = "OSPREY SYNTHETIC"
	ctModel      = "HEAD PHANTOM CT"
	ctStation    = "SYNCT01"
)

// ctDataset builds the dataset of one CT slice. Attribute choice follows the CT Image IOD
// (PS3.3 A.3): Patient, General Study, Patient Study, General Series, Frame of Reference,
// General Equipment, General Acquisition, General Image, Image Plane, Image Pixel, Contrast/Bolus
// (only with contrast), CT Image, VOI LUT and SOP Common.
func ctDataset(s *study, o *CTOptions, g ctGeometry, info *SeriesInfo, description string, in Instance, pixels []byte) *dicom.Builder {
	acquired := s.time.Add(2 * time.Minute)
	reconstructed := s.time.Add(3 * time.Minute)
	slice := in.InstanceNumber - 1
	z := round9(g.origin[2] + float64(slice)*g.thickness)

	b := &dicom.Builder{}
	// SOP Common
	b.Add(tag.SOPClassUID, CTImageStorage)
	b.Add(tag.SOPInstanceUID, in.SOPInstanceUID)
	b.Add(tag.InstanceCreationDate, reconstructed)
	b.Add(tag.InstanceCreationTime, reconstructed)
	// Patient, General Study, Patient Study
	s.addPatientStudy(b, description)
	// General Series
	b.Add(tag.Modality, "CT")
	b.Add(tag.SeriesInstanceUID, info.SeriesInstanceUID)
	b.Add(tag.SeriesNumber, info.SeriesNumber)
	b.Add(tag.SeriesDate, acquired)
	b.Add(tag.SeriesTime, acquired)
	b.Add(tag.SeriesDescription, info.SeriesDescription)
	b.Add(tag.ProtocolName, "HEAD ROUTINE")
	b.Add(tag.BodyPartExamined, "HEAD")
	b.Add(tag.PatientPosition, "HFS")
	// Frame of Reference
	b.Add(tag.FrameOfReferenceUID, info.FrameOfReferenceUID)
	b.Add(tag.PositionReferenceIndicator, "")
	// General Equipment
	b.Add(tag.Manufacturer, manufacturer)
	b.Add(tag.InstitutionName, s.institution)
	b.Add(tag.StationName, ctStation)
	b.Add(tag.ManufacturerModelName, ctModel)
	b.Add(tag.SoftwareVersions, Generator)
	// General Acquisition and General Image
	b.Add(tag.AcquisitionNumber, 1)
	b.Add(tag.AcquisitionDate, acquired)
	b.Add(tag.AcquisitionTime, acquired)
	b.Add(tag.InstanceNumber, in.InstanceNumber)
	b.Add(tag.ContentDate, reconstructed)
	b.Add(tag.ContentTime, reconstructed)
	b.Add(tag.ImageType, []string{"ORIGINAL", "PRIMARY", "AXIAL"})
	b.Add(tag.ImageComments, Comment)
	b.Add(tag.BurnedInAnnotation, "NO")
	b.Add(tag.LossyImageCompression, "00")
	// Image Plane
	b.Add(tag.PixelSpacing, []float64{g.spacing, g.spacing})
	b.Add(tag.ImageOrientationPatient, []float64{1, 0, 0, 0, 1, 0})
	b.Add(tag.ImagePositionPatient, []float64{round9(g.origin[0]), round9(g.origin[1]), z})
	b.Add(tag.SliceThickness, g.thickness)
	b.Add(tag.SpacingBetweenSlices, g.thickness)
	b.Add(tag.SliceLocation, z)
	// Image Pixel and CT Image
	b.Add(tag.SamplesPerPixel, 1)
	b.Add(tag.PhotometricInterpretation, "MONOCHROME2")
	b.Add(tag.Rows, g.size)
	b.Add(tag.Columns, g.size)
	b.Add(tag.BitsAllocated, 16)
	b.Add(tag.BitsStored, 16)
	b.Add(tag.HighBit, 15)
	b.Add(tag.PixelRepresentation, map[bool]int{false: 0, true: 1}[o.Signed])
	b.Add(tag.RescaleIntercept, float64(RescaleIntercept))
	b.Add(tag.RescaleSlope, 1.0)
	b.Add(tag.RescaleType, "HU")
	b.Add(tag.KVP, 120.0)
	b.Add(tag.ScanOptions, "HELICAL MODE")
	b.Add(tag.DataCollectionDiameter, 500.0)
	b.Add(tag.ReconstructionDiameter, o.FieldOfViewMM)
	b.Add(tag.DistanceSourceToDetector, 1085.6)
	b.Add(tag.DistanceSourceToPatient, 595.0)
	b.Add(tag.GantryDetectorTilt, 0.0)
	b.Add(tag.TableHeight, 160.0)
	b.Add(tag.RotationDirection, "CW")
	b.Add(tag.ExposureTime, 1000)
	b.Add(tag.XRayTubeCurrent, 300)
	b.Add(tag.Exposure, 300)
	b.Add(tag.FilterType, "HEAD FILTER")
	b.Add(tag.GeneratorPower, 36)
	b.Add(tag.FocalSpots, 0.7)
	b.Add(tag.ConvolutionKernel, "STANDARD")
	b.Add(tag.RevolutionTime, 1.0)
	b.Add(tag.SingleCollimationWidth, 0.625)
	b.Add(tag.TotalCollimationWidth, 40.0)
	b.Add(tag.SpiralPitchFactor, 0.531)
	b.Add(tag.CTDIvol, 55.0)
	b.Sequence(tag.CTDIPhantomTypeCodeSequence, code("113690", "DCM", "IEC Head Dosimetry Phantom"))
	// Contrast/Bolus, present only for an enhanced study: a detector rule tells the two apart
	// by whether ContrastBolusAgent is there at all.
	if o.Contrast != "" {
		b.Add(tag.ContrastBolusAgent, o.Contrast)
		b.Add(tag.ContrastBolusRoute, "IV")
		b.Add(tag.ContrastBolusVolume, 75.0)
		b.Add(tag.ContrastBolusIngredient, "IODINE")
		b.Add(tag.ContrastBolusIngredientConcentration, 350.0)
	}
	// VOI LUT: the brain window.
	b.Add(tag.WindowCenter, 40.0)
	b.Add(tag.WindowWidth, 80.0)
	b.Add(tag.WindowCenterWidthExplanation, "BRAIN")
	b.Add(tag.PixelData, pixels)
	return b
}

// headLandmarks picks one voxel per tissue a test can read back: air outside the head, the
// middle of the skull on the patient's left at mid-head, white matter in the hemisphere
// opposite the bleed, the centre of the left lateral ventricle and the centre of the bleed.
// A landmark the volume is too coarse or too small to hit is left out.
func headLandmarks(g ctGeometry, head *headPhantom, bleedShape *ellipsoid, b *Bleed) []Landmark {
	var out []Landmark
	at := func(slice, row, col int) tissue {
		p := g.point(slice, row, col)
		if bleedShape != nil && bleedShape.inside(p) {
			return bleed
		}
		return head.at(p)
	}
	add := func(name string, want tissue, slice, row, col int) {
		if at(slice, row, col) != want {
			return
		}
		v := tissueHU[want]
		if want == bleed {
			v = b.HU
		}
		out = append(out, Landmark{Name: name, Instance: slice + 1, Row: row, Column: col, Value: v, Unit: "HU"})
	}
	addNear := func(name string, want tissue, p [3]float64) {
		if slice, row, col, ok := g.nearest(p); ok {
			add(name, want, slice, row, col)
		}
	}

	add("air", air, 0, 0, 0)
	if slice, row, centre, ok := g.nearest([3]float64{0, 0, 0}); ok {
		// The middle of the run of skull voxels along the row through the head's centre.
		first, last := -1, -1
		for c := centre; c < g.size; c++ {
			if at(slice, row, c) == skull {
				if first < 0 {
					first = c
				}
				last = c
			} else if first >= 0 {
				break
			}
		}
		if first >= 0 {
			add("skull", skull, slice, row, (first+last)/2)
		}
	}
	x := -30.0 // the patient's right, away from a left bleed
	if b != nil && b.Side == "right" {
		x = 30
	}
	addNear("brain", white, [3]float64{x, 30, 0})
	addNear("csf", csf, head.ventricles[0].c)
	if bleedShape != nil {
		addNear("bleed", bleed, bleedShape.c)
	}
	return out
}

// round9 rounds to a nanometre, so that sums of slice steps print as the decimals they are.
func round9(v float64) float64 { return math.Round(v*1e9) / 1e9 }

func round3(v float64) float64 { return math.Round(v*1e3) / 1e3 }

// code returns a code sequence item (PS3.3 Table 8.8-1).
func code(value, scheme, meaning string) *dicom.Builder {
	b := &dicom.Builder{}
	b.Add(tag.CodeValue, value)
	b.Add(tag.CodingSchemeDesignator, scheme)
	b.Add(tag.CodeMeaning, meaning)
	return b
}
