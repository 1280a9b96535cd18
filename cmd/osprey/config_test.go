package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

// The committed reference must be what this build renders; connectors change it as they
// add fields, and the fix is always the same command.
func TestCommittedDocsAreCurrent(t *testing.T) {
	tests := []struct {
		file    string
		command string
		render  func(*bytes.Buffer) error
	}{
		{"../../docs/config.md", "config docs", func(b *bytes.Buffer) error { return renderDocs(b, engine.Global) }},
		{"../../docs/config.schema.json", "config schema", func(b *bytes.Buffer) error {
			return spec.RenderJSONSchema(b, "Osprey configuration file", config.FileSpec(engine.Global))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.render(&b); err != nil {
				t.Fatal(err)
			}
			committed, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatalf("%v: run `make docs` to generate it", err)
			}
			if got := b.String(); got != string(committed) {
				name := strings.TrimPrefix(tt.file, "../../")
				t.Errorf("%s is stale: %s. Run `make docs` (or `go run ./cmd/osprey %s > %s`) and commit the result; "+
					"`go run ./cmd/osprey %s | diff %s -` shows the change.",
					name, firstDifference(string(committed), got), tt.command, name, tt.command, name)
			}
		})
	}
}

// firstDifference describes the first line where two texts differ.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d is %q in the file, %q rendered", i+1, x, y)
		}
	}
	return "they differ"
}

func TestConfigCommands(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"config", "docs"}, []string{"# Configuration reference", `<a id="source.mllp"></a>`, `<a id="config.channel"></a>`, `<a id="transform.set"></a>`}},
		{[]string{"config", "schema"}, []string{`"$schema": "https://json-schema.org/draft/2020-12/schema"`, `"destination.mllp"`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runCLI(t.Context(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, tt.args)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %s", w)
				}
			}
		})
	}
}

// Every declaration this binary ships must be sound (defaults of the right type, unique
// names) and every example it documents must pass its own spec: the docs show them.
func TestComponentDeclarations(t *testing.T) {
	comps := engine.Global.Components()
	for _, c := range rules.Steps() {
		c.Kind = spec.KindTransform
		comps = append(comps, c)
	}
	for _, c := range comps {
		t.Run(c.ID(), func(t *testing.T) {
			if err := spec.Check(c); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		for _, c := range config.Sections(engine.Global) {
			if err := spec.Check(c); err != nil {
				t.Error(err)
			}
		}
	})
}

// The YAML block the reference shows for a component must load as it is, apart from checks
// of a field's own (a placeholder address may be refused by its lint).
func TestComponentSkeletonsParse(t *testing.T) {
	comps := engine.Global.Components()
	for _, c := range rules.Steps() {
		c.Kind = spec.KindTransform
		comps = append(comps, c)
	}
	for _, c := range comps {
		t.Run(c.ID(), func(t *testing.T) {
			y := spec.Skeleton(c.Fields)
			_, lints := spec.ParseYAML(y, c.Fields)
			for _, l := range lints {
				if l.Type != spec.LintLint && l.Type != spec.LintExpr {
					t.Errorf("%s\n%s", l, y)
				}
			}
		})
	}
}

// The schema editors use must accept a configuration the loader accepts.
func TestSchemaAcceptsValidConfig(t *testing.T) {
	var b bytes.Buffer
	if err := spec.RenderJSONSchema(&b, "osprey", config.FileSpec(engine.Global)); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("osprey.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("osprey.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file  string
		valid bool
	}{{"testdata/validate/good.yaml", true}, {"testdata/validate/broken.yaml", false}} {
		t.Run(tt.file, func(t *testing.T) {
			src, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := yaml.Unmarshal(src, &v); err != nil {
				t.Fatal(err)
			}
			js, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); (err == nil) != tt.valid {
				t.Errorf("Validate = %v, want valid=%v", err, tt.valid)
			}
		})
	}
}
