package dicom

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// Errors returned by [Encode] for datasets it will not write.
var (
	// ErrMissingSOP reports a dataset without SOPClassUID or SOPInstanceUID, from which the
	// File Meta Information takes MediaStorageSOPClassUID and MediaStorageSOPInstanceUID.
	ErrMissingSOP = errors.New("dataset has no SOPClassUID or SOPInstanceUID")
	// ErrDuplicateTag reports a tag present twice at one nesting level.
	ErrDuplicateTag = errors.New("duplicate tag")
	// ErrTransferSyntax reports a dataset that asks for a transfer syntax other than
	// Explicit VR Little Endian, the only one Encode writes.
	ErrTransferSyntax = errors.New("unsupported transfer syntax")
)

// Sort orders elements by tag, in place, at every level: the elements of each sequence item
// are sorted too. PS3.5 7.1 requires ascending tag order and the underlying writer keeps
// whatever order it is given.
func Sort(elems []*dcm.Element) {
	slices.SortStableFunc(elems, func(a, b *dcm.Element) int { return a.Tag.Compare(b.Tag) })
	for _, e := range elems {
		for _, item := range sequenceItems(e) {
			Sort(item)
		}
	}
}

// Encode returns ds as a Part 10 file in Explicit VR Little Endian. It sorts ds in place (see
// [Sort]) and sets the File Meta Information: FileMetaInformationVersion, the media storage SOP
// class and instance from SOPClassUID and SOPInstanceUID, TransferSyntaxUID,
// ImplementationClassUID and ImplementationVersionName. Other group 0002 elements the caller
// put in ds (SourceApplicationEntityTitle, say) are kept.
func Encode(ds *dcm.Dataset) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, ds); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes ds to w as [Encode] does.
func Write(w io.Writer, ds *dcm.Dataset) error {
	sopClass, err := stringValue(ds, tag.SOPClassUID)
	if err != nil {
		return err
	}
	sopInstance, err := stringValue(ds, tag.SOPInstanceUID)
	if err != nil {
		return err
	}
	if ts, err := ds.FindElementByTag(tag.TransferSyntaxUID); err == nil {
		if v, ok := ts.Value.GetValue().([]string); !ok || len(v) != 1 || v[0] != uid.ExplicitVRLittleEndian {
			return fmt.Errorf("dicom: encode %s: transfer syntax %v: %w", sopInstance, ts.Value, ErrTransferSyntax)
		}
	}
	var b Builder
	b.Add(tag.FileMetaInformationVersion, []byte{0x00, 0x01})
	b.Add(tag.MediaStorageSOPClassUID, sopClass)
	b.Add(tag.MediaStorageSOPInstanceUID, sopInstance)
	b.Add(tag.TransferSyntaxUID, uid.ExplicitVRLittleEndian)
	b.Add(tag.ImplementationClassUID, ImplementationClassUID)
	b.Add(tag.ImplementationVersionName, ImplementationVersionName)
	meta, err := b.Elements()
	if err != nil {
		return fmt.Errorf("dicom: encode %s: file meta: %w", sopInstance, err)
	}
	ds.Elements = slices.DeleteFunc(ds.Elements, func(e *dcm.Element) bool {
		return slices.ContainsFunc(meta, func(m *dcm.Element) bool { return m.Tag == e.Tag })
	})
	ds.Elements = append(ds.Elements, meta...)
	Sort(ds.Elements)
	if err := checkUnique(ds.Elements); err != nil {
		return fmt.Errorf("dicom: encode %s: %w", sopInstance, err)
	}
	if err := dcm.Write(w, *ds); err != nil {
		return fmt.Errorf("dicom: encode %s: %w", sopInstance, err)
	}
	return nil
}

// checkUnique reports the first tag that appears twice at one level of sorted elements.
func checkUnique(elems []*dcm.Element) error {
	for i, e := range elems {
		if i > 0 && elems[i-1].Tag == e.Tag {
			return fmt.Errorf("%s: %w", e.Tag, ErrDuplicateTag)
		}
		for _, item := range sequenceItems(e) {
			if err := checkUnique(item); err != nil {
				return fmt.Errorf("%s item: %w", e.Tag, err)
			}
		}
	}
	return nil
}

func sequenceItems(e *dcm.Element) [][]*dcm.Element {
	if e.Value == nil || e.Value.ValueType() != dcm.Sequences {
		return nil
	}
	items, _ := e.Value.GetValue().([]*dcm.SequenceItemValue)
	out := make([][]*dcm.Element, 0, len(items))
	for _, it := range items {
		if elems, ok := it.GetValue().([]*dcm.Element); ok {
			out = append(out, elems)
		}
	}
	return out
}

func stringValue(ds *dcm.Dataset, t tag.Tag) (string, error) {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return "", fmt.Errorf("dicom: encode: %s: %w", t, ErrMissingSOP)
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) != 1 || v[0] == "" {
		return "", fmt.Errorf("dicom: encode: %s is empty: %w", t, ErrMissingSOP)
	}
	return v[0], nil
}
