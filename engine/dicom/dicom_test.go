package dicom

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// uuidOf decodes a 2.25 UID back to its 16 bytes.
func uuidOf(t *testing.T, u string) [16]byte {
	t.Helper()
	digits, ok := strings.CutPrefix(u, UUIDRoot+".")
	if !ok {
		t.Fatalf("uid %q is not under %s", u, UUIDRoot)
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok || n.BitLen() > 128 {
		t.Fatalf("uid %q: %q is not a 128-bit decimal", u, digits)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return b
}

func TestNameUID(t *testing.T) {
	a, b := NameUID("seed", "study"), NameUID("seed", "series")
	if a != NameUID("seed", "study") {
		t.Errorf("NameUID is not deterministic")
	}
	if a == b {
		t.Errorf("different names gave the same uid %s", a)
	}
	for _, u := range []string{a, b, ImplementationClassUID} {
		if err := ValidUID(u); err != nil {
			t.Errorf("ValidUID(%s) = %v", u, err)
		}
		id := uuidOf(t, u)
		if v := id[6] >> 4; v != 5 {
			t.Errorf("uid %s: uuid version %d, want 5", u, v)
		}
		if id[8]>>6 != 2 {
			t.Errorf("uid %s: uuid variant bits %b, want 10", u, id[8]>>6)
		}
	}
}

func TestNewUID(t *testing.T) {
	a, err := NewUID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewUID()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two random uids are equal: %s", a)
	}
	if err := ValidUID(a); err != nil {
		t.Error(err)
	}
	if v := uuidOf(t, a)[6] >> 4; v != 4 {
		t.Errorf("uuid version %d, want 4", v)
	}
}

func TestUUIDToUID(t *testing.T) {
	// The example of PS3.5 B.2.
	u := [16]byte{0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0, 0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6}
	if got, want := UUIDToUID(u), "2.25.329800735698586629295641978511506172918"; got != want {
		t.Errorf("UUIDToUID = %s, want %s", got, want)
	}
}

func TestValidUID(t *testing.T) {
	tests := []struct {
		name string
		uid  string
		ok   bool
	}{
		{"ct image storage", "1.2.840.10008.5.1.4.1.1.2", true},
		{"zero component", "1.2.0.3", true},
		{"empty", "", false},
		{"leading zero", "1.02.3", false},
		{"empty component", "1..2", false},
		{"trailing dot", "1.2.", false},
		{"letters", "1.2.a", false},
		{"too long", "1." + strings.Repeat("9", 63), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidUID(tt.uid)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidUID(%q) = %v, want ok=%v", tt.uid, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidUID) {
				t.Errorf("error %v is not ErrInvalidUID", err)
			}
		})
	}
}

func TestFormatDS(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string // "" means: any string of at most 16 characters close to in
	}{
		{"integer", 250, "250"},
		{"pixel spacing", 0.48828125, "0.48828125"},
		{"image position", -124.755859375, "-124.755859375"},
		{"negative zero", math.Copysign(0, -1), "0"},
		{"nan", math.NaN(), "0"},
		{"third", 1.0 / 3, ""},
		{"large", 123456789.123456789, ""},
		{"tiny", 1.25e-20, ""},
		{"sum noise", 0.1 + 0.2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FormatDS(tt.in)
			if len(got) > 16 {
				t.Fatalf("FormatDS(%v) = %q, longer than 16", tt.in, got)
			}
			if tt.want != "" {
				if got != tt.want {
					t.Errorf("FormatDS(%v) = %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			back, err := strconv.ParseFloat(got, 64)
			if err != nil {
				t.Fatalf("FormatDS(%v) = %q: %v", tt.in, got, err)
			}
			if math.Abs(back-tt.in) > 1e-12*math.Abs(tt.in)+1e-300 && math.Abs(back-tt.in)/math.Abs(tt.in) > 1e-9 {
				t.Errorf("FormatDS(%v) = %q, reads back as %v", tt.in, got, back)
			}
		})
	}
}

func TestFormatAge(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		birth, at time.Time
		want      string
	}{
		{"birthday today", day(1960, 3, 14), day(2026, 3, 14), "066Y"},
		{"day before birthday", day(1960, 3, 14), day(2026, 3, 13), "065Y"},
		{"toddler in months", day(2025, 1, 20), day(2026, 6, 19), "016M"},
		{"infant in weeks", day(2026, 1, 1), day(2026, 2, 5), "005W"},
		{"newborn in days", day(2026, 1, 1), day(2026, 1, 4), "003D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatAge(tt.birth, tt.at); got != tt.want {
				t.Errorf("FormatAge = %q, want %q", got, tt.want)
			}
		})
	}
}

// unsorted returns a small Secondary Capture dataset whose elements, and whose sequence item's
// elements, are out of tag order.
func unsorted(t *testing.T) *dcm.Dataset {
	t.Helper()
	item := &Builder{}
	item.Add(tag.CodeMeaning, "Chest")
	item.Add(tag.CodeValue, "51185008")
	item.Add(tag.CodingSchemeDesignator, "SCT")
	var b Builder
	b.Add(tag.PatientName, "SYNTHETIC^TEST")
	b.Add(tag.SOPInstanceUID, NameUID("test", "instance"))
	b.Sequence(tag.AnatomicRegionSequence, item)
	b.Add(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7")
	b.Add(tag.Rows, 2)
	b.Add(tag.PixelSpacing, []float64{0.5, 0.5})
	b.Add(tag.StudyDate, time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC))
	ds, err := b.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestEncodeSortsEveryLevelAndWritesMeta(t *testing.T) {
	data, err := Encode(unsorted(t))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dcm.Parse(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatalf("parse encoded dataset: %v", err)
	}
	var checkOrder func(level string, elems []*dcm.Element)
	checkOrder = func(level string, elems []*dcm.Element) {
		for i := 1; i < len(elems); i++ {
			if elems[i-1].Tag.Compare(elems[i].Tag) >= 0 {
				t.Errorf("%s: %s before %s", level, elems[i-1].Tag, elems[i].Tag)
			}
		}
		for _, e := range elems {
			for _, item := range sequenceItems(e) {
				checkOrder(e.Tag.String()+" item", item)
			}
		}
	}
	checkOrder("top level", ds.Elements)
	seq, err := ds.FindElementByTag(tag.AnatomicRegionSequence)
	if err != nil {
		t.Fatal(err)
	}
	if items := sequenceItems(seq); len(items) != 1 || len(items[0]) != 3 {
		t.Fatalf("sequence items = %v, want one item of three elements", items)
	}

	want := map[tag.Tag]string{
		tag.MediaStorageSOPClassUID:    "1.2.840.10008.5.1.4.1.1.7",
		tag.MediaStorageSOPInstanceUID: NameUID("test", "instance"),
		tag.TransferSyntaxUID:          uid.ExplicitVRLittleEndian,
		tag.ImplementationClassUID:     ImplementationClassUID,
		tag.ImplementationVersionName:  ImplementationVersionName,
	}
	for tg, v := range want {
		e, err := ds.FindElementByTag(tg)
		if err != nil {
			t.Errorf("%s missing from file meta", tg)
			continue
		}
		if got := dcm.MustGetStrings(e.Value); len(got) != 1 || strings.TrimRight(got[0], "\x00 ") != v {
			t.Errorf("%s = %q, want %q", tg, got, v)
		}
	}
	if e, err := ds.FindElementByTag(tag.FileMetaInformationVersion); err != nil || !bytes.Equal(dcm.MustGetBytes(e.Value), []byte{0, 1}) {
		t.Errorf("FileMetaInformationVersion = %v, %v; want 00\\01", e, err)
	}
	if !bytes.Equal(data[128:132], []byte("DICM")) {
		t.Errorf("no DICM prefix after the preamble")
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	a, err := Encode(unsorted(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(unsorted(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("the same dataset encoded to different bytes")
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *Builder)
		want  error
	}{
		{"no sop class", func(b *Builder) {
			b.Add(tag.SOPInstanceUID, "1.2.3")
		}, ErrMissingSOP},
		{"empty sop instance", func(b *Builder) {
			b.Add(tag.SOPClassUID, "1.2.3")
			b.Add(tag.SOPInstanceUID, "")
		}, ErrMissingSOP},
		{"duplicate tag", func(b *Builder) {
			b.Add(tag.SOPClassUID, "1.2.3")
			b.Add(tag.SOPInstanceUID, "1.2.3.4")
			b.Add(tag.Modality, "CT")
			b.Add(tag.Modality, "MR")
		}, ErrDuplicateTag},
		{"implicit vr asked for", func(b *Builder) {
			b.Add(tag.SOPClassUID, "1.2.3")
			b.Add(tag.SOPInstanceUID, "1.2.3.4")
			b.Add(tag.TransferSyntaxUID, uid.ImplicitVRLittleEndian)
		}, ErrTransferSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Builder
			tt.build(&b)
			ds, err := b.Dataset()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Encode(ds); !errors.Is(err, tt.want) {
				t.Errorf("Encode error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBuilderConversions(t *testing.T) {
	var b Builder
	b.Add(tag.SliceThickness, 0.625) // DS
	b.Add(tag.InstanceNumber, 7)     // IS
	b.Add(tag.Rows, 512)             // US
	b.Add(tag.CTDIvol, 55.5)         // FD
	b.Add(tag.ImageType, []string{"ORIGINAL", "PRIMARY"})
	b.Add(tag.StudyTime, time.Date(2026, 3, 14, 2, 17, 31, 0, time.UTC))
	b.Add(tag.PositionReferenceIndicator, "") // empty type 2
	b.Add(tag.PixelData, []byte{1, 2, 3})     // odd: padded
	elems, err := b.Elements()
	if err != nil {
		t.Fatal(err)
	}
	got := map[tag.Tag]any{}
	for _, e := range elems {
		got[e.Tag] = e.Value.GetValue()
	}
	checks := []struct {
		tag  tag.Tag
		want string
	}{
		{tag.SliceThickness, "[0.625]"},
		{tag.InstanceNumber, "[7]"},
		{tag.Rows, "[512]"},
		{tag.CTDIvol, "[55.5]"},
		{tag.ImageType, "[ORIGINAL PRIMARY]"},
		{tag.StudyTime, "[021731]"},
		{tag.PositionReferenceIndicator, "[]"},
	}
	for _, c := range checks {
		if s := strings.TrimSpace(fmtValue(got[c.tag])); s != c.want {
			t.Errorf("%s = %s, want %s", c.tag, s, c.want)
		}
	}
	if raw := got[tag.PixelData].(dcm.PixelDataInfo).UnprocessedValueData; !bytes.Equal(raw, []byte{1, 2, 3, 0}) {
		t.Errorf("PixelData = %v, want padded to even length", raw)
	}
}

func TestBuilderKeepsFirstError(t *testing.T) {
	var b Builder
	b.Add(tag.Rows, "not a number")
	b.Add(tag.Columns, 3.5)
	_, err := b.Elements()
	if !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "Rows") {
		t.Errorf("error = %v, want ErrValue about Rows", err)
	}
	b2 := Builder{}
	b2.Add(tag.AnatomicRegionSequence, "x")
	if _, err := b2.Elements(); !errors.Is(err, ErrValue) {
		t.Errorf("sequence through Add: error = %v, want ErrValue", err)
	}
}

func fmtValue(v any) string {
	switch v := v.(type) {
	case []string:
		return "[" + strings.Join(v, " ") + "]"
	case []int:
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(s, " ") + "]"
	case []float64:
		s := make([]string, len(v))
		for i, f := range v {
			s[i] = strconv.FormatFloat(f, 'g', -1, 64)
		}
		return "[" + strings.Join(s, " ") + "]"
	}
	return "?"
}
