package fhir

import (
	"errors"
	"slices"

	codec "github.com/osprey-health/osprey/engine/fhir"
)

// outcomeText returns the issues of an OperationOutcome as one line, errors first (the line
// is cut short in lists, and the error is what the analyst needs), and whether body was an
// OperationOutcome at all.
func outcomeText(body []byte) (string, bool) {
	o, err := codec.ParseOperationOutcome(body)
	if err != nil {
		return "", false
	}
	if len(o.Issues) == 0 {
		return "", true
	}
	serious := func(is codec.Issue) bool { return is.Severity == "error" || is.Severity == "fatal" }
	slices.SortStableFunc(o.Issues, func(a, b codec.Issue) int {
		switch {
		case serious(a) && !serious(b):
			return -1
		case serious(b) && !serious(a):
			return 1
		}
		return 0
	})
	return o.String(), true
}

// outcomeOf is the OperationOutcome answering err: one issue per validation issue when err
// is a *codec.ValidationError, else one issue of the given IssueType.
func outcomeOf(code string, err error) []byte {
	var ve *codec.ValidationError
	if errors.As(err, &ve) && len(ve.Issues) > 0 {
		return codec.OperationOutcomeOf(err)
	}
	return codec.NewOperationOutcome("error", code, err.Error())
}
