package dicom_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine/dicom"
)

func TestJSONFromDataset(t *testing.T) {
	var item dicom.Builder
	item.Add(tag.CodeValue, "113691")
	item.Add(tag.CodingSchemeDesignator, "DCM")
	var b dicom.Builder
	b.Add(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7")
	b.Add(tag.SOPInstanceUID, "1.2.3.4")
	b.Add(tag.PatientName, "DOE^JANE=ドウ^ジェーン")
	b.Add(tag.ImageType, []string{"ORIGINAL", "PRIMARY"})
	b.Add(tag.SliceThickness, "5.0")
	b.Add(tag.InstanceNumber, "7")
	b.Add(tag.Rows, 256)
	b.Add(tag.AccessionNumber, "")
	b.Add(tag.RedPaletteColorLookupTableDescriptor, []int{256, 0, 16})
	b.Sequence(tag.ProcedureCodeSequence, &item)
	ds, err := b.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	j := dicom.JSONFromDataset(ds, nil)
	out, err := dicom.MarshalJSONArray([]dicom.JSONDataset{j})
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`"00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^JANE","Ideographic":"ドウ^ジェーン"}]}`,
		`"00080008":{"vr":"CS","Value":["ORIGINAL","PRIMARY"]}`,
		`"00180050":{"vr":"DS","Value":[5]}`,
		`"00200013":{"vr":"IS","Value":[7]}`,
		`"00280010":{"vr":"US","Value":[256]}`,
		`"00080050":{"vr":"SH"}`,
		`"00081032":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["113691"]}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %s in\n%s", want, s)
		}
	}
	if strings.Contains(s, `"00020010"`) {
		t.Errorf("File Meta Information in DICOM JSON: %s", s)
	}

	back, err := dicom.DecodeJSONArray(out)
	if err != nil || len(back) != 1 {
		t.Fatalf("decode: %v", err)
	}
	d := back[0]
	checks := []struct{ name, got, want string }{
		{"pn", d.String(tag.PatientName), "DOE^JANE"},
		{"ds", d.String(tag.SliceThickness), "5"},
		{"is", d.String(tag.InstanceNumber), "7"},
		{"empty", d.String(tag.AccessionNumber), ""},
		{"multi", strings.Join(d.Strings(tag.ImageType), "\\"), "ORIGINAL\\PRIMARY"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	seq := d[dicom.TagKey(tag.ProcedureCodeSequence)]
	if seq == nil || len(seq.Value) != 1 {
		t.Fatalf("sequence %+v", seq)
	}
	if it, ok := seq.Value[0].(dicom.JSONDataset); !ok || it.String(tag.CodeValue) != "113691" {
		t.Errorf("sequence item %#v", seq.Value[0])
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		key  tag.Tag
		want string
		err  error
	}{
		{"pn as a plain string", `[{"00100010":{"vr":"PN","Value":["DOE^J"]}}]`, tag.PatientName, "DOE^J", nil},
		{"inline binary", `[{"7FE00010":{"vr":"OW","InlineBinary":"AAE="}}]`, tag.PixelData, "", nil},
		{"null value", `[{"00080050":{"vr":"SH","Value":[null]}}]`, tag.AccessionNumber, "", nil},
		{"not an array", `{"00080050":{}}`, tag.AccessionNumber, "", dicom.ErrJSON},
		{"bad sequence item", `[{"00081032":{"vr":"SQ","Value":["x"]}}]`, tag.AccessionNumber, "", dicom.ErrJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := dicom.DecodeJSONArray([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && ds[0].String(tc.key) != tc.want {
				t.Errorf("value %q, want %q", ds[0].String(tc.key), tc.want)
			}
		})
	}
	for _, k := range []string{"0020000D", "7fe00010"} {
		if _, err := dicom.ParseTagKey(k); err != nil {
			t.Errorf("ParseTagKey(%q): %v", k, err)
		}
	}
	for _, k := range []string{"0020000", "GGGG0000", ""} {
		if _, err := dicom.ParseTagKey(k); !errors.Is(err, dicom.ErrJSON) {
			t.Errorf("ParseTagKey(%q): err = %v", k, err)
		}
	}
	var a dicom.JSONAttribute
	if err := json.Unmarshal([]byte(`{"vr":"US","Value":[1,2]}`), &a); err != nil || len(a.Value) != 2 || a.Value[1].(float64) != 2 {
		t.Errorf("attribute %+v, %v", a, err)
	}
}
