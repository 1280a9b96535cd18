package hl7fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	codec "github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

// ErrUnsupported is returned for a message type the mapping does not cover.
var ErrUnsupported = errors.New("hl7fhir: unsupported message type")

// ContentType is the content type of what the mappings return: FHIR R4 JSON.
const ContentType = "application/fhir+json"

// Convert parses raw as HL7v2 and maps it with Map: the shape of a transform step that
// replaces an HL7v2 message body with its FHIR transaction.
func Convert(raw []byte, p Profile) ([]byte, error) {
	m, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("hl7fhir: %w", err)
	}
	return Map(m, p)
}

// Map maps any message this package covers (by MSH-9), as ADT or Order does.
func Map(m *hl7v2.Message, p Profile) ([]byte, error) {
	switch m.Type() {
	case "ADT":
		return ADT(m, p)
	case "ORM", "OMI", "OMG":
		return Order(m, p)
	}
	return nil, fmt.Errorf("%w: %s^%s", ErrUnsupported, m.Type(), m.Event())
}

// ADT maps ADT^A01 (admit), A04 (register) and A08 (update) to a transaction Bundle that
// creates or updates the Patient (from PID, matched by its first PID-3 identifier) and the
// Encounter (from PV1 and PV2, matched by PV1-19 when the message has a visit number).
func ADT(m *hl7v2.Message, p Profile) ([]byte, error) {
	if m.Type() != "ADT" {
		return nil, fmt.Errorf("%w: %s^%s is not ADT", ErrUnsupported, m.Type(), m.Event())
	}
	switch ev := adtEvent(m); ev {
	case "A01", "A04", "A08":
	default:
		return nil, fmt.Errorf("%w: ADT^%s (A01, A04 and A08 are mapped)", ErrUnsupported, ev)
	}
	b := &bundle{}
	pat, err := patient(m, p)
	if err != nil {
		return nil, err
	}
	b.put(pat, true)
	if enc := encounter(m, p, pat.fullURL); enc != nil {
		b.put(*enc, true)
	}
	return b.encode()
}

// Order maps ORM^O01 and OMI^O23 to a transaction Bundle: the Patient and the Encounter
// created only when the server has no match (an order never overwrites demographics), and
// one ServiceRequest per ORC/OBR order group, created or updated by its placer order number.
func Order(m *hl7v2.Message, p Profile) ([]byte, error) {
	switch t := m.Type() + "^" + m.Event(); t {
	case "ORM^O01", "OMI^O23":
	default:
		return nil, fmt.Errorf("%w: %s (ORM^O01 and OMI^O23 are mapped)", ErrUnsupported, t)
	}
	b := &bundle{}
	pat, err := patient(m, p)
	if err != nil {
		return nil, err
	}
	b.put(pat, false)
	encRef := ""
	if enc := encounter(m, p, pat.fullURL); enc != nil && enc.match != "" {
		b.put(*enc, false)
		encRef = enc.fullURL
	}
	orders := orderGroups(m)
	if len(orders) == 0 {
		return nil, errors.New("hl7fhir: order message without ORC or OBR")
	}
	seen := map[string]bool{}
	for i, o := range orders {
		e := serviceRequest(m, p, o, i, pat.fullURL, encRef)
		if e.match != "" && seen[e.match] {
			// Two entries with one conditional URL fail the whole transaction on the server;
			// better said here, where the message can be found.
			return nil, fmt.Errorf("hl7fhir: order %d has the placer number of an earlier order in the message", i+1)
		}
		seen[e.match] = true
		b.put(e, true)
	}
	return b.encode()
}

// adtEvent is the trigger event: MSH-9.2, or EVN-1 in messages that leave MSH-9.2 out.
func adtEvent(m *hl7v2.Message) string {
	if ev := m.Event(); ev != "" {
		return ev
	}
	return first(m, "EVN").v(1, 0, 0, 0)
}

// entry is one resource of the Bundle with how it is matched on the server.
type entry struct {
	resource obj
	fullURL  string
	match    string // conditional query, "identifier=system|value"; "" for a plain create
}

type bundle struct{ entries []any }

// put adds e: as a conditional update (PUT type?query) when update is set, else as a
// conditional create (POST with ifNoneExist); a plain POST when there is no query.
func (b *bundle) put(e entry, update bool) {
	rt := e.resource["resourceType"].(string)
	req := obj{"method": "POST", "url": rt}
	switch {
	case e.match != "" && update:
		req = obj{"method": "PUT", "url": rt + "?" + e.match}
	case e.match != "":
		req["ifNoneExist"] = e.match
	}
	b.entries = append(b.entries, obj{"fullUrl": e.fullURL, "resource": e.resource, "request": req})
}

func (b *bundle) encode() ([]byte, error) {
	out, err := json.Marshal(obj{"resourceType": "Bundle", "type": "transaction", "entry": b.entries})
	if err != nil {
		return nil, fmt.Errorf("hl7fhir: encode bundle: %w", err)
	}
	if _, err := codec.Validate(out); err != nil {
		return nil, fmt.Errorf("hl7fhir: mapped bundle: %w", err)
	}
	return out, nil
}

// query is the search on one identifier: "identifier=system|value", URL-encoded.
func query(ident obj) string {
	sys, _ := ident["system"].(string)
	val, _ := ident["value"].(string)
	return url.Values{"identifier": {sys + "|" + val}}.Encode()
}

func patient(m *hl7v2.Message, p Profile) (entry, error) {
	pid := first(m, "PID")
	if !pid.ok() {
		return entry{}, errors.New("hl7fhir: no PID segment")
	}
	r := obj{"resourceType": "Patient"}
	var ids []any
	for rep := 1; rep <= pid.reps(3); rep++ {
		if id := pid.cx(3, rep); id.value != "" {
			ids = append(ids, p.identifier(id, p.PatientSystem, "mrn", ""))
		}
	}
	if len(ids) == 0 {
		// v2.3 senders often put the patient id in PID-2 (external id) alone.
		if id := pid.cx(2, 1); id.value != "" {
			ids = append(ids, p.identifier(id, p.PatientSystem, "mrn", ""))
		}
	}
	if len(ids) == 0 {
		return entry{}, errors.New("hl7fhir: PID-3 holds no patient identifier to match the Patient by")
	}
	r["identifier"] = ids
	var names []any
	for rep := 1; rep <= max(pid.reps(5), 1); rep++ {
		if n := humanName(pid, 5, rep, 0); n != nil {
			names = append(names, n)
		}
	}
	if len(names) > 0 {
		r["name"] = names
	}
	if d := date(pid.v(7, 1, 1, 0)); d != "" {
		r["birthDate"] = d
	}
	switch pid.v(8, 1, 1, 0) { // HL7 table 0001
	case "M":
		r["gender"] = "male"
	case "F":
		r["gender"] = "female"
	case "O", "A":
		r["gender"] = "other"
	case "U", "N":
		r["gender"] = "unknown"
	}
	var addrs []any
	for rep := 1; rep <= pid.reps(11); rep++ {
		if a := address(pid, 11, rep); a != nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		r["address"] = addrs
	}
	var tel []any
	for _, f := range []struct {
		field int
		use   string
	}{{13, "home"}, {14, "work"}} {
		for rep := 1; rep <= pid.reps(f.field); rep++ {
			if t := telecom(pid, f.field, rep, f.use); t != nil {
				tel = append(tel, t)
			}
		}
	}
	if len(tel) > 0 {
		r["telecom"] = tel
	}
	if ms := pid.v(16, 1, 1, 0); ms != "" {
		r["maritalStatus"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0002", "code": ms}}}
	}
	if dt := dateTime(pid.v(29, 1, 1, 0), p.TimeZone); dt != "" {
		r["deceasedDateTime"] = dt
	} else if pid.v(30, 1, 1, 0) == "Y" {
		r["deceasedBoolean"] = true
	}
	first := ids[0].(obj)
	return entry{resource: r, fullURL: uuidFor("Patient", first["system"].(string), first["value"].(string)), match: query(first)}, nil
}

// encounterClass maps HL7 table 0004 (patient class) to the v3 ActCode R4 uses.
var encounterClass = map[string][2]string{
	"I": {"IMP", "inpatient encounter"},
	"B": {"IMP", "inpatient encounter"},
	"O": {"AMB", "ambulatory"},
	"R": {"AMB", "ambulatory"},
	"E": {"EMER", "emergency"},
	"P": {"PRENC", "pre-admission"},
}

// encounter maps PV1 (and PV2); nil when there is no PV1 or it says nothing.
func encounter(m *hl7v2.Message, p Profile, patientRef string) *entry {
	pv1 := first(m, "PV1")
	if !pv1.ok() || pv1.v(2, 1, 1, 0) == "" && pv1.v(19, 1, 1, 0) == "" && pv1.v(3, 1, 0, 0) == "" {
		return nil
	}
	r := obj{"resourceType": "Encounter", "subject": obj{"reference": patientRef}}
	status := "in-progress"
	switch {
	case pv1.v(45, 1, 1, 0) != "":
		status = "finished"
	case m.Type() == "ADT" && adtEvent(m) == "A04":
		status = "arrived"
	}
	r["status"] = status
	class := pv1.v(2, 1, 1, 0)
	switch c, ok := encounterClass[class]; {
	case ok:
		r["class"] = obj{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": c[0], "display": c[1]}
	case class != "":
		r["class"] = obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": class}
	default:
		r["class"] = obj{"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}
	}
	e := entry{resource: r}
	if id := pv1.cx(19, 1); id.value != "" {
		ident := p.identifier(id, p.VisitSystem, "visit", "VN")
		r["identifier"] = []any{ident}
		e.match = query(ident)
		e.fullURL = uuidFor("Encounter", ident["system"].(string), id.value)
	} else {
		// Without a visit number nothing identifies the visit; the fullUrl is still stable
		// for the same message.
		e.fullURL = uuidFor("Encounter", patientRef, m.ControlID())
	}
	period := obj{}
	if s := dateTime(pv1.v(44, 1, 1, 0), p.TimeZone); s != "" {
		period["start"] = s
	}
	if s := dateTime(pv1.v(45, 1, 1, 0), p.TimeZone); s != "" {
		period["end"] = s
	}
	if len(period) > 0 {
		r["period"] = period
	}
	if loc := location(pv1); loc != "" {
		r["location"] = []any{obj{"location": obj{"display": loc}}}
	}
	var parts []any
	for _, pt := range []struct {
		field int
		code  string
		name  string
	}{{7, "ATND", "attender"}, {8, "REF", "referrer"}, {17, "ADM", "admitter"}} {
		for rep := 1; rep <= pv1.reps(pt.field); rep++ {
			if ref := p.practitioner(pv1, pt.field, rep); ref != nil {
				parts = append(parts, obj{
					"type":       []any{obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": pt.code, "display": pt.name}}}},
					"individual": ref,
				})
			}
		}
	}
	if len(parts) > 0 {
		r["participant"] = parts
	}
	if svc := pv1.v(10, 1, 1, 0); svc != "" {
		r["serviceType"] = obj{"coding": []any{obj{"system": "http://terminology.hl7.org/CodeSystem/v2-0069", "code": svc}}}
	}
	if pv2 := first(m, "PV2"); pv2.ok() {
		if rc := p.codeable(pv2, 3, 1); rc != nil {
			r["reasonCode"] = []any{rc}
		}
	}
	return &e
}

// location is PV1-3 (point of care^room^bed^facility^...^description) as one line.
func location(pv1 seg) string {
	if d := pv1.v(3, 1, 9, 0); d != "" {
		return d
	}
	var parts []string
	for _, c := range []int{1, 2, 3, 4} {
		if s := pv1.v(3, 1, c, 1); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}
