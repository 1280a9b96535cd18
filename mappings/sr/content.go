package sr

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// content builds the TID 1500 tree.
func (m *mapper) content() (*dicom.ContentItem, error) {
	root := dicom.Container("", codeReport, true).Template("1500")
	root.Add(dicom.CodeItem(dicom.RelHasConceptMod, codeLanguage, language(m.p.Language)))
	devs, err := m.devices()
	if err != nil {
		return nil, err
	}
	// IHE AIR makes the algorithm the observer. A report holding the findings of several
	// algorithms names Osprey, which composed it, at the root, and each group names its own
	// algorithm (observation context is inherited and may be overridden at any container,
	// PS3.3 C.17.5); one observer per level also keeps TID 1004 at its multiplicity of 1.
	rootDevice := devs[0]
	if len(devs) > 1 {
		if rootDevice, err = m.composer(); err != nil {
			return nil, err
		}
	}
	m.rootDevice = rootDevice.uid
	root.Add(observer(rootDevice)...)
	root.Add(dicom.CodeItem(dicom.RelHasConceptMod, codeProcedureReported, m.procedureReported()))
	if lib := m.imageLibrary(); lib != nil {
		root.Add(lib)
	}
	measurements := dicom.Container(dicom.RelContains, codeImagingMeasures, true)
	tracking := map[string]int{}
	for i, f := range m.a.Findings {
		g, err := m.group(f, tracking)
		if err != nil {
			return nil, fmt.Errorf("finding %d (%s %q): %w", i+1, f.Plugin, f.ID, err)
		}
		measurements.Add(g)
	}
	root.Add(measurements)
	return root, nil
}

// procedureReported is the imaging procedure (TID 1500 row 4, from CID 100): the profile's,
// else the modality's "unspecified body region" procedure, else "Imaging procedure". The
// order's own procedure code is not used here, since CID 100 is a defined group that local
// codes would break; it goes in the Requested and Performed Procedure Code Sequences.
func (m *mapper) procedureReported() dicom.Code {
	if !m.p.ProcedureReported.IsZero() {
		return m.p.ProcedureReported
	}
	var mods []string
	for _, se := range m.sourceSeries() {
		if !slices.Contains(mods, se.Modality) {
			mods = append(mods, se.Modality)
		}
	}
	if len(mods) == 1 {
		if c, ok := modalityProcedures[mods[0]]; ok {
			return c
		}
	}
	return codeImagingProcedure
}

func language(tag string) dicom.Code {
	return dicom.Code{Value: tag, Scheme: "RFC5646", Meaning: first(languages[tag], tag)}
}

// observer is TID 1002 for a device: TID 1004 Device Observer Identifying Attributes.
func observer(d device) []*dicom.ContentItem {
	items := []*dicom.ContentItem{
		dicom.CodeItem(dicom.RelHasObsContext, codeObserverType, codeDevice),
		dicom.UIDRefItem(dicom.RelHasObsContext, codeDeviceUID, d.uid),
		dicom.TextItem(dicom.RelHasObsContext, codeDeviceName, d.plugin),
	}
	if d.model.Manufacturer != "" {
		items = append(items, dicom.TextItem(dicom.RelHasObsContext, codeDeviceMaker, d.model.Manufacturer))
	}
	if d.model.Name != "" {
		items = append(items, dicom.TextItem(dicom.RelHasObsContext, codeDeviceModel, d.model.Name))
	}
	return items
}

// imageLibrary is TID 1600: one group per source series, with its modality.
func (m *mapper) imageLibrary() *dicom.ContentItem {
	series := m.sourceSeries()
	if len(series) == 0 {
		return nil
	}
	lib := dicom.Container(dicom.RelContains, codeImageLibrary, true)
	for _, se := range series {
		g := dicom.Container(dicom.RelContains, codeImageLibraryGroup, true)
		if meaning, ok := modalities[se.Modality]; ok {
			g.Add(dicom.CodeItem(dicom.RelHasAcqContext, codeModality, dicom.Code{Value: se.Modality, Scheme: "DCM", Meaning: meaning}))
		}
		if d := m.a.Study.StudyDate; d != "" {
			g.Add(dicom.DateItem(dicom.RelHasAcqContext, codeStudyDate, d))
		}
		for _, in := range se.Instances {
			g.Add(dicom.ImageItem(dicom.RelContains, dicom.Code{}, in.SOPClassUID, in.SOPInstanceUID))
		}
		lib.Add(g)
	}
	return lib
}

// group is the measurement group of one finding: TID 1501 when it has no region, TID 1410
// (planar ROI) when it has one, TID 1411 (volumetric ROI, a stack of planar regions) when it
// has several.
func (m *mapper) group(f mappings.Finding, tracking map[string]int) (*dicom.ContentItem, error) {
	template := "1501"
	switch {
	case len(f.Regions) == 1:
		template = "1410"
	case len(f.Regions) > 1:
		template = "1411"
	}
	g := dicom.Container(dicom.RelContains, codeMeasurementGroup, true).Template(template)

	// TID 4108 Tracking Identifiers. The UID is stable across revisions, so a viewer can
	// follow a finding from one correction to the next; a repeated plugin/finding id pair
	// gets its ordinal so that UIDs stay unique in the document.
	key := f.Plugin + "\x00" + f.ID
	tracking[key]++
	parts := []string{"tracking", m.a.ID, f.Plugin, f.ID}
	if n := tracking[key]; n > 1 {
		parts = append(parts, strconv.Itoa(n))
	}
	trackingUID, err := deriveUID(m.p.UIDRoot, parts...)
	if err != nil {
		return nil, err
	}
	g.Add(
		dicom.TextItem(dicom.RelHasObsContext, codeTrackingID, first(f.ID, f.Plugin)),
		dicom.UIDRefItem(dicom.RelHasObsContext, codeTrackingUID, trackingUID),
	)
	uid, err := deviceUID(f, m.p)
	if err != nil {
		return nil, err
	}
	if uid != m.rootDevice {
		g.Add(observer(device{plugin: f.Plugin, model: f.Model, uid: uid})...)
	}

	finding, err := coded(f.Code)
	if err != nil {
		return nil, fmt.Errorf("code: %w", err)
	}
	g.Add(dicom.CodeItem(dicom.RelContains, codeFinding, finding))

	// TID 4019 Algorithm Identification.
	if f.Model.Name != "" {
		g.Add(
			dicom.TextItem(dicom.RelHasConceptMod, codeAlgorithmName, f.Model.Name),
			dicom.TextItem(dicom.RelHasConceptMod, codeAlgorithmVersion, first(f.Model.Version, "unknown")),
		)
	}

	regions, err := m.regions(f)
	if err != nil {
		return nil, err
	}
	g.Add(regions...)

	if f.Location.Code != nil {
		site, err := coded(*f.Location.Code)
		if err != nil {
			return nil, fmt.Errorf("location code: %w", err)
		}
		item := dicom.CodeItem(dicom.RelHasConceptMod, codeFindingSite, site)
		if lat, ok := lateralities[f.Location.Laterality]; ok {
			item.Add(dicom.CodeItem(dicom.RelHasConceptMod, codeLaterality, lat))
		}
		g.Add(item)
	}

	for j, ms := range f.Measurements {
		num, err := measurement(ms)
		if err != nil {
			return nil, fmt.Errorf("measurement %d (%s): %w", j+1, ms.Name, err)
		}
		if num.Name().Scheme == LocalScheme {
			m.usesLocal = true
		}
		g.Add(num)
	}

	presence := codeAbsent
	if f.Present {
		presence = codePresent
	}
	g.Add(
		dicom.CodeItem(dicom.RelContains, codePresence, presence),
		dicom.NumItem(dicom.RelContains, codeCertainty, roundTo(f.Confidence*100, 4), codePercent),
	)

	refs, err := m.references(f, template)
	if err != nil {
		return nil, err
	}
	g.Add(refs...)
	return g, nil
}

// regions are the finding's outlines as Image Region SCOORDs, each SELECTED FROM its image.
func (m *mapper) regions(f mappings.Finding) ([]*dicom.ContentItem, error) {
	var out []*dicom.ContentItem
	for i, r := range f.Regions {
		in, ok := m.instances[r.SOPInstanceUID]
		if !ok || in.sopClass == "" {
			return nil, fmt.Errorf("%w: region %d: instance %s is not an image of study %s", ErrInvalid, i+1, r.SOPInstanceUID, m.a.Study.StudyInstanceUID)
		}
		gt, pts, err := scoord(r)
		if err != nil {
			return nil, fmt.Errorf("%w: region %d: %v", ErrInvalid, i+1, err)
		}
		var frames []int
		if r.Frame > 0 {
			frames = []int{r.Frame}
		}
		item := dicom.SCoordItem(dicom.RelContains, codeImageRegion, gt, pts)
		item.Add(dicom.ImageItem(dicom.RelSelectedFrom, dicom.Code{}, in.sopClass, r.SOPInstanceUID, frames...))
		out = append(out, item)
	}
	return out, nil
}

// references are the images the finding was seen on that its regions do not already name:
// "Source" images in TID 1501, "Source Image for Segmentation" in TID 1410 and 1411.
func (m *mapper) references(f mappings.Finding, template string) ([]*dicom.ContentItem, error) {
	name := codeSource
	if template != "1501" {
		name = codeSourceForSeg
	}
	outlined := map[string]bool{}
	for _, r := range f.Regions {
		outlined[r.SOPInstanceUID] = true
	}
	var out []*dicom.ContentItem
	for i, ref := range f.References {
		in, ok := m.instances[ref.SOPInstanceUID]
		if !ok || in.sopClass == "" {
			return nil, fmt.Errorf("%w: reference %d: instance %s is not an image of study %s", ErrInvalid, i+1, ref.SOPInstanceUID, m.a.Study.StudyInstanceUID)
		}
		if outlined[ref.SOPInstanceUID] && len(ref.Frames) == 0 {
			continue
		}
		out = append(out, dicom.ImageItem(dicom.RelContains, name, in.sopClass, ref.SOPInstanceUID, ref.Frames...))
	}
	return out, nil
}

// scoord turns a protocol region into a SCOORD graphic type and data. DICOM has no polygon
// or box: a closed POLYLINE (first point repeated last) draws both.
func scoord(r protocol.Region) (string, []float64, error) {
	p := r.Points
	pairs := len(p) / 2
	if len(p)%2 != 0 || pairs == 0 {
		return "", nil, fmt.Errorf("%s: %d coordinates are not x,y pairs", r.Shape, len(p))
	}
	switch r.Shape {
	case protocol.ShapePoint:
		if pairs == 1 {
			return dicom.GraphicPoint, p, nil
		}
	case protocol.ShapePolyline:
		if pairs >= 2 {
			return dicom.GraphicPolyline, p, nil
		}
	case protocol.ShapePolygon:
		if pairs >= 3 {
			closed := append(append([]float64{}, p...), p[0], p[1])
			return dicom.GraphicPolyline, closed, nil
		}
	case protocol.ShapeEllipse:
		if pairs == 4 {
			return dicom.GraphicEllipse, p, nil
		}
	case protocol.ShapeBBox:
		if pairs == 2 {
			x0, y0, x1, y1 := p[0], p[1], p[2], p[3]
			return dicom.GraphicPolyline, []float64{x0, y0, x1, y0, x1, y1, x0, y1, x0, y0}, nil
		}
	default:
		return "", nil, fmt.Errorf("unknown shape %q", r.Shape)
	}
	return "", nil, fmt.Errorf("%s with %d points", r.Shape, pairs)
}

// coded turns a protocol coding into a DICOM code.
func coded(c protocol.Coding) (dicom.Code, error) {
	scheme, ok := designator(c.System)
	if !ok {
		return dicom.Code{}, fmt.Errorf("%w: coding system %q has no DICOM coding scheme designator (use SNOMED CT, LOINC, RadLex, DCM, UCUM or a designator)", ErrInvalid, c.System)
	}
	if c.Code == "" {
		return dicom.Code{}, fmt.Errorf("%w: empty code in system %s", ErrInvalid, c.System)
	}
	return dicom.Code{Value: c.Code, Scheme: scheme, Meaning: first(c.Display, c.Code)}, nil
}

// measurement is a TID 300 NUM: the plugin's code, a standard code for a known name, or a
// code of [LocalScheme].
func measurement(ms protocol.Measurement) (*dicom.ContentItem, error) {
	var name dicom.Code
	switch {
	case ms.Code != nil:
		c, err := coded(*ms.Code)
		if err != nil {
			return nil, err
		}
		name = c
	default:
		if c, ok := measurementNames[normalName(ms.Name)]; ok {
			name = c
		} else if v := localValue(ms.Name); v != "" {
			name = dicom.Code{Value: v, Scheme: LocalScheme, Meaning: ms.Name}
		} else {
			return nil, fmt.Errorf("%w: measurement has neither code nor name", ErrInvalid)
		}
	}
	if ms.Unit == "" {
		return nil, fmt.Errorf("%w: measurement has no unit", ErrInvalid)
	}
	unit := dicom.Code{Value: ms.Unit, Scheme: "UCUM", Meaning: first(units[ms.Unit], ms.Unit)}
	return dicom.NumItem(dicom.RelContains, name, ms.Value, unit), nil
}

func normalName(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		out = append(out, r)
	}
	return string(out)
}
