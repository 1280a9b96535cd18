// Package orders reads order context out of HL7v2 order messages: the accession number,
// patient, priority, ordering provider, location, procedure, reason and status of each
// order in an ORM^O01 or OMI^O23, in the v2.3 to v2.5.1 layouts, as store.Order values. A
// study later joins its order by accession number (see docs/study-context.md).
//
// The functions are pure: they read the message and return values; the engine stores them.
//
// # Where each field comes from
//
// A message holds one order per ORC segment (its order group runs to the next ORC). Within
// the group the first segment of each kind counts; the patient (PID) and visit (PV1) are
// the message's.
//
//	Accession          IPC-1.1, else OBR-18.1, else OBR-3.1, else ORC-3.1
//	PlacerOrderNumber  ORC-2.1, else OBR-2.1
//	FillerOrderNumber  ORC-3.1, else OBR-3.1
//	PatientID          PID-3.1 (first repetition)
//	PatientName        PID-5 (first repetition, as encoded: "DOE^JANE")
//	PatientSex         PID-8
//	PatientBirthDate   PID-7.1
//	PatientIDAuthority PID-3.4.1 (first repetition), the MRN's assigning authority
//	PatientClass       PV1-2.1 (HL7 table 0004: E, I, O, P, R, B...)
//	Priority           TQ1-9.1, else ORC-7.6, else OBR-27.6, else OBR-5 (upper case)
//	OrderingProvider   ORC-12, else OBR-16 (first repetition, as encoded: "1234^SMITH^JANE")
//	Location           PV1-3.1, the point of care
//	ProcedureCode      OBR-4.1, else OBR-44.1
//	ProcedureText      OBR-4.2, else OBR-44.2
//	Reason             OBR-31.2, else OBR-31.1, else OBR-13
//	Status             CA when ORC-1 is CA, OC or CR; DC when ORC-1 is DC, OD or DR;
//	                   else ORC-5 (HL7 table 0038: SC, IP, CM, HD...)
//	OrderedAt          ORC-9, else OBR-6, else MSH-7
//	UpdatedAt          MSH-7
//
// The accession is the key, so the field that is the accession by definition comes first:
// IPC-1 (Accession Identifier, v2.5 OMI). ORM has no IPC; there IHE Scheduled Workflow and
// most RIS put the accession in OBR-18 (Placer Field 1). A RIS that sends neither uses its
// filler order number as the accession, so OBR-3 and ORC-3 close the list. An order group
// with none of them has no accession and is not order context.
//
// A cancellation (ORC-1 CA or DC, or the filler's OC/OD) sets Status even when ORC-5 says
// otherwise: the order control code is the sender's intent for this message, ORC-5 often a
// stale copy of the previous state.
package orders

import (
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/store"
)

// Message types that carry order context.
var orderTypes = map[string]bool{"ORM": true, "OMI": true}

// IsOrder reports whether m is an order message this package reads (ORM or OMI).
func IsOrder(m *hl7v2.Message) bool { return m != nil && orderTypes[m.Type()] }

// FromHL7 returns the first order of an ORM^O01 or OMI^O23 message, and false when m is not
// such a message or its first order has no accession number. MessageID and Channel are
// left for the caller. Use All for messages that carry several orders.
func FromHL7(m *hl7v2.Message) (store.Order, bool) {
	os := All(m)
	if len(os) == 0 {
		return store.Order{}, false
	}
	return os[0], true
}

// All returns every order of an ORM or OMI message that has an accession number, in
// message order. An order group repeated with the same accession (several IPC steps of one
// procedure are in one group; two ORCs for one accession are rare) counts once, the first.
func All(m *hl7v2.Message) []store.Order {
	if !IsOrder(m) {
		return nil
	}
	var (
		pid, pv1 *hl7v2.Segment
		groups   []*group
		cur      *group
	)
	for _, s := range m.Segments() {
		switch s.Name() {
		case "PID":
			if pid == nil {
				pid = &s
			}
		case "PV1":
			if pv1 == nil {
				pv1 = &s
			}
		case "ORC":
			cur = &group{orc: &s}
			groups = append(groups, cur)
		case "OBR", "TQ1", "IPC":
			if cur == nil {
				// An OBR before any ORC is malformed, but its order can still be read.
				cur = &group{}
				groups = append(groups, cur)
			}
			cur.add(s)
		}
	}
	msgTime := parseTime(m.Get("MSH-7"))
	var out []store.Order
	seen := map[string]bool{}
	for _, g := range groups {
		o := g.order()
		if o.Accession == "" || seen[o.Accession] {
			continue
		}
		seen[o.Accession] = true
		if pid != nil {
			o.PatientID = val(pid, 3, 1, 1)
			o.PatientName = trimComponents(pidName(pid))
			o.PatientSex = val(pid, 8, 0, 0)
			o.PatientBirthDate = val(pid, 7, 1, 1)
			o.PatientIDAuthority = sub(pid, 3, 1, 4, 1)
		}
		if pv1 != nil {
			o.PatientClass = val(pv1, 2, 1, 1)
			o.Location = val(pv1, 3, 1, 1)
		}
		if o.OrderedAt.IsZero() {
			o.OrderedAt = msgTime
		}
		o.UpdatedAt = msgTime
		out = append(out, o)
	}
	return out
}

// group is one order group: an ORC and what follows it up to the next ORC.
type group struct {
	orc, obr, tq1, ipc *hl7v2.Segment
}

func (g *group) add(s hl7v2.Segment) {
	switch s.Name() {
	case "OBR":
		if g.obr == nil {
			g.obr = &s
		}
	case "TQ1":
		if g.tq1 == nil {
			g.tq1 = &s
		}
	case "IPC":
		if g.ipc == nil {
			g.ipc = &s
		}
	}
}

func (g *group) order() store.Order {
	orc, obr, tq1, ipc := g.orc, g.obr, g.tq1, g.ipc
	o := store.Order{
		Accession:         first(val(ipc, 1, 1, 1), val(obr, 18, 1, 1), val(obr, 3, 1, 1), val(orc, 3, 1, 1)),
		PlacerOrderNumber: first(val(orc, 2, 1, 1), val(obr, 2, 1, 1)),
		FillerOrderNumber: first(val(orc, 3, 1, 1), val(obr, 3, 1, 1)),
		Priority:          strings.ToUpper(first(val(tq1, 9, 1, 1), val(orc, 7, 1, 6), val(obr, 27, 1, 6), val(obr, 5, 1, 1))),
		OrderingProvider:  trimComponents(first(raw(orc, 12), raw(obr, 16))),
		ProcedureCode:     first(val(obr, 4, 1, 1), val(obr, 44, 1, 1)),
		ProcedureText:     first(val(obr, 4, 1, 2), val(obr, 44, 1, 2)),
		Reason:            first(val(obr, 31, 1, 2), val(obr, 31, 1, 1), val(obr, 13, 0, 0)),
		Status:            status(val(orc, 1, 1, 1), val(orc, 5, 1, 1)),
		OrderedAt:         parseTime(first(val(orc, 9, 1, 1), val(obr, 6, 1, 1))),
	}
	return o
}

// status is the order's status after this message (see the package comment).
func status(control, orderStatus string) string {
	switch strings.ToUpper(control) {
	case "CA", "OC", "CR":
		return "CA"
	case "DC", "OD", "DR":
		return "DC"
	}
	return strings.ToUpper(orderStatus)
}

// val reads one element of a segment that may be absent, trimmed.
func val(s *hl7v2.Segment, field, rep, comp int) string { return sub(s, field, rep, comp, 0) }

// sub is val for a subcomponent: PID-3.4.1, the namespace of an HD, say.
func sub(s *hl7v2.Segment, field, rep, comp, subcomp int) string {
	if s == nil {
		return ""
	}
	v, _ := s.Value(field, rep, comp, subcomp)
	return strings.TrimSpace(v)
}

// raw reads the first repetition of a field with its components, unescaped per component
// and joined with ^, so "1234^SMITH^JANE" reads the same whatever the message's delimiters.
func raw(s *hl7v2.Segment, field int) string {
	if s == nil {
		return ""
	}
	n := s.Components(field, 1)
	parts := make([]string, n)
	for c := 1; c <= n; c++ {
		parts[c-1], _ = s.Value(field, 1, c, 0)
	}
	return strings.Join(parts, "^")
}

func pidName(pid *hl7v2.Segment) string { return raw(pid, 5) }

// trimComponents drops trailing empty components: "DOE^JANE^^^" is "DOE^JANE".
func trimComponents(s string) string { return strings.TrimRight(s, "^") }

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseTime reads an HL7 DTM/TS; an empty or malformed value is the zero time.
func parseTime(s string) time.Time {
	t, err := rules.ParseHL7Time(s)
	if err != nil {
		return time.Time{}
	}
	return t
}
