package protocol

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSchemaMatchesTypes keeps the Go types and the schema in step: each type's JSON members
// are exactly its $def's properties, and a member the schema requires is never omitted by Go.
func TestSchemaMatchesTypes(t *testing.T) {
	var doc struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema, &doc); err != nil {
		t.Fatal(err)
	}
	types := map[string]any{
		"job": Job{}, "study": Study{}, "series": Series{}, "instance": Instance{}, "patient": Patient{},
		"order": Order{}, "dicomweb": DICOMweb{}, "result": Result{}, "error": Error{}, "model": Model{},
		"timings": Timings{}, "finding": Finding{}, "coding": Coding{}, "location": Location{},
		"measurement": Measurement{}, "reference": Reference{}, "region": Region{}, "progress": Progress{},
	}
	for def, v := range types {
		t.Run(def, func(t *testing.T) {
			d, ok := doc.Defs[def]
			if !ok {
				t.Fatalf("schema has no $defs/%s", def)
			}
			rt := reflect.TypeOf(v)
			var goNames []string
			for i := range rt.NumField() {
				name, opts, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				goNames = append(goNames, name)
				omitted := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
				if required := slices.Contains(d.Required, name); required == omitted {
					t.Errorf("%s.%s: schema required=%v but Go omits when empty=%v", rt.Name(), name, required, omitted)
				}
			}
			var schemaNames []string
			for name := range d.Properties {
				schemaNames = append(schemaNames, name)
			}
			slices.Sort(goNames)
			slices.Sort(schemaNames)
			if !slices.Equal(goNames, schemaNames) {
				t.Errorf("%s members %v, schema $defs/%s properties %v", rt.Name(), goNames, def, schemaNames)
			}
		})
	}
}
