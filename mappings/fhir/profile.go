package fhir

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Identifier systems used when a profile leaves them empty. They are URNs that mean
// "assigned by Osprey"; a site sets Patient (and usually Accession) to the systems its EHR
// knows, since a patient is found by its MRN in the EHR's own system.
const (
	DefaultPatientSystem       = "urn:osprey:mrn"
	DefaultAccessionSystem     = "urn:osprey:accession"
	DefaultReportSystem        = "urn:osprey:diagnostic-report"
	DefaultObservationSystem   = "urn:osprey:observation"
	DefaultCommunicationSystem = "urn:osprey:communication"
	DefaultDeviceSystem        = "urn:osprey:device"
)

// Alert policies: when a Communication is made.
const (
	// AlertPriority alerts when the result rules set the analysis priority to stat or urgent.
	AlertPriority = "priority"
	// AlertPositive alerts whenever any finding is present, whatever the priority.
	AlertPositive = "positive"
	// AlertNever makes no Communication.
	AlertNever = "never"
)

// Delivery modes.
const (
	// ModeBundle sends one transaction Bundle.
	ModeBundle = "bundle"
	// ModeSingle sends each resource on its own, in [Mapper.Resources] order.
	ModeSingle = "single"
)

// How the ImagingStudy is referred to.
const (
	// StudyCreate puts an ImagingStudy built from the study summary in the output, created
	// only if the EHR has none with the study's Study Instance UID. The references to it
	// always resolve.
	StudyCreate = "create"
	// StudyReference refers to the EHR's own ImagingStudy by a conditional reference on the
	// Study Instance UID ("ImagingStudy?identifier=urn:dicom:uid|urn:oid:…"); the transaction
	// fails if the EHR has none.
	StudyReference = "reference"
	// StudyIdentifier refers to the study by identifier only (a logical reference the EHR
	// does not resolve).
	StudyIdentifier = "identifier"
)

// Identifiers are the identifier systems (URIs) of the output. Empty fields take the
// Default*System constants.
type Identifiers struct {
	// Patient is the system of the MRN (PID-3.1 / DICOM PatientID); the patient is
	// referenced as "Patient?identifier=<Patient>|<MRN>".
	Patient string `yaml:"patient" json:"patient,omitempty"`
	// Accession is the system of the accession number (identifier type ACSN).
	Accession string `yaml:"accession" json:"accession,omitempty"`
	// Report is the system of the DiagnosticReport identifier (the analysis id).
	Report string `yaml:"report" json:"report,omitempty"`
	// Observation is the system of each Observation identifier.
	Observation string `yaml:"observation" json:"observation,omitempty"`
	// Communication is the system of each alert's identifier.
	Communication string `yaml:"communication" json:"communication,omitempty"`
	// Device is the system of a model's identifier when it has no device UID.
	Device string `yaml:"device" json:"device,omitempty"`
}

// Profile is what a site decides about its FHIR output. The zero Profile is usable: default
// identifier systems, alerts on stat/urgent, a transaction bundle, an ImagingStudy created if
// missing, dates without times.
type Profile struct {
	Identifiers Identifiers `yaml:"identifiers" json:"identifiers,omitzero"`
	// Recipients are the alert's recipients as FHIR references, "PractitionerRole/ed-team",
	// "Group/stroke-team" or a conditional "PractitionerRole?identifier=…".
	Recipients []string `yaml:"recipients" json:"recipients,omitempty"`
	// ViewerURL, when set, is the deep link to the study in a viewer, attached to the alert.
	// Placeholders: {StudyInstanceUID}, {AccessionNumber}, {PatientID}, {AnalysisID}, each
	// replaced by the URL-escaped value; for example
	// "https://viewer.example/study/{StudyInstanceUID}". It must be an absolute http(s) URL.
	ViewerURL string `yaml:"viewer_url" json:"viewer_url,omitempty"`
	// Alert is AlertPriority (default), AlertPositive or AlertNever.
	Alert string `yaml:"alert" json:"alert,omitempty"`
	// Mode is ModeBundle (default) or ModeSingle. In single mode an alert needs Recipients,
	// since no transaction carries it along with the report for the EHR to route.
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// ImagingStudy is StudyCreate (default), StudyReference or StudyIdentifier.
	ImagingStudy string `yaml:"imaging_study" json:"imaging_study,omitempty"`
	// TimeZone is the IANA zone the modality's StudyDate/StudyTime are in. DICOM times carry
	// no offset, so without it effective times are dates only.
	TimeZone string `yaml:"time_zone" json:"time_zone,omitempty"`
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// placeholders are the names a ViewerURL may use.
var placeholders = map[string]bool{
	"StudyInstanceUID": true, "AccessionNumber": true, "PatientID": true, "AnalysisID": true,
}

var recipientRE = regexp.MustCompile(`^(Practitioner|PractitionerRole|Group|CareTeam|Organization|HealthcareService|Patient|RelatedPerson|Device)(/[A-Za-z0-9\-.]{1,64}|\?.+)$`)

// withDefaults returns p with every empty field set to its default, or why p is invalid.
func (p Profile) withDefaults() (Profile, error) {
	id := &p.Identifiers
	for _, f := range []struct {
		v    *string
		def  string
		name string
	}{
		{&id.Patient, DefaultPatientSystem, "patient"},
		{&id.Accession, DefaultAccessionSystem, "accession"},
		{&id.Report, DefaultReportSystem, "report"},
		{&id.Observation, DefaultObservationSystem, "observation"},
		{&id.Communication, DefaultCommunicationSystem, "communication"},
		{&id.Device, DefaultDeviceSystem, "device"},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
		if u, err := url.Parse(*f.v); err != nil || u.Scheme == "" || strings.ContainsAny(*f.v, " |") {
			return p, fmt.Errorf("fhir mapping: identifiers.%s: %q is not an absolute URI", f.name, *f.v)
		}
	}
	if p.Alert == "" {
		p.Alert = AlertPriority
	}
	switch p.Alert {
	case AlertPriority, AlertPositive, AlertNever:
	default:
		return p, fmt.Errorf("fhir mapping: alert must be %s, %s or %s but found %q", AlertPriority, AlertPositive, AlertNever, p.Alert)
	}
	if p.Mode == "" {
		p.Mode = ModeBundle
	}
	switch p.Mode {
	case ModeBundle, ModeSingle:
	default:
		return p, fmt.Errorf("fhir mapping: mode must be %s or %s but found %q", ModeBundle, ModeSingle, p.Mode)
	}
	if p.ImagingStudy == "" {
		p.ImagingStudy = StudyCreate
	}
	switch p.ImagingStudy {
	case StudyCreate, StudyReference, StudyIdentifier:
	default:
		return p, fmt.Errorf("fhir mapping: imaging_study must be %s, %s or %s but found %q", StudyCreate, StudyReference, StudyIdentifier, p.ImagingStudy)
	}
	for i, r := range p.Recipients {
		if !recipientRE.MatchString(r) {
			return p, fmt.Errorf("fhir mapping: recipients[%d]: %q is not a reference to a Practitioner, PractitionerRole, Group, CareTeam, Organization, HealthcareService, Patient, RelatedPerson or Device (Type/id or Type?query)", i, r)
		}
	}
	if p.Mode == ModeSingle && p.Alert != AlertNever && len(p.Recipients) == 0 {
		return p, errors.New("fhir mapping: in single mode an alert needs recipients: set recipients, or alert: never")
	}
	if err := checkViewerURL(p.ViewerURL); err != nil {
		return p, err
	}
	if p.TimeZone != "" {
		if _, err := time.LoadLocation(p.TimeZone); err != nil {
			return p, fmt.Errorf("fhir mapping: time_zone: %w", err)
		}
	}
	return p, nil
}

// checkViewerURL rejects a template with an unknown placeholder, a stray brace, or one that
// does not give an absolute http(s) URL.
func checkViewerURL(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	for _, ph := range placeholderRE.FindAllString(tmpl, -1) {
		if !placeholders[ph[1:len(ph)-1]] {
			return fmt.Errorf("fhir mapping: viewer_url: unknown placeholder %s (use {StudyInstanceUID}, {AccessionNumber}, {PatientID} or {AnalysisID})", ph)
		}
	}
	if rest := placeholderRE.ReplaceAllString(tmpl, ""); strings.ContainsAny(rest, "{}") {
		return fmt.Errorf("fhir mapping: viewer_url: unbalanced brace in %q", tmpl)
	}
	sample := expandViewerURL(tmpl, map[string]string{
		"StudyInstanceUID": "1.2.3", "AccessionNumber": "A1", "PatientID": "P1", "AnalysisID": "x",
	})
	u, err := url.Parse(sample)
	if err != nil {
		return fmt.Errorf("fhir mapping: viewer_url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("fhir mapping: viewer_url: %q is not an absolute http(s) URL", tmpl)
	}
	return nil
}

// expandViewerURL replaces each placeholder by its value with everything but RFC 3986
// unreserved characters percent-encoded, which is safe in a path segment and in a query
// value alike: an accession with "&" cannot add a query parameter.
func expandViewerURL(tmpl string, values map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(ph string) string {
		return escapeUnreserved(values[ph[1:len(ph)-1]])
	})
}

func escapeUnreserved(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
