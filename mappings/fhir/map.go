package fhir

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	efhir "github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"

	c "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	d "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/communication_go_proto"
	devpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/device_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	ispb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/imaging_study_go_proto"
	opb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"
)

// ContentType is the media type of the mapping's output.
const ContentType = "application/fhir+json"

// Code systems and codes the mapping uses. Public standards, except SystemOsprey, which
// holds the codes no standard has (the confidence of an AI finding).
const (
	SystemDiagnosticServiceSection = "http://terminology.hl7.org/CodeSystem/v2-0074"
	SystemObservationCategory      = "http://terminology.hl7.org/CodeSystem/observation-category"
	SystemCommunicationCategory    = "http://terminology.hl7.org/CodeSystem/communication-category"
	SystemInterpretation           = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	SystemIdentifierType           = "http://terminology.hl7.org/CodeSystem/v2-0203"
	SystemDICOMUID                 = "urn:dicom:uid"
	SystemRFC3986                  = "urn:ietf:rfc:3986"
	SystemOsprey                   = "urn:osprey:codes"

	// ReportCode is LOINC 18748-4 "Diagnostic imaging study", the report's code.
	ReportCode        = "18748-4"
	ReportCodeDisplay = "Diagnostic imaging study"
	// ConfidenceCode is the Observation component holding the model's confidence (0..1).
	ConfidenceCode = "confidence"
)

// Resource is one resource of the output with what it takes to send it alone.
type Resource struct {
	Type string // "Observation", …
	// FullURL is the resource's bundle-local "urn:uuid:…"; other resources of the same
	// output refer to it by that.
	FullURL string
	// Method is "POST" (conditional create) or "PUT" (conditional update of a correction or
	// withdrawal).
	Method string
	// URL is the request URL relative to the FHIR base: "Observation" for a create,
	// "Observation?identifier=…" for a conditional update.
	URL string
	// IfNoneExist is the If-None-Exist query of a create ("identifier=system|value"); empty
	// for an update.
	IfNoneExist string
	// JSON is the resource, validated.
	JSON []byte
}

// Mapper maps analyses with one profile. It is safe for concurrent use.
type Mapper struct {
	p   Profile
	loc *time.Location // nil: dates only
}

// New checks p, fills in its defaults and returns a Mapper for it.
func New(p Profile) (*Mapper, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Mapper{p: p}
	if p.TimeZone != "" {
		if m.loc, err = time.LoadLocation(p.TimeZone); err != nil {
			return nil, fmt.Errorf("fhir mapping: time_zone: %w", err)
		}
	}
	return m, nil
}

// Profile returns the profile with its defaults filled in.
func (m *Mapper) Profile() Profile { return m.p }

// Map returns the transaction Bundle of a with profile p.
func Map(a *mappings.Analysis, p Profile) ([]byte, error) {
	m, err := New(p)
	if err != nil {
		return nil, err
	}
	return m.Map(a)
}

// MapResources returns the resources of a with profile p, in the order to send them.
func MapResources(a *mappings.Analysis, p Profile) ([]Resource, error) {
	m, err := New(p)
	if err != nil {
		return nil, err
	}
	return m.Resources(a)
}

// Map returns the transaction Bundle of a: the resources of [Mapper.Resources] as entries,
// each with its fullUrl and request.
func (m *Mapper) Map(a *mappings.Analysis) ([]byte, error) {
	entries, err := m.build(a)
	if err != nil {
		return nil, err
	}
	b := &bpb.Bundle{Type: &bpb.Bundle_TypeCode{Value: c.BundleTypeCode_TRANSACTION}}
	for _, e := range entries {
		cr, err := efhir.Wrap(e.msg)
		if err != nil {
			return nil, err
		}
		req := &bpb.Bundle_Entry_Request{Url: uri(e.url)}
		if e.method == "PUT" {
			req.Method = &bpb.Bundle_Entry_Request_MethodCode{Value: c.HTTPVerbCode_PUT}
		} else {
			req.Method = &bpb.Bundle_Entry_Request_MethodCode{Value: c.HTTPVerbCode_POST}
			req.IfNoneExist = str(e.ifNoneExist)
		}
		b.Entry = append(b.Entry, &bpb.Bundle_Entry{FullUrl: uri(e.fullURL), Resource: cr, Request: req})
	}
	return finish(b, "transaction bundle of analysis "+a.ID)
}

// Resources returns the resources of a in dependency order: Devices, the ImagingStudy,
// Observations, the DiagnosticReport, the Communication. References between them are the
// urn:uuid fullUrls of earlier resources; a sender that posts them one by one replaces each
// by the id the server assigned (engine/fhir.RewriteReferences), and resolves conditional
// references ("Patient?identifier=…") by a search before posting.
func (m *Mapper) Resources(a *mappings.Analysis) ([]Resource, error) {
	entries, err := m.build(a)
	if err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(entries))
	for _, e := range entries {
		data, err := finish(e.msg, e.typ+" of analysis "+a.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, Resource{Type: e.typ, FullURL: e.fullURL, Method: e.method, URL: e.url, IfNoneExist: e.ifNoneExist, JSON: data})
	}
	return out, nil
}

// Alerts reports whether the profile makes a Communication for a.
func (m *Mapper) Alerts(a *mappings.Analysis) bool {
	if a.Status == mappings.StatusWithdrawn {
		return false
	}
	switch m.p.Alert {
	case AlertPriority:
		return a.Priority == protocol.PriorityStat || a.Priority == protocol.PriorityUrgent
	case AlertPositive:
		return len(a.Positive()) > 0
	}
	return false
}

// finish validates a built resource and returns its JSON, validated once more as JSON so the
// bytes that leave are the bytes that were checked.
func finish(msg proto.Message, what string) ([]byte, error) {
	if err := efhir.ValidateMessage(msg); err != nil {
		return nil, fmt.Errorf("fhir mapping: %s: %w", what, err)
	}
	data, err := efhir.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("fhir mapping: %s: %w", what, err)
	}
	if _, err := efhir.Validate(data); err != nil {
		return nil, fmt.Errorf("fhir mapping: %s: %w", what, err)
	}
	return data, nil
}

// entry is a built resource before it is marshalled.
type entry struct {
	typ, fullURL, method, url, ifNoneExist string
	msg                                    proto.Message
}

// build is the mapping itself.
func (m *Mapper) build(a *mappings.Analysis) ([]entry, error) {
	if err := check(a); err != nil {
		return nil, err
	}
	p := m.p
	rev := strconv.Itoa(a.Revision)
	full := func(key string) string { return nameUUID(a.ID + "\x00" + rev + "\x00" + key) }
	update := a.Revision > 1 || a.Status != mappings.StatusPreliminary
	mrn := a.PatientID()
	accession := a.Accession()

	var entries []entry
	add := func(typ, fullURL, system, value string, upd bool, msg proto.Message) {
		q := tokenQuery(system, value)
		e := entry{typ: typ, fullURL: fullURL, msg: msg}
		if upd {
			e.method, e.url = "PUT", typ+"?"+q
		} else {
			e.method, e.url, e.ifNoneExist = "POST", typ, q
		}
		entries = append(entries, e)
	}

	patient := &d.Reference{
		Type:       uri("Patient"),
		Reference:  &d.Reference_Uri{Uri: str("Patient?" + tokenQuery(p.Identifiers.Patient, mrn))},
		Identifier: typedIdent("MR", p.Identifiers.Patient, mrn),
	}

	// Devices: one per model, in the order the results name them.
	type device struct {
		fullURL string
		ref     *d.Reference
	}
	devices := map[string]device{}
	var deviceOrder []string
	addDevice := func(md protocol.Model) {
		if md.Name == "" {
			return
		}
		system, value := p.Identifiers.Device, md.Name+"@"+md.Version
		if md.DeviceUID != "" {
			system, value = SystemDICOMUID, "urn:oid:"+md.DeviceUID
		}
		key := system + "|" + value
		if _, ok := devices[key]; ok {
			return
		}
		fu := full("Device\x00" + key)
		devices[key] = device{fullURL: fu, ref: &d.Reference{Reference: &d.Reference_Uri{Uri: str(fu)}, Display: str(md.Name + " " + md.Version)}}
		deviceOrder = append(deviceOrder, key)
		dev := &devpb.Device{
			Identifier: []*d.Identifier{ident(system, value)},
			Status:     &devpb.Device_StatusCode{Value: c.FHIRDeviceStatusCode_ACTIVE},
			DeviceName: []*devpb.Device_DeviceName{{
				Name: str(md.Name),
				Type: &devpb.Device_DeviceName_TypeCode{Value: c.DeviceNameTypeCode_MODEL_NAME},
			}},
			Type: &d.CodeableConcept{Text: str("AI model")},
		}
		if md.Manufacturer != "" {
			dev.Manufacturer = str(md.Manufacturer)
		}
		if md.Version != "" {
			dev.Version = []*devpb.Device_Version{{Value: str(md.Version)}}
		}
		add("Device", fu, system, value, false, dev)
	}
	for _, r := range a.Results {
		if r.Status == protocol.StatusCompleted {
			addDevice(r.Model)
		}
	}
	for _, f := range a.Findings {
		addDevice(f.Model)
	}
	deviceOf := func(md protocol.Model) *d.Reference {
		key := p.Identifiers.Device + "|" + md.Name + "@" + md.Version
		if md.DeviceUID != "" {
			key = SystemDICOMUID + "|urn:oid:" + md.DeviceUID
		}
		if dv, ok := devices[key]; ok {
			return cloneRef(dv.ref)
		}
		return nil
	}

	// The study.
	studyIdent := ident(SystemDICOMUID, "urn:oid:"+a.Study.StudyInstanceUID)
	var study *d.Reference
	switch p.ImagingStudy {
	case StudyCreate:
		fu := full("ImagingStudy")
		study = &d.Reference{Reference: &d.Reference_Uri{Uri: str(fu)}}
		add("ImagingStudy", fu, SystemDICOMUID, "urn:oid:"+a.Study.StudyInstanceUID, false, m.imagingStudy(a, patient, accession))
	case StudyReference:
		study = &d.Reference{
			Type:       uri("ImagingStudy"),
			Reference:  &d.Reference_Uri{Uri: str("ImagingStudy?" + tokenQuery(SystemDICOMUID, "urn:oid:"+a.Study.StudyInstanceUID))},
			Identifier: studyIdent,
		}
	default:
		study = &d.Reference{Type: uri("ImagingStudy"), Identifier: studyIdent}
	}

	effective := m.studyTime(a)
	issued := instant(a.CreatedAt)

	// Observations, one per finding.
	obsStatus := map[string]c.ObservationStatusCode_Value{
		mappings.StatusPreliminary: c.ObservationStatusCode_PRELIMINARY,
		mappings.StatusCorrected:   c.ObservationStatusCode_AMENDED,
		mappings.StatusWithdrawn:   c.ObservationStatusCode_ENTERED_IN_ERROR,
	}[a.Status]
	var results []*d.Reference
	seen := map[string]bool{}
	for _, f := range a.Findings {
		key := f.Plugin + "/" + f.ID
		if seen[key] {
			return nil, fmt.Errorf("fhir mapping: analysis %s: finding %q of plugin %q appears twice", a.ID, f.ID, f.Plugin)
		}
		seen[key] = true
		fu := full("Observation\x00" + key)
		o := &opb.Observation{
			Identifier: []*d.Identifier{ident(p.Identifiers.Observation, a.ID+"/"+key)},
			Status:     &opb.Observation_StatusCode{Value: obsStatus},
			Category: []*d.CodeableConcept{{Coding: []*d.Coding{
				coding(SystemObservationCategory, "imaging", "Imaging"),
			}}},
			Code:        findingCode(f.Code),
			Subject:     cloneRef(patient),
			Issued:      issued,
			Value:       &opb.Observation_ValueX{Choice: &opb.Observation_ValueX_Boolean{Boolean: &d.Boolean{Value: f.Present}}},
			DerivedFrom: []*d.Reference{cloneRef(study)},
			Device:      deviceOf(f.Model),
		}
		if effective != nil {
			o.Effective = &opb.Observation_EffectiveX{Choice: &opb.Observation_EffectiveX_DateTime{DateTime: proto.Clone(effective).(*d.DateTime)}}
		}
		if f.Present {
			o.Interpretation = []*d.CodeableConcept{{Coding: []*d.Coding{coding(SystemInterpretation, "POS", "Positive")}}}
		} else {
			o.Interpretation = []*d.CodeableConcept{{Coding: []*d.Coding{coding(SystemInterpretation, "NEG", "Negative")}}}
		}
		if bs := bodySite(f.Location); bs != nil {
			o.BodySite = bs
		}
		o.Component = append(o.Component, &opb.Observation_Component{
			Code: &d.CodeableConcept{Coding: []*d.Coding{coding(SystemOsprey, ConfidenceCode, "Model confidence")}, Text: str("Confidence")},
			Value: &opb.Observation_Component_ValueX{Choice: &opb.Observation_Component_ValueX_Quantity{
				Quantity: quantity(f.Confidence, "1"),
			}},
		})
		for _, ms := range f.Measurements {
			cc := &d.CodeableConcept{Text: str(ms.Name)}
			if ms.Code != nil {
				cc.Coding = []*d.Coding{coding(ms.Code.System, ms.Code.Code, ms.Code.Display)}
			}
			o.Component = append(o.Component, &opb.Observation_Component{
				Code:  cc,
				Value: &opb.Observation_Component_ValueX{Choice: &opb.Observation_Component_ValueX_Quantity{Quantity: quantity(ms.Value, ms.Unit)}},
			})
		}
		add("Observation", fu, p.Identifiers.Observation, a.ID+"/"+key, update, o)
		results = append(results, &d.Reference{Reference: &d.Reference_Uri{Uri: str(fu)}})
	}

	// The report.
	reportURL := full("DiagnosticReport")
	drStatus := map[string]c.DiagnosticReportStatusCode_Value{
		mappings.StatusPreliminary: c.DiagnosticReportStatusCode_PRELIMINARY,
		mappings.StatusCorrected:   c.DiagnosticReportStatusCode_AMENDED,
		mappings.StatusWithdrawn:   c.DiagnosticReportStatusCode_ENTERED_IN_ERROR,
	}[a.Status]
	dr := &drpb.DiagnosticReport{
		Identifier: []*d.Identifier{ident(p.Identifiers.Report, a.ID)},
		Status:     &drpb.DiagnosticReport_StatusCode{Value: drStatus},
		Category: []*d.CodeableConcept{{Coding: []*d.Coding{
			coding(SystemDiagnosticServiceSection, "RAD", "Radiology"),
		}}},
		Code:         &d.CodeableConcept{Coding: []*d.Coding{coding(protocol.SystemLOINC, ReportCode, ReportCodeDisplay)}, Text: str(reportText(a))},
		Subject:      cloneRef(patient),
		Issued:       issued,
		Result:       results,
		ImagingStudy: []*d.Reference{cloneRef(study)},
		Conclusion:   str(conclusion(a)),
	}
	if a.Order != nil && a.Order.PlacerOrderNumber != "" {
		dr.BasedOn = []*d.Reference{{Type: uri("ServiceRequest"), Identifier: typedIdent("PLAC", "", a.Order.PlacerOrderNumber)}}
	}
	if effective != nil {
		dr.Effective = &drpb.DiagnosticReport_EffectiveX{Choice: &drpb.DiagnosticReport_EffectiveX_DateTime{DateTime: proto.Clone(effective).(*d.DateTime)}}
	}
	if a.Status != mappings.StatusWithdrawn {
		codes := map[string]bool{}
		for _, f := range a.Positive() {
			k := f.Code.System + "|" + f.Code.Code
			if codes[k] {
				continue
			}
			codes[k] = true
			dr.ConclusionCode = append(dr.ConclusionCode, findingCode(f.Code))
		}
	}
	add("DiagnosticReport", reportURL, p.Identifiers.Report, a.ID, update, dr)

	// The alert.
	if m.Alerts(a) && (p.Mode == ModeBundle || len(p.Recipients) > 0) {
		fu := full("Communication")
		value := a.ID + "/alert/" + rev
		cm := &cpb.Communication{
			Identifier: []*d.Identifier{ident(p.Identifiers.Communication, value)},
			Status:     &cpb.Communication_StatusCode{Value: c.EventStatusCode_COMPLETED},
			Category: []*d.CodeableConcept{{Coding: []*d.Coding{
				coding(SystemCommunicationCategory, "alert", "Alert"),
			}}},
			Subject: cloneRef(patient),
			About: []*d.Reference{
				{Reference: &d.Reference_Uri{Uri: str(reportURL)}},
				cloneRef(study),
			},
			Sent: dateTimeOf(a.CreatedAt),
			Payload: []*cpb.Communication_Payload{{Content: &cpb.Communication_Payload_ContentX{
				Choice: &cpb.Communication_Payload_ContentX_StringValue{StringValue: str(alertText(a))},
			}}},
		}
		if pr, ok := map[string]c.RequestPriorityCode_Value{
			protocol.PriorityStat:    c.RequestPriorityCode_STAT,
			protocol.PriorityUrgent:  c.RequestPriorityCode_URGENT,
			protocol.PriorityRoutine: c.RequestPriorityCode_ROUTINE,
		}[a.Priority]; ok {
			cm.Priority = &cpb.Communication_PriorityCode{Value: pr}
		}
		for _, r := range p.Recipients {
			cm.Recipient = append(cm.Recipient, recipientRef(r))
		}
		if s := senderOf(a, deviceOf); s != nil {
			cm.Sender = s
		}
		if p.ViewerURL != "" {
			link := expandViewerURL(p.ViewerURL, map[string]string{
				"StudyInstanceUID": a.Study.StudyInstanceUID,
				"AccessionNumber":  accession,
				"PatientID":        mrn,
				"AnalysisID":       a.ID,
			})
			cm.Payload = append(cm.Payload, &cpb.Communication_Payload{Content: &cpb.Communication_Payload_ContentX{
				Choice: &cpb.Communication_Payload_ContentX_Attachment{Attachment: &d.Attachment{
					ContentType: &d.Attachment_ContentTypeCode{Value: "text/html"},
					Url:         &d.Url{Value: link},
					Title:       str("Open the study in the viewer"),
				}},
			}})
		}
		add("Communication", fu, p.Identifiers.Communication, value, false, cm)
	}
	return entries, nil
}

// check rejects an analysis the mapping cannot describe truthfully.
func check(a *mappings.Analysis) error {
	if a == nil {
		return errors.New("fhir mapping: no analysis")
	}
	var problems []string
	if a.ID == "" {
		problems = append(problems, "no id")
	}
	if a.Revision < 1 {
		problems = append(problems, fmt.Sprintf("revision %d (must be 1 or more)", a.Revision))
	}
	switch a.Status {
	case mappings.StatusPreliminary, mappings.StatusCorrected, mappings.StatusWithdrawn:
	default:
		problems = append(problems, fmt.Sprintf("status %q (must be preliminary, corrected or withdrawn)", a.Status))
	}
	if a.Study.StudyInstanceUID == "" {
		problems = append(problems, "no Study Instance UID")
	}
	if a.PatientID() == "" {
		problems = append(problems, "no MRN (patient id) to reference the patient by")
	}
	if a.CreatedAt.IsZero() {
		// Every time in the output comes from it; time.Now would break redelivery.
		problems = append(problems, "no created_at")
	}
	if len(problems) > 0 {
		return fmt.Errorf("fhir mapping: analysis %q: %s", a.ID, strings.Join(problems, "; "))
	}
	return nil
}

// imagingStudy builds the ImagingStudy of a's study summary.
func (m *Mapper) imagingStudy(a *mappings.Analysis, patient *d.Reference, accession string) *ispb.ImagingStudy {
	s := a.Study
	is := &ispb.ImagingStudy{
		Identifier: []*d.Identifier{ident(SystemDICOMUID, "urn:oid:"+s.StudyInstanceUID)},
		Status:     &ispb.ImagingStudy_StatusCode{Value: c.ImagingStudyStatusCode_AVAILABLE},
		Subject:    cloneRef(patient),
	}
	if accession != "" {
		is.Identifier = append(is.Identifier, typedIdent("ACSN", m.p.Identifiers.Accession, accession))
	}
	for _, mod := range s.Modalities {
		if mod != "" {
			is.Modality = append(is.Modality, coding(protocol.SystemDCM, mod, ""))
		}
	}
	if t := m.studyTime(a); t != nil {
		is.Started = t
	}
	if s.StudyDescription != "" {
		is.Description = str(s.StudyDescription)
	}
	instances := 0
	for _, se := range s.Series {
		modality := se.Modality
		if modality == "" {
			// series.modality is required; OT is DICOM's "Other".
			modality = "OT"
		}
		ser := &ispb.ImagingStudy_Series{
			Uid:      &d.Id{Value: se.SeriesInstanceUID},
			Modality: coding(protocol.SystemDCM, modality, ""),
		}
		if se.SeriesNumber > 0 {
			ser.Number = &d.UnsignedInt{Value: uint32(se.SeriesNumber)}
		}
		if se.SeriesDescription != "" {
			ser.Description = str(se.SeriesDescription)
		}
		for _, in := range se.Instances {
			// sopClass is required; an instance summarised without one is left out rather
			// than described wrongly.
			if in.SOPClassUID == "" {
				continue
			}
			inst := &ispb.ImagingStudy_Series_Instance{
				Uid:      &d.Id{Value: in.SOPInstanceUID},
				SopClass: coding(SystemRFC3986, "urn:oid:"+in.SOPClassUID, ""),
			}
			if in.InstanceNumber > 0 {
				inst.Number = &d.UnsignedInt{Value: uint32(in.InstanceNumber)}
			}
			ser.Instance = append(ser.Instance, inst)
		}
		ser.NumberOfInstances = &d.UnsignedInt{Value: uint32(len(ser.Instance))}
		instances += len(ser.Instance)
		is.Series = append(is.Series, ser)
	}
	is.NumberOfSeries = &d.UnsignedInt{Value: uint32(len(s.Series))}
	is.NumberOfInstances = &d.UnsignedInt{Value: uint32(instances)}
	return is
}

// studyTime is the study's StudyDate (and StudyTime, when the profile names the zone they
// are in), or nil when the study has no readable date.
func (m *Mapper) studyTime(a *mappings.Analysis) *d.DateTime {
	date := a.Study.StudyDate
	if len(date) != 8 {
		return nil
	}
	day, err := time.Parse("20060102", date)
	if err != nil {
		return nil
	}
	if m.loc != nil {
		hms := a.Study.StudyTime
		if i := strings.IndexByte(hms, '.'); i >= 0 {
			hms = hms[:i]
		}
		// DICOM TM may omit minutes and seconds.
		for _, layout := range []string{"150405", "1504", "15"} {
			if len(hms) != len(layout) {
				continue
			}
			if t, err := time.ParseInLocation("20060102"+layout, date+hms, m.loc); err == nil {
				_, off := t.Zone()
				return &d.DateTime{ValueUs: t.UnixMicro(), Timezone: offset(off), Precision: d.DateTime_SECOND}
			}
		}
	}
	return &d.DateTime{ValueUs: day.UnixMicro(), Timezone: "UTC", Precision: d.DateTime_DAY}
}

// offset formats a zone offset as FHIR writes it, "+01:00"; UTC is "Z".
func offset(sec int) string {
	if sec == 0 {
		return "Z"
	}
	sign := '+'
	if sec < 0 {
		sign, sec = '-', -sec
	}
	return fmt.Sprintf("%c%02d:%02d", sign, sec/3600, sec/60%60)
}

func instant(t time.Time) *d.Instant {
	t = t.UTC()
	prec := d.Instant_SECOND
	if t.Nanosecond() != 0 {
		prec = d.Instant_MICROSECOND
	}
	return &d.Instant{ValueUs: t.UnixMicro(), Timezone: "Z", Precision: prec}
}

func dateTimeOf(t time.Time) *d.DateTime {
	t = t.UTC()
	prec := d.DateTime_SECOND
	if t.Nanosecond() != 0 {
		prec = d.DateTime_MICROSECOND
	}
	return &d.DateTime{ValueUs: t.UnixMicro(), Timezone: "Z", Precision: prec}
}

func findingCode(cd protocol.Coding) *d.CodeableConcept {
	cc := &d.CodeableConcept{Coding: []*d.Coding{coding(cd.System, cd.Code, cd.Display)}}
	if cd.Display != "" {
		cc.Text = str(cd.Display)
	}
	return cc
}

// bodySite is the finding's location; laterality goes into the text, since R4 bodySite has
// no place of its own for it and a second coding would claim a different concept.
func bodySite(l protocol.Location) *d.CodeableConcept {
	if l.Code == nil && l.Text == "" {
		return nil
	}
	cc := &d.CodeableConcept{}
	if l.Code != nil {
		cc.Coding = []*d.Coding{coding(l.Code.System, l.Code.Code, l.Code.Display)}
	}
	text := l.Text
	if text == "" && l.Code != nil {
		text = l.Code.Display
	}
	if l.Laterality != "" && text != "" {
		text = l.Laterality + " " + text
	}
	if text != "" {
		cc.Text = str(text)
	}
	return cc
}

func quantity(v float64, unit string) *d.Quantity {
	return &d.Quantity{
		Value:  &d.Decimal{Value: strconv.FormatFloat(v, 'f', -1, 64)},
		Unit:   str(unit),
		System: uri(protocol.SystemUCUM),
		Code:   code(unit),
	}
}

// recipientRef is a configured recipient; "Type/id" is typed by the library from its
// prefix, a conditional "Type?query" carries its type explicitly.
func recipientRef(r string) *d.Reference {
	ref := &d.Reference{Reference: &d.Reference_Uri{Uri: str(r)}}
	if i := strings.IndexByte(r, '?'); i > 0 {
		ref.Type = uri(r[:i])
	}
	return ref
}

// senderOf is the Device of the first positive finding's model, else of the first model.
func senderOf(a *mappings.Analysis, deviceOf func(protocol.Model) *d.Reference) *d.Reference {
	for _, f := range a.Positive() {
		if r := deviceOf(f.Model); r != nil {
			return r
		}
	}
	for _, r := range a.Results {
		if ref := deviceOf(r.Model); ref != nil {
			return ref
		}
	}
	return nil
}

// reportText names the examination: the order's procedure text, else the study description.
func reportText(a *mappings.Analysis) string {
	if a.Order != nil && a.Order.ProcedureText != "" {
		return "AI analysis: " + a.Order.ProcedureText
	}
	if a.Study.StudyDescription != "" {
		return "AI analysis: " + a.Study.StudyDescription
	}
	return "AI analysis of imaging study"
}

// conclusion is the analysis summary, else a sentence built from the findings.
func conclusion(a *mappings.Analysis) string {
	if a.Status == mappings.StatusWithdrawn {
		return "Withdrawn: this AI result was retracted and must not be used."
	}
	if a.Summary != "" {
		return a.Summary
	}
	return findingsSentence(a)
}

func findingsSentence(a *mappings.Analysis) string {
	pos := a.Positive()
	if len(pos) == 0 {
		if len(a.Findings) == 0 {
			return "No AI findings."
		}
		return "No AI finding present."
	}
	parts := make([]string, 0, len(pos))
	for _, f := range pos {
		name := f.Code.Display
		if name == "" {
			name = f.Code.Code
		}
		parts = append(parts, fmt.Sprintf("%s (confidence %s)", name, strconv.FormatFloat(f.Confidence, 'f', 2, 64)))
	}
	return "AI findings present: " + strings.Join(parts, "; ") + "."
}

// alertText is the Communication's message.
func alertText(a *mappings.Analysis) string {
	var b strings.Builder
	b.WriteString("AI alert")
	if a.Priority != "" {
		b.WriteString(" (" + strings.ToUpper(a.Priority) + ")")
	}
	b.WriteString(": ")
	b.WriteString(findingsSentence(a))
	if acc := a.Accession(); acc != "" {
		b.WriteString(" Accession " + acc + ".")
	}
	if a.Status == mappings.StatusCorrected {
		b.WriteString(" Corrected result.")
	}
	b.WriteString(" Preliminary, not verified by a radiologist.")
	return b.String()
}

func str(s string) *d.String { return &d.String{Value: s} }
func uri(s string) *d.Uri    { return &d.Uri{Value: s} }
func code(s string) *d.Code  { return &d.Code{Value: s} }

func coding(system, cd, display string) *d.Coding {
	out := &d.Coding{System: uri(system), Code: code(cd)}
	if display != "" {
		out.Display = str(display)
	}
	return out
}

func ident(system, value string) *d.Identifier {
	return &d.Identifier{System: uri(system), Value: str(value)}
}

// typedIdent is an identifier with a v2-0203 type (MR, ACSN, PLAC); system may be empty.
func typedIdent(typ, system, value string) *d.Identifier {
	id := &d.Identifier{
		Type:  &d.CodeableConcept{Coding: []*d.Coding{coding(SystemIdentifierType, typ, "")}},
		Value: str(value),
	}
	if system != "" {
		id.System = uri(system)
	}
	return id
}

func cloneRef(r *d.Reference) *d.Reference { return proto.Clone(r).(*d.Reference) }
