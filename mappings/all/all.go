// Package all registers every mapping with the engine's global registry, the way
// channels/all registers the connectors: cmd/osprey and tests import it for its side effect.
// The mapping packages themselves stay pure functions that know nothing of the engine; this
// room is where their site profiles become configuration.
package all

import (
	"errors"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/mappings/fhir"
	"github.com/osprey-health/osprey/mappings/oru"
	"github.com/osprey-health/osprey/mappings/sr"
)

func init() {
	engine.RegisterMapping(oruSpec(), newORU)
	engine.RegisterMapping(fhirSpec(), newFHIR)
	engine.RegisterMapping(srSpec(), newSR)
}

// mapper adapts a mapping function to engine.Mapping.
type mapper struct {
	contentType string
	fn          func(a *mappings.Analysis) ([]byte, error)
}

func (m mapper) Map(a *mappings.Analysis) ([]byte, string, error) {
	b, err := m.fn(a)
	return b, m.contentType, err
}

func oruSpec() spec.Component {
	return spec.Component{
		Name:    "oru",
		Summary: "AI analysis to an HL7 ORU^R01 for the RIS (docs/mapping-oru.md).",
		Description: "One ORU^R01 per analysis: PID/PV1 from the order context, ORC/OBR of the order with the " +
			"priority where the profile puts it, an OBX group per finding (coded finding, confidence, measurements, " +
			"model), and an NTE saying the content is AI-generated and unverified. MSH-10 derives from the analysis " +
			"id and revision, so a resend is the same message. Pair it with the mllp destination.",
		Fields: []spec.Field{
			spec.NewString("profile", "Site profile: HL7 version and where the priority goes.").
				WithEnum(oru.ProfileNames()...).WithDefault("2.5.1-tq1"),
			spec.NewString("sending_application", "MSH-3.1.").WithDefault(oru.DefaultApplication),
			spec.NewString("sending_facility", "MSH-4.1.").WithDefault(""),
			spec.NewString("receiving_application", "MSH-5.1.").WithDefault("").WithExamples("RIS"),
			spec.NewString("receiving_facility", "MSH-6.1.").WithDefault(""),
			spec.NewString("processing_id", "MSH-11: P production, T training, D debugging.").
				WithEnum("P", "T", "D").WithDefault(oru.DefaultProcessingID),
			spec.NewString("time_zone", "IANA zone message and observation times are written in, with their offset.").
				WithDefault("UTC").WithExamples("Europe/London").WithLint(lintZone),
			spec.NewString("patient_id_authority", "PID-3.4, the assigning authority of the MRN, when the order gave none.").WithDefault(""),
			spec.NewString("patient_class", "PV1-2 when the order gave none (U is unknown).").WithDefault(oru.DefaultPatientClass),
			spec.NewString("accession_field", "OBR field that carries the accession number besides ORC-3/OBR-3.").
				WithEnum("OBR-18", "OBR-19", "OBR-20", "OBR-21").WithDefault(oru.DefaultAccessionField),
			spec.NewString("disclaimer", "Text of the first NTE; empty keeps the default.").WithDefault(""),
		},
	}
}

func lintZone(v any) error {
	if _, err := time.LoadLocation(v.(string)); err != nil {
		return fmt.Errorf("unknown time zone %q", v)
	}
	return nil
}

func newORU(p *spec.Parsed) (engine.Mapping, error) {
	prof, err := oru.ProfileByName(p.String("profile"))
	if err != nil {
		return nil, err
	}
	prof.SendingApplication = p.String("sending_application")
	prof.SendingFacility = p.String("sending_facility")
	prof.ReceivingApplication = p.String("receiving_application")
	prof.ReceivingFacility = p.String("receiving_facility")
	prof.ProcessingID = p.String("processing_id")
	prof.PatientIDAuthority = p.String("patient_id_authority")
	prof.PatientClass = p.String("patient_class")
	prof.AccessionField = p.String("accession_field")
	prof.Disclaimer = p.String("disclaimer")
	if prof.TimeZone, err = time.LoadLocation(p.String("time_zone")); err != nil {
		return nil, err
	}
	if err := prof.Validate(); err != nil {
		return nil, err
	}
	return mapper{contentType: engine.ContentHL7v2, fn: func(a *mappings.Analysis) ([]byte, error) { return oru.Map(a, prof) }}, nil
}

func fhirSpec() spec.Component {
	ids := []spec.Field{
		spec.NewString("patient", "System of the MRN; the patient is found as Patient?identifier=<system>|<MRN>.").
			WithDefault(fhir.DefaultPatientSystem).WithExamples("urn:oid:1.2.3.4.5"),
		spec.NewString("accession", "System of the accession number.").WithDefault(fhir.DefaultAccessionSystem),
		spec.NewString("report", "System of the DiagnosticReport identifier.").WithDefault(fhir.DefaultReportSystem),
		spec.NewString("observation", "System of Observation identifiers.").WithDefault(fhir.DefaultObservationSystem),
		spec.NewString("communication", "System of alert identifiers.").WithDefault(fhir.DefaultCommunicationSystem),
		spec.NewString("device", "System of a model's identifier when it has no device UID.").WithDefault(fhir.DefaultDeviceSystem),
	}
	return spec.Component{
		Name:    "fhir",
		Summary: "AI analysis to FHIR R4 resources for the EHR (docs/mapping-fhir.md).",
		Description: "A transaction Bundle: a Device per model, the ImagingStudy, an Observation per finding, a " +
			"preliminary DiagnosticReport, and a Communication alert when the policy says; every create is " +
			"conditional on a business identifier, so the EHR never files a result twice. Validated with " +
			"google/fhir/go before it leaves. Pair it with the fhir destination.",
		Fields: []spec.Field{
			spec.NewObject("identifiers", "Identifier systems (URIs) of the output.", ids...),
			spec.NewStrings("recipients", "Alert recipients as FHIR references.").
				AsOptional().WithExamples([]any{"PractitionerRole/ed-team"}),
			spec.NewString("viewer_url", "Deep link to the study, attached to the alert; placeholders {StudyInstanceUID}, "+
				"{AccessionNumber}, {PatientID}, {AnalysisID}.").
				WithDefault("").WithExamples("https://viewer.example/study/{StudyInstanceUID}"),
			spec.NewString("alert", "When a Communication is made: `priority` (stat or urgent), `positive` (any finding "+
				"present) or `never`.").WithEnum(fhir.AlertPriority, fhir.AlertPositive, fhir.AlertNever).WithDefault(fhir.AlertPriority),
			spec.NewString("imaging_study", "`create` an ImagingStudy if the EHR has none, `reference` the EHR's own, or "+
				"refer by `identifier` only.").WithEnum(fhir.StudyCreate, fhir.StudyReference, fhir.StudyIdentifier).
				WithDefault(fhir.StudyCreate),
			spec.NewString("time_zone", "IANA zone of the modality's StudyDate/StudyTime; empty writes dates only.").
				WithDefault(""),
		},
	}
}

func newFHIR(p *spec.Parsed) (engine.Mapping, error) {
	ip := p.Object("identifiers")
	prof := fhir.Profile{
		Identifiers: fhir.Identifiers{Patient: ip.String("patient"), Accession: ip.String("accession"),
			Report: ip.String("report"), Observation: ip.String("observation"),
			Communication: ip.String("communication"), Device: ip.String("device")},
		Recipients: p.Strings("recipients"), ViewerURL: p.String("viewer_url"), Alert: p.String("alert"),
		Mode: fhir.ModeBundle, ImagingStudy: p.String("imaging_study"), TimeZone: p.String("time_zone"),
	}
	m, err := fhir.New(prof)
	if err != nil {
		return nil, err
	}
	return mapper{contentType: fhir.ContentType, fn: m.Map}, nil
}

func srSpec() spec.Component {
	return spec.Component{
		Name:    "sr",
		Summary: "AI analysis to a DICOM Comprehensive 3D SR (TID 1500) for the PACS (docs/mapping-sr.md).",
		Description: "One SR per analysis revision in the study's own Study Instance UID, a new series, with the " +
			"algorithm as observer device, an Image Library of the source images and a measurement group per " +
			"finding; VerificationFlag UNVERIFIED. Its SOP Instance UID derives from the analysis id and revision, " +
			"so a resend is the same instance. A withdrawn analysis sends nothing (no SR retracts another). Pair it " +
			"with the dicomweb destination.",
		Fields: []spec.Field{
			spec.NewString("uid_root", "Your organisation's UID root for the SR's UIDs; empty derives UUID-based UIDs "+
				"under 2.25.").WithDefault("").WithExamples("1.2.826.0.1.3680043.10.999"),
			spec.NewString("institution", "InstitutionName of the equipment that wrote the SR; empty takes the study's.").
				WithDefault(""),
			spec.NewInt("series_number", "SeriesNumber of the SR series.").WithDefault(sr.DefaultSeriesNumber),
			spec.NewString("series_description", "SeriesDescription of the SR series.").WithDefault(sr.DefaultSeriesDescription),
			spec.NewString("language", "RFC 5646 language of the report.").WithDefault(sr.DefaultLanguage),
			spec.NewString("procedure_scheme", "Coding scheme designator of the RIS's procedure codes (e.g. 99RIS); when "+
				"set, the order's code becomes the requested and performed procedure.").WithDefault(""),
			spec.NewString("time_zone", "IANA zone of ContentDate and ContentTime.").
				WithDefault("UTC").WithLint(lintZone),
		},
	}
}

func newSR(p *spec.Parsed) (engine.Mapping, error) {
	prof := sr.Profile{UIDRoot: p.String("uid_root"), Institution: p.String("institution"),
		SeriesNumber: p.Int("series_number"), SeriesDescription: p.String("series_description"),
		Language: p.String("language"), ProcedureScheme: p.String("procedure_scheme")}
	var err error
	if prof.Location, err = time.LoadLocation(p.String("time_zone")); err != nil {
		return nil, err
	}
	if _, _, err := sr.UIDs("check", 1, prof); err != nil {
		return nil, err
	}
	return mapper{contentType: "application/dicom", fn: func(a *mappings.Analysis) ([]byte, error) {
		b, err := sr.Map(a, prof)
		if errors.Is(err, sr.ErrWithdrawn) || errors.Is(err, sr.ErrNoFindings) {
			return nil, fmt.Errorf("%w: %v", engine.ErrNothingToSend, err)
		}
		return b, err
	}}, nil
}
