package dicom

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Structured Report building blocks (PS3.3 C.17.3): coded entries and content items, each
// turned into the sequence items the [Builder] writes.

// SR relationship types (PS3.3 C.17.3.2.4).
const (
	RelContains       = "CONTAINS"
	RelHasObsContext  = "HAS OBS CONTEXT"
	RelHasConceptMod  = "HAS CONCEPT MOD"
	RelHasProperties  = "HAS PROPERTIES"
	RelHasAcqContext  = "HAS ACQ CONTEXT"
	RelInferredFrom   = "INFERRED FROM"
	RelSelectedFrom   = "SELECTED FROM"
	maxShortCodeValue = 16 // SH
	maxCodeMeaning    = 64 // LO, in characters
)

// These attributes are newer than the data dictionary of suyashkumar/dicom v1.0.7, so they
// are written with an explicit VR.
var (
	tagLongCodeValue = tag.Tag{Group: 0x0008, Element: 0x0119} // UC
	tagURNCodeValue  = tag.Tag{Group: 0x0008, Element: 0x0120} // UR
)

// Code is a coded entry: the Basic Code Sequence Macro (PS3.3 Table 8.8-1).
type Code struct {
	Value   string // CodeValue; a value longer than 16 characters goes in LongCodeValue
	Scheme  string // CodingSchemeDesignator, e.g. "DCM", "SCT", "UCUM", "LN"
	Meaning string // CodeMeaning; cut to 64 characters
}

// IsZero reports whether c is the zero Code, which stands for "no code".
func (c Code) IsZero() bool { return c == Code{} }

// String returns "(value, scheme, "meaning")" as PS3.16 writes codes.
func (c Code) String() string { return fmt.Sprintf("(%s, %s, %q)", c.Value, c.Scheme, c.Meaning) }

// Item returns c as one sequence item.
func (c Code) Item() *Builder {
	var b Builder
	if c.Value == "" || c.Scheme == "" || c.Meaning == "" {
		b.err = fmt.Errorf("code %s: value, scheme and meaning are required: %w", c, ErrValue)
		return &b
	}
	switch {
	case len(c.Value) <= maxShortCodeValue:
		b.Add(tag.CodeValue, c.Value)
	case isURN(c.Value):
		b.addExplicit(tagURNCodeValue, "UR", c.Value)
	default:
		b.addExplicit(tagLongCodeValue, "UC", c.Value)
	}
	b.Add(tag.CodingSchemeDesignator, c.Scheme)
	b.Add(tag.CodeMeaning, truncateRunes(c.Meaning, maxCodeMeaning))
	return &b
}

// CodeSequence appends a sequence of tag t holding the codes, one item each.
func (b *Builder) CodeSequence(t tag.Tag, codes ...Code) {
	items := make([]*Builder, len(codes))
	for i, c := range codes {
		items[i] = c.Item()
	}
	b.Sequence(t, items...)
}

func isURN(s string) bool {
	return len(s) > 4 && (s[:4] == "urn:" || s[:5] == "http:" || len(s) > 5 && s[:6] == "https:")
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// addExplicit appends a text element the dictionary does not know, space-padded to even
// length as PS3.5 6.2 asks of UC and UR (the writer would pad them with NUL).
func (b *Builder) addExplicit(t tag.Tag, vr, value string) {
	if b.err != nil {
		return
	}
	if len(value)%2 != 0 {
		value += " "
	}
	v, err := dcm.NewValue([]string{value})
	if err != nil {
		b.err = fmt.Errorf("%s: %w", t, err)
		return
	}
	b.elems = append(b.elems, &dcm.Element{Tag: t, ValueRepresentation: tag.VRString, RawValueRepresentation: vr, Value: v})
}

// ContentItem is one SR content item with its children (PS3.3 C.17.3, Document Content
// Macro and Document Relationship Macro). Make one with the constructors ([Container],
// [CodeItem], [TextItem], [NumItem], [UIDRefItem], [ImageItem], [SCoordItem], [DateItem],
// [TimeItem]), add children with [ContentItem.Add], and write a tree with
// [ContentItem.AddRoot].
type ContentItem struct {
	rel      string
	typ      string
	name     Code
	value    func(b *Builder)
	template string
	children []*ContentItem
}

// Add appends children, which carry their relationship to c, and returns c.
func (c *ContentItem) Add(children ...*ContentItem) *ContentItem {
	for _, ch := range children {
		if ch != nil {
			c.children = append(c.children, ch)
		}
	}
	return c
}

// Template records that c is the root of a DCMR template (ContentTemplateSequence, as TID
// 1500 asks of its root and TID 1501 of its groups), by template number such as "1500".
func (c *ContentItem) Template(id string) *ContentItem {
	c.template = id
	return c
}

// Children returns c's children, in order.
func (c *ContentItem) Children() []*ContentItem { return c.children }

// Name returns c's concept name; the zero Code when it has none.
func (c *ContentItem) Name() Code { return c.name }

// item returns c as an item of its parent's ContentSequence.
func (c *ContentItem) item() *Builder {
	var b Builder
	b.Add(tag.RelationshipType, c.rel)
	c.addBody(&b)
	return &b
}

// addBody adds everything but the relationship: the root has none.
func (c *ContentItem) addBody(b *Builder) {
	b.Add(tag.ValueType, c.typ)
	if !c.name.IsZero() {
		b.CodeSequence(tag.ConceptNameCodeSequence, c.name)
	}
	if c.value != nil {
		c.value(b)
	}
	if c.template != "" {
		var t Builder
		t.Add(tag.MappingResource, "DCMR")
		t.Add(tag.TemplateIdentifier, c.template)
		b.Sequence(tag.ContentTemplateSequence, &t)
	}
	if len(c.children) > 0 {
		items := make([]*Builder, len(c.children))
		for i, ch := range c.children {
			items[i] = ch.item()
		}
		b.Sequence(tag.ContentSequence, items...)
	}
}

// AddRoot adds c, the document's root container, and its tree to the top level of b (the SR
// Document Content Module). A root has no relationship: the one c was made with is ignored.
func (c *ContentItem) AddRoot(b *Builder) { c.addBody(b) }

// Container returns a CONTAINER item. Separate sets ContinuityOfContent SEPARATE (each child
// stands alone), else CONTINUOUS.
func Container(rel string, name Code, separate bool) *ContentItem {
	continuity := "CONTINUOUS"
	if separate {
		continuity = "SEPARATE"
	}
	return &ContentItem{rel: rel, typ: "CONTAINER", name: name, value: func(b *Builder) {
		b.Add(tag.ContinuityOfContent, continuity)
	}}
}

// CodeItem returns a CODE item whose value is the code value.
func CodeItem(rel string, name, value Code) *ContentItem {
	return &ContentItem{rel: rel, typ: "CODE", name: name, value: func(b *Builder) {
		b.CodeSequence(tag.ConceptCodeSequence, value)
	}}
}

// TextItem returns a TEXT item.
func TextItem(rel string, name Code, text string) *ContentItem {
	return &ContentItem{rel: rel, typ: "TEXT", name: name, value: func(b *Builder) {
		b.Add(tag.TextValue, text)
	}}
}

// UIDRefItem returns a UIDREF item.
func UIDRefItem(rel string, name Code, uid string) *ContentItem {
	return &ContentItem{rel: rel, typ: "UIDREF", name: name, value: func(b *Builder) {
		if err := ValidUID(uid); err != nil && b.err == nil {
			b.err = err
			return
		}
		b.Add(tag.UID, uid)
	}}
}

// DateItem returns a DATE item; date is a DA value (YYYYMMDD).
func DateItem(rel string, name Code, date string) *ContentItem {
	return &ContentItem{rel: rel, typ: "DATE", name: name, value: func(b *Builder) { b.Add(tag.Date, date) }}
}

// TimeItem returns a TIME item; tm is a TM value.
func TimeItem(rel string, name Code, tm string) *ContentItem {
	return &ContentItem{rel: rel, typ: "TIME", name: name, value: func(b *Builder) { b.Add(tag.Time, tm) }}
}

// NumItem returns a NUM item: value in unit, a UCUM code such as (mm, UCUM, "millimeter").
func NumItem(rel string, name Code, value float64, unit Code) *ContentItem {
	return &ContentItem{rel: rel, typ: "NUM", name: name, value: func(b *Builder) {
		var mv Builder
		mv.CodeSequence(tag.MeasurementUnitsCodeSequence, unit)
		mv.Add(tag.NumericValue, value)
		b.Sequence(tag.MeasuredValueSequence, &mv)
	}}
}

// ImageItem returns an IMAGE item referencing an instance, and frames of it when given
// (1-based). name may be the zero Code: the entries of an Image Library have none.
func ImageItem(rel string, name Code, sopClass, sopInstance string, frames ...int) *ContentItem {
	return &ContentItem{rel: rel, typ: "IMAGE", name: name, value: func(b *Builder) {
		b.Sequence(tag.ReferencedSOPSequence, SOPReference(sopClass, sopInstance, frames...))
	}}
}

// SOPReference returns a SOP Instance Reference Macro item (ReferencedSOPClassUID and
// ReferencedSOPInstanceUID), with ReferencedFrameNumber when frames are given.
func SOPReference(sopClass, sopInstance string, frames ...int) *Builder {
	var r Builder
	for _, u := range []string{sopClass, sopInstance} {
		if err := ValidUID(u); err != nil {
			r.err = err
			return &r
		}
	}
	r.Add(tag.ReferencedSOPClassUID, sopClass)
	r.Add(tag.ReferencedSOPInstanceUID, sopInstance)
	if len(frames) > 0 {
		s := make([]string, len(frames))
		for i, f := range frames {
			s[i] = strconv.Itoa(f)
		}
		r.Add(tag.ReferencedFrameNumber, s)
	}
	return &r
}

// SCOORD graphic types (PS3.3 C.18.6.1.2).
const (
	GraphicPoint      = "POINT"
	GraphicMultipoint = "MULTIPOINT"
	GraphicPolyline   = "POLYLINE"
	GraphicCircle     = "CIRCLE"
	GraphicEllipse    = "ELLIPSE"
)

// SCoordItem returns a SCOORD item: a shape in image pixel coordinates (column, row pairs)
// of graphicType. It must have a SELECTED FROM IMAGE child naming the image.
func SCoordItem(rel string, name Code, graphicType string, points []float64) *ContentItem {
	return &ContentItem{rel: rel, typ: "SCOORD", name: name, value: func(b *Builder) {
		if len(points) == 0 || len(points)%2 != 0 {
			if b.err == nil {
				b.err = fmt.Errorf("scoord %s: %d coordinates are not x,y pairs: %w", graphicType, len(points), ErrValue)
			}
			return
		}
		b.Add(tag.GraphicData, points)
		b.Add(tag.GraphicType, graphicType)
	}}
}
