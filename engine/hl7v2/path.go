package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// maxIndex bounds every number in a path, so Set("PID-999999999", ...) cannot make the
// codec allocate gigabytes of delimiters. No HL7 structure comes near it.
const maxIndex = 9999

// Path addresses an element of a message the way analysts write it, 1-based throughout.
// A zero index means "not given": SegmentRep 0 is the first segment of that name; FieldRep 0
// with no component is the whole field, all repetitions included, and with a component it
// is the first repetition.
type Path struct {
	Segment      string // "PID", always upper case
	SegmentRep   int    // OBX[3] -> 3
	Field        int    // PID-5 -> 5; 0 when the path names a segment
	FieldRep     int    // PID-3[2] -> 2
	Component    int    // PID-5.1 -> 1
	Subcomponent int    // PID-5.1.2 -> 2
}

// ParsePath reads a path: a segment name with an optional [n] occurrence, then optionally
// "-" or "." and a field number with an optional [n] repetition, a "." component and a "."
// subcomponent. Examples: "PID", "OBX[2]", "PID-5", "PID-5.1", "PID.5.1", "PID-3[2].1",
// "OBX[3]-5", "MSH-9.2", "PID-5.1.2", "OBX[2]-5[1].1". Segment names are case-insensitive.
func ParsePath(s string) (Path, error) {
	var p Path
	in := s
	s = strings.TrimSpace(s)
	if len(s) < 3 {
		return p, pathErr(in, "want a segment name of 3 characters")
	}
	name := s[:3]
	for i := 0; i < 3; i++ {
		c := name[i]
		if !isAlnum(c) || i == 0 && c >= '0' && c <= '9' {
			return p, pathErr(in, "segment name must be a letter and two letters or digits")
		}
	}
	p.Segment = upper3(name)
	s = s[3:]
	var err error
	if p.SegmentRep, s, err = bracket(s, in); err != nil {
		return p, err
	}
	if s == "" {
		return p, nil
	}
	if s[0] != '-' && s[0] != '.' {
		return p, pathErr(in, "want - or . after the segment")
	}
	if p.Field, s, err = number(s[1:], in, "field"); err != nil {
		return p, err
	}
	if p.FieldRep, s, err = bracket(s, in); err != nil {
		return p, err
	}
	if s == "" {
		return p, nil
	}
	if s[0] != '.' {
		return p, pathErr(in, "want . before the component")
	}
	if p.Component, s, err = number(s[1:], in, "component"); err != nil {
		return p, err
	}
	if s == "" {
		return p, nil
	}
	if s[0] != '.' {
		return p, pathErr(in, "want . before the subcomponent")
	}
	if p.Subcomponent, s, err = number(s[1:], in, "subcomponent"); err != nil {
		return p, err
	}
	if s != "" {
		return p, pathErr(in, "unexpected "+strconv.Quote(s)+" after the subcomponent")
	}
	return p, nil
}

// String writes the path back in its canonical form ("PID-3[2].1", "OBX[2]-5").
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.SegmentRep > 0 {
		fmt.Fprintf(&b, "[%d]", p.SegmentRep)
	}
	if p.Field == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.FieldRep > 0 {
		fmt.Fprintf(&b, "[%d]", p.FieldRep)
	}
	if p.Component > 0 {
		fmt.Fprintf(&b, ".%d", p.Component)
		if p.Subcomponent > 0 {
			fmt.Fprintf(&b, ".%d", p.Subcomponent)
		}
	}
	return b.String()
}

func upper3(s string) string {
	if s[0] >= 'a' || s[1] >= 'a' || s[2] >= 'a' {
		return strings.ToUpper(s)
	}
	return s
}

func pathErr(path, msg string) error {
	return fmt.Errorf("%w %q: %s", ErrPath, path, msg)
}

// number reads a 1-based index at the start of s.
func number(s, path, what string) (int, string, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, pathErr(path, "want a "+what+" number")
	}
	if i > 4 {
		return 0, s, pathErr(path, what+" number too large")
	}
	n, _ := strconv.Atoi(s[:i])
	if n < 1 || n > maxIndex {
		return 0, s, pathErr(path, what+" numbers start at 1")
	}
	return n, s[i:], nil
}

// bracket reads an optional "[n]".
func bracket(s, path string) (int, string, error) {
	if s == "" || s[0] != '[' {
		return 0, s, nil
	}
	n, rest, err := number(s[1:], path, "repetition")
	if err != nil {
		return 0, s, err
	}
	if rest == "" || rest[0] != ']' {
		return 0, s, pathErr(path, "want ] after the repetition")
	}
	return n, rest[1:], nil
}
