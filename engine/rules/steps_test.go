package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/spec"
)

// stepSpec returns the declaration of a built-in step.
func stepSpec(t testing.TB, name string) spec.Component {
	t.Helper()
	for _, c := range Steps() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no step %q in Steps()", name)
	return spec.Component{}
}

// newStep parses a step's YAML config against its spec, as the config loader does, and
// builds the step.
func newStep(t testing.TB, name, conf, dir string) (Step, error) {
	t.Helper()
	parsed, lints := spec.ParseYAML(conf, stepSpec(t, name).Fields)
	if spec.HasErrors(lints) {
		return nil, spec.LintsError(lints)
	}
	return NewStep(name, parsed, dir)
}

func mustStep(t testing.TB, name, conf, dir string) Step {
	t.Helper()
	s, err := newStep(t, name, conf, dir)
	if err != nil {
		t.Fatalf("NewStep(%s, %q): %v", name, conf, err)
	}
	return s
}

func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSteps(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tables/locations.csv", "# site codes\nfrom,to,comment\nER,EMERG,emergency room\nCT1, CT-SCANNER-1 ,\n\"A,B\",quoted\n")
	writeFile(t, dir, "tables/reordered.csv", "description,to,from\nemergency,EMERG,ER\n")
	writeFile(t, dir, "tables/nohead.csv", "code,name\nER,EMERG\n")
	writeFile(t, dir, "tables/classes.yaml", "# patient class\nE: EMERGENCY\nO: OUTPATIENT\n\"01\": ONE\nX: ~\n")

	type check struct{ path, want string }
	tests := []struct {
		name   string
		step   string
		conf   string
		msg    []byte
		checks []check
		gone   []string // segment names that must not remain
	}{
		{"set constant", StepSet, "path: MSH-5\nvalue: PACS", adtA01, []check{{"MSH-5", "PACS"}, {"MSH-6", "RAD"}}, nil},
		{"set escapes delimiters", StepSet, "path: PID-5.1\nvalue: 'A|B^C~D&E\\F'", adtA01,
			[]check{{"PID-5.1", `A|B^C~D&E\F`}, {"PID-5.2", "JOHN"}, {"PID-6", ""}, {"PID-7", "19800115"}}, nil},
		{"set empty", StepSet, "path: PID-19\nvalue: ''", adtA01, []check{{"PID-19", ""}, {"PID-18", "ACC123"}}, nil},
		{"set new segment", StepSet, "path: ZOS-1\nvalue: osprey", adtA01, []check{{"ZOS-1", "osprey"}, {"ZPI-1", "custom"}}, nil},
		{"set expr", StepSet, "path: PID-5.1\nexpr: 'lower(msg.Get(\"PID-5.1\")) + \"|\" + msg.Facility'", adtA01,
			[]check{{"PID-5.1", "doe|HOSP"}, {"PID-5.2", "JOHN"}}, nil},
		{"set expr int", StepSet, "path: NTE-1\nexpr: string(msg.Count(\"NTE\") + 1)", ormO01(), []check{{"NTE-1", "3"}}, nil},
		{"set if true", StepSet, "path: MSH-5\nvalue: PACS\nif: msg.Type == \"ADT\"", adtA01, []check{{"MSH-5", "PACS"}}, nil},
		{"set if false", StepSet, "path: MSH-5\nvalue: PACS\nif: msg.Type == \"ORM\"", adtA01, []check{{"MSH-5", "RIS"}}, nil},
		{"copy", StepCopy, "from: PID-3[1].1\nto: PV1-50.1", adtA01, []check{{"PV1-50.1", "12345"}, {"PID-3[1].1", "12345"}}, nil},
		{"copy keeps delimiters as data", StepCopy, "from: OBR-4.2\nto: NTE-3", ormO01(), []check{{"NTE-3", "CT HEAD & NECK"}, {"NTE[2]-3", "second note"}}, nil},
		{"copy keeps structure", StepCopy, "from: PID-5\nto: NK1-2", adtA01, []check{{"NK1-2.1", "DOE"}, {"NK1-2.2", "JOHN"}, {"NK1-2.3", "A"}}, nil},
		{"copy repetitions", StepCopy, "from: PID-3\nto: PID-2", adtA01, []check{{"PID-2[2].4", "SSA"}, {"PID-3[2].4", "SSA"}}, nil},
		{"copy absent clears", StepCopy, "from: PV1-50\nto: PID-18", adtA01, []check{{"PID-18", ""}}, nil},
		{"delete segment", StepDelete, "path: ZPI", adtA01, []check{{"PV1-2", "E"}}, []string{"ZPI"}},
		{"delete every segment of a name", StepDelete, "path: NTE", ormO01(), []check{{"OBR-2", "ACC456"}}, []string{"NTE"}},
		{"delete one occurrence", StepDelete, "path: NTE[1]", ormO01(), []check{{"NTE-3", "second note"}, {"NTE[2]-3", ""}}, nil},
		{"delete field", StepDelete, "path: PID-19", adtA01, []check{{"PID-19", ""}, {"PID-18", "ACC123"}}, nil},
		{"delete several", StepDelete, "paths: [ZPI, PID-19, 'PID-3[2]']", adtA01,
			[]check{{"PID-19", ""}, {"PID-3[2].1", ""}, {"PID-3[1].1", "12345"}}, []string{"ZPI"}},
		{"map inline", StepMap, "path: PV1-2\ntable: {E: EMERGENCY, I: INPATIENT}", adtA01, []check{{"PV1-2", "EMERGENCY"}}, nil},
		{"map csv", StepMap, "path: PV1-3.1\nfile: tables/locations.csv", adtA01, []check{{"PV1-3.1", "EMERG"}, {"PV1-3.2", "101"}}, nil},
		{"map csv trims", StepMap, "path: PV1-3.1\nfile: tables/locations.csv", ormO01(), []check{{"PV1-3.1", "CT-SCANNER-1"}}, nil},
		{"map csv by column name", StepMap, "path: PV1-3.1\nfile: tables/reordered.csv", adtA01, []check{{"PV1-3.1", "EMERG"}}, nil},
		{"map csv first two columns", StepMap, "path: PV1-3.1\nfile: tables/nohead.csv", adtA01, []check{{"PV1-3.1", "EMERG"}}, nil},
		{"map csv absolute", StepMap, "path: PV1-3.1\nfile: " + filepath.Join(dir, "tables/locations.csv"), adtA01, []check{{"PV1-3.1", "EMERG"}}, nil},
		{"map yaml", StepMap, "path: PV1-2\nfile: tables/classes.yaml", adtA01, []check{{"PV1-2", "EMERGENCY"}}, nil},
		{"map unmapped kept", StepMap, "path: PV1-2\ntable: {I: INPATIENT}", adtA01, []check{{"PV1-2", "E"}}, nil},
		{"map default", StepMap, "path: PV1-3.1\nfile: tables/classes.yaml\ndefault: UNKNOWN", adtA01, []check{{"PV1-3.1", "UNKNOWN"}}, nil},
		{"map to empty", StepMap, "path: PV1-2\ntable: {E: ''}", adtA01, []check{{"PV1-2", ""}, {"PV1-3.1", "ER"}}, nil},
		{"map value with delimiters", StepMap, "path: PV1-2\ntable: {E: 'A^B'}", adtA01, []check{{"PV1-2", "A^B"}, {"PV1-2.2", ""}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustStep(t, tt.step, tt.conf, dir)
			m := parse(t, tt.msg)
			if err := s.Apply(context.Background(), NewEnv(m, "c", nil)); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			// Re-parse the encoded message, so the checks see what a receiver would.
			out := parse(t, m.Encode())
			for _, c := range tt.checks {
				if got := out.Get(c.path); got != c.want {
					t.Errorf("after %s: %s = %q, want %q\n%s", tt.step, c.path, got, c.want, m.Encode())
				}
			}
			for _, seg := range tt.gone {
				if n := out.Count(seg); n != 0 {
					t.Errorf("after %s: %d %s segments remain", tt.step, n, seg)
				}
				if strings.Contains(string(out.Encode()), "\r"+seg+"|") {
					t.Errorf("after %s: encoded message still has %s", tt.step, seg)
				}
			}
		})
	}
}

// TestSetDoesNotInject checks the reason escaping exists: a value full of delimiters must
// not create fields, components or repetitions.
func TestSetDoesNotInject(t *testing.T) {
	m := parse(t, adtA01)
	before := m.Get("PID-6")
	s := mustStep(t, StepSet, "path: PID-5\nvalue: 'EVIL|INJECTED|FIELDS'", "")
	if err := s.Apply(context.Background(), NewEnv(m, "c", nil)); err != nil {
		t.Fatal(err)
	}
	out := parse(t, m.Encode())
	if got := out.Get("PID-6"); got != before {
		t.Errorf("PID-6 = %q after set, want %q unchanged", got, before)
	}
	if got := out.Get("PID-7"); got != "19800115" {
		t.Errorf("PID-7 = %q after set, want 19800115", got)
	}
	if got := out.Get("PID-5"); got != "EVIL|INJECTED|FIELDS" {
		t.Errorf("PID-5 = %q", got)
	}
}

func TestStepsSeeEachOthersEdits(t *testing.T) {
	m := parse(t, adtA01)
	env := NewEnv(m, "c", nil)
	steps := []Step{
		mustStep(t, StepSet, "path: MSH-9.1\nvalue: ORU", ""),
		mustStep(t, StepSet, "path: MSH-5\nvalue: GOT-ORU\nif: msg.Type == \"ORU\"", ""),
		mustStep(t, StepSet, "path: MSH-3\nvalue: OSPREY", ""),
	}
	for _, s := range steps {
		if err := s.Apply(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	if env.Msg.Type != "ORU" || env.Msg.Sender != "OSPREY" {
		t.Errorf("view after steps: Type %q Sender %q, want ORU OSPREY", env.Msg.Type, env.Msg.Sender)
	}
	if got := m.Get("MSH-5"); got != "GOT-ORU" {
		t.Errorf("MSH-5 = %q: the guarded step did not see the edited type", got)
	}
}

func TestMapUnmappedStrict(t *testing.T) {
	s := mustStep(t, StepMap, "path: PV1-2\ntable: {I: INPATIENT}\nkeep_unmapped: false", "")
	err := s.Apply(context.Background(), NewEnv(parse(t, adtA01), "c", nil))
	if !errors.Is(err, ErrUnmapped) {
		t.Fatalf("Apply error = %v, want ErrUnmapped", err)
	}
	if want := `transform map PV1-2: "E": value not in table`; err.Error() != want {
		t.Errorf("Apply error = %q, want %q", err, want)
	}
}

func TestApplyErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		step   string
		conf   string
		ctx    context.Context
		env    Env
		prefix string
		is     error
	}{
		{"expr fails at run time", StepSet, "path: PV1-3.1\nexpr: string(hl7date(msg.Get(\"PID-8\")))", context.Background(),
			NewEnv(parse(t, adtA01), "c", nil), "transform set PV1-3.1: key: line 1, column", nil},
		{"if fails at run time", StepDelete, "path: ZPI\nif: age(msg.Get(\"PID-8\")) > 1", context.Background(),
			NewEnv(parse(t, adtA01), "c", nil), "transform delete ZPI: if: filter: line 1", nil},
		{"cancelled", StepCopy, "from: PID-3\nto: PID-2", cancelled, NewEnv(parse(t, adtA01), "c", nil),
			"transform copy PID-3 to PID-2: ", context.Canceled},
		{"no message", StepMap, "path: PV1-2\ntable: {A: B}", context.Background(), NewEnv(nil, "c", nil),
			"transform map PV1-2: ", ErrNoMessage},
		{"copy structure into a component", StepCopy, "from: PID-5\nto: PV1-50.1", context.Background(),
			NewEnv(parse(t, adtA01), "c", nil), "transform copy PID-5 to PV1-50.1: ", nil},
		{"read-only field", StepSet, "path: MSH-1\nvalue: '#'", context.Background(), NewEnv(parse(t, adtA01), "c", nil),
			"transform set MSH-1: ", hl7v2.ErrReadOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustStep(t, tt.step, tt.conf, "").Apply(tt.ctx, tt.env)
			if err == nil {
				t.Fatal("Apply succeeded, want error")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Errorf("Apply error = %q, want prefix %q", err, tt.prefix)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Apply error = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
}

func TestNewStepErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "dup.csv", "from,to\nA,1\nB,2\nA,3\n")
	writeFile(t, dir, "dup.yaml", "A: 1\nB: 2\nA: 3\n")
	writeFile(t, dir, "nested.yaml", "A: [1, 2]\n")
	writeFile(t, dir, "list.yaml", "- A\n- B\n")
	writeFile(t, dir, "empty.csv", "")
	writeFile(t, dir, "short.csv", "from,to\nA\n")
	writeFile(t, dir, "onecol.csv", "from\nA\n")
	writeFile(t, dir, "table.txt", "A,B\n")
	tests := []struct {
		name string
		step string
		conf string
		msg  []string
	}{
		{"unknown step", "rename", "", []string{`unknown transform step "rename"`, "set, copy, delete, map"}},
		{"set bad path", StepSet, "path: PID-3,1\nvalue: x", []string{`"PID-3,1"`}},
		{"set value and expr", StepSet, "path: PID-3\nvalue: x\nexpr: msg.Type", []string{"either value or expr"}},
		{"set neither", StepSet, "path: PID-3", []string{"one of value or expr is required"}},
		{"set bad expr", StepSet, "path: PID-3\nexpr: msg.Typ", []string{"did you mean Type"}},
		{"set non-string expr", StepSet, "path: PID-3\nexpr: msg.Count(\"OBX\")", []string{"string(...)"}},
		{"bad if", StepSet, "path: PID-3\nvalue: x\nif: msg.Type", []string{"boolean"}},
		{"copy bad to", StepCopy, "from: PID-3\nto: PID-", []string{`"PID-"`}},
		{"delete neither", StepDelete, "{}", []string{"one of path or paths is required"}},
		{"delete both", StepDelete, "path: ZPI\npaths: [NTE]", []string{"either path or paths"}},
		{"delete MSH", StepDelete, "path: MSH", []string{"MSH segment cannot be deleted"}},
		{"delete bad path in list", StepDelete, "paths: [NTE, 'PID-3[x]']", []string{`"PID-3[x]"`}},
		{"map neither", StepMap, "path: PV1-2", []string{"one of table or file is required"}},
		{"map both", StepMap, "path: PV1-2\ntable: {A: B}\nfile: x.csv", []string{"either table or file"}},
		{"map default and keep", StepMap, "path: PV1-2\ntable: {A: B}\ndefault: X\nkeep_unmapped: true", []string{"contradict"}},
		{"map missing file", StepMap, "path: PV1-2\nfile: tables/nope.csv", []string{filepath.Join(dir, "tables/nope.csv"), "no such file"}},
		{"map duplicate csv", StepMap, "path: PV1-2\nfile: dup.csv", []string{"dup.csv", `line 4: duplicate key "A" (first on line 2)`}},
		{"map duplicate yaml", StepMap, "path: PV1-2\nfile: dup.yaml", []string{"dup.yaml", "duplicate", `"A"`}},
		{"map nested yaml", StepMap, "path: PV1-2\nfile: nested.yaml", []string{"nested.yaml", "plain values"}},
		{"map yaml list", StepMap, "path: PV1-2\nfile: list.yaml", []string{"list.yaml", "mapping"}},
		{"map empty csv", StepMap, "path: PV1-2\nfile: empty.csv", []string{"empty.csv", "header"}},
		{"map short row", StepMap, "path: PV1-2\nfile: short.csv", []string{"short.csv", "line 2"}},
		{"map one column", StepMap, "path: PV1-2\nfile: onecol.csv", []string{"two columns"}},
		{"map unknown extension", StepMap, "path: PV1-2\nfile: table.txt", []string{"table.txt", `unsupported extension ".txt"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.step == "rename" {
				_, err = NewStep(tt.step, nil, dir)
				if !errors.Is(err, ErrUnknownStep) {
					t.Errorf("error %v is not ErrUnknownStep", err)
				}
			} else {
				_, err = newStep(t, tt.step, tt.conf, dir)
			}
			if err == nil {
				t.Fatal("NewStep succeeded, want error")
			}
			for _, s := range tt.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// TestNewStepExprPosition checks that an expression error in a step is positioned in the
// config file, while the *ExprError inside stays relative to the expression.
func TestNewStepExprPosition(t *testing.T) {
	conf := "path: PID-3\nexpr: |\n  msg.Get(\"PID-3.1\") +\n    msg.Facilty\n"
	parsed, lints := spec.ParseYAML(conf, stepSpec(t, StepSet).Fields)
	// The spec lint reports the field; NewStep is what a loader calls next.
	if len(lints) == 0 {
		t.Error("spec lint accepted an expression that does not compile")
	}
	_, err := NewStep(StepSet, parsed, "")
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("NewStep error = %v, want a *FieldError", err)
	}
	var ee *ExprError
	if !errors.As(err, &ee) || ee.Line != 2 || ee.Col != 7 {
		t.Fatalf("ExprError = %+v, want line 2 col 7", ee)
	}
	if fe.Pos != "4:9" || fe.Field != "expr" {
		t.Errorf("FieldError = %s at %s, want expr at 4:9", fe.Field, fe.Pos)
	}
	if !strings.Contains(err.Error(), "did you mean Facility?") {
		t.Errorf("error = %q", err)
	}
}

// TestStepDeclarations checks that every declared example parses against its own spec and
// builds, so the docs never show a configuration that does not load.
func TestStepDeclarations(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tables/locations.csv", "from,to\nER,EMERG\n")
	writeFile(t, dir, "tables/units.yaml", "ER: EMERG\n")
	seen := map[string]bool{}
	for _, c := range Steps() {
		t.Run(c.Name, func(t *testing.T) {
			if c.Kind != spec.KindTransform || c.ID() != "transform."+c.Name {
				t.Errorf("kind %q id %q", c.Kind, c.ID())
			}
			if seen[c.Name] {
				t.Errorf("step %q declared twice", c.Name)
			}
			seen[c.Name] = true
			if c.Summary == "" || c.Description == "" || len(c.Examples) == 0 {
				t.Errorf("step %q lacks summary, description or examples", c.Name)
			}
			for _, f := range c.Fields {
				if f.Description == "" {
					t.Errorf("field %s.%s has no description", c.Name, f.Name)
				}
			}
			for _, ex := range c.Examples {
				parsed, lints := spec.ParseYAML(ex.YAML, c.Fields)
				if len(lints) > 0 {
					t.Errorf("example %q: lints %v", ex.Title, lints)
					continue
				}
				if _, err := NewStep(c.Name, parsed, dir); err != nil {
					t.Errorf("example %q: %v", ex.Title, err)
				}
			}
			for _, f := range c.Fields {
				for _, v := range f.Examples {
					if f.Lint == nil {
						continue
					}
					if err := f.Lint(v); err != nil {
						t.Errorf("field %s.%s example %v fails its own lint: %v", c.Name, f.Name, v, err)
					}
				}
			}
		})
	}
}

func TestDocsCoverSteps(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	for _, c := range Steps() {
		if !strings.Contains(string(doc), "### `"+c.Name+"`") {
			t.Errorf("docs/rules.md has no section for step %q", c.Name)
		}
		for _, f := range c.Fields {
			if !strings.Contains(string(doc), "`"+f.Name+"`") {
				t.Errorf("docs/rules.md does not mention field %s.%s", c.Name, f.Name)
			}
		}
	}
	for _, fn := range []string{"hl7date", "age", "msg.Get", "msg.Has", "msg.Count", "channel", "meta"} {
		if !strings.Contains(string(doc), "`"+fn) {
			t.Errorf("docs/rules.md does not document %s", fn)
		}
	}
}

func TestWhen(t *testing.T) {
	conf := "if: msg.Type == \"ORM\"\nthen:\n  - set: {path: MSH-5, value: RIS}\n  - delete: {path: NTE}\nelse:\n  - set: {path: MSH-5, value: ARCHIVE}\n"
	s := mustStep(t, StepWhen, conf, "")
	tests := []struct {
		name     string
		msg      []byte
		msh5     string
		notes    int
		wantNote bool
	}{
		{"then", ormO01(), "RIS", 0, false},
		{"else", adtA01, "ARCHIVE", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parse(t, tt.msg)
			if err := s.Apply(context.Background(), NewEnv(m, "c", nil)); err != nil {
				t.Fatal(err)
			}
			if got := m.Get("MSH-5"); got != tt.msh5 {
				t.Errorf("MSH-5 = %q, want %q", got, tt.msh5)
			}
			if n := m.Count("NTE"); n != tt.notes {
				t.Errorf("%d NTE segments, want %d", n, tt.notes)
			}
		})
	}
	t.Run("no else", func(t *testing.T) {
		s := mustStep(t, StepWhen, "if: msg.Type == \"ORM\"\nthen:\n  - set: {path: MSH-5, value: RIS}\n", "")
		m := parse(t, adtA01)
		if err := s.Apply(context.Background(), NewEnv(m, "c", nil)); err != nil {
			t.Fatal(err)
		}
		if got := m.Get("MSH-5"); got != "RIS" {
			t.Errorf("MSH-5 = %q, want it untouched", got)
		}
	})
	t.Run("nested error is positioned", func(t *testing.T) {
		// The spec lint reports this too; NewStep must stand on its own for callers that skip it.
		parsed, _ := spec.ParseYAML("if: 'true'\nthen:\n  - set: {path: MSH-5, value: RIS}\n  - set: {path: 'PID-3,1', value: x}\n", stepSpec(t, StepWhen).Fields)
		_, err := NewStep(StepWhen, parsed, "")
		if err == nil || !strings.Contains(err.Error(), "transform when: then: 4:5: transform set:") {
			t.Errorf("error = %v", err)
		}
	})
}

// TestTransformList runs a channel's transform list the way the config loader does: parse
// against TransformField, build with NewSteps, apply in order.
func TestTransformList(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tables/locations.csv", "from,to\nER,EMERGENCY\n")
	src := `transform:
  - set: {path: MSH-5, value: PACS}
  - map: {path: PV1-3.1, file: tables/locations.csv, default: UNKNOWN}
  - copy: {from: 'PID-3[1].1', to: PID-2}
  - delete: {paths: [ZPI, PID-19], if: 'msg.Facility == "HOSP"'}
`
	fields := []spec.Field{TransformField("transform", "the steps")}
	parsed, lints := spec.ParseYAML(src, fields)
	if len(lints) > 0 {
		t.Fatalf("lints: %v", lints)
	}
	steps, err := NewSteps(parsed.Objects("transform"), dir)
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, adtA01)
	if err := Apply(context.Background(), steps, NewEnv(m, "c", nil)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"MSH-5": "PACS", "PV1-3.1": "EMERGENCY", "PID-2": "12345", "PID-19": ""} {
		if got := m.Get(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if m.Count("ZPI") != 0 {
		t.Error("ZPI not deleted")
	}

	t.Run("lints", func(t *testing.T) {
		tests := []struct {
			name, src, want string
		}{
			{"unknown step", "transform:\n  - sett: {path: MSH-5, value: RIS}\n", `did you mean "set"?`},
			{"bad path", "transform:\n  - set: {path: 'PID-3,1', value: RIS}\n", `"PID-3,1"`},
			{"bad expression", "transform:\n  - set: {path: PID-3, expr: msg.Typ}\n", "did you mean Type?"},
			{"bad guard", "transform:\n  - delete: {path: ZPI, if: msg.Type}\n", "boolean"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, lints := spec.ParseYAML(tt.src, fields)
				if !spec.HasErrors(lints) || !strings.Contains(spec.LintsError(lints).Error(), tt.want) {
					t.Errorf("lints = %v, want one containing %q", lints, tt.want)
				}
			})
		}
	})
}
