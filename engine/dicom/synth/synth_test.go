package synth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// parse reads a generated Part 10 file back with suyashkumar/dicom.
func parse(t *testing.T, data []byte) dcm.Dataset {
	t.Helper()
	ds, err := dcm.Parse(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return ds
}

func strs(t *testing.T, ds dcm.Dataset, tg tag.Tag) []string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("%s: %v", tg, err)
	}
	v := dcm.MustGetStrings(e.Value)
	for i := range v {
		v[i] = strings.TrimRight(v[i], " \x00")
	}
	return v
}

func str(t *testing.T, ds dcm.Dataset, tg tag.Tag) string {
	t.Helper()
	v := strs(t, ds, tg)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func nums(t *testing.T, ds dcm.Dataset, tg tag.Tag) []float64 {
	t.Helper()
	var out []float64
	for _, s := range strs(t, ds, tg) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", tg, s, err)
		}
		out = append(out, f)
	}
	return out
}

func num(t *testing.T, ds dcm.Dataset, tg tag.Tag) float64 {
	t.Helper()
	return nums(t, ds, tg)[0]
}

func intv(t *testing.T, ds dcm.Dataset, tg tag.Tag) int {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("%s: %v", tg, err)
	}
	return dcm.MustGetInts(e.Value)[0]
}

// image is one decoded frame, in modality units (HU for CT) after the rescale tags.
type image struct {
	rows, cols int
	values     []float64
}

func (im image) at(row, col int) float64 { return im.values[row*im.cols+col] }

func decode(t *testing.T, ds dcm.Dataset) image {
	t.Helper()
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatal(err)
	}
	info := dcm.MustGetPixelDataInfo(e.Value)
	if len(info.Frames) != 1 {
		t.Fatalf("%d frames, want 1", len(info.Frames))
	}
	f := info.Frames[0].NativeData
	slope, intercept := num(t, ds, tag.RescaleSlope), num(t, ds, tag.RescaleIntercept)
	signed := intv(t, ds, tag.PixelRepresentation) == 1
	im := image{rows: f.Rows, cols: f.Cols, values: make([]float64, len(f.Data))}
	for i, px := range f.Data {
		v := float64(px[0])
		if signed {
			v = float64(int16(uint16(px[0])))
		}
		im.values[i] = v*slope + intercept
	}
	return im
}

func headCT(t *testing.T, opts CTOptions) *Series {
	t.Helper()
	s, err := HeadCT(opts)
	if err != nil {
		t.Fatalf("HeadCT: %v", err)
	}
	return s
}

// tissue ranges a reader of the images must find, whatever the phantom's exact values.
var huRange = map[string][2]float64{
	"air":   {-1024, -990},
	"skull": {1000, 3071},
	"brain": {30, 40},
	"csf":   {0, 10},
	"bleed": {50, 90},
}

func TestHeadCT(t *testing.T) {
	tests := []struct {
		name string
		opts CTOptions
	}{
		{"no bleed", CTOptions{StudyOptions: StudyOptions{Seed: "plain"}, Slices: 16, Size: 128}},
		{"left bleed", CTOptions{StudyOptions: StudyOptions{Seed: "left"}, Slices: 32, Size: 128, Bleed: &Bleed{}}},
		{"right bleed, noise, signed", CTOptions{
			StudyOptions: StudyOptions{Seed: "right"}, Slices: 24, Size: 96, Signed: true, NoiseHU: 3,
			Bleed: &Bleed{Side: "right", CenterSlice: 11, RadiusMM: 15, HU: 80},
		}},
		{"contrast, given identifiers", CTOptions{
			StudyOptions: StudyOptions{
				Seed: "contrast", AccessionNumber: "ACC0001", StudyID: "77",
				Patient:   Patient{Name: "PHANTOM^CONTRAST", ID: "P-123", BirthDate: time.Date(1970, 5, 6, 0, 0, 0, 0, time.UTC), Sex: "F"},
				StudyTime: time.Date(2026, 3, 14, 2, 17, 31, 0, time.UTC),
			},
			Slices: 8, Size: 64, Contrast: "IOHEXOL",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := headCT(t, tt.opts)
			wantSlices := cmpInt(tt.opts.Slices, DefaultSlices)
			if len(s.Instances) != wantSlices {
				t.Fatalf("%d instances, want %d", len(s.Instances), wantSlices)
			}
			dir := writeSeries(t, s)
			paths := files(dir, s)
			t.Run("dciodvfy", func(t *testing.T) { dciodvfy(t, paths...) })
			t.Run("dcentvfy", func(t *testing.T) { dcentvfy(t, paths...) })
			t.Run("dcmdump", func(t *testing.T) { checkCTDump(t, paths[len(paths)/2], tt.opts, s.Manifest) })
			t.Run("reread", func(t *testing.T) { checkCTReread(t, s, tt.opts) })
		})
	}
}

func checkCTDump(t *testing.T, path string, opts CTOptions, m Manifest) {
	pixelRep := "0"
	if opts.Signed {
		pixelRep = "1"
	}
	want := map[string]string{
		"0002,0010": "=LittleEndianExplicit",
		"0002,0002": "=CTImageStorage",
		"0008,0016": "=CTImageStorage",
		"0008,0008": `[ORIGINAL\PRIMARY\AXIAL]`,
		"0008,0060": "[CT]",
		"0018,0015": "[HEAD]",
		"0008,0050": "[" + m.AccessionNumber + "]",
		"0010,0020": "[" + m.Patient.ID + "]",
		"0010,0010": "[" + m.Patient.Name + "]",
		"0020,000d": "[" + m.StudyInstanceUID + "]",
		"0020,000e": "[" + m.Series[0].SeriesInstanceUID + "]",
		"0028,1050": "[40]",
		"0028,1051": "[80]",
		"0028,1052": "[-1024]",
		"0028,1053": "[1]",
		"0028,0100": "16",
		"0028,0103": pixelRep,
		"0028,0004": "[MONOCHROME2]",
	}
	var absent []string
	if opts.Contrast == "" {
		want["0008,1030"] = "[CT HEAD WO CONTRAST]"
		absent = append(absent, "0018,0010") // ContrastBolusAgent
	} else {
		want["0008,1030"] = "[CT HEAD W CONTRAST]"
		want["0018,0010"] = "[" + opts.Contrast + "]"
	}
	if opts.AccessionNumber != "" {
		want["0008,0050"] = "[" + opts.AccessionNumber + "]"
	}
	if opts.Patient.ID != "" {
		want["0010,0020"] = "[" + opts.Patient.ID + "]"
		want["0010,0030"] = "[" + opts.Patient.BirthDate.Format("20060102") + "]"
		want["0010,0040"] = "[" + opts.Patient.Sex + "]"
		want["0010,1010"] = "[055Y]"
		want["0008,0020"] = "[20260314]"
	}
	checkDump(t, path, want, absent...)
}

func checkCTReread(t *testing.T, s *Series, opts CTOptions) {
	m := s.Manifest
	info := m.Series[0]
	size := cmpInt(opts.Size, DefaultSize)
	if !m.Synthetic || m.Seed != opts.Seed {
		t.Errorf("manifest synthetic=%v seed=%q, want true, %q", m.Synthetic, m.Seed, opts.Seed)
	}

	images := make([]image, len(s.Instances))
	var prevZ, thickness float64
	var first dcm.Dataset
	for i, in := range s.Instances {
		ds := parse(t, in.Data)
		if i == 0 {
			first = ds
		}
		if got := str(t, ds, tag.SOPClassUID); got != CTImageStorage {
			t.Fatalf("SOPClassUID = %s", got)
		}
		if got := str(t, ds, tag.SOPInstanceUID); got != in.SOPInstanceUID || got != info.Instances[i].SOPInstanceUID {
			t.Errorf("instance %d: SOPInstanceUID %s, manifest %s", i+1, got, info.Instances[i].SOPInstanceUID)
		}
		for tg, want := range map[tag.Tag]string{
			tag.StudyInstanceUID:    m.StudyInstanceUID,
			tag.SeriesInstanceUID:   info.SeriesInstanceUID,
			tag.FrameOfReferenceUID: info.FrameOfReferenceUID,
			tag.AccessionNumber:     m.AccessionNumber,
			tag.InstanceNumber:      strconv.Itoa(i + 1),
			tag.RescaleSlope:        "1",
			tag.RescaleIntercept:    "-1024",
		} {
			if got := str(t, ds, tg); got != want {
				t.Errorf("instance %d: %s = %q, want %q", i+1, tg, got, want)
			}
		}
		if rows, cols := intv(t, ds, tag.Rows), intv(t, ds, tag.Columns); rows != size || cols != size {
			t.Errorf("instance %d: %dx%d, want %dx%d", i+1, rows, cols, size, size)
		}
		if got := nums(t, ds, tag.ImageOrientationPatient); !reflect.DeepEqual(got, []float64{1, 0, 0, 0, 1, 0}) {
			t.Errorf("ImageOrientationPatient = %v", got)
		}
		if got := nums(t, ds, tag.PixelSpacing); got[0] != info.PixelSpacingMM[0] || got[1] != info.PixelSpacingMM[1] {
			t.Errorf("PixelSpacing = %v, manifest %v", got, info.PixelSpacingMM)
		}
		pos := nums(t, ds, tag.ImagePositionPatient)
		thickness = num(t, ds, tag.SliceThickness)
		if i > 0 {
			if step := pos[2] - prevZ; math.Abs(step-thickness) > 1e-6 {
				t.Errorf("instance %d: z advanced %g mm, want the slice thickness %g", i+1, step, thickness)
			}
		}
		if loc := num(t, ds, tag.SliceLocation); loc != pos[2] {
			t.Errorf("instance %d: SliceLocation %g, z %g", i+1, loc, pos[2])
		}
		prevZ = pos[2]
		images[i] = decode(t, ds)
	}
	if thickness != info.SliceThicknessMM {
		t.Errorf("SliceThickness %g, manifest %g", thickness, info.SliceThicknessMM)
	}
	if _, err := first.FindElementByTag(tag.ContrastBolusAgent); (err == nil) != (opts.Contrast != "") {
		t.Errorf("ContrastBolusAgent present = %v, contrast option %q", err == nil, opts.Contrast)
	}

	// Landmarks: the values the manifest promises, and tissue-typical values whatever the phantom.
	tol := 0.5
	if opts.NoiseHU > 0 {
		tol = 6 * opts.NoiseHU
	}
	want := []string{"air", "skull", "brain", "csf"}
	if opts.Bleed != nil {
		want = append(want, "bleed")
	}
	got := map[string]bool{}
	for _, l := range info.Landmarks {
		got[l.Name] = true
		hu := images[l.Instance-1].at(l.Row, l.Column)
		if math.Abs(hu-l.Value) > tol {
			t.Errorf("landmark %s at instance %d (%d,%d): %g HU, manifest %g", l.Name, l.Instance, l.Row, l.Column, hu, l.Value)
		}
		if r := huRange[l.Name]; hu < r[0]-tol || hu > r[1]+tol {
			t.Errorf("landmark %s: %g HU, outside %v", l.Name, hu, r)
		}
	}
	for _, name := range want {
		if !got[name] {
			t.Errorf("no %s landmark in %+v", name, info.Landmarks)
		}
	}
	if images[0].at(0, 0) > -990 {
		t.Errorf("corner of the first slice: %g HU, want air", images[0].at(0, 0))
	}

	// The bleed: the only voxels from 50 to 90 HU, as many as the manifest says, on its side.
	if opts.NoiseHU > 0 {
		return
	}
	var count, colSum int
	for _, im := range images {
		for r := range im.rows {
			for c := range im.cols {
				if hu := im.at(r, c); hu >= 50 && hu <= 90 {
					count++
					colSum += c
				}
			}
		}
	}
	b := info.Bleed
	if b == nil {
		if count != 0 {
			t.Errorf("%d voxels of 50 to 90 HU in a series without bleed", count)
		}
		return
	}
	if count != b.Voxels {
		t.Errorf("%d bleed voxels in the pixels, manifest says %d", count, b.Voxels)
	}
	voxelMM3 := info.PixelSpacingMM[0] * info.PixelSpacingMM[1] * thickness
	if ml := float64(count) * voxelMM3 / 1000; math.Abs(ml-b.VolumeML) > 1e-9 {
		t.Errorf("bleed volume from the pixels %g mL, manifest %g mL", ml, b.VolumeML)
	}
	if rel := math.Abs(b.VolumeML-b.EllipsoidML) / b.EllipsoidML; rel > 0.25 {
		t.Errorf("voxel volume %g mL is %.0f%% off the ellipsoid's %g mL", b.VolumeML, 100*rel, b.EllipsoidML)
	}
	// The patient's left is +x, towards higher columns.
	left := float64(colSum)/float64(count) > float64(size)/2
	if wantLeft := opts.Bleed.Side != "right"; left != wantLeft {
		t.Errorf("bleed on the patient's left = %v, want %v", left, wantLeft)
	}
	t.Logf("bleed %s: %d voxels, %.2f mL (ellipsoid %.2f mL)", b.Side, b.Voxels, b.VolumeML, b.EllipsoidML)
}

func cmpInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestHeadCTDefaults(t *testing.T) {
	s := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: "defaults"}})
	info := s.Manifest.Series[0]
	if len(s.Instances) != DefaultSlices || info.Rows != DefaultSize || info.Columns != DefaultSize {
		t.Errorf("%d slices of %dx%d, want %d of %dx%d", len(s.Instances), info.Rows, info.Columns, DefaultSlices, DefaultSize, DefaultSize)
	}
	if info.SliceThicknessMM != 5 || info.SeriesNumber != 2 || s.Instances[0].File != "s002/i0001.dcm" {
		t.Errorf("thickness %g, series %d, first file %s; want 5 mm, 2, s002/i0001.dcm", info.SliceThicknessMM, info.SeriesNumber, s.Instances[0].File)
	}
	if m := s.Manifest; m.StudyDescription != "CT HEAD WO CONTRAST" || m.Contrast != "" || info.Bleed != nil {
		t.Errorf("default study %q, contrast %q, bleed %v; want an unenhanced study without bleed", m.StudyDescription, m.Contrast, info.Bleed)
	}
}

func TestHeadCT200Slices(t *testing.T) {
	s := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: "long"}, Slices: 200, Size: 64, Bleed: &Bleed{}})
	if len(s.Instances) != 200 {
		t.Fatalf("%d instances, want 200", len(s.Instances))
	}
	info := s.Manifest.Series[0]
	if info.SliceThicknessMM != 0.8 {
		t.Errorf("thickness %g, want 160/200 = 0.8 mm", info.SliceThicknessMM)
	}
	first, last := parse(t, s.Instances[0].Data), parse(t, s.Instances[199].Data)
	z0, z1 := nums(t, first, tag.ImagePositionPatient)[2], nums(t, last, tag.ImagePositionPatient)[2]
	if span := z1 - z0; math.Abs(span-199*0.8) > 1e-6 {
		t.Errorf("z span %g mm, want 199 x 0.8", span)
	}
	if got := str(t, last, tag.InstanceNumber); got != "200" {
		t.Errorf("last InstanceNumber %s", got)
	}
	if b := info.Bleed; b.LastInstance-b.FirstInstance < 25 {
		t.Errorf("a 24 mm bleed spans instances %d to %d of 0.8 mm slices", b.FirstInstance, b.LastInstance)
	}
	dir := writeSeries(t, s)
	paths := files(dir, s)
	dciodvfy(t, paths[0], paths[99], paths[199])
	dcentvfy(t, paths...)
}

func TestHeadCT512(t *testing.T) {
	s := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: "512"}, Slices: 2, Size: 512})
	ds := parse(t, s.Instances[0].Data)
	if rows, cols := intv(t, ds, tag.Rows), intv(t, ds, tag.Columns); rows != 512 || cols != 512 {
		t.Errorf("%dx%d, want 512x512", rows, cols)
	}
	if got := nums(t, ds, tag.PixelSpacing); got[0] != 250.0/512 {
		t.Errorf("PixelSpacing %v, want 250/512", got)
	}
	if im := decode(t, ds); len(im.values) != 512*512 {
		t.Errorf("%d pixels", len(im.values))
	}
	dciodvfy(t, files(writeSeries(t, s), s)...)
}

func TestHeadCTDeterministic(t *testing.T) {
	opts := CTOptions{StudyOptions: StudyOptions{Seed: "same"}, Slices: 6, Size: 32, NoiseHU: 4, Bleed: &Bleed{RadiusMM: 6}}
	a, b := headCT(t, opts), headCT(t, opts)
	for i := range a.Instances {
		if !bytes.Equal(a.Instances[i].Data, b.Instances[i].Data) {
			t.Errorf("instance %d differs between two runs with one seed", i+1)
		}
	}
	if !reflect.DeepEqual(a.Manifest, b.Manifest) {
		t.Errorf("manifests differ:\n%+v\n%+v", a.Manifest, b.Manifest)
	}

	opts.Seed = "other"
	c := headCT(t, opts)
	seen := map[string]bool{}
	for _, s := range []*Series{a, c} {
		seen[s.Manifest.StudyInstanceUID] = true
		seen[s.Manifest.Series[0].SeriesInstanceUID] = true
		seen[s.Manifest.Series[0].FrameOfReferenceUID] = true
		for _, in := range s.Instances {
			seen[in.SOPInstanceUID] = true
		}
	}
	if want := 2 * (3 + len(a.Instances)); len(seen) != want {
		t.Errorf("%d distinct UIDs over two seeds, want %d", len(seen), want)
	}
}

func TestRandomSeed(t *testing.T) {
	a := headCT(t, CTOptions{Slices: 2, Size: 32})
	b := headCT(t, CTOptions{Slices: 2, Size: 32})
	if a.Manifest.Seed == "" || a.Manifest.Seed == b.Manifest.Seed {
		t.Fatalf("random seeds %q and %q", a.Manifest.Seed, b.Manifest.Seed)
	}
	if a.Manifest.StudyInstanceUID == b.Manifest.StudyInstanceUID {
		t.Errorf("two random studies share StudyInstanceUID %s", a.Manifest.StudyInstanceUID)
	}
	again := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: a.Manifest.Seed}, Slices: 2, Size: 32})
	if !bytes.Equal(again.Instances[1].Data, a.Instances[1].Data) {
		t.Error("regenerating with the recorded seed gave different bytes")
	}
}

func TestHeadCTOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts CTOptions
		want error
	}{
		{"negative slices", CTOptions{Slices: -1}, ErrOptions},
		{"tiny image", CTOptions{Size: 8}, ErrOptions},
		{"bleed side", CTOptions{Bleed: &Bleed{Side: "up"}}, ErrOptions},
		{"bleed too dense", CTOptions{Bleed: &Bleed{HU: 120}}, ErrOptions},
		{"bleed slice beyond series", CTOptions{Slices: 10, Bleed: &Bleed{CenterSlice: 11}}, ErrOptions},
		{"bleed in the skull base", CTOptions{Bleed: &Bleed{CenterSlice: 1}}, ErrBleedOutsideBrain},
		{"bleed into the skull", CTOptions{Bleed: &Bleed{RadiusMM: 40}}, ErrBleedOutsideBrain},
		{"accession too long", CTOptions{StudyOptions: StudyOptions{AccessionNumber: strings.Repeat("9", 17)}}, ErrOptions},
		{"backslash in patient id", CTOptions{StudyOptions: StudyOptions{Patient: Patient{ID: `A\B`}}}, ErrOptions},
		{"sex", CTOptions{StudyOptions: StudyOptions{Patient: Patient{Sex: "X"}}}, ErrOptions},
		{"bad study uid", CTOptions{StudyOptions: StudyOptions{StudyInstanceUID: "1.02"}}, ErrOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Seed = "errors"
			if tt.opts.Size == 0 {
				tt.opts.Size = 32
			}
			if _, err := HeadCT(tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("HeadCT error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestChestXR(t *testing.T) {
	s, err := ChestXR(XROptions{StudyOptions: StudyOptions{Seed: "xr", AccessionNumber: "XR42"}, Columns: 250})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Instances) != 1 {
		t.Fatalf("%d instances, want 1", len(s.Instances))
	}
	m, info := s.Manifest, s.Manifest.Series[0]
	if info.Rows != 300 || info.Columns != 250 || info.PixelSpacingMM[0] != 1.44 {
		t.Errorf("%dx%d at %v mm, want 300x250 at 1.44", info.Rows, info.Columns, info.PixelSpacingMM)
	}
	path := files(writeSeries(t, s), s)[0]
	t.Run("dciodvfy", func(t *testing.T) { dciodvfy(t, path) })
	t.Run("dcmdump", func(t *testing.T) {
		checkDump(t, path, map[string]string{
			"0002,0010": "=LittleEndianExplicit",
			"0008,0016": "=DigitalXRayImageStorageForPresentation",
			"0008,0060": "[DX]",
			"0008,0068": "[FOR PRESENTATION]",
			"0008,0050": "[XR42]",
			"0018,0015": "[CHEST]",
			"0018,5101": "[PA]",
			"0020,0062": "[U]",
			"0020,000d": "[" + m.StudyInstanceUID + "]",
			"0028,0004": "[MONOCHROME2]",
			"0028,0100": "16",
			"0028,0101": "12",
			"0028,0102": "11",
			"0028,0103": "0",
			"2050,0020": "[IDENTITY]",
		})
	})
	t.Run("reread", func(t *testing.T) {
		ds := parse(t, s.Instances[0].Data)
		im := decode(t, ds)
		if im.rows != 300 || im.cols != 250 {
			t.Fatalf("%dx%d", im.rows, im.cols)
		}
		for i, v := range im.values {
			if v < 0 || v > 4095 || v != math.Trunc(v) {
				t.Fatalf("pixel %d = %g, not a 12-bit value", i, v)
			}
		}
		val := map[string]float64{}
		for _, l := range info.Landmarks {
			got := im.at(l.Row, l.Column)
			if got != l.Value {
				t.Errorf("landmark %s (%d,%d) = %g, manifest %g", l.Name, l.Row, l.Column, got, l.Value)
			}
			val[l.Name] = got
		}
		for _, name := range []string{"air", "lung-right", "lung-left", "heart", "spine", "rib"} {
			if _, ok := val[name]; !ok {
				t.Errorf("no %s landmark", name)
			}
		}
		// MONOCHROME2 for presentation: the more a structure attenuates, the brighter.
		order := []string{"air", "lung-right", "heart", "spine"}
		for i := 1; i < len(order); i++ {
			if val[order[i-1]] >= val[order[i]] {
				t.Errorf("%s (%g) not darker than %s (%g)", order[i-1], val[order[i-1]], order[i], val[order[i]])
			}
		}
		if val["rib"] <= val["lung-right"] {
			t.Errorf("rib (%g) not brighter than lung (%g)", val["rib"], val["lung-right"])
		}
	})
}

func TestChestXRDeterministicAndSamePatient(t *testing.T) {
	opts := XROptions{StudyOptions: StudyOptions{Seed: "patient"}, Columns: 100, Noise: 10}
	a, err := ChestXR(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ChestXR(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Instances[0].Data, b.Instances[0].Data) {
		t.Error("two runs with one seed differ")
	}
	ct := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: "patient"}, Slices: 1, Size: 32})
	if a.Manifest.Patient != ct.Manifest.Patient {
		t.Errorf("one seed, two patients: %+v and %+v", a.Manifest.Patient, ct.Manifest.Patient)
	}
	if a.Manifest.StudyInstanceUID == ct.Manifest.StudyInstanceUID || a.Manifest.AccessionNumber == ct.Manifest.AccessionNumber {
		t.Error("the chest X-ray and the head CT share a study or an accession number")
	}
}

func TestWriteDir(t *testing.T) {
	s := headCT(t, CTOptions{StudyOptions: StudyOptions{Seed: "dir"}, Slices: 8, Size: 32, Bleed: &Bleed{RadiusMM: 8}})
	dir := writeSeries(t, s)
	for _, in := range s.Instances {
		data, err := os.ReadFile(filepath.Join(dir, in.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, in.Data) {
			t.Errorf("%s differs from the instance", in.File)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, s.Manifest) {
		t.Errorf("manifest.json does not round-trip:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`"volumeML"`)) || !bytes.Contains(raw, []byte(`"synthetic": true`)) {
		t.Errorf("manifest.json lacks the bleed volume or the synthetic flag:\n%s", raw)
	}
}

func Example() {
	s, err := HeadCT(CTOptions{
		StudyOptions: StudyOptions{Seed: "example"},
		Slices:       32,
		Size:         128,
		Bleed:        &Bleed{Side: "left", RadiusMM: 12},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b := s.Manifest.Series[0].Bleed
	fmt.Printf("%d files, first %s; bleed %s, %d voxels, %.1f mL\n", len(s.Instances), s.Instances[0].File, b.Side, b.Voxels, b.VolumeML)
	// Output: 32 files, first s002/i0001.dcm; bleed left, 469 voxels, 8.9 mL
}
