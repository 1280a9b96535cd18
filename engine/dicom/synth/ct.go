package synth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/osprey-health/osprey/engine/dicom"
)

// CTImageStorage is the SOP class of the head CT series.
const CTImageStorage = "1.2.840.10008.5.1.4.1.1.2"

// RescaleIntercept is the CT series' RescaleIntercept (with RescaleSlope 1): HU = stored - 1024.
const RescaleIntercept = -1024

// Defaults of CTOptions.
const (
	DefaultSlices        = 32
	DefaultSize          = 256
	DefaultFieldOfViewMM = 250
	// When SliceThicknessMM is zero, slices are DefaultSliceThicknessMM thick, or thinner when
	// there are more than 32 of them, so that together they cover DefaultCoverageMM.
	DefaultSliceThicknessMM = 5
	DefaultCoverageMM       = 160
	DefaultBleedRadiusMM    = 12
)

// ErrBleedOutsideBrain reports a Bleed that would reach beyond the brain: into CSF, the
// ventricles, the skull or outside the scanned volume.
var ErrBleedOutsideBrain = errors.New("synth: bleed does not lie within the brain")

// CTOptions configure [HeadCT]. The zero value gives the default series: 32 axial slices of
// 256 x 256, 5 mm thick, without contrast or bleed.
type CTOptions struct {
	StudyOptions
	Slices           int     // number of axial slices; default 32
	Size             int     // rows and columns; default 256
	FieldOfViewMM    float64 // reconstruction diameter; default 250
	SliceThicknessMM float64 // contiguous slices; default 5 mm, or 160 mm / Slices if thinner
	SeriesNumber     int     // default 2 (series 1 is, by habit, the scout)
	// Signed stores pixels as signed 16-bit (PixelRepresentation 1) instead of unsigned; the
	// stored values are the same, HU + 1024, either way.
	Signed bool
	// NoiseHU is the standard deviation of Gaussian noise added to every voxel; 0 gives exact
	// tissue values.
	NoiseHU float64
	// Contrast, if set, is the ContrastBolusAgent of a contrast-enhanced study ("IOHEXOL",
	// say). Empty means a study without contrast, which has no Contrast/Bolus module at all.
	Contrast string
	// Bleed adds an intraparenchymal haemorrhage; nil means none.
	Bleed *Bleed
}

// Bleed is a hyperdense ellipsoid placed in one cerebral hemisphere, centred 30 mm from the
// midline, lateral to the ventricles. Its semi-axes are RadiusMM left to right and top to
// bottom and 1.2 x RadiusMM front to back.
type Bleed struct {
	Side        string  // the patient's "left" or "right"; default "left"
	CenterSlice int     // InstanceNumber of the slice through its centre; 0 means the middle slice
	RadiusMM    float64 // default 12 mm, about 8.7 mL
	HU          float64 // 50 to 90; 0 means 65
}

// BleedInfo is the ground truth of a generated bleed.
type BleedInfo struct {
	Side           string     `json:"side"`
	CenterInstance int        `json:"centerInstance"`
	CenterMM       [3]float64 `json:"centerMM"`   // patient coordinates (LPS)
	SemiAxesMM     [3]float64 `json:"semiAxesMM"` // x (left-right), y (front-back), z
	HU             float64    `json:"hu"`
	// Voxels is the number of voxels whose centre lies inside the ellipsoid: each holds HU.
	Voxels         int     `json:"voxels"`
	VoxelVolumeMM3 float64 `json:"voxelVolumeMM3"`
	// VolumeML is Voxels x VoxelVolumeMM3 in millilitres: what a perfect segmentation measures.
	VolumeML float64 `json:"volumeML"`
	// EllipsoidML is the analytic volume of the ellipsoid, which VolumeML approaches as the
	// voxels shrink.
	EllipsoidML   float64 `json:"ellipsoidML"`
	FirstInstance int     `json:"firstInstance"`
	LastInstance  int     `json:"lastInstance"`
}

// ctGeometry places voxel centres in patient coordinates: axial slices, rows running
// posterior, columns running to the patient's left, slice 0 the most inferior.
type ctGeometry struct {
	slices, size int
	spacing      float64 // in-plane, both directions
	thickness    float64
	origin       [3]float64 // centre of pixel (0, 0) of slice 0
}

func (g ctGeometry) point(slice, row, col int) [3]float64 {
	return [3]float64{
		g.origin[0] + float64(col)*g.spacing,
		g.origin[1] + float64(row)*g.spacing,
		g.origin[2] + float64(slice)*g.thickness,
	}
}

// nearest returns the voxel whose centre is nearest p, and false if p is outside the volume.
func (g ctGeometry) nearest(p [3]float64) (slice, row, col int, ok bool) {
	col = int(math.Round((p[0] - g.origin[0]) / g.spacing))
	row = int(math.Round((p[1] - g.origin[1]) / g.spacing))
	slice = int(math.Round((p[2] - g.origin[2]) / g.thickness))
	ok = col >= 0 && col < g.size && row >= 0 && row < g.size && slice >= 0 && slice < g.slices
	return slice, row, col, ok
}

func (o *CTOptions) validate() error {
	switch {
	case o.Slices < 1 || o.Slices > 2000:
		return fmt.Errorf("%w: slices %d: want 1 to 2000", ErrOptions, o.Slices)
	case o.Size < 16 || o.Size > 2048:
		return fmt.Errorf("%w: size %d: want 16 to 2048", ErrOptions, o.Size)
	case !(o.FieldOfViewMM > 0 && o.FieldOfViewMM <= 1000):
		return fmt.Errorf("%w: field of view %g mm: want up to 1000", ErrOptions, o.FieldOfViewMM)
	case !(o.SliceThicknessMM > 0 && o.SliceThicknessMM <= 50):
		return fmt.Errorf("%w: slice thickness %g mm: want up to 50", ErrOptions, o.SliceThicknessMM)
	case o.SeriesNumber < 1 || o.SeriesNumber > 999:
		return fmt.Errorf("%w: series number %d: want 1 to 999", ErrOptions, o.SeriesNumber)
	case !(o.NoiseHU >= 0 && o.NoiseHU <= 500):
		return fmt.Errorf("%w: noise %g HU: want 0 to 500", ErrOptions, o.NoiseHU)
	case len(o.Contrast) > 64 || strings.ContainsAny(o.Contrast, "\\\r\n"):
		return fmt.Errorf("%w: contrast agent %q: at most 64 characters, no backslash or newline", ErrOptions, o.Contrast)
	}
	if b := o.Bleed; b != nil {
		switch {
		case b.Side != "left" && b.Side != "right":
			return fmt.Errorf("%w: bleed side %q: want left or right", ErrOptions, b.Side)
		case b.CenterSlice < 1 || b.CenterSlice > o.Slices:
			return fmt.Errorf("%w: bleed centre slice %d: want 1 to %d", ErrOptions, b.CenterSlice, o.Slices)
		case !(b.RadiusMM >= 1 && b.RadiusMM <= 40):
			return fmt.Errorf("%w: bleed radius %g mm: want 1 to 40", ErrOptions, b.RadiusMM)
		case !(b.HU >= 50 && b.HU <= 90):
			return fmt.Errorf("%w: bleed density %g HU: want 50 to 90", ErrOptions, b.HU)
		}
	}
	return nil
}

func (o *CTOptions) applyDefaults() {
	if o.Slices == 0 {
		o.Slices = DefaultSlices
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.FieldOfViewMM == 0 {
		o.FieldOfViewMM = DefaultFieldOfViewMM
	}
	if o.SliceThicknessMM == 0 && o.Slices > 0 {
		o.SliceThicknessMM = min(DefaultSliceThicknessMM, DefaultCoverageMM/float64(o.Slices))
	}
	if o.SeriesNumber == 0 {
		o.SeriesNumber = 2
	}
	if o.Bleed != nil {
		b := *o.Bleed
		if b.Side == "" {
			b.Side = "left"
		}
		if b.CenterSlice == 0 {
			b.CenterSlice = (o.Slices + 1) / 2
		}
		if b.RadiusMM == 0 {
			b.RadiusMM = DefaultBleedRadiusMM
		}
		if b.HU == 0 {
			b.HU = DefaultBleedHU
		}
		o.Bleed = &b
	}
}

// HeadCT generates an unenhanced (or, with Contrast, enhanced) axial head CT series of CT Image
// Storage instances, one Part 10 file per slice, with the series' manifest. See [CTOptions]
// for what can be varied; everything else is fixed, so equal options give equal bytes.
func HeadCT(opts CTOptions) (*Series, error) {
	opts.applyDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s, err := opts.resolve("head-ct")
	if err != nil {
		return nil, err
	}
	// The geometry uses the values as the DS tags will carry them, so that a reader computing
	// positions or volumes from the tags finds exactly what the phantom was sampled at.
	g := ctGeometry{
		slices:    opts.Slices,
		size:      opts.Size,
		spacing:   dsValue(opts.FieldOfViewMM / float64(opts.Size)),
		thickness: dsValue(opts.SliceThicknessMM),
	}
	g.origin = [3]float64{
		-opts.FieldOfViewMM/2 + g.spacing/2,
		-opts.FieldOfViewMM/2 + g.spacing/2,
		-float64(opts.Slices)*g.thickness/2 + g.thickness/2,
	}
	head := newHeadPhantom()

	description := "CT HEAD WO CONTRAST"
	if opts.Contrast != "" {
		description = "CT HEAD W CONTRAST"
	}
	seriesUID := s.uid("series", fmt.Sprint(opts.SeriesNumber))
	m := s.manifest(description, "CT")
	m.Contrast = opts.Contrast
	info := SeriesInfo{
		SeriesInstanceUID:   seriesUID,
		SeriesNumber:        opts.SeriesNumber,
		SeriesDescription:   fmt.Sprintf("AXIAL %s MM BRAIN", dicom.FormatDS(round3(g.thickness))),
		Modality:            "CT",
		SOPClassUID:         CTImageStorage,
		FrameOfReferenceUID: s.uid("frame-of-reference"),
		Rows:                g.size,
		Columns:             g.size,
		PixelSpacingMM:      [2]float64{g.spacing, g.spacing},
		SliceThicknessMM:    g.thickness,
	}

	var bleedShape *ellipsoid
	if opts.Bleed != nil {
		bleedShape, info.Bleed, err = placeBleed(g, head, *opts.Bleed)
		if err != nil {
			return nil, err
		}
	}
	info.Landmarks = headLandmarks(g, head, bleedShape, opts.Bleed)

	rng := rand.New(rand.NewPCG(s.hash("head-ct", "noise", "1"), s.hash("head-ct", "noise", "2")))
	series := &Series{}
	pixels := make([]byte, 2*g.size*g.size)
	for i := range g.slices {
		for r := range g.size {
			for c := range g.size {
				p := g.point(i, r, c)
				hu := tissueHU[head.at(p)]
				if bleedShape != nil && bleedShape.inside(p) {
					hu = opts.Bleed.HU
				}
				if opts.NoiseHU > 0 {
					hu += rng.NormFloat64() * opts.NoiseHU
				}
				stored := min(max(math.Round(hu)-RescaleIntercept, 0), 4095)
				binary.LittleEndian.PutUint16(pixels[2*(r*g.size+c):], uint16(stored))
			}
		}
		in := Instance{
			InstanceNumber: i + 1,
			SOPInstanceUID: s.uid("series", fmt.Sprint(opts.SeriesNumber), "instance", fmt.Sprint(i+1)),
			File:           instanceFile(opts.SeriesNumber, i+1),
		}
		b := ctDataset(s, &opts, g, &info, description, in, pixels)
		ds, err := b.Dataset()
		if err != nil {
			return nil, fmt.Errorf("synth: head ct instance %d: %w", in.InstanceNumber, err)
		}
		if in.Data, err = dicom.Encode(ds); err != nil {
			return nil, fmt.Errorf("synth: head ct instance %d: %w", in.InstanceNumber, err)
		}
		series.Instances = append(series.Instances, in)
		info.Instances = append(info.Instances, InstanceInfo{InstanceNumber: in.InstanceNumber, SOPInstanceUID: in.SOPInstanceUID, File: in.File})
	}
	m.Series = []SeriesInfo{info}
	series.Manifest = m
	return series, nil
}

// placeBleed positions the bleed and measures it, failing if any voxel of it would fall
// outside the brain parenchyma.
func placeBleed(g ctGeometry, head *headPhantom, b Bleed) (*ellipsoid, *BleedInfo, error) {
	x := 30.0 // LPS: +x is the patient's left
	if b.Side == "right" {
		x = -x
	}
	e := &ellipsoid{
		c: [3]float64{x, 5, g.origin[2] + float64(b.CenterSlice-1)*g.thickness},
		r: [3]float64{b.RadiusMM, 1.2 * b.RadiusMM, b.RadiusMM},
	}
	info := &BleedInfo{
		Side:           b.Side,
		CenterInstance: b.CenterSlice,
		CenterMM:       e.c,
		SemiAxesMM:     e.r,
		HU:             b.HU,
		VoxelVolumeMM3: g.spacing * g.spacing * g.thickness,
		EllipsoidML:    e.volumeML(),
	}
	lo, hi, ok := g.voxelBounds(e)
	if !ok {
		return nil, nil, fmt.Errorf("%w: it extends beyond the scanned volume", ErrBleedOutsideBrain)
	}
	for i := lo[0]; i <= hi[0]; i++ {
		for r := lo[1]; r <= hi[1]; r++ {
			for c := lo[2]; c <= hi[2]; c++ {
				p := g.point(i, r, c)
				if !e.inside(p) {
					continue
				}
				if t := head.at(p); !t.brain() {
					return nil, nil, fmt.Errorf("%w: it reaches %s at (%.1f, %.1f, %.1f) mm", ErrBleedOutsideBrain, t, p[0], p[1], p[2])
				}
				info.Voxels++
				if info.FirstInstance == 0 {
					info.FirstInstance = i + 1
				}
				info.LastInstance = i + 1
			}
		}
	}
	if info.Voxels == 0 {
		return nil, nil, fmt.Errorf("%w: no voxel centre lies inside a %g mm bleed; use a larger radius or thinner slices", ErrOptions, b.RadiusMM)
	}
	info.VolumeML = float64(info.Voxels) * info.VoxelVolumeMM3 / 1000
	return e, info, nil
}

// voxelBounds returns the inclusive (slice, row, column) index range of the voxels that may
// lie inside e, and false if e reaches beyond the edges of the scanned volume.
func (g ctGeometry) voxelBounds(e *ellipsoid) (lo, hi [3]int, ok bool) {
	ok = true
	axis := func(k int, centre, r, origin, step float64, n int) {
		first, last := origin-step/2, origin+(float64(n)-0.5)*step // the volume's edges
		if centre-r < first || centre+r > last {
			ok = false
		}
		lo[k] = max(int(math.Floor((centre-r-origin)/step)), 0)
		hi[k] = min(int(math.Ceil((centre+r-origin)/step)), n-1)
	}
	axis(0, e.c[2], e.r[2], g.origin[2], g.thickness, g.slices)
	axis(1, e.c[1], e.r[1], g.origin[1], g.spacing, g.size)
	axis(2, e.c[0], e.r[0], g.origin[0], g.spacing, g.size)
	return lo, hi, ok
}

// dsValue returns v as it reads back from a Decimal String.
func dsValue(v float64) float64 {
	f, err := strconv.ParseFloat(dicom.FormatDS(v), 64)
	if err != nil { // FormatDS always writes a number
		panic(err)
	}
	return f
}
