package sr

import (
	"slices"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/plugins/protocol"
)

func TestScoord(t *testing.T) {
	tests := []struct {
		name   string
		region protocol.Region
		typ    string
		points []float64
		err    bool
	}{
		{"point", protocol.Region{Shape: protocol.ShapePoint, Points: []float64{1.5, 2.5}}, dicom.GraphicPoint, []float64{1.5, 2.5}, false},
		{"polyline", protocol.Region{Shape: protocol.ShapePolyline, Points: []float64{1, 2, 3, 4}}, dicom.GraphicPolyline, []float64{1, 2, 3, 4}, false},
		{"polygon closes", protocol.Region{Shape: protocol.ShapePolygon, Points: []float64{1, 1, 5, 1, 5, 5}}, dicom.GraphicPolyline, []float64{1, 1, 5, 1, 5, 5, 1, 1}, false},
		{"ellipse", protocol.Region{Shape: protocol.ShapeEllipse, Points: []float64{0, 5, 10, 5, 5, 2, 5, 8}}, dicom.GraphicEllipse, []float64{0, 5, 10, 5, 5, 2, 5, 8}, false},
		{"bbox is a closed rectangle", protocol.Region{Shape: protocol.ShapeBBox, Points: []float64{1, 2, 3, 4}}, dicom.GraphicPolyline, []float64{1, 2, 3, 2, 3, 4, 1, 4, 1, 2}, false},
		{"polygon of two points", protocol.Region{Shape: protocol.ShapePolygon, Points: []float64{1, 1, 5, 1}}, "", nil, true},
		{"odd coordinates", protocol.Region{Shape: protocol.ShapePolyline, Points: []float64{1, 1, 5}}, "", nil, true},
		{"unknown shape", protocol.Region{Shape: "star", Points: []float64{1, 1}}, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, pts, err := scoord(tt.region)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if typ != tt.typ || !slices.Equal(pts, tt.points) {
				t.Errorf("scoord = %s %v, want %s %v", typ, pts, tt.typ, tt.points)
			}
		})
	}
}

func TestPolygonDoesNotAliasInput(t *testing.T) {
	in := make([]float64, 6, 8)
	copy(in, []float64{1, 1, 5, 1, 5, 5})
	if _, _, err := scoord(protocol.Region{Shape: protocol.ShapePolygon, Points: in}); err != nil {
		t.Fatal(err)
	}
	if got := in[:8]; got[6] != 0 || got[7] != 0 {
		t.Errorf("closing the polygon wrote into the caller's slice: %v", got)
	}
}

func TestLocalValue(t *testing.T) {
	for in, want := range map[string]string{
		"midline shift":                     "MIDLINE-SHIFT",
		"  Midline  shift (mm) ":            "MIDLINE-SHIFT-MM",
		"hematoma thickness maximum extent": "HEMATOMA-THICKNE",
		"a-----------------b":               "A-B",
		"%%%":                               "",
	} {
		if got := localValue(in); got != want || len(got) > 16 || strings.HasSuffix(got, "-") {
			t.Errorf("localValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeriveUIDFitsAnyRoot(t *testing.T) {
	for n := 1; n <= 44; n += 7 {
		root := "1" + strings.Repeat(".9", (n-1)/2)
		u, err := deriveUID(root, "instance", "x")
		if err != nil {
			t.Fatalf("root %q: %v", root, err)
		}
		if err := dicom.ValidUID(u); err != nil || !strings.HasPrefix(u, root+".") {
			t.Errorf("root %q: uid %q: %v", root, u, err)
		}
	}
}

func TestCodeMeaningIsCut(t *testing.T) {
	c, err := coded(protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: strings.Repeat("é", 70)})
	if err != nil {
		t.Fatal(err)
	}
	b := c.Item()
	elems, err := b.Elements()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range elems {
		if v, ok := e.Value.GetValue().([]string); ok && e.Tag.Element == 0x0104 && len([]rune(v[0])) != 64 {
			t.Errorf("CodeMeaning has %d characters, want 64", len([]rune(v[0])))
		}
	}
}
