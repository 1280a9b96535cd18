package oru_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/hl7v2/pyhl7test"
)

// readHL7 reads the messages on stdin with python-hl7 (Debian python3-hl7), an independent
// parser, and answers the unescaped value at each path: null when the segment or the element is absent.
const readHL7 = `
import base64, json, sys
import hl7

out = []
for req in json.load(sys.stdin):
    text = base64.b64decode(req["data"]).decode(req["encoding"])
    try:
        msg = hl7.parse(text)
    except Exception as e:
        out.append({"error": repr(e)})
        continue
    vals = []
    for name, n, f, r, c, s in req["paths"]:
        try:
            vals.append(msg.extract_field(name, n, f, r, c, s))
        except (KeyError, IndexError):
            vals.append(None)  # no such segment, field or component
        except Exception as e:
            vals.append("python-hl7 error: " + repr(e))
    out.append({"segments": [str(seg[0]) for seg in msg], "values": vals})
json.dump(out, sys.stdout)
`

type pyRequest struct {
	Data     []byte  `json:"data"`
	Encoding string  `json:"encoding"`
	Paths    [][]any `json:"paths"`
}

type pyResult struct {
	Error    string    `json:"error"`
	Segments []string  `json:"segments"`
	Values   []*string `json:"values"`
}

// TestAgainstPythonHL7 reads every message of TestMap with python-hl7 and checks the same
// values there, so a mistake shared by our builder and our parser cannot hide.
func TestAgainstPythonHL7(t *testing.T) {
	py := pyhl7test.Find(t)
	var reqs []pyRequest
	var paths [][]string
	for _, c := range cases {
		out, m := build(t, c)
		enc := "utf-8"
		if strings.HasPrefix(m.Charset(), "8859/1") {
			enc = "latin-1"
		}
		r := pyRequest{Data: out, Encoding: enc}
		want := c.expected()
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range want {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			p, err := hl7v2.ParsePath(k)
			if err != nil {
				t.Fatal(err)
			}
			r.Paths = append(r.Paths, []any{p.Segment, max(p.SegmentRep, 1), p.Field, max(p.FieldRep, 1), max(p.Component, 1), max(p.Subcomponent, 1)})
		}
		reqs = append(reqs, r)
		paths = append(paths, keys)
	}
	res := pyhl7test.Run[pyResult](t, py, readHL7, reqs)
	compared := 0
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := res[i]
			if r.Error != "" {
				t.Fatalf("python-hl7 cannot parse it: %s", r.Error)
			}
			if got := strings.Join(r.Segments, " "); got != c.segments {
				t.Errorf("python-hl7 segments\n got %s\nwant %s", got, c.segments)
			}
			want := c.expected()
			for j, path := range paths[i] {
				got := r.Values[j]
				// python-hl7 decodes \.br\ to CR, where HL7 means a line break ("\n" for us).
				w := strings.ReplaceAll(want[path], "\n", "\r")
				switch {
				case got == nil && w != "":
					t.Errorf("%s: python-hl7 finds nothing, want %q", path, w)
				case got != nil && *got != w:
					t.Errorf("%s: python-hl7 reads %q, want %q", path, *got, w)
				default:
					compared++
				}
			}
		})
	}
	if compared < 500 {
		t.Errorf("only %d values compared", compared)
	}
	t.Logf("%d values agree with python-hl7 over %d messages", compared, len(reqs))
}
