package synth

import "math"

// Head phantom geometry, in millimetres in the DICOM patient coordinate system (LPS: +x is the
// patient's left, +y posterior, +z superior). The head is a set of nested ellipsoids, offset
// inwards by a tissue's thickness: scalp, skull, a thin CSF space, cortex and white matter,
// with lateral and third ventricles inside. Values are textbook unenhanced CT densities.
const (
	huAir   = -1000
	huScalp = 40
	huSkull = 1200
	huCSF   = 5
	huGray  = 38
	huWhite = 30

	// DefaultBleedHU is the density of an acute haemorrhage when Bleed.HU is zero.
	DefaultBleedHU = 65
)

type tissue uint8

const (
	air tissue = iota
	scalp
	skull
	csf
	gray
	white
	bleed
)

var tissueHU = [...]float64{air: huAir, scalp: huScalp, skull: huSkull, csf: huCSF, gray: huGray, white: huWhite, bleed: DefaultBleedHU}

func (t tissue) brain() bool { return t == gray || t == white }

type ellipsoid struct {
	c, r [3]float64 // centre, semi-axes
}

// inside reports whether p lies in the closed ellipsoid.
func (e ellipsoid) inside(p [3]float64) bool { return e.q(p) <= 1 }

func (e ellipsoid) q(p [3]float64) float64 {
	var q float64
	for i := range 3 {
		d := (p[i] - e.c[i]) / e.r[i]
		q += d * d
	}
	return q
}

// shrink returns the ellipsoid with every semi-axis reduced by mm.
func (e ellipsoid) shrink(mm float64) ellipsoid {
	return ellipsoid{c: e.c, r: [3]float64{e.r[0] - mm, e.r[1] - mm, e.r[2] - mm}}
}

// volumeML is the ellipsoid's analytic volume in millilitres.
func (e ellipsoid) volumeML() float64 { return 4.0 / 3 * math.Pi * e.r[0] * e.r[1] * e.r[2] / 1000 }

type headPhantom struct {
	skin, skullOuter, skullInner, brain, whiteMatter ellipsoid
	ventricles                                       []ellipsoid
}

func newHeadPhantom() *headPhantom {
	// 150 mm wide, 190 mm front to back; the vertex at z = +75, the skull base below the scan.
	skin := ellipsoid{c: [3]float64{0, 0, -10}, r: [3]float64{75, 95, 85}}
	return &headPhantom{
		skin:        skin,
		skullOuter:  skin.shrink(5),    // 5 mm scalp
		skullInner:  skin.shrink(12),   // 7 mm skull
		brain:       skin.shrink(13.5), // 1.5 mm subarachnoid CSF
		whiteMatter: skin.shrink(16.5), // 3 mm cortical ribbon
		ventricles: []ellipsoid{
			{c: [3]float64{9, -5, 12}, r: [3]float64{5, 22, 9}},  // left lateral
			{c: [3]float64{-9, -5, 12}, r: [3]float64{5, 22, 9}}, // right lateral
			{c: [3]float64{0, 8, 0}, r: [3]float64{2.5, 12, 8}},  // third
		},
	}
}

// at returns the tissue at p.
func (h *headPhantom) at(p [3]float64) tissue {
	switch {
	case !h.skin.inside(p):
		return air
	case !h.skullOuter.inside(p):
		return scalp
	case !h.skullInner.inside(p):
		return skull
	case !h.brain.inside(p):
		return csf
	}
	for _, v := range h.ventricles {
		if v.inside(p) {
			return csf
		}
	}
	if h.whiteMatter.inside(p) {
		return white
	}
	return gray
}

var tissueNames = [...]string{air: "air", scalp: "scalp", skull: "skull", csf: "csf", gray: "gray matter", white: "white matter", bleed: "bleed"}

func (t tissue) String() string { return tissueNames[t] }
