package fhir_test

import (
	"fmt"

	"github.com/osprey-health/osprey/engine/fhir"
)

func ExampleValidate() {
	_, err := fhir.Validate([]byte(`{"resourceType":"DiagnosticReport","code":{"text":"CT head"}}`))
	fmt.Println(err)
	rt, err := fhir.Validate([]byte(`{"resourceType":"DiagnosticReport","status":"preliminary","code":{"text":"CT head"}}`))
	fmt.Println(rt, err)
	// Output:
	// fhir: invalid DiagnosticReport: error required at DiagnosticReport.status: required element "status" is missing
	// DiagnosticReport <nil>
}

func ExampleParseOperationOutcome() {
	o, err := fhir.ParseOperationOutcome(fhir.NewOperationOutcome("error", "duplicate", "report exists"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(o.HasErrors(), o)
	// Output:
	// true error duplicate: report exists
}
