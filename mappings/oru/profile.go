package oru

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// HL7 versions a profile can produce.
const (
	Version251 = "2.5.1"
	Version23  = "2.3"
)

// PriorityPlacement says where in the message the result's priority is written.
type PriorityPlacement string

// Priority placements.
const (
	// PriorityTQ1 writes a TQ1 segment after the OBR with TQ1-9 (CWE, HL7 table 0485), the
	// place HL7 2.5 and later define. Not available in 2.3, which has no TQ1.
	PriorityTQ1 PriorityPlacement = "TQ1-9"
	// PriorityOBR27 writes OBR-27 component 6 (the priority of the TQ quantity/timing
	// field), where 2.3 receivers look.
	PriorityOBR27 PriorityPlacement = "OBR-27.6"
	// PriorityOBR5 writes OBR-5, kept in later versions for backward compatibility; some
	// receivers read only this.
	PriorityOBR5 PriorityPlacement = "OBR-5"
)

// Defaults of the Profile fields.
const (
	DefaultApplication       = "OSPREY"
	DefaultProcessingID      = "P"
	DefaultPatientClass      = "U"
	DefaultAccessionField    = "OBR-18"
	DefaultLocalCodingSystem = "99OSPREY"
	// DefaultDisclaimer is the first NTE of every message.
	DefaultDisclaimer = "AI-generated result, not verified by a radiologist. It is not a diagnosis and must not be used as a report."
)

// Profile is what a receiving RIS needs to differ from the defaults. The zero Profile is
// HL7 2.5.1 with the priority in TQ1-9; a zero field takes the default its doc names.
type Profile struct {
	// Name is informational (the name ProfileByName found it under).
	Name string
	// Version is MSH-12: Version251 (default) or Version23.
	Version string
	// Priority is where the result's priority goes; default PriorityTQ1 for 2.5.1 and
	// PriorityOBR27 for 2.3.
	Priority PriorityPlacement
	// SendingApplication is MSH-3.1 (default "OSPREY"); SendingFacility is MSH-4.1 (default
	// empty). ReceivingApplication and ReceivingFacility are MSH-5.1 and MSH-6.1 (default
	// empty). Each is one value, escaped: a "^" in it is data, not a component.
	SendingApplication   string
	SendingFacility      string
	ReceivingApplication string
	ReceivingFacility    string
	// ProcessingID is MSH-11: "P" production (default), "T" training, "D" debugging.
	ProcessingID string
	// Charset is MSH-18, the character set the message is written in: default
	// "UNICODE UTF-8" for 2.5.1 and "8859/1" for 2.3 (which has no UTF-8 in its table 0211).
	// A name or text the set cannot hold makes Map fail rather than write "?".
	Charset string
	// TimeZone is the zone message and observation times are written in, with their UTC
	// offset (default UTC). The caller loads it: Map does no I/O.
	TimeZone *time.Location
	// PatientIDAuthority is PID-3.4, the assigning authority of the MRN, when the order gave
	// none (default empty).
	PatientIDAuthority string
	// PatientClass is PV1-2, required by HL7, when the order gave none (default "U", unknown).
	PatientClass string
	// AccessionField is the OBR field the accession number is written to besides ORC-3 and
	// OBR-3 (where it stands in for a missing filler order number): "OBR-18" (placer field 1,
	// the IHE Radiology convention; default), "OBR-19", "OBR-20" or "OBR-21".
	AccessionField string
	// ProcedureCodingSystem is OBR-4.3, the coding system of the order's procedure code
	// (default empty: the RIS's own codes).
	ProcedureCodingSystem string
	// CodingSystems maps coding system URIs (protocol.SystemSNOMED and others) to HL7 table
	// 0396 names, over the built-in ones (SNOMED CT SCT, LOINC LN, RadLex RADLEX, DICOM DCM,
	// UCUM UCUM). A system found in neither is written as "L" (local).
	CodingSystems map[string]string
	// LocalCodingSystem names the coding system of Osprey's own codes (the confidence OBX,
	// a measurement without a code); default "99OSPREY", a local name as table 0396 allows.
	LocalCodingSystem string
	// Disclaimer is the text of the first NTE (default DefaultDisclaimer), for sites that
	// want it in their own words or language. A correction or withdrawal appends a sentence
	// saying so.
	Disclaimer string
}

// Built-in profiles, by name.
var profiles = map[string]Profile{
	"2.5.1-tq1":  {Version: Version251, Priority: PriorityTQ1},
	"2.5.1-obr5": {Version: Version251, Priority: PriorityOBR5},
	"2.3-obr27":  {Version: Version23, Priority: PriorityOBR27},
}

// ProfileNames lists the names ProfileByName knows, sorted.
func ProfileNames() []string { return slices.Sorted(maps.Keys(profiles)) }

// ErrUnknownProfile is returned by ProfileByName for a name it does not know.
var ErrUnknownProfile = errors.New("oru: unknown profile")

// ProfileByName returns a built-in profile: "2.5.1-tq1" (the default), "2.5.1-obr5"
// (2.5.1 with the priority in OBR-5) or "2.3-obr27" (2.3 with the priority in OBR-27.6).
// The caller sets the site fields (applications, facilities) on the copy it gets.
func ProfileByName(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("oru: profile %q (known: %s): %w", name, strings.Join(ProfileNames(), ", "), ErrUnknownProfile)
	}
	p.Name = name
	return p, nil
}

// ErrProfile is wrapped by the errors of an invalid profile.
var ErrProfile = errors.New("oru: invalid profile")

// Validate reports the first field of p that Map cannot use, so a channel can reject its
// configuration at load time.
func (p Profile) Validate() error {
	_, err := p.resolve()
	return err
}

// resolve returns p with its defaults filled in, or the error of its first invalid field.
func (p Profile) resolve() (Profile, error) {
	bad := func(format string, args ...any) (Profile, error) {
		return Profile{}, fmt.Errorf("oru: profile %s: %w", fmt.Sprintf(format, args...), ErrProfile)
	}
	if p.Version == "" {
		p.Version = Version251
	}
	switch p.Version {
	case Version251:
		if p.Priority == "" {
			p.Priority = PriorityTQ1
		}
		if p.Charset == "" {
			p.Charset = "UNICODE UTF-8"
		}
	case Version23:
		if p.Priority == "" {
			p.Priority = PriorityOBR27
		}
		if p.Charset == "" {
			p.Charset = "8859/1"
		}
		if p.Priority == PriorityTQ1 {
			return bad("priority %s: HL7 2.3 has no TQ1 segment; use %s or %s", p.Priority, PriorityOBR27, PriorityOBR5)
		}
	default:
		return bad("version %q: want %q or %q", p.Version, Version251, Version23)
	}
	if !charsets[p.Charset] {
		return bad("charset %q: want an HL7 table 0211 name Osprey writes (ASCII, UNICODE UTF-8, 8859/1 ... 8859/9, 8859/15)", p.Charset)
	}
	switch p.Priority {
	case PriorityTQ1, PriorityOBR27, PriorityOBR5:
	default:
		return bad("priority placement %q: want %q, %q or %q", p.Priority, PriorityTQ1, PriorityOBR27, PriorityOBR5)
	}
	if p.SendingApplication == "" {
		p.SendingApplication = DefaultApplication
	}
	if p.ProcessingID == "" {
		p.ProcessingID = DefaultProcessingID
	}
	switch p.ProcessingID {
	case "P", "T", "D":
	default:
		return bad("processing id %q: want P, T or D", p.ProcessingID)
	}
	if p.TimeZone == nil {
		p.TimeZone = time.UTC
	}
	if p.PatientClass == "" {
		p.PatientClass = DefaultPatientClass
	}
	if p.AccessionField == "" {
		p.AccessionField = DefaultAccessionField
	}
	switch p.AccessionField {
	case "OBR-18", "OBR-19", "OBR-20", "OBR-21":
	default:
		return bad("accession field %q: want OBR-18, OBR-19, OBR-20 or OBR-21", p.AccessionField)
	}
	if p.LocalCodingSystem == "" {
		p.LocalCodingSystem = DefaultLocalCodingSystem
	}
	if p.Disclaimer == "" {
		p.Disclaimer = DefaultDisclaimer
	}
	systems := maps.Clone(defaultSystems)
	for uri, name := range p.CodingSystems {
		if name == "" {
			return bad("coding system %q maps to an empty name", uri)
		}
		systems[uri] = name
	}
	p.CodingSystems = systems
	return p, nil
}

// charsets are the MSH-18 values engine/hl7v2 reads and writes without an issue.
var charsets = map[string]bool{
	"ASCII": true, "UNICODE UTF-8": true, "UNICODE": true,
	"8859/1": true, "8859/2": true, "8859/3": true, "8859/4": true, "8859/5": true,
	"8859/6": true, "8859/7": true, "8859/8": true, "8859/9": true, "8859/15": true,
}

// defaultSystems maps the protocol's coding system URIs to their HL7 table 0396 names.
var defaultSystems = map[string]string{
	protocol.SystemSNOMED: "SCT",
	protocol.SystemLOINC:  "LN",
	protocol.SystemRadLex: "RADLEX",
	protocol.SystemDCM:    "DCM",
	protocol.SystemUCUM:   "UCUM",
}

// system is the HL7 coding system name of a coding system URI.
func (p *Profile) system(uri string) string {
	if s, ok := p.CodingSystems[uri]; ok {
		return s
	}
	return "L"
}
