package hl7fhir

import (
	"crypto/sha1"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// obj is a JSON object of a resource under construction; encoding/json sorts its keys, which
// keeps the output byte-stable.
type obj = map[string]any

// seg reads one segment with HL7's null ("") read as absent: a mapping has nothing to say
// about a value the sender deleted.
type seg struct{ s *hl7v2.Segment }

func (g seg) ok() bool { return g.s != nil }

func (g seg) v(field, rep, comp, sub int) string {
	if g.s == nil {
		return ""
	}
	v, _ := g.s.Value(field, rep, comp, sub)
	v = strings.TrimSpace(v)
	if v == `""` {
		return ""
	}
	return v
}

func (g seg) reps(field int) int {
	if g.s == nil {
		return 0
	}
	return g.s.Repetitions(field)
}

// first returns the first segment named name, or an empty seg.
func first(m *hl7v2.Message, name string) seg {
	for _, s := range m.Segments() {
		if s.Name() == name {
			return seg{&s}
		}
	}
	return seg{}
}

// identifierValue is one CX, EI or XCN-id read from a message, before it is given a system.
type identifierValue struct {
	value, ns, uid, uidType, typeCode string
}

// cx reads repetition rep of a CX field (PID-3, PV1-19).
func (g seg) cx(field, rep int) identifierValue {
	return identifierValue{value: g.v(field, rep, 1, 0), ns: g.v(field, rep, 4, 1), uid: g.v(field, rep, 4, 2), uidType: g.v(field, rep, 4, 3), typeCode: g.v(field, rep, 5, 0)}
}

// ei reads an EI field (ORC-2, ORC-3, IPC-1).
func (g seg) ei(field int) identifierValue {
	return identifierValue{value: g.v(field, 1, 1, 0), ns: g.v(field, 1, 2, 0), uid: g.v(field, 1, 3, 0), uidType: g.v(field, 1, 4, 0)}
}

// identifier builds a FHIR Identifier; typeCode is an HL7 table 0203 code (MR, PLAC...).
func (p Profile) identifier(id identifierValue, fallback, kind, typeCode string) obj {
	o := obj{"system": p.identifierSystem(id.ns, id.uid, id.uidType, fallback, kind), "value": id.value}
	if typeCode == "" {
		typeCode = id.typeCode
	}
	if typeCode != "" {
		o["type"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": typeCode}}}
	}
	return o
}

// codeable reads a CE/CWE (code^text^system^alt code^alt text^alt system) as a
// CodeableConcept; nil when it is empty.
func (p Profile) codeable(g seg, field, rep int) obj {
	var codings []any
	for _, c := range [][3]int{{1, 2, 3}, {4, 5, 6}} {
		code, text, sys := g.v(field, rep, c[0], 0), g.v(field, rep, c[1], 0), g.v(field, rep, c[2], 0)
		if code == "" {
			continue
		}
		cd := obj{"code": code}
		if s := p.codeSystem(sys); s != "" {
			cd["system"] = s
		}
		if text != "" {
			cd["display"] = text
		}
		codings = append(codings, cd)
	}
	text := g.v(field, rep, 2, 0)
	if text == "" {
		text = g.v(field, rep, 5, 0)
	}
	if len(codings) == 0 && text == "" {
		return nil
	}
	o := obj{}
	if len(codings) > 0 {
		o["coding"] = codings
	}
	if text != "" {
		o["text"] = text
	}
	return o
}

// humanName reads an XPN (family^given^middle^suffix^prefix^degree^type) or, with off 1,
// the name part of an XCN (id^family^given^middle^suffix^prefix^degree).
func humanName(g seg, field, rep, off int) obj {
	family := g.v(field, rep, 1+off, 1)
	var given []any
	for _, c := range []int{2, 3} {
		if s := g.v(field, rep, c+off, 0); s != "" {
			given = append(given, s)
		}
	}
	if family == "" && len(given) == 0 {
		return nil
	}
	n := obj{}
	if family != "" {
		n["family"] = family
	}
	if len(given) > 0 {
		n["given"] = given
	}
	var suffix []any
	for _, c := range []int{4, 6} {
		if s := g.v(field, rep, c+off, 0); s != "" {
			suffix = append(suffix, s)
		}
	}
	if len(suffix) > 0 {
		n["suffix"] = suffix
	}
	if s := g.v(field, rep, 5+off, 0); s != "" {
		n["prefix"] = []any{s}
	}
	if off == 0 {
		// HL7 table 0200 name types with a FHIR name-use counterpart.
		switch g.v(field, rep, 7, 0) {
		case "L":
			n["use"] = "official"
		case "D":
			n["use"] = "usual"
		case "M":
			n["use"] = "maiden"
		case "N":
			n["use"] = "nickname"
		case "S":
			n["use"] = "anonymous"
		}
	}
	return n
}

// display is a person's name as one line, "Alice M Smith".
func display(n obj) string {
	if n == nil {
		return ""
	}
	var parts []string
	if p, ok := n["prefix"].([]any); ok {
		parts = append(parts, fmt.Sprint(p...))
	}
	if g, ok := n["given"].([]any); ok {
		for _, s := range g {
			parts = append(parts, s.(string))
		}
	}
	if f, ok := n["family"].(string); ok {
		parts = append(parts, f)
	}
	if s, ok := n["suffix"].([]any); ok {
		for _, x := range s {
			parts = append(parts, x.(string))
		}
	}
	return strings.Join(parts, " ")
}

// practitioner reads an XCN (PV1-7, ORC-12, OBR-16) as a logical Reference: the id as an
// identifier and the name as display, since the Practitioner resource is the EHR's.
func (p Profile) practitioner(g seg, field, rep int) obj {
	id := g.v(field, rep, 1, 0)
	name := display(humanName(g, field, rep, 1))
	if id == "" && name == "" {
		return nil
	}
	r := obj{}
	if id != "" {
		ident := obj{"value": id}
		if ns := g.v(field, rep, 9, 1); ns != "" {
			ident["system"] = p.identifierSystem(ns, g.v(field, rep, 9, 2), g.v(field, rep, 9, 3), "", "")
		}
		r["identifier"] = ident
	}
	if name != "" {
		r["display"] = name
	}
	return r
}

// address reads an XAD (street^other^city^state^zip^country^type).
func address(g seg, field, rep int) obj {
	a := obj{}
	var lines []any
	if s := g.v(field, rep, 1, 1); s != "" { // SAD-1, the street address
		lines = append(lines, s)
	}
	if s := g.v(field, rep, 2, 0); s != "" {
		lines = append(lines, s)
	}
	if len(lines) > 0 {
		a["line"] = lines
	}
	for c, k := range map[int]string{3: "city", 4: "state", 5: "postalCode", 6: "country"} {
		if s := g.v(field, rep, c, 0); s != "" {
			a[k] = s
		}
	}
	if len(a) == 0 {
		return nil
	}
	switch g.v(field, rep, 7, 0) { // HL7 table 0190
	case "H":
		a["use"] = "home"
	case "B", "O":
		a["use"] = "work"
	case "C":
		a["use"] = "temp"
	case "BA":
		a["use"] = "old"
	case "M":
		a["type"] = "postal"
	}
	return a
}

// telecom reads an XTN; use is the FHIR use when the XTN names none (home for PID-13,
// work for PID-14).
func telecom(g seg, field, rep int, use string) obj {
	value := g.v(field, rep, 1, 0)
	if value == "" {
		value = g.v(field, rep, 4, 0)
	}
	if value == "" {
		if area, local := g.v(field, rep, 6, 0), g.v(field, rep, 7, 0); local != "" {
			value = local
			if area != "" {
				value = "(" + area + ")" + local
			}
		}
	}
	if value == "" {
		return nil
	}
	t := obj{"system": "phone", "value": value}
	switch g.v(field, rep, 3, 0) { // HL7 table 0202
	case "FX":
		t["system"] = "fax"
	case "Internet", "X.400":
		t["system"] = "email"
	case "BP":
		t["system"] = "pager"
	case "CP":
		use = "mobile"
	}
	switch g.v(field, rep, 2, 0) { // HL7 table 0201
	case "NET":
		t["system"] = "email"
	case "PRN", "ORN", "VHN":
		use = "home"
	case "WPN":
		use = "work"
	}
	if use != "" {
		t["use"] = use
	}
	return t
}

// date converts an HL7 DT or DTM to a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD); "" when it
// is not a date.
func date(v string) string {
	d := digits(v)
	switch {
	case len(d) >= 8:
		if _, err := time.Parse("20060102", d[:8]); err != nil {
			return ""
		}
		return d[:4] + "-" + d[4:6] + "-" + d[6:8]
	case len(d) >= 6:
		if m, _ := strconv.Atoi(d[4:6]); m < 1 || m > 12 {
			return ""
		}
		return d[:4] + "-" + d[4:6]
	case len(d) == 4:
		return d
	}
	return ""
}

// dateTime converts an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) to a FHIR
// dateTime. A time of day gets the DTM's offset, or tz's when it names none, because FHIR
// requires one; precision below the second is kept.
func dateTime(v string, tz *time.Location) string {
	v = strings.TrimSpace(v)
	main, offset := v, ""
	if i := strings.IndexAny(v, "+-"); i >= 4 {
		main, offset = v[:i], v[i:]
	}
	whole, frac, _ := strings.Cut(main, ".")
	if digits(whole) != whole || len(whole) < 4 || len(whole) > 14 || len(whole)%2 != 0 {
		return ""
	}
	if len(whole) <= 8 {
		return date(whole)
	}
	whole += strings.Repeat("0", 14-len(whole))
	loc := tz
	if loc == nil {
		loc = time.UTC
	}
	if offset != "" {
		if len(offset) != 5 || digits(offset[1:]) != offset[1:] {
			return ""
		}
		h, _ := strconv.Atoi(offset[1:3])
		m, _ := strconv.Atoi(offset[3:5])
		secs := (h*60 + m) * 60
		if offset[0] == '-' {
			secs = -secs
		}
		loc = time.FixedZone("", secs)
	}
	t, err := time.ParseInLocation("20060102150405", whole, loc)
	if err != nil {
		return ""
	}
	out := t.Format("2006-01-02T15:04:05")
	if frac != "" && digits(frac) == frac {
		out += "." + frac
	}
	return out + t.Format("Z07:00")
}

func digits(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return s[:i]
		}
	}
	return s
}

// uuidFor is a name-based (version 5 layout, SHA-1) UUID URN for the parts, so the same
// identifier always gives the same fullUrl.
func uuidFor(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
