// Package fhir is Osprey's FHIR R4 codec: JSON to and from the google/fhir/go R4 protos,
// validation with that library's validator, Bundle entries and responses, and the
// OperationOutcome a FHIR server answers with when it refuses something. It imports nothing
// of Osprey, so sources, destinations and mappings share one notion of "valid R4".
//
// API (final; channels/fhir and mappings/fhir build on it, changes will be additive only):
//
//	const MediaType = "application/fhir+json"
//	Unmarshal(data) (proto.Message, error)          // validating; the resource itself, e.g. *DiagnosticReport
//	UnmarshalContained(data) (*ContainedResource, error)
//	Wrap(m) (*ContainedResource, error); Unwrap(cr) (proto.Message, error)
//	Marshal(m) ([]byte, error)                      // resource or ContainedResource; compact, members sorted
//	MarshalIndent(m) ([]byte, error)
//	Validate(data) (resourceType string, err error) // google/fhir/go validation of JSON
//	ValidateMessage(m) error                        // the same on a proto built in Go
//	ResourceType(data) (string, error)              // reads "resourceType" only
//	References(data) ([]string, error)              // every Reference.reference
//	RewriteReferences(data, map[old]new) ([]byte, error) // e.g. urn:uuid:… → Observation/123
//	Entries(bundle) ([]Entry, error)                // a Bundle's entries: fullUrl, request, resource JSON
//	ParseBundleResponse(data) ([]EntryResponse, error) // transaction-/batch-response: status, location, etag, outcome
//	ParseOperationOutcome(data) (*Outcome, error)   // lenient; (*Outcome).String, .Err, .HasErrors
//	NewOperationOutcome(severity, code, text) []byte
//	OperationOutcomeOf(err) []byte                  // a *ValidationError's issues, else one "exception"
//
// Errors from Unmarshal, Validate and ValidateMessage are *ValidationError. Each one names
// the resource type, and for every issue it gives the element (a FHIRPath-like expression
// such as "DiagnosticReport.status"), an IssueType code (invalid, required, structure) and
// what is wrong. It never includes the element's value, which may be PHI.
//
// Unmarshal returns the resource rather than the library's ContainedResource wrapper,
// because callers want to type-switch on *diagnostic_report_go_proto.DiagnosticReport, not
// on a oneof.
package fhir
