package ich

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Disclaimer opens every [Report.Summary].
const Disclaimer = "NOT FOR CLINICAL USE: demonstration detector."

// The model the reports name.
const (
	ModelName    = "osprey-ich-demo"
	ModelVersion = "0.1.0"
)

// Defaults of [Options].
const (
	DefaultMinHU       = 50
	DefaultMaxHU       = 90
	DefaultMinVolumeML = 0.5
	DefaultSkullHU     = 300
	DefaultErodeMM     = 3
)

// Sides of a [Component], the patient's.
const (
	Left    = "left"
	Right   = "right"
	Midline = "midline"
)

// midlineMM is how far from the brain's midline a centroid must lie to be given a side.
const midlineMM = 2.0

// maxSide bounds rows and columns, so that a pixel's row and column pack into an int32.
const maxSide = 1<<15 - 1

// maxVoxels bounds the volumes Detect accepts, so that voxel indices fit in int32 stacks.
const maxVoxels = math.MaxInt32

// Options tune [Detect]. The zero value gives the defaults.
type Options struct {
	// MinHU and MaxHU bound the density of candidate voxels (inclusive); default 50 to 90,
	// the range of acute blood, above grey matter (about 40) and below calcification.
	MinHU, MaxHU int
	// MinVolumeML drops smaller components; default 0.5 mL.
	MinVolumeML float64
	// SkullHU is the threshold above which a pixel is bone; default 300.
	SkullHU int
	// ErodeMM is how far the brain mask keeps away from bone, where partial volume averaging
	// of bone and CSF gives blood-like densities; default 3 mm.
	ErodeMM float64
	// AllowContrast runs the detector on a contrast-enhanced series, where enhancing vessels
	// and lesions have blood-like densities. Off by default: such series are not applicable.
	AllowContrast bool
}

func (o *Options) applyDefaults() {
	if o.MinHU == 0 && o.MaxHU == 0 {
		o.MinHU, o.MaxHU = DefaultMinHU, DefaultMaxHU
	}
	if o.MinVolumeML == 0 {
		o.MinVolumeML = DefaultMinVolumeML
	}
	if o.SkullHU == 0 {
		o.SkullHU = DefaultSkullHU
	}
	if o.ErodeMM == 0 {
		o.ErodeMM = DefaultErodeMM
	}
}

// Model names the detector and its version.
type Model struct {
	Name    string
	Version string
}

// Report is the detector's answer for one volume.
type Report struct {
	// Present is true when at least one component was found.
	Present bool
	// Confidence is the highest confidence of the findings, 0 without any.
	Confidence float64
	// Findings are sorted by volume, largest first.
	Findings []Component
	// Summary is one paragraph for a human; it starts with [Disclaimer].
	Summary string
	Model   Model
	// NotApplicable says why the detector did not look at the volume (a contrast-enhanced
	// series, unusable geometry); empty when it did.
	NotApplicable string
}

// Component is one connected hyperdense region inside the brain mask.
type Component struct {
	Voxels   int
	VolumeML float64
	// FirstInstance and LastInstance are the InstanceNumbers of the first and last slice
	// (along the slice normal) the component touches; SOPInstanceUIDs lists every slice it
	// touches, in that order. A 6-connected component touches a contiguous run of slices.
	FirstInstance, LastInstance int
	SOPInstanceUIDs             []string
	// Side is the patient's Left or Right of the brain's midline, or Midline.
	Side string
	// CentroidVoxel is the centroid as (slice index, row, column), 0-based, fractional.
	CentroidVoxel [3]float64
	// CentroidMM is the centroid in patient coordinates (LPS), mm.
	CentroidMM [3]float64
	MaxHU      int
	MeanHU     float64
	// SurroundHU is the mean density of the brain around the component; NaN if none was found.
	SurroundHU float64
	Confidence float64
}

// Voxel state bits of Detect's working mask.
const (
	inBrain   = 1 << iota // inside the eroded intracranial mask
	candidate             // in the brain and within [MinHU, MaxHU]
	seen                  // visited by the labelling
)

// Detect looks for hyperdense intracranial regions in v. It never fails: a volume it cannot
// read gives a report with NotApplicable set. The result is a demonstration, NOT FOR CLINICAL
// USE.
func Detect(v *Volume, opts Options) Report {
	opts.applyDefaults()
	r := Report{Model: Model{Name: ModelName, Version: ModelVersion}}
	if reason := applicable(v, opts); reason != "" {
		r.NotApplicable = reason
		r.Summary = Disclaimer + " Not applicable: " + reason + "."
		return r
	}

	d := newDetector(v, opts)
	d.maskBrain()
	comps := d.label()
	slices.SortFunc(comps, func(a, b Component) int {
		return cmp.Or(cmp.Compare(b.Voxels, a.Voxels), cmp.Compare(a.FirstInstance, b.FirstInstance))
	})
	r.Findings = comps
	r.Present = len(comps) > 0
	for _, c := range comps {
		r.Confidence = max(r.Confidence, c.Confidence)
	}
	r.Summary = summary(v, opts, comps)
	return r
}

// applicable returns why v cannot be examined, or "".
func applicable(v *Volume, opts Options) string {
	switch {
	case v == nil || len(v.Slices) == 0:
		return "no slices"
	case v.Rows < 3 || v.Cols < 3:
		return fmt.Sprintf("%dx%d pixels is too small", v.Rows, v.Cols)
	case v.Rows > maxSide || v.Cols > maxSide:
		return fmt.Sprintf("%dx%d pixels is too large", v.Rows, v.Cols)
	case !(v.RowSpacing > 0 && v.ColSpacing > 0 && v.SliceSpacing > 0):
		return "pixel or slice spacing is not positive"
	case opts.MinHU > opts.MaxHU:
		return fmt.Sprintf("density range %d to %d HU is empty", opts.MinHU, opts.MaxHU)
	case v.Contrast != "" && !opts.AllowContrast:
		return fmt.Sprintf("contrast-enhanced series (ContrastBolusAgent %s); the detector reads non-contrast head CT only", v.Contrast)
	case int64(len(v.Slices))*int64(v.Rows)*int64(v.Cols) > maxVoxels:
		return "volume has too many voxels"
	}
	for i, s := range v.Slices {
		if len(s.HU) != v.Rows*v.Cols {
			return fmt.Sprintf("slice %d has %d values, want %d", i+1, len(s.HU), v.Rows*v.Cols)
		}
	}
	return ""
}

type detector struct {
	v          *Volume
	opts       Options
	plane      int     // Rows * Cols
	state      []uint8 // per voxel, the bits above
	brainCount []int   // per slice: voxels in the brain mask
	brainRows  []int64 // per slice: sum of their rows
	brainCols  []int64 // per slice: sum of their columns
	stack      []int32
}

func newDetector(v *Volume, opts Options) *detector {
	n := len(v.Slices)
	return &detector{
		v:          v,
		opts:       opts,
		plane:      v.Rows * v.Cols,
		state:      make([]uint8, n*v.Rows*v.Cols),
		brainCount: make([]int, n),
		brainRows:  make([]int64, n),
		brainCols:  make([]int64, n),
	}
}

// maskBrain marks, slice by slice, the eroded intracranial cavity and the candidate voxels in it.
func (d *detector) maskBrain() {
	rows, cols := d.v.Rows, d.v.Cols
	// Per-slice scratch: 0 unknown, 1 bone, 2 outside, 3 inside.
	const (
		unknown = iota
		bone
		outside
		inside
	)
	work := make([]uint8, d.plane)
	dist := make([]uint16, d.plane)
	erode := int(math.Round(d.opts.ErodeMM / min(d.v.RowSpacing, d.v.ColSpacing)))
	minHU, maxHU := int16(clampInt16(d.opts.MinHU)), int16(clampInt16(d.opts.MaxHU))
	skull := int16(clampInt16(d.opts.SkullHU))

	for z, s := range d.v.Slices {
		for i, hu := range s.HU {
			if hu > skull {
				work[i] = bone
			} else {
				work[i] = unknown
			}
		}
		// Flood fill from the border over non-bone pixels, 4-connected so that a bone ring
		// closed only diagonally still seals the cavity. The stack holds row<<16 | column,
		// which spares a division per pixel.
		stack := d.stack[:0]
		push := func(r, c int) {
			if i := r*cols + c; work[i] == unknown {
				work[i] = outside
				stack = append(stack, int32(r<<16|c))
			}
		}
		for c := range cols {
			push(0, c)
			push(rows-1, c)
		}
		for r := range rows {
			push(r, 0)
			push(r, cols-1)
		}
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			r, c := p>>16, p&0xFFFF
			if c > 0 {
				push(r, c-1)
			}
			if c < cols-1 {
				push(r, c+1)
			}
			if r > 0 {
				push(r-1, c)
			}
			if r < rows-1 {
				push(r+1, c)
			}
		}
		d.stack = stack
		for i := range work {
			if work[i] == unknown {
				work[i] = inside
			}
		}
		if erode > 0 {
			d.erode(work, dist, erode, inside, outside)
		}
		base := z * d.plane
		for i, w := range work {
			if w != inside {
				continue
			}
			st := uint8(inBrain)
			if hu := s.HU[i]; hu >= minHU && hu <= maxHU {
				st |= candidate
			}
			d.state[base+i] = st
			d.brainCount[z]++
			d.brainRows[z] += int64(i / cols)
			d.brainCols[z] += int64(i % cols)
		}
	}
}

// erode removes from the inside pixels those within k pixels (chessboard distance, as k
// erosions with a 3 x 3 square would) of anything else, the image edge included. A two-pass
// distance transform does it in time independent of k, which matters on fine matrices where
// 3 mm is six pixels.
func (d *detector) erode(work []uint8, dist []uint16, k int, inside, outside uint8) {
	rows, cols := d.v.Rows, d.v.Cols
	at := func(r, c int) uint16 {
		if r < 0 || c < 0 || r >= rows || c >= cols {
			return 0
		}
		return dist[r*cols+c]
	}
	for r := range rows {
		for c := range cols {
			i := r*cols + c
			if work[i] != inside {
				dist[i] = 0
				continue
			}
			m := min(at(r-1, c-1), at(r-1, c), at(r-1, c+1), at(r, c-1))
			dist[i] = min(m, math.MaxUint16-1) + 1
		}
	}
	for r := rows - 1; r >= 0; r-- {
		for c := cols - 1; c >= 0; c-- {
			i := r*cols + c
			if dist[i] == 0 {
				continue
			}
			m := min(at(r+1, c+1), at(r+1, c), at(r+1, c-1), at(r, c+1))
			dist[i] = min(dist[i], min(m, math.MaxUint16-1)+1)
			if int(dist[i]) <= k {
				work[i] = outside
			}
		}
	}
}

// acc accumulates one component during labelling.
type acc struct {
	n                      int
	sumHU                  int64
	maxHU                  int16
	sumZ, sumR, sumC       int64
	minZ, maxZ, minR, maxR int
	minC, maxC             int
}

// label finds the 6-connected components of candidate voxels with an explicit stack and
// returns those at least MinVolumeML large.
func (d *detector) label() []Component {
	v := d.v
	rows, cols, n := v.Rows, v.Cols, len(v.Slices)
	voxelML := v.RowSpacing * v.ColSpacing * v.SliceSpacing / 1000
	minVoxels := int(math.Ceil(d.opts.MinVolumeML / voxelML))
	var out []Component
	for start, st := range d.state {
		if st&candidate == 0 || st&seen != 0 {
			continue
		}
		a := acc{maxHU: math.MinInt16, minZ: n, minR: rows, minC: cols, maxZ: -1, maxR: -1, maxC: -1}
		stack := append(d.stack[:0], int32(start))
		d.state[start] |= seen
		for len(stack) > 0 {
			i := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			z, rem := i/d.plane, i%d.plane
			r, c := rem/cols, rem%cols
			hu := v.Slices[z].HU[rem]
			a.n++
			a.sumHU += int64(hu)
			a.maxHU = max(a.maxHU, hu)
			a.sumZ += int64(z)
			a.sumR += int64(r)
			a.sumC += int64(c)
			a.minZ, a.maxZ = min(a.minZ, z), max(a.maxZ, z)
			a.minR, a.maxR = min(a.minR, r), max(a.maxR, r)
			a.minC, a.maxC = min(a.minC, c), max(a.maxC, c)
			visit := func(j int) {
				if s := d.state[j]; s&candidate != 0 && s&seen == 0 {
					d.state[j] = s | seen
					stack = append(stack, int32(j))
				}
			}
			if c > 0 {
				visit(i - 1)
			}
			if c < cols-1 {
				visit(i + 1)
			}
			if r > 0 {
				visit(i - cols)
			}
			if r < rows-1 {
				visit(i + cols)
			}
			if z > 0 {
				visit(i - d.plane)
			}
			if z < n-1 {
				visit(i + d.plane)
			}
		}
		d.stack = stack
		if a.n < minVoxels {
			continue
		}
		out = append(out, d.component(a, voxelML))
	}
	return out
}

// component turns an accumulated region into a reported Component.
func (d *detector) component(a acc, voxelML float64) Component {
	v := d.v
	nf := float64(a.n)
	c := Component{
		Voxels:        a.n,
		VolumeML:      round3(nf * voxelML),
		FirstInstance: v.Slices[a.minZ].InstanceNumber,
		LastInstance:  v.Slices[a.maxZ].InstanceNumber,
		CentroidVoxel: [3]float64{float64(a.sumZ) / nf, float64(a.sumR) / nf, float64(a.sumC) / nf},
		MaxHU:         int(a.maxHU),
		MeanHU:        round3(float64(a.sumHU) / nf),
	}
	for z := a.minZ; z <= a.maxZ; z++ {
		c.SOPInstanceUIDs = append(c.SOPInstanceUIDs, v.Slices[z].SOPInstanceUID)
	}
	rowDir, colDir := v.directions()
	c.CentroidMM = d.patientPoint(c.CentroidVoxel, rowDir, colDir)

	// The midline is the centroid of the brain mask on the slices the component spans;
	// the side is the sign of the patient x offset (LPS: +x is the patient's left).
	var count, sumR, sumC int64
	for z := a.minZ; z <= a.maxZ; z++ {
		count += int64(d.brainCount[z])
		sumR += d.brainRows[z]
		sumC += d.brainCols[z]
	}
	midR, midC := float64(sumR)/float64(count), float64(sumC)/float64(count)
	dc := (c.CentroidVoxel[2] - midC) * v.ColSpacing
	dr := (c.CentroidVoxel[1] - midR) * v.RowSpacing
	switch x := dc*rowDir[0] + dr*colDir[0]; {
	case x > midlineMM:
		c.Side = Left
	case x < -midlineMM:
		c.Side = Right
	default:
		c.Side = Midline
	}

	c.SurroundHU = d.surround(a)
	c.Confidence = confidence(c.VolumeML, c.MeanHU, c.SurroundHU)
	return c
}

// surround is the mean density of brain voxels that are not candidates within about 5 mm
// in-plane and one slice of the component's bounding box.
func (d *detector) surround(a acc) float64 {
	v := d.v
	mr := int(math.Ceil(5 / v.RowSpacing))
	mc := int(math.Ceil(5 / v.ColSpacing))
	var n, sum int64
	for z := max(a.minZ-1, 0); z <= min(a.maxZ+1, len(v.Slices)-1); z++ {
		hu := v.Slices[z].HU
		base := z * d.plane
		for r := max(a.minR-mr, 0); r <= min(a.maxR+mr, v.Rows-1); r++ {
			for c := max(a.minC-mc, 0); c <= min(a.maxC+mc, v.Cols-1); c++ {
				i := r*v.Cols + c
				if d.state[base+i]&(inBrain|candidate) == inBrain {
					n++
					sum += int64(hu[i])
				}
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return round3(float64(sum) / float64(n))
}

// Parameters of the confidence heuristic, see confidence.
const (
	volumeScaleML   = 1.5 // volume at which the volume score reaches 63 %
	contrastMidHU   = 15  // contrast at which the contrast score is one half
	contrastSlopeHU = 4   // width of the logistic
	defaultBrainHU  = 35  // surround assumed when no brain was found around a component
)

// confidence is a heuristic, not a calibrated probability: the product of a volume score,
// 1 - exp(-volume / 1.5 mL), which discounts specks that noise and partial volume produce,
// and a contrast score, a logistic of the mean density above the surrounding brain centred
// on 15 HU with a 4 HU scale, which discounts regions barely denser than their neighbours.
func confidence(volumeML, meanHU, surroundHU float64) float64 {
	if math.IsNaN(surroundHU) {
		surroundHU = defaultBrainHU
	}
	vs := 1 - math.Exp(-volumeML/volumeScaleML)
	cs := 1 / (1 + math.Exp(-(meanHU-surroundHU-contrastMidHU)/contrastSlopeHU))
	return round3(vs * cs)
}

// directions returns the direction cosines, defaulting to the standard axial orientation.
func (v *Volume) directions() (rowDir, colDir [3]float64) {
	rowDir, colDir = v.RowDirection, v.ColDirection
	if rowDir == ([3]float64{}) || colDir == ([3]float64{}) {
		rowDir, colDir = [3]float64{1, 0, 0}, [3]float64{0, 1, 0}
	}
	return rowDir, colDir
}

// patientPoint maps fractional (slice, row, column) indices to LPS millimetres.
func (d *detector) patientPoint(p [3]float64, rowDir, colDir [3]float64) [3]float64 {
	v := d.v
	z0 := int(math.Floor(p[0]))
	z1 := min(z0+1, len(v.Slices)-1)
	t := p[0] - float64(z0)
	var out [3]float64
	for k := range 3 {
		origin := v.Slices[z0].ImagePosition[k]*(1-t) + v.Slices[z1].ImagePosition[k]*t
		out[k] = round3(origin + p[2]*v.ColSpacing*rowDir[k] + p[1]*v.RowSpacing*colDir[k])
	}
	return out
}

// summary writes the human paragraph of a report.
func summary(v *Volume, opts Options, comps []Component) string {
	var b strings.Builder
	b.WriteString(Disclaimer)
	if len(comps) == 0 {
		fmt.Fprintf(&b, " No hyperdense intracranial region (%d to %d HU) of at least %g mL found in %d slices.",
			opts.MinHU, opts.MaxHU, opts.MinVolumeML, len(v.Slices))
		return b.String()
	}
	noun := "region"
	if len(comps) > 1 {
		noun = "regions"
	}
	fmt.Fprintf(&b, " %d hyperdense intracranial %s suggestive of haemorrhage:", len(comps), noun)
	for i, c := range comps {
		if i > 0 {
			b.WriteString(";")
		}
		side := "patient's " + c.Side
		if c.Side == Midline {
			side = "midline"
		}
		fmt.Fprintf(&b, " %.1f mL, %s, instances %d to %d, mean %.0f HU, confidence %.2f",
			c.VolumeML, side, c.FirstInstance, c.LastInstance, c.MeanHU, c.Confidence)
	}
	b.WriteString(".")
	return b.String()
}

func clampInt16(n int) int { return min(max(n, math.MinInt16), math.MaxInt16) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
