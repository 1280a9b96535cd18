package dicom

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrValue reports a Go value that cannot be stored in an element of the tag's VR.
var ErrValue = errors.New("value does not fit the element's VR")

// Builder accumulates the elements of a dataset or of one sequence item. It keeps the first
// error, so a long run of Add calls needs one check, at Elements or Dataset. The zero value is
// ready to use.
type Builder struct {
	elems []*dcm.Element
	err   error
}

// Add appends an element of tag t, converting value to suit the tag's VR from the standard
// dictionary:
//
//   - string or []string for any text VR (an empty string gives an empty, type 2, value);
//   - float64 or []float64 for DS (formatted by [FormatDS]), FL and FD;
//   - int or []int for IS, US, SS, UL and SL;
//   - time.Time for DA, TM and DT;
//   - []byte for OB and OW, and for PixelData: native pixel bytes, little endian, as they
//     are to be written (padded to even length if need be).
//
// Sequences are added with [Builder.Sequence].
func (b *Builder) Add(t tag.Tag, value any) {
	if b.err != nil {
		return
	}
	e, err := newElement(t, value)
	if err != nil {
		b.err = err
		return
	}
	b.elems = append(b.elems, e)
}

// Sequence appends a sequence of tag t whose items are the builders' elements. No items gives
// an empty sequence, which is how a type 2 sequence is left empty.
func (b *Builder) Sequence(t tag.Tag, items ...*Builder) {
	if b.err != nil {
		return
	}
	values := make([][]*dcm.Element, 0, len(items))
	for i, it := range items {
		elems, err := it.Elements()
		if err != nil {
			b.err = fmt.Errorf("%s item %d: %w", t, i+1, err)
			return
		}
		values = append(values, elems)
	}
	e, err := dcm.NewElement(t, values)
	if err != nil {
		b.err = fmt.Errorf("%s: %w", t, err)
		return
	}
	b.elems = append(b.elems, e)
}

// Elements returns the elements added so far, or the first error.
func (b *Builder) Elements() ([]*dcm.Element, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.elems, nil
}

// Dataset returns the elements added so far as a dataset, or the first error.
func (b *Builder) Dataset() (*dcm.Dataset, error) {
	elems, err := b.Elements()
	if err != nil {
		return nil, err
	}
	return &dcm.Dataset{Elements: elems}, nil
}

func newElement(t tag.Tag, value any) (*dcm.Element, error) {
	info, err := tag.Find(t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	if t == tag.PixelData {
		raw, ok := value.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s: %T: %w", t, value, ErrValue)
		}
		if len(raw)%2 != 0 {
			raw = append(raw[:len(raw):len(raw)], 0)
		}
		v, err := dcm.NewValue(dcm.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		return &dcm.Element{Tag: t, ValueRepresentation: tag.VRPixelData, RawValueRepresentation: info.VR, Value: v}, nil
	}
	data, err := convert(info.VR, value)
	if err != nil {
		return nil, fmt.Errorf("%s %s (%s): %w", t, info.Name, info.VR, err)
	}
	e, err := dcm.NewElement(t, data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t, info.Name, err)
	}
	return e, nil
}

func convert(vr string, value any) (any, error) {
	switch vr {
	case "DS":
		switch v := value.(type) {
		case float64:
			return []string{FormatDS(v)}, nil
		case []float64:
			s := make([]string, len(v))
			for i, f := range v {
				s[i] = FormatDS(f)
			}
			return s, nil
		}
	case "IS":
		switch v := value.(type) {
		case int:
			return []string{strconv.Itoa(v)}, nil
		case []int:
			s := make([]string, len(v))
			for i, n := range v {
				s[i] = strconv.Itoa(n)
			}
			return s, nil
		}
	case "US", "SS", "UL", "SL":
		switch v := value.(type) {
		case int:
			return []int{v}, nil
		case []int:
			return v, nil
		}
	case "FL", "FD":
		switch v := value.(type) {
		case float64:
			return []float64{v}, nil
		case []float64:
			return v, nil
		}
	case "OB", "OW", "UN":
		if v, ok := value.([]byte); ok {
			return v, nil
		}
	case "SQ":
		return nil, fmt.Errorf("use Builder.Sequence: %w", ErrValue)
	}
	if binaryVR(vr) {
		return nil, fmt.Errorf("%T: %w", value, ErrValue)
	}
	switch v := value.(type) {
	case string:
		if v == "" {
			return []string{}, nil
		}
		return []string{v}, nil
	case []string:
		return v, nil
	case time.Time:
		switch vr {
		case "DA":
			return []string{FormatDate(v)}, nil
		case "TM":
			return []string{FormatTime(v)}, nil
		case "DT":
			return []string{v.Format("20060102150405.000000-0700")}, nil
		}
	}
	return nil, fmt.Errorf("%T: %w", value, ErrValue)
}

// binaryVR reports whether vr holds numbers or bytes rather than text.
func binaryVR(vr string) bool {
	switch vr {
	case "US", "SS", "UL", "SL", "FL", "FD", "OB", "OW", "OF", "OD", "OL", "UN", "AT":
		return true
	}
	return false
}

// FormatDS formats v as a Decimal String: at most 16 characters, as precise as fits, with no
// negative zero. NaN and infinities have no DS form and format as "0".
func FormatDS(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 {
		return "0"
	}
	if s := strconv.FormatFloat(v, 'f', -1, 64); len(s) <= 16 {
		return s
	}
	for prec := 15; prec > 0; prec-- {
		s := strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= 16 { // 'g' may choose an exponent, which DS allows
			return s
		}
	}
	return "0"
}

// FormatDate formats t as a DA value, YYYYMMDD.
func FormatDate(t time.Time) string { return t.Format("20060102") }

// FormatTime formats t as a TM value, HHMMSS, with a fraction when t has one.
func FormatTime(t time.Time) string {
	if t.Nanosecond() == 0 {
		return t.Format("150405")
	}
	return t.Format("150405.000000")
}

// FormatAge formats the age of someone born at birth, at the time at, as an AS value: whole
// years as "nnnY", or months ("nnnM"), weeks ("nnnW") or days ("nnnD") for the very young.
func FormatAge(birth, at time.Time) string {
	years := at.Year() - birth.Year()
	if at.Month() < birth.Month() || at.Month() == birth.Month() && at.Day() < birth.Day() {
		years--
	}
	if years >= 2 {
		return fmt.Sprintf("%03dY", min(years, 999))
	}
	days := int(at.Sub(birth).Hours() / 24)
	switch {
	case days >= 2*30:
		months := (at.Year()-birth.Year())*12 + int(at.Month()) - int(birth.Month())
		if at.Day() < birth.Day() {
			months--
		}
		return fmt.Sprintf("%03dM", months)
	case days >= 4*7:
		return fmt.Sprintf("%03dW", days/7)
	default:
		return fmt.Sprintf("%03dD", max(days, 0))
	}
}
