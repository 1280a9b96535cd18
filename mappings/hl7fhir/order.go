package hl7fhir

import (
	"strconv"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// group is one order of an ORM or OMI: its ORC and the segments that detail it.
type group struct {
	orc, obr, tq1, ipc seg
	notes              []string
	dg1                []seg
}

// orderGroups cuts a message into orders: each ORC starts one, and an OBR without an ORC
// before it (some ORMs) starts one too. TQ1 belongs to the order whether it comes before
// the OBR (OMI^O23) or after it; NTE after an OBR are notes on the order.
func orderGroups(m *hl7v2.Message) []*group {
	var out []*group
	var cur *group
	for _, s := range m.Segments() {
		sg := seg{&s}
		switch s.Name() {
		case "ORC":
			cur = &group{orc: sg}
			out = append(out, cur)
		case "OBR":
			if cur == nil || cur.obr.ok() {
				cur = &group{orc: orcOf(cur)}
				out = append(out, cur)
			}
			cur.obr = sg
		case "TQ1":
			if cur != nil && !cur.tq1.ok() {
				cur.tq1 = sg
			}
		case "IPC":
			if cur != nil && !cur.ipc.ok() {
				cur.ipc = sg
			}
		case "NTE":
			if cur != nil && cur.obr.ok() {
				if t := sg.v(3, 0, 0, 0); t != "" {
					cur.notes = append(cur.notes, t)
				}
			}
		case "DG1":
			if cur != nil {
				cur.dg1 = append(cur.dg1, sg)
			}
		}
	}
	return out
}

// orcOf is the ORC an OBR without its own shares: the previous order's, for the ORMs that
// send one ORC with several OBRs.
func orcOf(prev *group) seg {
	if prev == nil {
		return seg{}
	}
	return prev.orc
}

// either returns the first non-empty value.
func either(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// requestStatus maps ORC-5 (order status, HL7 table 0038) or else ORC-1 (order control,
// table 0119) to a FHIR request status.
func requestStatus(orc seg) string {
	switch orc.v(5, 1, 1, 0) {
	case "CM":
		return "completed"
	case "CA", "DC":
		return "revoked"
	case "HD":
		return "on-hold"
	case "IP", "SC", "A":
		return "active"
	}
	switch orc.v(1, 1, 1, 0) {
	case "CA", "OC", "CR", "DC", "OD", "DR":
		return "revoked"
	case "HD", "OH":
		return "on-hold"
	}
	return "active"
}

// requestPriority maps a TQ1-9 or TQ-6 priority (S, A, R, P, C, T) to FHIR's.
func requestPriority(code string) string {
	switch code {
	case "S":
		return "stat"
	case "A":
		return "asap"
	case "R":
		return "routine"
	case "P", "T":
		return "urgent" // preoperative and timing-critical: sooner than routine, not stat
	}
	return ""
}

// imagingSections are OBR-24 diagnostic service section ids (HL7 table 0074 and the DICOM
// modality codes radiology systems send there) that make an order an imaging order.
var imagingSections = map[string]bool{"RAD": true, "RX": true, "CT": true, "MR": true, "US": true, "NM": true, "VUS": true, "CUS": true,
	"XR": true, "CR": true, "DX": true, "MG": true, "PT": true, "IR": true, "RF": true, "XA": true}

func serviceRequest(m *hl7v2.Message, p Profile, o *group, index int, patientRef, encounterRef string) entry {
	orc, obr := o.orc, o.obr
	r := obj{"resourceType": "ServiceRequest", "intent": "order", "status": requestStatus(orc), "subject": obj{"reference": patientRef}}
	if encounterRef != "" {
		r["encounter"] = obj{"reference": encounterRef}
	}
	var ids []any
	// OBR-2 and OBR-3 first: an ORM with one ORC and several OBRs numbers each order in
	// its OBR, and where both are sent they are the same.
	placer := obr.ei(2)
	if placer.value == "" {
		placer = orc.ei(2)
	}
	var placerID obj
	if placer.value != "" {
		placerID = p.identifier(placer, p.PlacerSystem, "placer", "PLAC")
		ids = append(ids, placerID)
	}
	filler := obr.ei(3)
	if filler.value == "" {
		filler = orc.ei(3)
	}
	if filler.value != "" {
		ids = append(ids, p.identifier(filler, p.FillerSystem, "filler", "FILL"))
	}
	// The accession number: IPC-1 in OMI^O23 (IHE RAD), OBR-18 (placer field 1) in the
	// ORMs radiology systems send.
	acc := o.ipc.ei(1)
	if acc.value == "" {
		acc = identifierValue{value: obr.v(18, 1, 1, 0)}
	}
	if acc.value != "" {
		ids = append(ids, p.identifier(acc, p.AccessionSystem, "accession", "ACSN"))
	}
	if uid := o.ipc.v(3, 1, 1, 0); uid != "" {
		ids = append(ids, obj{"system": "urn:dicom:uid", "value": "urn:oid:" + uid})
	}
	if len(ids) > 0 {
		r["identifier"] = ids
	}
	if code := p.codeable(obr, 4, 1); code != nil {
		r["code"] = code
	}
	if imagingSections[obr.v(24, 1, 1, 0)] || o.ipc.ok() {
		r["category"] = []any{obj{"coding": []any{obj{"system": "http://snomed.info/sct", "code": "363679005", "display": "Imaging"}}}}
	}
	prio := requestPriority(o.tq1.v(9, 1, 1, 0))
	if prio == "" {
		prio = requestPriority(either(orc.v(7, 1, 6, 0), obr.v(27, 1, 6, 0)))
	}
	if prio != "" {
		r["priority"] = prio
	}
	if when := dateTime(either(o.tq1.v(7, 1, 1, 0), orc.v(7, 1, 4, 0), obr.v(27, 1, 4, 0)), p.TimeZone); when != "" {
		r["occurrenceDateTime"] = when
	}
	if at := dateTime(orc.v(9, 1, 1, 0), p.TimeZone); at != "" {
		r["authoredOn"] = at
	}
	req := p.practitioner(orc, 12, 1)
	if req == nil {
		req = p.practitioner(obr, 16, 1)
	}
	if req != nil {
		r["requester"] = req
	}
	var reasons []any
	for rep := 1; rep <= obr.reps(31); rep++ {
		if rc := p.codeable(obr, 31, rep); rc != nil {
			reasons = append(reasons, rc)
		}
	}
	if len(reasons) == 0 {
		for _, dg := range o.dg1 {
			if rc := p.codeable(dg, 3, 1); rc != nil {
				reasons = append(reasons, rc)
			}
		}
	}
	if len(reasons) > 0 {
		r["reasonCode"] = reasons
	}
	var notes []any
	if info := obr.v(13, 1, 0, 0); info != "" {
		notes = append(notes, obj{"text": "Relevant clinical information: " + info})
	}
	for _, n := range o.notes {
		notes = append(notes, obj{"text": n})
	}
	if len(notes) > 0 {
		r["note"] = notes
	}
	e := entry{resource: r}
	if placerID != nil {
		e.match = query(placerID)
		e.fullURL = uuidFor("ServiceRequest", placerID["system"].(string), placer.value)
	} else {
		e.fullURL = uuidFor("ServiceRequest", patientRef, m.ControlID(), strconv.Itoa(index))
	}
	return e
}
