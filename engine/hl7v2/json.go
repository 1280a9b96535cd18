package hl7v2

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// jsonElement is one node of the structured view: a field, repetition, component or
// subcomponent with its 1-based path, its value (unescaped, as Get returns it) and its
// parts when it has more than one.
type jsonElement struct {
	Path          string        `json:"path"`
	Value         string        `json:"value"`
	Repetitions   []jsonElement `json:"repetitions,omitempty"`
	Components    []jsonElement `json:"components,omitempty"`
	Subcomponents []jsonElement `json:"subcomponents,omitempty"`
}

type jsonSegment struct {
	Name   string        `json:"segment"`
	Path   string        `json:"path"`
	Fields []jsonElement `json:"fields"`
}

// MarshalJSON gives a structured view of the message for people and tools: a list of
// segments, each with its valued fields, and below a field its repetitions, components and
// subcomponents where it has more than one, every element named by its path ("PID-5",
// "PID-3[2].1", "OBX[2]-5"). Empty elements are left out. It is a view, not a format to
// parse back: use Encode for that.
func (m *Message) MarshalJSON() ([]byte, error) {
	out := make([]jsonSegment, 0, len(m.segs))
	total, seen := map[string]int{}, map[string]int{}
	segs := m.Segments()
	for _, s := range segs {
		total[s.Name()]++
	}
	for _, s := range segs {
		name := s.Name()
		seen[name]++
		base := name
		if total[name] > 1 {
			base += "[" + strconv.Itoa(seen[name]) + "]"
		}
		js := jsonSegment{Name: name, Path: base, Fields: []jsonElement{}}
		for f := 1; f <= s.NumFields(); f++ {
			v, _ := s.Value(f, 0, 0, 0)
			if v == "" {
				continue
			}
			fp := base + "-" + strconv.Itoa(f)
			el := jsonElement{Path: fp, Value: v}
			if f > 2 || !isHeader(s.data(), m.d.Field) {
				el.Repetitions = m.jsonReps(s, f, fp)
			}
			js.Fields = append(js.Fields, el)
		}
		out = append(out, js)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // HL7 is full of & and <: keep them readable
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func (m *Message) jsonReps(s Segment, f int, fp string) []jsonElement {
	nr := s.Repetitions(f)
	var reps []jsonElement
	for r := 1; r <= nr; r++ {
		rp := fp
		if nr > 1 {
			rp += "[" + strconv.Itoa(r) + "]"
		}
		v, _ := s.Value(f, r, 0, 0)
		el := jsonElement{Path: rp, Value: v}
		if nc := s.Components(f, r); nc > 1 {
			for c := 1; c <= nc; c++ {
				cv, _ := s.Value(f, r, c, 0)
				if cv == "" {
					continue
				}
				cp := rp + "." + strconv.Itoa(c)
				cel := jsonElement{Path: cp, Value: cv}
				if ns := s.Subcomponents(f, r, c); ns > 1 {
					for k := 1; k <= ns; k++ {
						if sv, _ := s.Value(f, r, c, k); sv != "" {
							cel.Subcomponents = append(cel.Subcomponents, jsonElement{Path: cp + "." + strconv.Itoa(k), Value: sv})
						}
					}
				}
				el.Components = append(el.Components, cel)
			}
		}
		if nr > 1 {
			if v != "" {
				reps = append(reps, el)
			}
		} else if len(el.Components) > 0 {
			return []jsonElement{el}
		}
	}
	return reps
}
