package dicom

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ContentJSON is the media type of DICOM JSON (PS3.18 F.2), as DICOMweb answers metadata,
// QIDO-RS searches and STOW-RS responses.
const ContentJSON = "application/dicom+json"

// ErrJSON reports DICOM JSON that does not follow PS3.18 F.2.
var ErrJSON = errors.New("dicom: malformed DICOM JSON")

// JSONDataset is one dataset in the DICOM JSON Model (PS3.18 F.2): attributes keyed by their
// tag as eight upper-case hex digits ("0020000D").
type JSONDataset map[string]*JSONAttribute

// JSONAttribute is one attribute of a [JSONDataset]. Value holds, per VR (PS3.18 F.2.3):
// strings for the string VRs and AT, float64 for DS, IS and the binary numeric VRs
// (json.Number never escapes), [PersonName] for PN and [JSONDataset] for SQ items. Binary VRs
// carry InlineBinary (base64) or a BulkDataURI instead of Value.
type JSONAttribute struct {
	VR           string `json:"vr"`
	Value        []any  `json:"Value,omitempty"`
	InlineBinary string `json:"InlineBinary,omitempty"`
	BulkDataURI  string `json:"BulkDataURI,omitempty"`
}

// PersonName is a PN value in DICOM JSON: up to three component groups (PS3.18 F.2.2).
type PersonName struct {
	Alphabetic  string `json:"Alphabetic,omitempty"`
	Ideographic string `json:"Ideographic,omitempty"`
	Phonetic    string `json:"Phonetic,omitempty"`
}

// TagKey is a tag as DICOM JSON names it: eight upper-case hex digits.
func TagKey(t tag.Tag) string { return fmt.Sprintf("%04X%04X", t.Group, t.Element) }

// ParseTagKey is the inverse of [TagKey].
func ParseTagKey(s string) (tag.Tag, error) {
	if len(s) != 8 {
		return tag.Tag{}, fmt.Errorf("%w: tag %q is not eight hex digits", ErrJSON, s)
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return tag.Tag{}, fmt.Errorf("%w: tag %q: %v", ErrJSON, s, err)
	}
	return tag.Tag{Group: uint16(n >> 16), Element: uint16(n)}, nil
}

// UnmarshalJSON decodes an attribute, typing Value by VR.
func (a *JSONAttribute) UnmarshalJSON(data []byte) error {
	var raw struct {
		VR           string            `json:"vr"`
		Value        []json.RawMessage `json:"Value"`
		InlineBinary string            `json:"InlineBinary"`
		BulkDataURI  string            `json:"BulkDataURI"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("%w: %v", ErrJSON, err)
	}
	*a = JSONAttribute{VR: raw.VR, InlineBinary: raw.InlineBinary, BulkDataURI: raw.BulkDataURI}
	for _, rv := range raw.Value {
		if string(rv) == "null" {
			a.Value = append(a.Value, nil)
			continue
		}
		var v any
		var err error
		switch raw.VR {
		case "SQ":
			var item JSONDataset
			err = json.Unmarshal(rv, &item)
			v = item
		case "PN":
			var pn PersonName
			if err = json.Unmarshal(rv, &pn); err != nil {
				// Some servers write a PN as a plain string; accept it as Alphabetic.
				var s string
				if json.Unmarshal(rv, &s) == nil {
					pn, err = PersonName{Alphabetic: s}, nil
				}
			}
			v = pn
		default:
			var x any
			err = json.Unmarshal(rv, &x)
			v = x
		}
		if err != nil {
			return fmt.Errorf("%w: %s value: %v", ErrJSON, raw.VR, err)
		}
		a.Value = append(a.Value, v)
	}
	return nil
}

// DecodeJSONArray decodes a DICOM JSON array of datasets, as WADO-RS metadata and QIDO-RS
// answer.
func DecodeJSONArray(data []byte) ([]JSONDataset, error) {
	var out []JSONDataset
	if err := json.Unmarshal(data, &out); err != nil {
		if errors.Is(err, ErrJSON) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrJSON, err)
	}
	return out, nil
}

// String returns the first value of the attribute t as text ("" when absent): a string as is,
// a number formatted, a person name's Alphabetic group.
func (d JSONDataset) String(t tag.Tag) string { return d.value(t) }

func (d JSONDataset) value(t tag.Tag) string {
	a := d[TagKey(t)]
	if a == nil || len(a.Value) == 0 {
		return ""
	}
	switch v := a.Value[0].(type) {
	case string:
		return strings.TrimRight(v, " \x00")
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case PersonName:
		return v.Alphabetic
	}
	return ""
}

// Strings returns every value of the attribute t as text.
func (d JSONDataset) Strings(t tag.Tag) []string {
	a := d[TagKey(t)]
	if a == nil {
		return nil
	}
	out := make([]string, 0, len(a.Value))
	for _, v := range a.Value {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case float64:
			out = append(out, strconv.FormatFloat(v, 'f', -1, 64))
		case PersonName:
			out = append(out, v.Alphabetic)
		}
	}
	return out
}

// Set puts a string-valued attribute into d (VR as given; an empty value leaves Value out).
func (d JSONDataset) Set(t tag.Tag, vr string, values ...any) {
	a := &JSONAttribute{VR: vr}
	for _, v := range values {
		if s, ok := v.(string); ok && s == "" {
			continue
		}
		a.Value = append(a.Value, v)
	}
	d[TagKey(t)] = a
}

// BulkDataFunc names the BulkDataURI of a binary element when a dataset is converted to DICOM
// JSON; returning "" writes the value inline (InlineBinary) instead.
type BulkDataFunc func(t tag.Tag) string

// JSONFromDataset converts ds to the DICOM JSON Model. Group 0002 (File Meta Information) is
// left out, as WADO-RS metadata does. Binary values and pixel data are referred to by
// bulk(tag) when it gives a URI; pixel data without one is left out. A nil bulk writes every
// binary value inline except pixel data.
func JSONFromDataset(ds *dcm.Dataset, bulk BulkDataFunc) JSONDataset {
	return jsonFromElements(ds.Elements, bulk, true)
}

// bulkThreshold is the size above which a binary value goes to bulk data when a URI is
// offered; small binary values (a two-byte FileMetaInformationVersion, a LUT descriptor) stay
// inline because fetching them separately costs more than it saves.
const bulkThreshold = 1024

func jsonFromElements(elems []*dcm.Element, bulk BulkDataFunc, top bool) JSONDataset {
	out := JSONDataset{}
	for _, e := range elems {
		if top && e.Tag.Group == 0x0002 {
			continue
		}
		if e.Tag.Element == 0 { // group lengths are retired in datasets (PS3.5 7.2)
			continue
		}
		vr := e.RawValueRepresentation
		if vr == "" || vr == "UN" {
			if info, err := tag.Find(e.Tag); err == nil {
				vr = strings.SplitN(info.VR, " ", 2)[0]
			}
		}
		if vr == "" {
			vr = "UN"
		}
		a := &JSONAttribute{VR: vr}
		if e.Value == nil {
			out[TagKey(e.Tag)] = a
			continue
		}
		switch e.Value.ValueType() {
		case dcm.Strings:
			for _, s := range e.Value.GetValue().([]string) {
				a.Value = append(a.Value, stringJSON(vr, s))
			}
			if len(a.Value) == 1 && a.Value[0] == nil {
				a.Value = nil // one empty value is an empty attribute (PS3.18 F.2.5)
			}
		case dcm.Ints:
			for _, n := range e.Value.GetValue().([]int) {
				if vr == "AT" {
					a.Value = append(a.Value, fmt.Sprintf("%04X%04X", uint32(n)>>16, uint32(n)&0xffff))
				} else {
					a.Value = append(a.Value, float64(n))
				}
			}
		case dcm.Floats:
			for _, f := range e.Value.GetValue().([]float64) {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					a.Value = append(a.Value, nil)
				} else {
					a.Value = append(a.Value, f)
				}
			}
		case dcm.Bytes:
			b := e.Value.GetValue().([]byte)
			if uri := bulkURI(bulk, e.Tag, len(b)); uri != "" {
				a.BulkDataURI = uri
			} else if len(b) > 0 {
				a.InlineBinary = base64.StdEncoding.EncodeToString(b)
			}
		case dcm.PixelData:
			if uri := bulkURI(bulk, e.Tag, math.MaxInt); uri != "" {
				a.BulkDataURI = uri
			} else {
				continue
			}
		case dcm.Sequences:
			for _, item := range e.Value.GetValue().([]*dcm.SequenceItemValue) {
				elems, _ := item.GetValue().([]*dcm.Element)
				a.Value = append(a.Value, jsonFromElements(elems, nil, false))
			}
		}
		out[TagKey(e.Tag)] = a
	}
	return out
}

func bulkURI(bulk BulkDataFunc, t tag.Tag, size int) string {
	if bulk == nil || size < bulkThreshold {
		return ""
	}
	return bulk(t)
}

// stringJSON converts one string value per PS3.18 F.2.3: DS and IS become JSON numbers, PN a
// person name object, an empty value null.
func stringJSON(vr, s string) any {
	s = strings.TrimRight(s, " \x00")
	if vr != "UT" && vr != "ST" && vr != "LT" {
		s = strings.TrimLeft(s, " ")
	}
	if s == "" {
		return nil
	}
	switch vr {
	case "DS", "IS":
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	case "PN":
		groups := strings.SplitN(s, "=", 3)
		pn := PersonName{Alphabetic: groups[0]}
		if len(groups) > 1 {
			pn.Ideographic = groups[1]
		}
		if len(groups) > 2 {
			pn.Phonetic = groups[2]
		}
		return pn
	}
	return s
}

// MarshalJSONArray encodes datasets as a DICOM JSON array.
func MarshalJSONArray(ds []JSONDataset) ([]byte, error) {
	if ds == nil {
		ds = []JSONDataset{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ds); err != nil {
		return nil, fmt.Errorf("dicom: encode json: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// NativeFrame returns frame n (1-based) of uncompressed pixel data: the raw pixel bytes of
// one frame, as WADO-RS frames retrieval answers them. It needs a dataset parsed with
// dcm.SkipProcessingPixelDataValue, so that the pixel data element still holds its bytes.
func NativeFrame(ds *dcm.Dataset, n int) ([]byte, error) {
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil, fmt.Errorf("dicom: frame %d: no pixel data: %w", n, err)
	}
	info, ok := e.Value.GetValue().(dcm.PixelDataInfo)
	if !ok {
		return nil, fmt.Errorf("dicom: frame %d: pixel data of unexpected type", n)
	}
	if info.IsEncapsulated {
		return nil, fmt.Errorf("dicom: frame %d: %w", n, ErrEncapsulated)
	}
	raw := info.UnprocessedValueData
	if !info.IntentionallyUnprocessed {
		return nil, fmt.Errorf("dicom: frame %d: pixel data was processed, parse with SkipProcessingPixelDataValue", n)
	}
	a := datasetAttributes{ds}
	rows, cols := atoi(a.value(tag.Rows)), atoi(a.value(tag.Columns))
	spp, bits := atoi(a.value(tag.SamplesPerPixel)), atoi(a.value(tag.BitsAllocated))
	frames := atoi(a.value(tag.NumberOfFrames))
	if spp == 0 {
		spp = 1
	}
	if frames == 0 {
		frames = 1
	}
	if rows == 0 || cols == 0 || bits == 0 {
		return nil, fmt.Errorf("dicom: frame %d: Rows, Columns or BitsAllocated missing", n)
	}
	size := rows * cols * spp * bits / 8
	if bits == 1 {
		return nil, fmt.Errorf("dicom: frame %d: single-bit pixel data is not supported", n)
	}
	if n < 1 || n > frames {
		return nil, fmt.Errorf("dicom: frame %d of %d: %w", n, frames, ErrNoFrame)
	}
	if len(raw) < n*size {
		return nil, fmt.Errorf("dicom: frame %d: pixel data holds %d bytes, want %d", n, len(raw), n*size)
	}
	return raw[(n-1)*size : n*size], nil
}

// Errors of [NativeFrame].
var (
	ErrEncapsulated = errors.New("pixel data is compressed (encapsulated)")
	ErrNoFrame      = errors.New("no such frame")
)
