// Package mappings turns what Osprey learned about a study into the messages receiving
// systems understand. Each sub-package is one pure mapping from an [Analysis] (the
// reconciled AI results of one study, with the study and its order context) and a site
// profile to one message: mappings/oru builds the ORU^R01 a RIS takes, mappings/fhir the FHIR
// R4 resources an EHR takes, mappings/sr the DICOM Structured Report a PACS takes.
//
// Mappings do no I/O and keep no state: the same Analysis and profile always give the same
// bytes, which is what makes a redelivery the same message (MSH-10, FHIR conditional
// creates and the SR's SOP Instance UID all derive from the analysis id and its revision).
package mappings

import (
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// ContentType is the engine content type of a message whose body is the JSON of an Analysis.
const ContentType = "application/vnd.osprey.analysis+json"

// Analysis statuses: what the receiving system is to do with the result.
const (
	// StatusPreliminary is a new AI result, not verified by a radiologist (ORU OBR-25 "P",
	// FHIR "preliminary", SR VerificationFlag UNVERIFIED).
	StatusPreliminary = "preliminary"
	// StatusCorrected replaces an earlier revision of the same analysis (OBR-25 "C",
	// FHIR "amended").
	StatusCorrected = "corrected"
	// StatusWithdrawn retracts an earlier revision (OBX-11 "W", FHIR "entered-in-error").
	StatusWithdrawn = "withdrawn"
)

// Analysis is the reconciled outcome of every plugin that ran on one study: the input of every
// mapping.
type Analysis struct {
	// ID is stable for the study message the analysis is about (it is that message's id).
	ID string `json:"id"`
	// Revision is 1 for the first result sent and counts up with each correction or
	// withdrawal; identifiers derived for receivers combine ID and Revision.
	Revision int    `json:"revision"`
	Status   string `json:"status"` // StatusPreliminary, StatusCorrected or StatusWithdrawn
	Channel  string `json:"channel"`
	// Priority is what the result rules decided: protocol.PriorityStat, PriorityUrgent or
	// PriorityRoutine; "" leaves the order's priority as it is (silent and notify modes).
	Priority string `json:"priority,omitempty"`
	// Rules names the result rules that matched, for the audit trail and NTE text.
	Rules []string `json:"rules,omitempty"`
	// Study is the study as Osprey received it, with its patient attributes (the real ones:
	// mappings go to clinical systems, not to plugins).
	Study dicom.StudySummary `json:"study"`
	// Order is the order context joined by accession number; nil when none was found.
	Order *Order `json:"order,omitempty"`
	// Findings are the findings of every completed result, merged, each with its provenance.
	Findings []Finding `json:"findings"`
	// Results are the plugins' results as received (completed, failed or not applicable),
	// one per plugin that answered.
	Results []protocol.Result `json:"results"`
	// Summary joins the results' summaries, one line per plugin.
	Summary string `json:"summary,omitempty"`
	// CreatedAt is when the analysis was reconciled; mappings use it as the observation and
	// message time so a resend is byte-identical.
	CreatedAt time.Time `json:"created_at"`
}

// Finding is one finding of one plugin's result, with where it came from.
type Finding struct {
	protocol.Finding
	Plugin string         `json:"plugin"`
	JobID  string         `json:"job_id"`
	Model  protocol.Model `json:"model"`
}

// Order is the order context of the study, as the RIS described it (HL7 conventions).
type Order struct {
	Accession         string `json:"accession"`
	PlacerOrderNumber string `json:"placer_order_number,omitempty"`
	FillerOrderNumber string `json:"filler_order_number,omitempty"`
	PatientID         string `json:"patient_id,omitempty"`         // the MRN, PID-3.1
	PatientName       string `json:"patient_name,omitempty"`       // "DOE^JANE"
	PatientSex        string `json:"patient_sex,omitempty"`        // HL7 table 0001
	PatientBirthDate  string `json:"patient_birth_date,omitempty"` // YYYYMMDD
	// PatientIDAuthority is the MRN's assigning authority (PID-3.4.1), PatientClass the
	// visit's class (PV1-2, HL7 table 0004): what the order said, for results to say again.
	PatientIDAuthority string    `json:"patient_id_authority,omitempty"`
	PatientClass       string    `json:"patient_class,omitempty"`
	Priority           string    `json:"priority,omitempty"`          // the order's code: S, A, R...
	OrderingProvider   string    `json:"ordering_provider,omitempty"` // "1234^SMITH^JANE"
	Location           string    `json:"location,omitempty"`          // PV1-3.1
	ProcedureCode      string    `json:"procedure_code,omitempty"`    // OBR-4.1
	ProcedureText      string    `json:"procedure_text,omitempty"`    // OBR-4.2
	Reason             string    `json:"reason,omitempty"`
	OrderedAt          time.Time `json:"ordered_at,omitzero"`
}

// Positive returns the findings reported present, in order.
func (a *Analysis) Positive() []Finding {
	var out []Finding
	for _, f := range a.Findings {
		if f.Present {
			out = append(out, f)
		}
	}
	return out
}

// PatientID returns the MRN: the order's, else the study's.
func (a *Analysis) PatientID() string {
	if a.Order != nil && a.Order.PatientID != "" {
		return a.Order.PatientID
	}
	return a.Study.PatientID
}

// Accession returns the accession number: the study's, else the order's.
func (a *Analysis) Accession() string {
	if a.Study.AccessionNumber != "" {
		return a.Study.AccessionNumber
	}
	if a.Order != nil {
		return a.Order.Accession
	}
	return ""
}
