// Package protocol is the versioned JSON protocol between Osprey and its AI plugins.
//
// Osprey publishes a [Job] for each plugin a routing rule selects; the plugin fetches the
// study's pixels over DICOMweb with the job's short-lived token, may publish [Progress]
// heartbeats while it works, and answers with one [Result]. Every message carries
// "protocol": [Version]. The messages travel over NATS on the subjects and streams named in
// this package ([JobsStream], [ResultsSubject], [ProgressSubject] and the rest); plugins are
// discovered through the NATS micro framework.
//
// The package holds the Go types, the JSON Schema they obey (embedded, see [Schema]), the
// schema validators ([ValidateJob], [ValidateResult], [ValidateProgress]) and the semantic
// checks a schema cannot express ([CheckResult]). docs/plugins.md describes the same protocol
// for model teams writing plugins in any language.
//
// Compatibility: within v1 changes are additive only (new optional fields, new error codes).
// Readers must ignore job fields they do not know; results are validated strictly, so a
// plugin must not send fields this version does not define.
package protocol

import (
	"time"
)

// Version identifies this protocol; it is the value of the "protocol" member of every message.
const Version = "osprey.ai/v1"

// Job asks one plugin to analyse one study. The engine creates it; the plugin only reads it.
type Job struct {
	Protocol string `json:"protocol"`
	// JobID is unique per job (across attempts it stays the same). It is a single NATS
	// subject token (see [ValidJobID]) since progress subjects embed it.
	JobID  string `json:"job_id"`
	Plugin string `json:"plugin"`
	Study  Study  `json:"study"`
	// Patient is pseudonymised before it leaves Osprey: no name, no MRN, no birth date.
	Patient Patient `json:"patient"`
	// Order is the order context known for the study's accession, when there is one.
	Order    *Order   `json:"order,omitempty"`
	DICOMweb DICOMweb `json:"dicomweb"`
	// Deadline is when the engine stops waiting; a result after it is recorded as late.
	Deadline time.Time `json:"deadline"`
	// Attempt counts engine-level attempts from 1. A JetStream redelivery of the same job
	// message (for instance after a plugin instance died) keeps the same attempt.
	Attempt int `json:"attempt"`
}

// Study is the imaging study a job is about, with the instances the plugin may fetch.
type Study struct {
	StudyInstanceUID string   `json:"study_instance_uid"`
	AccessionNumber  string   `json:"accession_number,omitempty"`
	Modality         string   `json:"modality,omitempty"`  // DICOM code, e.g. "CT"
	BodyPart         string   `json:"body_part,omitempty"` // DICOM Body Part Examined, e.g. "HEAD"
	StudyDescription string   `json:"study_description,omitempty"`
	Series           []Series `json:"series"`
}

// Series is one series of a study.
type Series struct {
	SeriesInstanceUID string     `json:"series_instance_uid"`
	Modality          string     `json:"modality,omitempty"`
	SeriesDescription string     `json:"series_description,omitempty"`
	Instances         []Instance `json:"instances"`
}

// Instance is one SOP instance of a series.
type Instance struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	SOPClassUID    string `json:"sop_class_uid,omitempty"`
	InstanceNumber int    `json:"instance_number,omitempty"`
	// Frames is the number of frames; 0 (absent) means a single-frame instance.
	Frames int `json:"frames,omitempty"`
}

// Patient is the pseudonymised patient context of a job.
type Patient struct {
	// PseudoID is stable for one patient within one Osprey installation and means nothing
	// outside it.
	PseudoID string `json:"pseudo_id"`
	Sex      string `json:"sex,omitempty"` // DICOM Patient's Sex: "F", "M", "O"; empty when unknown
	// AgeYears is the age in whole years at the time of the study (0 for infants); nil
	// when unknown.
	AgeYears *int `json:"age_years,omitempty"`
}

// Order priorities, as the engine normalises them from HL7 or FHIR.
const (
	PriorityStat    = "stat"
	PriorityUrgent  = "urgent"
	PriorityRoutine = "routine"
)

// Order is the order context of a study.
type Order struct {
	Accession     string `json:"accession,omitempty"`
	Priority      string `json:"priority,omitempty"` // PriorityStat, PriorityUrgent or PriorityRoutine
	Location      string `json:"location,omitempty"` // patient location, e.g. "ED"
	ProcedureCode string `json:"procedure_code,omitempty"`
	ProcedureText string `json:"procedure_text,omitempty"`
	Reason        string `json:"reason,omitempty"` // reason for study, free text
}

// DICOMweb tells the plugin where to fetch the study and with which credential.
type DICOMweb struct {
	// BaseURL is the DICOMweb root; the study is at BaseURL + "/studies/" + StudyInstanceUID.
	BaseURL string `json:"base_url"`
	// Token is sent as "Authorization: Bearer <token>"; it is scoped to this study and
	// read-only. It is a secret: never log it.
	Token        string    `json:"token"`
	TokenExpires time.Time `json:"token_expires,omitzero"`
}

// Status is the outcome a plugin reports.
type Status string

// Result statuses.
const (
	// StatusCompleted means the model ran; Findings holds what it found (possibly nothing).
	StatusCompleted Status = "completed"
	// StatusFailed means the model could not run; Error says why.
	StatusFailed Status = "failed"
	// StatusNotApplicable means the study is outside what the model is meant for (wrong
	// modality, no suitable series); it is not an error.
	StatusNotApplicable Status = "not_applicable"
)

// Result is a plugin's answer to one job.
type Result struct {
	Protocol string `json:"protocol"`
	JobID    string `json:"job_id"`
	Plugin   string `json:"plugin"`
	Status   Status `json:"status"`
	// Error is required when Status is StatusFailed and absent otherwise.
	Error *Error `json:"error,omitempty"`
	// Model is required (name and version) when Status is StatusCompleted.
	Model    Model     `json:"model,omitzero"`
	Findings []Finding `json:"findings,omitempty"`
	Summary  string    `json:"summary,omitempty"`
	Timings  Timings   `json:"timings,omitzero"`
}

// Well-known error codes. Plugins may use others matching ^[a-z][a-z0-9_.]*$.
const (
	ErrCodeFetch    = "fetch_failed"  // the study could not be fetched over DICOMweb
	ErrCodeInput    = "invalid_input" // the pixels or metadata cannot be processed
	ErrCodeTimeout  = "timeout"       // the plugin gave up at the deadline
	ErrCodeInternal = "internal"      // a bug or resource problem in the plugin
)

// Error describes why a job failed. It implements the error interface so a handler can
// return one to choose the code.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns "code: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Model is the provenance of a result: which model, which version, made by whom.
type Model struct {
	Name         string `json:"name,omitempty"`
	Version      string `json:"version,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	// DeviceUID identifies the algorithm as a DICOM device (used in SR output).
	DeviceUID string `json:"device_uid,omitempty"`
}

// Timings records where a job's time went. Durations are whole milliseconds.
type Timings struct {
	// QueuedMS is the time from job publication to the plugin receiving it, when known.
	QueuedMS    int64     `json:"queued_ms,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	FetchMS     int64     `json:"fetch_ms,omitempty"`
	InferenceMS int64     `json:"inference_ms,omitempty"`
}

// Coding systems, as FHIR system URIs.
const (
	SystemSNOMED = "http://snomed.info/sct"
	SystemLOINC  = "http://loinc.org"
	SystemRadLex = "http://radlex.org"
	SystemDCM    = "http://dicom.nema.org/resources/ontology/DCM"
	SystemUCUM   = "http://unitsofmeasure.org"
)

// Coding is a code from a terminology.
type Coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// Lateralities of a finding's location.
const (
	LateralityLeft      = "left"
	LateralityRight     = "right"
	LateralityBilateral = "bilateral"
)

// Finding is one observation of a model, positive or negative.
type Finding struct {
	// ID is a tracking identifier, unique within the result; it becomes the tracking id of
	// the finding in SR and FHIR output, so keep it stable across runs if you can.
	ID   string `json:"id"`
	Code Coding `json:"code"` // what, e.g. SNOMED 1386000 "Intracranial hemorrhage"
	// Present distinguishes "found" from "looked for and ruled out".
	Present      bool          `json:"present"`
	Confidence   float64       `json:"confidence"` // 0..1
	Location     Location      `json:"location,omitzero"`
	Measurements []Measurement `json:"measurements,omitempty"`
	References   []Reference   `json:"references,omitempty"`
	Regions      []Region      `json:"regions,omitempty"`
}

// Location is where in the body a finding is.
type Location struct {
	Text       string  `json:"text,omitempty"`
	Code       *Coding `json:"code,omitempty"`
	Laterality string  `json:"laterality,omitempty"` // LateralityLeft, LateralityRight, LateralityBilateral or ""
}

// Measurement is a quantity measured on a finding.
type Measurement struct {
	Name  string  `json:"name"`
	Code  *Coding `json:"code,omitempty"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // UCUM, e.g. "mL", "mm", "[hnsf'U]"
}

// Reference names an instance (and optionally frames) of the job's study a finding was seen on.
type Reference struct {
	SeriesInstanceUID string `json:"series_instance_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	Frames            []int  `json:"frames,omitempty"` // 1-based frame numbers
}

// Region shapes. The point counts they take are in [Region].
const (
	ShapePoint    = "point"
	ShapePolyline = "polyline"
	ShapePolygon  = "polygon"
	ShapeEllipse  = "ellipse"
	ShapeBBox     = "bbox"
)

// Region outlines a finding on one frame of one instance, in pixel coordinates as DICOM SR
// SCOORD uses them: x is the column, y the row, the top-left corner of the top-left pixel is
// (0,0) and its centre (0.5,0.5).
//
// Points holds x,y pairs: one pair for a point; two or more for a polyline; three or more
// for a polygon (closed implicitly, do not repeat the first point); four for an ellipse
// (the ends of the major axis, then of the minor axis); two for a bbox (top-left then
// bottom-right corner).
type Region struct {
	SOPInstanceUID string    `json:"sop_instance_uid"`
	Frame          int       `json:"frame,omitempty"` // 1-based; 0 (absent) for single-frame instances
	Shape          string    `json:"shape"`
	Points         []float64 `json:"points"`
}

// Progress is a heartbeat a plugin publishes while it works on a long job.
type Progress struct {
	Protocol string    `json:"protocol"`
	JobID    string    `json:"job_id"`
	Plugin   string    `json:"plugin"`
	Percent  float64   `json:"percent"` // 0..100
	Message  string    `json:"message,omitempty"`
	At       time.Time `json:"at"`
}
