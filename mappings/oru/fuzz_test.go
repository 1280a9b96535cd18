package oru_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/mappings/oru"
)

// FuzzTextFields: whatever text a plugin or the RIS puts in a finding's code and display, a
// location, a measurement, the model name or the summary, the message parses strictly,
// keeps the segments plain text gives, and reads each text back unchanged (invalid UTF-8
// replaced).
func FuzzTextFields(f *testing.F) {
	f.Add("1386000", "Intracranial hemorrhage", "left frontal", "Volume", "ich-detect", "ich: 12 mL")
	f.Add("13|86", "a^b~c\\d&e", "\r\nMSH|^~\\&|", "\x00\x1c\x0b", "\\E\\\\F\\", "")
	f.Add("x", "Müller 李 🙂", "", "\xff\xfe", "", " \n\t")
	f.Add("\\.br\\", "\\X0D\\", "\\H\\", "\\Zfoo\\", "\\", "|")
	f.Fuzz(func(t *testing.T, code, display, location, measurement, modelName, summary string) {
		a := analysis()
		fd := &a.Findings[0]
		fd.Code.Code, fd.Code.Display = code, display
		fd.Location.Code, fd.Location.Text = nil, location
		fd.Measurements[0].Name = measurement
		fd.Model.Name = modelName
		a.Results = nil // the model NTE then names this finding's model alone
		a.Summary = summary
		out, err := oru.Map(a, oru.Profile{})
		if strings.TrimSpace(code) == "" {
			if !errors.Is(err, oru.ErrUnmappable) {
				t.Fatalf("finding without a code: error %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Map: %v", err)
		}
		m, err := hl7v2.ParseStrict(out)
		if err != nil {
			t.Fatalf("ParseStrict: %v\n%q", err, out)
		}
		// MSH PID PV1 ORC OBR; the NTEs: disclaimer, models, summary when there is one, rules;
		// TQ1; the OBXes: finding, confidence, site, laterality and 2 measurements for the
		// first finding, finding and confidence for the second.
		want := 5 + 3 + 1 + 6 + 2
		if strings.TrimSpace(summary) != "" {
			want++
		}
		if location == "" {
			want--
		}
		if n := len(m.Segments()); n != want {
			t.Fatalf("%d segments, want %d:\n%q", n, want, out)
		}
		clean := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		if got := m.Get("OBX[1]-3.1"); got != clean(code) {
			t.Errorf("OBX-3.1 = %q, want %q", got, clean(code))
		}
		if got := m.Get("OBX[1]-3.2"); got != clean(display) {
			t.Errorf("OBX-3.2 = %q, want %q", got, clean(display))
		}
		if got := m.Get("OBX[1]-3.3"); got != "SCT" {
			t.Errorf("OBX-3.3 = %q", got)
		}
		if got := m.Get("OBX[1]-18.1"); got != clean(modelName) {
			t.Errorf("OBX-18.1 = %q, want %q", got, clean(modelName))
		}
		if location != "" {
			if got := m.Get("OBX[3]-5.2"); got != clean(location) {
				t.Errorf("site OBX-5.2 = %q, want %q", got, clean(location))
			}
		}
		for i := 1; i <= m.Count("OBX"); i++ {
			if got, want := m.Get("OBX["+strconv.Itoa(i)+"]-1"), strconv.Itoa(i); got != want {
				t.Errorf("OBX[%d]-1 = %q: segments shifted", i, got)
			}
		}
	})
}
