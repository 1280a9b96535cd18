package fhir

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
	schemaPath string
)

// schemaFile is the R4 JSON schema of the shared test corpus (OSPREY_CORPUS, default
// engine/fhir/testdata/corpus), or "" when it is absent and not required.
func schemaFile(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OSPREY_CORPUS")
	if dir == "" {
		dir = "../../engine/fhir/testdata/corpus"
	}
	path := filepath.Join(dir, "fhir", "schema", "fhir.schema.json")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("R4 JSON schema: %v (set OSPREY_CORPUS)", err)
		}
		return ""
	}
	return path
}

// r4Schema compiles the FHIR R4 JSON schema once per test binary: it is 3 MB. It returns
// nil when the schema is absent and not required.
func r4Schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := schemaFile(t)
	if path == "" {
		return nil
	}
	schemaOnce.Do(func() {
		schemaPath = path
		data, err := os.ReadFile(path)
		if err != nil {
			schemaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		const loc = "http://hl7.org/fhir/json-schema/4.0"
		if err := c.AddResource(loc, doc); err != nil {
			schemaErr = err
			return
		}
		schema, schemaErr = c.Compile(loc)
	})
	if schemaErr != nil {
		t.Fatalf("compile the R4 JSON schema %s: %v", schemaPath, schemaErr)
	}
	return schema
}

// schemaValid fails t unless data validates against the R4 JSON schema. Without the
// corpus it checks nothing and says so: the google/fhir/go validation around it still runs.
func schemaValid(t *testing.T, what string, data []byte) {
	t.Helper()
	sch := r4Schema(t)
	if sch == nil {
		t.Logf("R4 JSON schema not found (set OSPREY_CORPUS): %s not checked against it", what)
		return
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s does not match the R4 JSON schema: %v\n%s", what, err, data)
	}
}

func TestSchemaRejects(t *testing.T) {
	// The schema check must be able to fail, or passing it proves nothing.
	sch := r4Schema(t)
	if sch == nil {
		t.Skip("R4 JSON schema not found (set OSPREY_CORPUS)")
	}
	for name, in := range map[string]string{
		"bad status":    `{"resourceType":"DiagnosticReport","status":"done","code":{"text":"x"}}`,
		"unknown field": `{"resourceType":"Observation","status":"final","code":{"text":"x"},"foo":1}`,
		"no type":       `{"status":"final"}`,
	} {
		t.Run(name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(in)))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); err == nil {
				t.Errorf("the R4 schema accepted %s", in)
			}
		})
	}
}
