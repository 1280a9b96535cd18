package hl7fhir

import (
	"strings"
	"time"
)

// Profile is what a site must tell the mapping: which URIs name its identifier namespaces
// and code systems, and the time zone of its HL7 times. The zero Profile works, with
// Osprey's placeholder URIs.
type Profile struct {
	// Systems maps an HL7 namespace or coding-system name to a FHIR system URI: an
	// assigning authority (CX-4.1, as in PID-3 "12345^^^MRN"), an entity-identifier
	// namespace (EI-2, as in ORC-2 "A123^RIS"), or a coding system (CWE-3, as in OBR-4
	// "71045^Chest XR^CPT"). Names are matched case-insensitively and win over the
	// built-in code systems (LN, SCT, CPT, ICD-10, HL7 tables, RadLex).
	Systems map[string]string
	// IdentifierBase prefixes namespaces that are not in Systems ("urn:osprey:id:" when
	// empty): PID-3 "12345^^^MRN" becomes system "urn:osprey:id:mrn".
	IdentifierBase string
	// CodeBase prefixes local coding systems that are not in Systems ("urn:osprey:code:"
	// when empty).
	CodeBase string
	// PatientSystem, VisitSystem, PlacerSystem, FillerSystem and AccessionSystem are used
	// for identifiers that name no namespace; IdentifierBase plus "mrn", "visit", "placer",
	// "filler" or "accession" when empty.
	PatientSystem, VisitSystem, PlacerSystem, FillerSystem, AccessionSystem string
	// TimeZone is where HL7 times without an offset were taken; nil means UTC. (FHIR needs
	// an offset on every time of day.)
	TimeZone *time.Location
}

// builtinSystems are the FHIR URIs of coding systems HL7v2 messages name (HL7 table 0396).
var builtinSystems = map[string]string{
	"LN":      "http://loinc.org",
	"LOINC":   "http://loinc.org",
	"SCT":     "http://snomed.info/sct",
	"SNM":     "http://snomed.info/sct",
	"SNOMED":  "http://snomed.info/sct",
	"C4":      "http://www.ama-assn.org/go/cpt",
	"CPT":     "http://www.ama-assn.org/go/cpt",
	"CPT4":    "http://www.ama-assn.org/go/cpt",
	"I10":     "http://hl7.org/fhir/sid/icd-10",
	"ICD10":   "http://hl7.org/fhir/sid/icd-10",
	"I10C":    "http://hl7.org/fhir/sid/icd-10-cm",
	"ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
	"I9":      "http://hl7.org/fhir/sid/icd-9-cm",
	"I9C":     "http://hl7.org/fhir/sid/icd-9-cm",
	"ICD9":    "http://hl7.org/fhir/sid/icd-9-cm",
	"RADLEX":  "http://radlex.org",
	"RID":     "http://radlex.org",
	"DCM":     "http://dicom.nema.org/resources/ontology/DCM",
}

func (p Profile) lookup(name string) string {
	for k, v := range p.Systems {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// identifierSystem is the system of an identifier in namespace ns (CX-4.1 or EI-2), with
// fallback the profile's system for identifiers without one.
func (p Profile) identifierSystem(ns, universalID, universalType, fallback, kind string) string {
	if s := p.lookup(ns); s != "" {
		return s
	}
	if strings.EqualFold(universalType, "ISO") && universalID != "" {
		return "urn:oid:" + universalID
	}
	if ns == "" {
		if fallback != "" {
			return fallback
		}
		ns = kind
	}
	base := p.IdentifierBase
	if base == "" {
		base = "urn:osprey:id:"
	}
	return base + slug(ns)
}

// codeSystem is the URI of coding system name (CWE-3).
func (p Profile) codeSystem(name string) string {
	if name == "" {
		return ""
	}
	if s := p.lookup(name); s != "" {
		return s
	}
	if s, ok := builtinSystems[strings.ToUpper(name)]; ok {
		return s
	}
	if u := strings.ToUpper(name); strings.HasPrefix(u, "HL7") && len(u) == 7 {
		return "http://terminology.hl7.org/CodeSystem/v2-" + u[3:]
	}
	base := p.CodeBase
	if base == "" {
		base = "urn:osprey:code:"
	}
	return base + slug(name)
}

// slug makes a name safe at the end of a URI: lower case, letters, digits, '-' and '.'.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}
