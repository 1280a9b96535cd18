package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Outcome is an OperationOutcome as a FHIR server returns it, read leniently: servers are
// not always conformant, and an error report is worth reading even when it is not.
type Outcome struct {
	Issues []Issue
}

// ParseOperationOutcome reads an OperationOutcome. It fails only when data is not JSON or is
// another resource type; unknown members are ignored. An issue's diagnostics fall back to
// details.text when the server gives only that.
func ParseOperationOutcome(data []byte) (*Outcome, error) {
	var raw struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity    string   `json:"severity"`
			Code        string   `json:"code"`
			Diagnostics string   `json:"diagnostics"`
			Expression  []string `json:"expression"`
			Location    []string `json:"location"`
			Details     *struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("fhir: operation outcome: %w", err)
	}
	if raw.ResourceType != "OperationOutcome" {
		return nil, fmt.Errorf("fhir: expected an OperationOutcome but found resourceType %q", raw.ResourceType)
	}
	o := &Outcome{}
	for _, in := range raw.Issue {
		is := Issue{Severity: in.Severity, Code: in.Code, Diagnostics: in.Diagnostics, Expression: in.Expression}
		if is.Diagnostics == "" && in.Details != nil {
			is.Diagnostics = in.Details.Text
		}
		if len(is.Expression) == 0 {
			// location is deprecated in R4 but older servers still send only it.
			is.Expression = in.Location
		}
		o.Issues = append(o.Issues, is)
	}
	return o, nil
}

// HasErrors reports whether any issue is fatal or an error.
func (o *Outcome) HasErrors() bool {
	for _, is := range o.Issues {
		if is.Severity == "fatal" || is.Severity == "error" {
			return true
		}
	}
	return false
}

// String returns the issues on one line, "; "-separated, for error texts and logs.
func (o *Outcome) String() string {
	if o == nil || len(o.Issues) == 0 {
		return "no issues"
	}
	parts := make([]string, len(o.Issues))
	for i, is := range o.Issues {
		parts[i] = is.String()
	}
	return strings.Join(parts, "; ")
}

// Err returns the outcome as an error when it has errors, else nil.
func (o *Outcome) Err() error {
	if o == nil || !o.HasErrors() {
		return nil
	}
	return errors.New("fhir: operation outcome: " + o.String())
}

// NewOperationOutcome returns the JSON of an OperationOutcome with one issue. severity is an
// IssueSeverity (fatal, error, warning, information), code an IssueType (invalid, required,
// processing, exception, not-found, duplicate…); both are taken as given, so pass valid
// codes. The result is what a FHIR source answers a client with.
func NewOperationOutcome(severity, code, text string) []byte {
	type issue struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics,omitempty"`
	}
	o := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []issue `json:"issue"`
	}{"OperationOutcome", []issue{{severity, code, text}}}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		// Only strings are encoded: this cannot fail.
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// OperationOutcomeOf returns the OperationOutcome JSON of an error: one issue per issue of a
// *ValidationError, else one "exception" issue with the error's text.
func OperationOutcomeOf(err error) []byte {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return NewOperationOutcome("error", "exception", err.Error())
	}
	o := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []Issue `json:"issue"`
	}{"OperationOutcome", ve.Issues}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
