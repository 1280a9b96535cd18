package hl7v2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2/pyhl7test"
)

// pythonHL7 asks python-hl7 (the Debian python3-hl7 package, an independent parser) for
// the value and the raw text at each path. python-hl7 indexes like HL7 (F1 is the first
// field after the segment name, MSH.F1 the field separator) and returns leaves unescaped
// by extract_field, so its numbering maps one to one onto ours.
const pythonHL7 = `
import base64, json, sys
import hl7

def raw(msg, name, n, f, r, c, s):
    seg = msg.segments(name)(n)
    if f >= len(seg):
        return None
    x = seg(f)
    for idx in (r, c, s):
        if isinstance(x, str):
            if idx == 1:
                continue
            return None
        if idx > len(x):
            return None
        x = x(idx)
    return str(x)

out = []
for req in json.load(sys.stdin):
    text = base64.b64decode(req["data"]).decode(req["encoding"])
    # python-hl7 splits segments at CR only; give it CR like our parser sees.
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    try:
        msg = hl7.parse(text)
    except Exception as e:
        out.append({"error": repr(e)})
        continue
    vals = []
    for name, n, f, r, c, s in req["paths"]:
        try:
            vals.append([msg.extract_field(name, n, f, r, c, s), raw(msg, name, n, f, r, c, s)])
        except Exception as e:
            vals.append(None)
    out.append({"values": vals})
json.dump(out, sys.stdout)
`

type pyRequest struct {
	Name     string  `json:"-"`
	Data     []byte  `json:"data"`
	Encoding string  `json:"encoding"`
	Paths    [][]any `json:"paths"`
	leaves   []leaf
	m        *Message
}

type leaf struct {
	name          string
	n, f, r, c, s int
	path          string
}

type pyResult struct {
	Error  string       `json:"error"`
	Values []*[2]string `json:"values"`
}

// leaves lists every subcomponent of the message as a fully specified path.
func leaves(m *Message) []leaf {
	var out []leaf
	occ := map[string]int{}
	for _, s := range m.Segments() {
		name := s.Name()
		if len(name) != 3 {
			continue
		}
		occ[name]++
		for f := 1; f <= s.NumFields(); f++ {
			for r := 1; r <= s.Repetitions(f); r++ {
				for c := 1; c <= s.Components(f, r); c++ {
					for sc := 1; sc <= s.Subcomponents(f, r, c); sc++ {
						p := Path{Segment: name, SegmentRep: occ[name], Field: f, FieldRep: r, Component: c, Subcomponent: sc}
						out = append(out, leaf{name, occ[name], f, r, c, sc, p.String()})
					}
				}
			}
		}
	}
	return out
}

func TestAgainstPythonHL7(t *testing.T) {
	py := pyhl7test.Find(t)
	files, _ := filepath.Glob("testdata/corpus/*/*.hl7")
	more, _ := filepath.Glob("testdata/messages/*.hl7")
	var reqs []*pyRequest
	for _, file := range append(files, more...) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := Split(data)
		if err != nil {
			continue // the invalid-* batch files: nothing to compare
		}
		for i, b := range msgs {
			m, err := Parse(b)
			if err != nil {
				continue
			}
			// python-hl7 trips over blank lines (an empty segment breaks its segment lookup), so
			// it gets the message without them: Encode, which is the input for well-formed input.
			r := &pyRequest{Name: file + "#" + string(rune('1'+i)), Data: m.Encode(), Encoding: "utf-8", m: m, leaves: leaves(m)}
			if m.charset().cm != nil {
				r.Encoding = "latin-1"
			}
			for _, l := range r.leaves {
				r.Paths = append(r.Paths, []any{l.name, l.n, l.f, l.r, l.c, l.s})
			}
			reqs = append(reqs, r)
		}
	}
	res := pyhl7test.Run[pyResult](t, py, pythonHL7, reqs)
	compared := 0
	for i, r := range reqs {
		t.Run(strings.TrimPrefix(r.Name, "testdata/"), func(t *testing.T) {
			if res[i].Error != "" {
				t.Fatalf("python-hl7 cannot parse it: %s", res[i].Error)
			}
			for j, l := range r.leaves {
				pv := res[i].Values[j]
				if pv == nil {
					t.Errorf("%s: python-hl7 finds nothing, we find %q", l.path, r.m.Get(l.path))
					continue
				}
				raw := r.m.Raw(l.path)
				if strings.IndexByte(raw, r.m.d.Escape) >= 0 && !(l.name == "MSH" && l.f <= 2) {
					// python-hl7 unescapes differently (\.br\ to CR, \H\ to "_", \X..\ byte by
					// byte as Latin-1): compare the raw text instead.
					if raw != pv[1] {
						t.Errorf("%s raw: python-hl7 %q, we %q", l.path, pv[1], raw)
					}
					continue
				}
				// python-hl7 strips whitespace around the whole message.
				got := r.m.Get(l.path)
				if got != pv[0] && strings.TrimSpace(got) != pv[0] {
					t.Errorf("%s: python-hl7 %q, we %q", l.path, pv[0], got)
				}
				compared++
			}
		})
	}
	if compared < 1000 {
		t.Errorf("only %d values compared", compared)
	}
	t.Logf("%d values agree with python-hl7 over %d messages", compared, len(reqs))
}
