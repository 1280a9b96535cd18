package sr

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOPClassComprehensive3DSR is the SOP class of the reports Map writes.
const SOPClassComprehensive3DSR = "1.2.840.10008.5.1.4.1.1.88.34"

// Defaults of [Profile].
const (
	DefaultManufacturer      = "Osprey"
	DefaultModelName         = "Osprey"
	DefaultSerialNumber      = "0"
	DefaultSoftwareVersion   = "osprey"
	DefaultSeriesNumber      = 9901
	DefaultSeriesDescription = "AI results"
	DefaultLanguage          = "en-US"
)

// Errors of [Map].
var (
	// ErrWithdrawn reports an analysis whose status is withdrawn. No SR is made for it: a
	// report with the findings taken out would read as "nothing found", which is not what a
	// withdrawal means. Retracting an SR already stored in a PACS is done with an IHE IOCM
	// rejection note (a Key Object Selection document), which this package does not build;
	// the caller must not send anything for a withdrawn revision.
	ErrWithdrawn = errors.New("sr: analysis is withdrawn; send no SR")
	// ErrNoFindings reports an analysis with no finding at all, positive or negative (every
	// plugin failed, was not applicable, or reported nothing): TID 1500 has nothing to hold.
	ErrNoFindings = errors.New("sr: analysis has no findings")
	// ErrInvalid reports an analysis or profile the mapping cannot use (no id, no study
	// UID, a bad UID root, a reference to an instance not in the study, an unknown coding
	// system).
	ErrInvalid = errors.New("sr: invalid input")
)

// Profile is how one site wants its reports. The zero value is usable: every field has a
// default.
type Profile struct {
	// UIDRoot is the organisation root under which the SR's SOP Instance, Series and tracking
	// UIDs are derived: root + "." + decimal digits of a SHA-256 of the analysis id (and
	// revision). Empty (the default) derives them as name-based UUIDs under "2.25", which
	// needs no registered root. At most 44 characters so that 20 digits follow it.
	UIDRoot string
	// Manufacturer, ModelName, SerialNumber and SoftwareVersion describe the equipment that
	// wrote the SR (General and Enhanced General Equipment Modules): Osprey, not the model.
	// Defaults "Osprey", "Osprey", "0", "osprey".
	Manufacturer    string
	ModelName       string
	SerialNumber    string
	SoftwareVersion string
	// Institution is the InstitutionName of that equipment; default the study's.
	Institution string
	// SeriesNumber and SeriesDescription of the SR series; defaults 9901 and "AI results".
	SeriesNumber      int
	SeriesDescription string
	// Language is the RFC 5646 tag of the report's language (TID 1204); default "en-US".
	Language string
	// ProcedureScheme is the coding scheme designator of the order's procedure codes (OBR-4,
	// e.g. "99RIS" for local codes, or "LN" where the RIS uses LOINC). When set and the
	// order has a procedure code, that code is the Requested Procedure Code and the
	// Performed Procedure Code of the document. Empty: both sequences are left empty.
	ProcedureScheme string
	// ProcedureReported is the imaging procedure the report is about (TID 1500 row 4), a
	// code of CID 100. The zero Code derives it from the modality of the source series:
	// (25045-6, LN, "CT unspecified body region") for CT, likewise MR, NM and PT, else
	// (363679005, SCT, "Imaging procedure").
	ProcedureReported dicom.Code
	// Location is the time zone of ContentDate and ContentTime; default UTC.
	Location *time.Location
}

func (p Profile) withDefaults(a *mappings.Analysis) Profile {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&p.Manufacturer, DefaultManufacturer)
	def(&p.ModelName, DefaultModelName)
	def(&p.SerialNumber, DefaultSerialNumber)
	def(&p.SoftwareVersion, DefaultSoftwareVersion)
	def(&p.Institution, a.Study.InstitutionName)
	def(&p.SeriesDescription, DefaultSeriesDescription)
	def(&p.Language, DefaultLanguage)
	if p.SeriesNumber == 0 {
		p.SeriesNumber = DefaultSeriesNumber
	}
	if p.Location == nil {
		p.Location = time.UTC
	}
	return p
}

// UIDs returns the Series Instance UID and SOP Instance UID Map gives the SR of revision of
// analysis id under profile p: the series is the same for every revision, the instance is
// not.
func UIDs(id string, revision int, p Profile) (series, instance string, err error) {
	if series, err = deriveUID(p.UIDRoot, "series", id); err != nil {
		return "", "", err
	}
	if instance, err = deriveUID(p.UIDRoot, "instance", id, strconv.Itoa(revision)); err != nil {
		return "", "", err
	}
	return series, instance, nil
}

// deriveUID is stable for the same root and parts. The "mappings/sr" namespace keeps these
// UIDs apart from any other name-based UID of the same analysis id.
func deriveUID(root string, parts ...string) (string, error) {
	parts = append([]string{"mappings/sr"}, parts...)
	if root == "" {
		return dicom.NameUID(parts...), nil
	}
	if err := dicom.ValidUID(root); err != nil {
		return "", fmt.Errorf("%w: uid root: %v", ErrInvalid, err)
	}
	if len(root) > 44 {
		return "", fmt.Errorf("%w: uid root %q is longer than 44 characters", ErrInvalid, root)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	digits := new(big.Int).SetBytes(sum[:16]).String()
	if room := 64 - len(root) - 1; len(digits) > room {
		digits = digits[:room] // a big.Int's digits never start with 0
	}
	return root + "." + digits, nil
}

// Map returns the Part 10 bytes of the SR of analysis a under profile p. See the package doc
// and docs/mapping-sr.md for what it holds. It fails with [ErrWithdrawn] for a withdrawn
// analysis, [ErrNoFindings] when there is nothing to report and [ErrInvalid] for input it
// cannot map.
func Map(a *mappings.Analysis, p Profile) ([]byte, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil analysis", ErrInvalid)
	}
	if a.Status == mappings.StatusWithdrawn {
		return nil, fmt.Errorf("analysis %s revision %d: %w", a.ID, a.Revision, ErrWithdrawn)
	}
	if a.ID == "" || a.Revision < 1 {
		return nil, fmt.Errorf("%w: analysis id %q revision %d: want an id and a revision from 1", ErrInvalid, a.ID, a.Revision)
	}
	if err := dicom.ValidUID(a.Study.StudyInstanceUID); err != nil {
		return nil, fmt.Errorf("%w: analysis %s: study instance uid: %v", ErrInvalid, a.ID, err)
	}
	if len(a.Findings) == 0 {
		return nil, fmt.Errorf("analysis %s revision %d: %w", a.ID, a.Revision, ErrNoFindings)
	}
	p = p.withDefaults(a)
	m := &mapper{a: a, p: p, instances: indexInstances(a.Study)}
	ds, err := m.dataset()
	if err != nil {
		return nil, fmt.Errorf("sr: analysis %s revision %d: %w", a.ID, a.Revision, err)
	}
	out, err := dicom.Encode(ds)
	if err != nil {
		return nil, fmt.Errorf("sr: analysis %s revision %d: %w", a.ID, a.Revision, err)
	}
	return out, nil
}

type instanceInfo struct {
	series, sopClass string
	frames           int
}

func indexInstances(s dicom.StudySummary) map[string]instanceInfo {
	out := map[string]instanceInfo{}
	for _, se := range s.Series {
		for _, in := range se.Instances {
			out[in.SOPInstanceUID] = instanceInfo{series: se.SeriesInstanceUID, sopClass: in.SOPClassUID, frames: in.Frames}
		}
	}
	return out
}

type mapper struct {
	a         *mappings.Analysis
	p         Profile
	instances map[string]instanceInfo
	seriesUID string
	sopUID    string
	usesLocal bool // a measurement concept of LocalScheme was written
	// rootDevice is the Device Observer UID of the report's root observer context.
	rootDevice string
}

// composer is Osprey as a device: the root observer of a report with several algorithms.
func (m *mapper) composer() (device, error) {
	uid, err := deriveUID(m.p.UIDRoot, "device", "composer", m.p.Manufacturer, m.p.ModelName)
	if err != nil {
		return device{}, err
	}
	return device{plugin: m.p.ModelName, model: protocol.Model{Name: m.p.ModelName, Manufacturer: m.p.Manufacturer}, uid: uid}, nil
}

// localSchemes declares the private coding schemes the document uses (PS3.3 C.12.1.1.2).
func (m *mapper) localSchemes() []*dicom.Builder {
	var items []*dicom.Builder
	if m.usesLocal {
		var b dicom.Builder
		b.Add(tag.CodingSchemeDesignator, LocalScheme)
		b.Add(tag.CodingSchemeName, "Osprey measurement concepts")
		b.Add(tag.CodingSchemeResponsibleOrganization, "Osprey")
		items = append(items, &b)
	}
	if s := m.p.ProcedureScheme; strings.HasPrefix(s, "99") && s != LocalScheme {
		var b dicom.Builder
		b.Add(tag.CodingSchemeDesignator, s)
		b.Add(tag.CodingSchemeName, "Local procedure codes")
		items = append(items, &b)
	}
	return items
}

func (m *mapper) dataset() (*dcm.Dataset, error) {
	a, p := m.a, m.p
	var err error
	if m.seriesUID, m.sopUID, err = UIDs(a.ID, a.Revision, p); err != nil {
		return nil, err
	}
	t := a.CreatedAt.In(p.Location)
	var b dicom.Builder

	// SOP Common (SpecificCharacterSet is added at the end, when the text needs it)
	b.Add(tag.SOPClassUID, SOPClassComprehensive3DSR)
	b.Add(tag.SOPInstanceUID, m.sopUID)
	b.Add(tag.InstanceCreationDate, t)
	b.Add(tag.InstanceCreationTime, dicom.FormatTime(t.Truncate(time.Second)))
	b.Add(tag.TimezoneOffsetFromUTC, t.Format("-0700"))
	if items := m.contributingEquipment(t); len(items) > 0 {
		b.Sequence(tag.ContributingEquipmentSequence, items...)
	}

	// Patient, General Study, Patient Study: the source study's, the order's where the
	// study has none.
	s := a.Study
	b.Add(tag.PatientName, first(s.PatientName, orderField(a, func(o *mappings.Order) string { return o.PatientName })))
	b.Add(tag.PatientID, a.PatientID())
	b.Add(tag.PatientBirthDate, first(s.PatientBirthDate, orderField(a, func(o *mappings.Order) string { return o.PatientBirthDate })))
	b.Add(tag.PatientSex, first(s.PatientSex, dicomSex(orderField(a, func(o *mappings.Order) string { return o.PatientSex }))))
	if s.PatientAge != "" {
		b.Add(tag.PatientAge, s.PatientAge)
	}
	b.Add(tag.StudyInstanceUID, s.StudyInstanceUID)
	b.Add(tag.StudyDate, s.StudyDate)
	b.Add(tag.StudyTime, s.StudyTime)
	b.Add(tag.ReferringPhysicianName, s.ReferringPhysician)
	b.Add(tag.StudyID, "")
	b.Add(tag.AccessionNumber, a.Accession())
	if s.StudyDescription != "" {
		b.Add(tag.StudyDescription, s.StudyDescription)
	}

	// SR Document Series
	b.Add(tag.Modality, "SR")
	b.Add(tag.SeriesInstanceUID, m.seriesUID)
	b.Add(tag.SeriesNumber, p.SeriesNumber)
	b.Add(tag.SeriesDescription, p.SeriesDescription)
	b.Sequence(tag.ReferencedPerformedProcedureStepSequence)

	// General and Enhanced General Equipment: Osprey wrote the document.
	b.Add(tag.Manufacturer, p.Manufacturer)
	if p.Institution != "" {
		b.Add(tag.InstitutionName, p.Institution)
	}
	b.Add(tag.ManufacturerModelName, p.ModelName)
	b.Add(tag.DeviceSerialNumber, p.SerialNumber)
	b.Add(tag.SoftwareVersions, p.SoftwareVersion)

	// SR Document General
	b.Add(tag.InstanceNumber, a.Revision)
	b.Add(tag.ContentDate, t)
	b.Add(tag.ContentTime, dicom.FormatTime(t.Truncate(time.Second)))
	b.Add(tag.CompletionFlag, "COMPLETE")
	b.Add(tag.VerificationFlag, "UNVERIFIED")
	if c, ok := m.procedureCode(); ok {
		b.CodeSequence(tag.PerformedProcedureCodeSequence, c)
	} else {
		b.Sequence(tag.PerformedProcedureCodeSequence)
	}
	if req := m.request(); req != nil {
		b.Sequence(tag.ReferencedRequestSequence, req)
	}
	if ev := m.evidence(); ev != nil {
		b.Sequence(tag.CurrentRequestedProcedureEvidenceSequence, ev)
	}
	if a.Revision > 1 {
		prev, err := deriveUID(p.UIDRoot, "instance", a.ID, strconv.Itoa(a.Revision-1))
		if err != nil {
			return nil, err
		}
		b.Sequence(tag.PredecessorDocumentsSequence, studyReference(s.StudyInstanceUID, m.seriesUID, dicom.SOPReference(SOPClassComprehensive3DSR, prev)))
	}

	// SR Document Content
	root, err := m.content()
	if err != nil {
		return nil, err
	}
	root.AddRoot(&b)
	if m.usesLocal || m.p.ProcedureScheme != "" && strings.HasPrefix(m.p.ProcedureScheme, "99") {
		b.Sequence(tag.CodingSchemeIdentificationSequence, m.localSchemes()...)
	}
	ds, err := b.Dataset()
	if err != nil {
		return nil, err
	}
	// UTF-8 is declared only when some text needs it: the default repertoire is what every
	// PACS reads, and a report in plain ASCII stays readable by the oldest of them.
	if !asciiOnly(ds.Elements) {
		e, err := dcm.NewElement(tag.SpecificCharacterSet, []string{"ISO_IR 192"})
		if err != nil {
			return nil, err
		}
		ds.Elements = append(ds.Elements, e)
	}
	return ds, nil
}

// asciiOnly reports whether every text value, at every nesting level, is 7-bit ASCII.
func asciiOnly(elems []*dcm.Element) bool {
	for _, e := range elems {
		if e.Value == nil {
			continue
		}
		switch v := e.Value.GetValue().(type) {
		case []string:
			for _, s := range v {
				for i := 0; i < len(s); i++ {
					if s[i] >= 0x80 {
						return false
					}
				}
			}
		case []*dcm.SequenceItemValue:
			for _, it := range v {
				if items, ok := it.GetValue().([]*dcm.Element); ok && !asciiOnly(items) {
					return false
				}
			}
		}
	}
	return true
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func orderField(a *mappings.Analysis, f func(*mappings.Order) string) string {
	if a.Order == nil {
		return ""
	}
	return f(a.Order)
}

// dicomSex maps HL7 table 0001 to DICOM's Patient's Sex, which knows only F, M and O.
func dicomSex(hl7 string) string {
	switch hl7 {
	case "F", "M", "O":
		return hl7
	case "A", "N":
		return "O"
	}
	return ""
}

// studyReference returns an item of the Hierarchical SOP Instance Reference Macro naming
// SOP instances of one series.
func studyReference(study, series string, sops ...*dicom.Builder) *dicom.Builder {
	var se dicom.Builder
	se.Add(tag.SeriesInstanceUID, series)
	se.Sequence(tag.ReferencedSOPSequence, sops...)
	var st dicom.Builder
	st.Add(tag.StudyInstanceUID, study)
	st.Sequence(tag.ReferencedSeriesSequence, &se)
	return &st
}

// procedureCode is the order's procedure code when the profile says how it is coded.
func (m *mapper) procedureCode() (dicom.Code, bool) {
	o := m.a.Order
	if m.p.ProcedureScheme == "" || o == nil || o.ProcedureCode == "" {
		return dicom.Code{}, false
	}
	return dicom.Code{Value: o.ProcedureCode, Scheme: m.p.ProcedureScheme, Meaning: first(o.ProcedureText, o.ProcedureCode)}, true
}

// request is the Referenced Request Sequence item: the order this report answers. Nil when
// the study has no accession and no order is known.
func (m *mapper) request() *dicom.Builder {
	a := m.a
	if a.Accession() == "" && a.Order == nil {
		return nil
	}
	var r dicom.Builder
	r.Add(tag.AccessionNumber, a.Accession())
	r.Sequence(tag.ReferencedStudySequence)
	r.Add(tag.StudyInstanceUID, a.Study.StudyInstanceUID)
	r.Add(tag.RequestedProcedureDescription, first(orderField(a, func(o *mappings.Order) string { return o.ProcedureText }), a.Study.StudyDescription))
	if c, ok := m.procedureCode(); ok {
		r.CodeSequence(tag.RequestedProcedureCodeSequence, c)
	} else {
		r.Sequence(tag.RequestedProcedureCodeSequence)
	}
	r.Add(tag.RequestedProcedureID, "")
	r.Add(tag.PlacerOrderNumberImagingServiceRequest, orderField(a, func(o *mappings.Order) string { return o.PlacerOrderNumber }))
	r.Add(tag.FillerOrderNumberImagingServiceRequest, orderField(a, func(o *mappings.Order) string { return o.FillerOrderNumber }))
	return &r
}

// sourceSeries returns the series of the study the plugins read: those with images, less the
// SR's own series (a re-analysed study may already hold an earlier report).
func (m *mapper) sourceSeries() []dicom.SeriesSummary {
	var out []dicom.SeriesSummary
	for _, se := range m.a.Study.Series {
		if se.SeriesInstanceUID == m.seriesUID {
			continue
		}
		var images []dicom.InstanceSummary
		for _, in := range se.Instances {
			if in.Frames > 0 && in.SOPClassUID != "" {
				images = append(images, in)
			}
		}
		if len(images) > 0 {
			se.Instances = images
			out = append(out, se)
		}
	}
	return out
}

// evidence is the Current Requested Procedure Evidence Sequence item: every source image.
func (m *mapper) evidence() *dicom.Builder {
	series := m.sourceSeries()
	if len(series) == 0 {
		return nil
	}
	items := make([]*dicom.Builder, len(series))
	for i, se := range series {
		var sb dicom.Builder
		sb.Add(tag.SeriesInstanceUID, se.SeriesInstanceUID)
		refs := make([]*dicom.Builder, len(se.Instances))
		for j, in := range se.Instances {
			refs[j] = dicom.SOPReference(in.SOPClassUID, in.SOPInstanceUID)
		}
		sb.Sequence(tag.ReferencedSOPSequence, refs...)
		items[i] = &sb
	}
	var st dicom.Builder
	st.Add(tag.StudyInstanceUID, m.a.Study.StudyInstanceUID)
	st.Sequence(tag.ReferencedSeriesSequence, items...)
	return &st
}

// device is one algorithm that contributed findings: the observer of TID 1004 and an item of
// the Contributing Equipment Sequence.
type device struct {
	plugin string
	model  protocol.Model
	uid    string
}

// devices returns the algorithms behind the findings, in order of first finding.
func (m *mapper) devices() ([]device, error) {
	var out []device
	seen := map[string]bool{}
	for _, f := range m.a.Findings {
		key := f.Plugin + "\x00" + f.Model.Name + "\x00" + f.Model.Version
		if seen[key] {
			continue
		}
		seen[key] = true
		uid, err := deviceUID(f, m.p)
		if err != nil {
			return nil, err
		}
		out = append(out, device{plugin: f.Plugin, model: f.Model, uid: uid})
	}
	return out, nil
}

// deviceUID is the model's DeviceUID, or one derived from plugin, model name and version
// when the plugin gives none, so that each model version still has its own stable UID.
func deviceUID(f mappings.Finding, p Profile) (string, error) {
	if f.Model.DeviceUID != "" {
		if err := dicom.ValidUID(f.Model.DeviceUID); err != nil {
			return "", fmt.Errorf("%w: plugin %s device uid: %v", ErrInvalid, f.Plugin, err)
		}
		return f.Model.DeviceUID, nil
	}
	return deriveUID(p.UIDRoot, "device", f.Plugin, f.Model.Name, f.Model.Version)
}

func (m *mapper) contributingEquipment(t time.Time) []*dicom.Builder {
	devs, err := m.devices()
	if err != nil {
		return nil // content() reports the same error
	}
	var items []*dicom.Builder
	for _, d := range devs {
		var e dicom.Builder
		e.CodeSequence(tag.PurposeOfReferenceCodeSequence, codeProcessingEquip)
		e.Add(tag.Manufacturer, first(d.model.Manufacturer, d.plugin))
		e.Add(tag.ManufacturerModelName, first(d.model.Name, d.plugin))
		if d.model.Version != "" {
			e.Add(tag.SoftwareVersions, d.model.Version)
		}
		e.Add(tag.ContributionDateTime, t)
		e.Add(tag.ContributionDescription, "AI analysis by plugin "+d.plugin)
		items = append(items, &e)
	}
	return items
}

// roundTo rounds v to n decimals, so that a confidence of 0.93 is written "93", not
// "93.00000000000001".
func roundTo(v float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}
