package spec

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// lintLines renders lints as "line:col: type: message" for comparisons.
func lintLines(lints []Lint) []string {
	out := make([]string, len(lints))
	for i, l := range lints {
		out[i] = fmt.Sprintf("%d:%d: %s: %s", l.Line, l.Col, l.Type, l.Msg)
	}
	return out
}

func mustParse(t *testing.T, src string, fields []Field) *Parsed {
	t.Helper()
	p, lints := ParseYAML(src, fields)
	if len(lints) > 0 {
		t.Fatalf("unexpected lints:\n%s", strings.Join(lintLines(lints), "\n"))
	}
	return p
}

// get reads field "v" with the getter that matches its type.
func get(p *Parsed, f Field) any {
	switch f.Type {
	case String, Expr:
		return p.String(f.Name)
	case Int:
		return p.Int(f.Name)
	case Float:
		return p.Float(f.Name)
	case Bool:
		return p.Bool(f.Name)
	case Duration:
		return p.Duration(f.Name)
	case Bytes:
		return p.Bytes(f.Name)
	case Strings:
		return p.Strings(f.Name)
	case Map:
		return p.Map(f.Name)
	case Object:
		return p.Object(f.Name).Value()
	case Objects:
		var out []map[string]any
		for _, o := range p.Objects(f.Name) {
			out = append(out, o.Value())
		}
		return out
	}
	panic("type")
}

func TestParseTypes(t *testing.T) {
	tests := []struct {
		name  string
		field Field
		yaml  string
		want  any
	}{
		{"string", NewString("v", ""), "v: hello", "hello"},
		{"string from number", NewString("v", ""), "v: 2575", "2575"},
		{"string quoted", NewString("v", ""), `v: "a: b"`, "a: b"},
		{"string empty", NewString("v", ""), `v: ""`, ""},
		{"expr", NewExpr("v", ""), `v: msg.Type == "ADT"`, `msg.Type == "ADT"`},
		{"int", NewInt("v", ""), "v: 42", 42},
		{"int negative", NewInt("v", ""), "v: -3", -3},
		{"int hex", NewInt("v", ""), "v: 0x10", 16},
		{"int underscores", NewInt("v", ""), "v: 1_000", 1000},
		{"int quoted", NewInt("v", ""), `v: "7"`, 7},
		{"float", NewFloat("v", ""), "v: 1.5", 1.5},
		{"float from int", NewFloat("v", ""), "v: 2", 2.0},
		{"bool true", NewBool("v", ""), "v: true", true},
		{"bool False", NewBool("v", ""), "v: False", false},
		{"duration ms", NewDuration("v", ""), "v: 500ms", 500 * time.Millisecond},
		{"duration hours", NewDuration("v", ""), "v: 2h30m", 150 * time.Minute},
		{"duration days", NewDuration("v", ""), "v: 7d", 7 * 24 * time.Hour},
		{"duration days and hours", NewDuration("v", ""), "v: 1d12h", 36 * time.Hour},
		{"duration zero", NewDuration("v", ""), "v: 0", time.Duration(0)},
		{"bytes plain", NewBytes("v", ""), "v: 1048576", int64(1048576)},
		{"bytes MiB", NewBytes("v", ""), "v: 16MiB", int64(16 << 20)},
		{"bytes MB", NewBytes("v", ""), "v: 1MB", int64(1_000_000)},
		{"bytes lower case", NewBytes("v", ""), "v: 512kib", int64(512 << 10)},
		{"bytes fraction", NewBytes("v", ""), "v: 1.5KiB", int64(1536)},
		{"bytes short unit", NewBytes("v", ""), "v: 2G", int64(2 << 30)},
		{"bytes with space", NewBytes("v", ""), `v: "10 KB"`, int64(10_000)},
		{"strings", NewStrings("v", ""), "v: [a, b, 3]", []string{"a", "b", "3"}},
		{"strings block", NewStrings("v", ""), "v:\n  - x\n  - y", []string{"x", "y"}},
		{"map", NewMap("v", ""), "v: {a: x, b: 2, c: }", map[string]string{"a": "x", "b": "2", "c": ""}},
		{"object", NewObject("v", "", NewString("a", ""), NewInt("b", "").WithDefault(3)), "v: {a: x}",
			map[string]any{"a": "x", "b": 3}},
		{"object null is defaults", NewObject("v", "", NewInt("b", "").WithDefault(3)), "v:", map[string]any{"b": 3}},
		{"objects", NewObjects("v", "", NewString("a", ""), NewBool("b", "").WithDefault(true)), "v: [{a: x}, {a: y, b: false}]",
			[]map[string]any{{"a": "x", "b": true}, {"a": "y", "b": false}}},
		{"merge key", NewObject("v", "", NewString("a", ""), NewString("b", "")),
			"base: &base {a: from-base, b: from-base}\nv:\n  <<: *base\n  b: own",
			map[string]any{"a": "from-base", "b": "own"}},
		{"alias", NewString("v", ""), "x: &addr 10.0.0.1\nv: *addr", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := []Field{tt.field}
			if strings.HasPrefix(tt.yaml, "base:") || strings.HasPrefix(tt.yaml, "x:") {
				// the anchor's key must be declared too
				fields = append(fields, NewObject("base", "", NewString("a", ""), NewString("b", "")).AsOptional(),
					NewString("x", "").AsOptional())
			}
			p := mustParse(t, tt.yaml, fields)
			if got := get(p, tt.field); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			if !p.Has("v") {
				t.Error("Has(v) = false for a value given in the YAML")
			}
		})
	}
}

func TestParseBadTypes(t *testing.T) {
	tests := []struct {
		name  string
		field Field
		yaml  string
		want  string // the one lint expected, "line:col: type: message"
	}{
		{"int word", NewInt("v", ""), "v: abc", `1:4: bad_type: field "v": expected an integer, got "abc"`},
		{"int float", NewInt("v", ""), "v: 1.5", `1:4: bad_type: field "v": expected an integer, got "1.5"`},
		{"int list", NewInt("v", ""), "v: [1]", `1:4: bad_type: field "v": expected an integer, got a list`},
		{"float word", NewFloat("v", ""), "v: fast", `1:4: bad_type: field "v": expected a number, got "fast"`},
		{"bool yes", NewBool("v", ""), "v: yes", `1:4: bad_type: field "v": expected true or false, got "yes"`},
		{"duration words", NewDuration("v", ""), "v: 5 minutes",
			`1:4: bad_type: field "v": expected a duration such as "500ms", "30s", "5m", "2h" or "7d", got "5 minutes"`},
		{"duration bare number", NewDuration("v", ""), "v: 30",
			`1:4: bad_type: field "v": expected a duration such as "500ms", "30s", "5m", "2h" or "7d", got "30"`},
		{"bytes unit", NewBytes("v", ""), "v: 12XB",
			`1:4: bad_type: field "v": expected a size such as 1048576, "512KiB", "16MiB" or "1GB", got "12XB"`},
		{"bytes half byte", NewBytes("v", ""), "v: 1.5B",
			`1:4: bad_type: field "v": expected a size such as 1048576, "512KiB", "16MiB" or "1GB", got "1.5B"`},
		{"bytes negative", NewBytes("v", ""), "v: -1",
			`1:4: bad_type: field "v": expected a size such as 1048576, "512KiB", "16MiB" or "1GB", got "-1"`},
		{"string object", NewString("v", ""), "v: {a: 1}", `1:4: bad_type: field "v": expected a string, got an object`},
		{"strings scalar", NewStrings("v", ""), "v: a", `1:4: bad_type: field "v": expected a list of strings, got "a"`},
		{"strings nested", NewStrings("v", ""), "v: [a, [b]]", `1:8: bad_type: field "v": item 2: expected a string, got a list`},
		{"map list", NewMap("v", ""), "v: [a]", `1:4: bad_type: field "v": expected a map of strings, got a list`},
		{"map nested", NewMap("v", ""), "v:\n  a: {b: c}", `2:6: bad_type: field "v": key "a": expected a string, got an object`},
		{"object scalar", NewObject("v", "", NewString("a", "").AsOptional()), "v: x", `1:4: bad_type: field "v": expected an object, got "x"`},
		{"objects object", NewObjects("v", "", NewString("a", "")), "v: {a: x}", `1:4: bad_type: field "v": expected a list of objects, got an object`},
		{"objects item", NewObjects("v", "", NewString("a", "")), "v:\n  - a: x\n  - y",
			`3:5: bad_type: field "v": item 2: expected an object, got "y"`},
		{"secret hidden", NewInt("v", "").AsSecret(), "v: hunter2",
			`1:4: bad_type: field "v": expected an integer, got a value (hidden: secret)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, lints := ParseYAML(tt.yaml, []Field{tt.field})
			got := lintLines(lints)
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
			if lints[0].Level != LevelError {
				t.Errorf("level %s, want error", lints[0].Level)
			}
			_ = get(p, tt.field) // a field in error still reads as its zero value
		})
	}
}

func TestParseLints(t *testing.T) {
	fields := []Field{
		NewString("address", "").WithExamples("0.0.0.0:2575"),
		NewInt("port", "").WithDefault(2575),
		NewString("ack_mode", "").WithEnum("original", "enhanced", "auto").WithDefault("auto"),
		NewStrings("levels", "").WithEnum("info", "warn").AsOptional(),
		NewString("old", "").AsOptional().DeprecatedFor("use address"),
		NewInt("workers", "").WithDefault(1).WithLint(func(v any) error {
			if v.(int) < 1 {
				return errors.New("must be at least 1")
			}
			return nil
		}),
		NewObject("tls", "",
			NewString("cert_file", ""),
			NewString("key_file", ""),
		).AsOptional(),
		NewObjects("routes", "", NewString("name", ""), NewString("to", "").AsOptional()).AsOptional(),
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"valid", "address: x", nil},
		{"unknown with suggestion, no missing lint for the typo", "adress: x",
			[]string{`1:1: unknown_field: unknown field "adress"; did you mean "address"?`}},
		{"unknown without suggestion lists fields", "address: x\ncolour: red",
			[]string{`2:1: unknown_field: unknown field "colour" (known: address, port, ack_mode, levels, old, workers, tls, routes)`}},
		{"missing required", "port: 1",
			[]string{`1:1: missing: missing required field "address"`}},
		{"empty document", "",
			[]string{`1:1: missing: missing required field "address"`}},
		{"null is absent", "address:",
			[]string{`1:1: missing: missing required field "address"`}},
		{"enum with suggestion", "address: x\nack_mode: enhancd",
			[]string{`2:11: enum: field "ack_mode": "enhancd" is not one of original, enhanced, auto; did you mean "enhanced"?`}},
		{"enum in list", "address: x\nlevels: [info, debug]",
			[]string{`2:16: enum: field "levels[1]": "debug" is not one of info, warn`}},
		{"deprecated warns", "address: x\nold: y",
			[]string{`2:1: deprecated: field "old" is deprecated: use address`}},
		{"field lint", "address: x\nworkers: 0",
			[]string{`2:10: lint: field "workers": must be at least 1`}},
		{"nested missing", "address: x\ntls:\n  cert_file: a.pem",
			[]string{`3:3: missing: missing required field "tls.key_file"`}},
		{"nested unknown", "address: x\ntls:\n  cert_file: a.pem\n  key_file: k\n  ca: c",
			[]string{`5:3: unknown_field: unknown field "tls.ca" (known: cert_file, key_file)`}},
		{"list item positions", "address: x\nroutes:\n  - name: a\n  - to: b\n    nme: c",
			[]string{
				`5:5: unknown_field: unknown field "routes[1].nme"; did you mean "name"?`,
			}},
		{"list item missing", "address: x\nroutes:\n  - name: a\n  - to: b",
			[]string{`4:5: missing: missing required field "routes[1].name"`}},
		{"duplicate key", "address: x\naddress: y",
			[]string{`2:1: duplicate: field "address" given twice`}},
		{"not a mapping", "- a",
			[]string{`1:1: bad_type: expected an object (a YAML mapping), got a list`, `1:1: missing: missing required field "address"`}},
		{"every problem at once", "adress: x\nport: x\nack_mode: y\nworkers: -1",
			[]string{
				`1:1: unknown_field: unknown field "adress"; did you mean "address"?`,
				`2:7: bad_type: field "port": expected an integer, got "x"`,
				`3:11: enum: field "ack_mode": "y" is not one of original, enhanced, auto`,
				`4:10: lint: field "workers": must be at least 1`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, lints := ParseYAML(tt.yaml, fields)
			got := lintLines(lints)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, l := range lints {
				if want := LevelError; l.Type == LintDeprecated {
					if l.Level != LevelWarning {
						t.Errorf("deprecated lint is %s, want warning", l.Level)
					}
				} else if l.Level != want {
					t.Errorf("%s lint is %s, want error", l.Type, l.Level)
				}
			}
		})
	}
}

func TestParseYAMLSyntaxError(t *testing.T) {
	_, lints := ParseYAML("a: b\n  c: d\n", []Field{NewString("a", "")})
	if len(lints) != 1 || lints[0].Type != LintYAML || lints[0].Line != 2 {
		t.Fatalf("lints = %v, want one yaml lint at line 2", lints)
	}
	if strings.Contains(lints[0].Msg, "line") {
		t.Errorf("message %q repeats the line, which the position already has", lints[0].Msg)
	}
}

func TestDefaults(t *testing.T) {
	fields := []Field{
		NewString("s", "").WithDefault("./data"),
		NewInt("i", "").WithDefault(10),
		NewFloat("f", "").WithDefault(2.0),
		NewBool("b", "").WithDefault(true),
		NewDuration("d", "").WithDefault("5m"),
		NewDuration("d2", "").WithDefault(90 * time.Second),
		NewBytes("by", "").WithDefault("16MiB"),
		NewBytes("by2", "").WithDefault(1024),
		NewStrings("ss", "").WithDefault([]string{"a"}),
		NewMap("m", "").WithDefault(map[string]string{"k": "v"}),
		NewObject("o", "", NewString("x", "").WithDefault("y")),
		NewObjects("os", "", NewString("x", "")).AsOptional(),
		NewString("opt", "").AsOptional(),
		NewInt("empty", "").WithDefault(3),
	}
	p := mustParse(t, `empty: ""`, fields)
	want := map[string]any{
		"s": "./data", "i": 10, "f": 2.0, "b": true, "d": "5m0s", "d2": "1m30s", "by": int64(16 << 20), "by2": int64(1024),
		"ss": []string{"a"}, "m": map[string]string{"k": "v"}, "o": map[string]any{"x": "y"}, "os": []any{}, "opt": "",
		"empty": 3,
	}
	got := p.Value()
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	for _, f := range fields {
		if p.Has(f.Name) {
			t.Errorf("Has(%q) = true for a defaulted field", f.Name)
		}
	}
	// The getters hand out copies: changing them must not change the configuration.
	p.Strings("ss")[0] = "changed"
	p.Map("m")["k"] = "changed"
	if p.Strings("ss")[0] != "a" || p.Map("m")["k"] != "v" {
		t.Error("a getter returned shared state")
	}
}

func TestBadDefaultPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `field "d"`) {
			t.Errorf("recover() = %v, want a panic naming the field", r)
		}
	}()
	ParseYAML("", []Field{NewDuration("d", "").WithDefault("soon")})
}

func TestGetterPanics(t *testing.T) {
	p := mustParse(t, "a: x", []Field{NewString("a", "")})
	for name, f := range map[string]func(){
		"undeclared": func() { p.String("b") },
		"wrong type": func() { p.Int("a") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestPositions(t *testing.T) {
	fields := []Field{
		NewString("name", ""),
		NewObject("tls", "", NewString("cert_file", ""), NewString("key_file", "").WithDefault("")),
		NewObjects("routes", "", NewString("to", ""), NewInt("weight", "").WithDefault(1)),
		NewInt("port", "").WithDefault(1),
	}
	src := "name: a\ntls:\n  cert_file: c.pem\nroutes:\n  - to: x\n  - to: y\n    weight: 3\n"
	p, lints := ParseNode(mustNode(t, src), fields, "conf/a.yaml")
	if len(lints) > 0 {
		t.Fatal(lints)
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"top", p.Pos("name"), "conf/a.yaml:1:7"},
		{"nested", p.Object("tls").Pos("cert_file"), "conf/a.yaml:3:14"},
		{"nested defaulted is the object", p.Object("tls").Pos("key_file"), "conf/a.yaml:3:3"},
		{"object itself", p.Object("tls").Pos(""), "conf/a.yaml:3:3"},
		{"list item", p.Objects("routes")[1].Pos(""), "conf/a.yaml:6:5"},
		{"list item value", p.Objects("routes")[1].Pos("weight"), "conf/a.yaml:7:13"},
		{"defaulted top field is the document", p.Pos("port"), "conf/a.yaml:1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %s, want %s", tt.got, tt.want)
			}
		})
	}
	if f, l, c := p.KeyPosition("routes"); f != "conf/a.yaml" || l != 4 || c != 1 {
		t.Errorf("KeyPosition(routes) = %s:%d:%d, want conf/a.yaml:4:1", f, l, c)
	}
	if p.Node("port") != nil || p.Node("name") == nil {
		t.Error("Node: want nil for a defaulted field only")
	}
}

func mustNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// exprErr is an error inside an expression, as a compiler reports it.
type exprErr struct{ line, col int }

func (e *exprErr) Error() string                { return fmt.Sprintf("%d:%d: bad", e.line, e.col) }
func (e *exprErr) ValuePos() (int, int, string) { return e.line, e.col, "unknown name foo" }

func TestExprPos(t *testing.T) {
	tests := []struct {
		name           string
		yaml           string
		line, col      int // inside the expression
		wantL, wantC   int // in the file
		withoutSource  bool
		wantPlainValue string
	}{
		{name: "plain", yaml: "f: a == foo", line: 1, col: 6, wantL: 1, wantC: 9},
		{name: "plain first char", yaml: "f: foo", line: 1, col: 1, wantL: 1, wantC: 4},
		{name: "double quoted", yaml: `f: "a == foo"`, line: 1, col: 6, wantL: 1, wantC: 10},
		{name: "single quoted", yaml: `f: 'a == foo'`, line: 1, col: 6, wantL: 1, wantC: 10},
		{name: "literal block", yaml: "f: |\n  a ==\n    foo\n", line: 2, col: 3, wantL: 3, wantC: 5},
		{name: "literal block, deeper indentation", yaml: "x:\n  f: |-\n      a ==\n      foo\n", line: 2, col: 1, wantL: 4, wantC: 7},
		{name: "folded block", yaml: "f: >\n  a == foo\n", line: 1, col: 6, wantL: 2, wantC: 8},
		{name: "block without source assumes two spaces", yaml: "f: |\n  a ==\n  foo\n", line: 2, col: 1, wantL: 3, wantC: 3, withoutSource: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr := NewExpr("f", "").WithLint(func(any) error { return &exprErr{tt.line, tt.col} })
			fields := []Field{expr}
			if strings.HasPrefix(tt.yaml, "x:") {
				fields = []Field{NewObject("x", "", expr)}
			}
			var lints []Lint
			var p *Parsed
			if tt.withoutSource {
				p, lints = ParseNode(mustNode(t, tt.yaml), fields, "f.yaml")
			} else {
				p, lints = ParseYAML(tt.yaml, fields)
			}
			if len(lints) != 1 {
				t.Fatalf("lints = %v, want one", lints)
			}
			l := lints[0]
			if l.Line != tt.wantL || l.Col != tt.wantC || l.Type != LintExpr || !strings.HasSuffix(l.Msg, ": unknown name foo") {
				t.Errorf("lint = %d:%d %s %q, want %d:%d expr ...unknown name foo", l.Line, l.Col, l.Type, l.Msg, tt.wantL, tt.wantC)
			}
			if strings.HasPrefix(tt.yaml, "x:") {
				p = p.Object("x")
			}
			if _, line, col := p.ExprPos("f", tt.line, tt.col); line != tt.wantL || col != tt.wantC {
				t.Errorf("ExprPos = %d:%d, want %d:%d", line, col, tt.wantL, tt.wantC)
			}
		})
	}
}

func TestErrorPosOption(t *testing.T) {
	sentinel := errors.New("no")
	f := NewExpr("f", "").WithLint(func(any) error { return fmt.Errorf("wrapped: %w", sentinel) })
	_, lints := ParseNodeWith(mustNode(t, `f: "abc"`), []Field{f}, Options{
		File: "x.yaml",
		ErrorPos: func(err error) (int, int, string, bool) {
			if errors.Is(err, sentinel) {
				return 1, 2, "at b", true
			}
			return 0, 0, "", false
		},
	})
	if got := lintLines(lints); len(got) != 1 || got[0] != `1:6: expr: field "f": at b` {
		t.Errorf("lints = %v", got)
	}
}

func TestChoices(t *testing.T) {
	mllp := Component{Kind: KindSource, Name: "mllp", Fields: []Field{NewString("address", ""), NewInt("port", "").WithDefault(2575)}}
	file := Component{Kind: KindSource, Name: "file", Fields: []Field{NewString("path", "").WithDefault("/in")}}
	fields := []Field{
		NewObject("source", "").WithChoices(KindSource, mllp, file),
		NewObjects("destinations", "", NewString("name", ""), NewInt("retries", "").WithDefault(3)).
			WithChoices(KindDestination, Component{Kind: KindDestination, Name: "mllp", Fields: []Field{NewString("address", "")}}).
			AsOptional(),
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"valid", "source:\n  mllp: {address: x}\ndestinations:\n  - name: a\n    mllp: {address: y}", nil},
		{"choice with all defaults may be empty", "source:\n  file:", nil},
		{"unknown with suggestion", "source:\n  mlp: {address: x}",
			[]string{`2:3: component: unknown source "mlp"; did you mean "mllp"? (known: mllp, file)`}},
		{"unknown without suggestion", "source:\n  kafka: {}",
			[]string{`2:3: component: unknown source "kafka" (known: mllp, file)`}},
		{"missing", "source: {}",
			[]string{`1:9: component: source: missing a source: give exactly one of mllp, file`}},
		{"absent", "destinations: []",
			[]string{`1:1: missing: missing required field "source"`}},
		{"two", "source:\n  mllp: {address: x}\n  file: {}",
			[]string{`3:3: component: source: more than one source: "mllp" and "file"; give exactly one`}},
		{"inside the choice", "source:\n  mllp: {adress: x}",
			[]string{`2:10: unknown_field: unknown field "source.mllp.adress"; did you mean "address"?`}},
		{"choice not an object", "source:\n  mllp: x",
			[]string{`2:9: bad_type: source "mllp": expected an object, got "x"`}},
		{"common field typo", "source: {file: {}}\ndestinations:\n  - name: a\n    retires: 1\n    mllp: {address: y}",
			[]string{`4:5: unknown_field: unknown field "destinations[0].retires"; did you mean "retries"?`}},
		{"item without connector", "source: {file: {}}\ndestinations:\n  - name: a",
			[]string{`3:5: component: destinations[0]: missing a destination: give exactly one of mllp`}},
		{"unknown key beside a connector is a field", "source: {file: {}}\ndestinations:\n  - name: a\n    mllp: {address: y}\n    colour: red",
			[]string{`5:5: unknown_field: unknown field "destinations[0].colour" (known: name, retries)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, lints := ParseYAML(tt.yaml, fields)
			got := lintLines(lints)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("lints:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}

	p := mustParse(t, "source:\n  mllp: {address: x}\ndestinations:\n  - name: a\n    mllp: {address: y}", fields)
	name, conf := p.Object("source").Choice()
	if name != "mllp" || conf.String("address") != "x" || conf.Int("port") != 2575 {
		t.Errorf("Choice() = %q %v", name, conf.Value())
	}
	if got := p.Object("source").ChoicePos(); got != "2:3" {
		t.Errorf("ChoicePos = %s, want 2:3", got)
	}
	d := p.Objects("destinations")[0]
	if n, c := d.Choice(); n != "mllp" || c.String("address") != "y" || d.Int("retries") != 3 {
		t.Errorf("destination choice = %q %v", n, d.Value())
	}
	want := map[string]any{"name": "a", "retries": 3, "mllp": map[string]any{"address": "y"}}
	if got := d.Value(); !reflect.DeepEqual(got, want) {
		t.Errorf("Value() = %v, want %v", got, want)
	}
}

func TestSecretInClearWarns(t *testing.T) {
	fields := []Field{NewString("token", "").AsSecret(), NewString("other", "").AsSecret()}
	doc := mustNode(t, "token: s3cret-value\nother: from-env")
	subst := doc.Content[0].Content[3]
	_, lints := ParseNodeWith(doc, fields, Options{Substituted: func(n *yaml.Node) bool { return n == subst }})
	got := lintLines(lints)
	want := `1:8: secret: field "token" is a secret written in clear; use ${ENV_VAR} or ${file:/path}`
	if len(got) != 1 || got[0] != want || lints[0].Level != LevelWarning {
		t.Errorf("lints = %v, want one warning %q", got, want)
	}
	for _, l := range lints {
		if strings.Contains(l.Msg, "s3cret") {
			t.Errorf("lint shows the secret: %s", l.Msg)
		}
	}
}

func TestSecretMaskedInFieldLint(t *testing.T) {
	f := NewString("password", "").AsSecret().WithLint(func(v any) error {
		return fmt.Errorf("%q is too weak", v) // a careless check that quotes the value
	})
	_, lints := ParseYAML("password: hunter22", []Field{f})
	if len(lints) != 1 || strings.Contains(lints[0].Msg, "hunter22") || !strings.Contains(lints[0].Msg, "***") {
		t.Errorf("lints = %v, want the secret masked", lints)
	}
}

func TestParseBytesAndDuration(t *testing.T) {
	bytes := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1048576", 1048576, true}, {"1KB", 1000, true}, {"1kB", 1000, true},
		{"1KiB", 1024, true}, {"1K", 1024, true}, {"1TB", 1e12, true}, {"1TiB", 1 << 40, true},
		{"", 0, false}, {"MB", 0, false}, {"1 XB", 0, false}, {"-5", 0, false}, {"0.1B", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tt := range bytes {
		got, err := ParseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	durs := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"1s", time.Second, true}, {"30d", 720 * time.Hour, true}, {"1d30m", 24*time.Hour + 30*time.Minute, true},
		{"d", 0, false}, {"1d-1h", 0, false}, {"", 0, false}, {"10", 0, false},
	}
	for _, tt := range durs {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"address", "max_message_size", "idle_timeout", "tls"}
	tests := []struct{ in, want string }{
		{"adress", "address"},
		{"addresss", "address"},
		{"Address", "address"},
		{"max_msg_size", "max_message_size"},
		{"idle", "idle_timeout"},
		{"tsl", "tls"},
		{"colour", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.in, cands); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLintString(t *testing.T) {
	tests := []struct {
		l    Lint
		want string
	}{
		{Lint{File: "a.yaml", Line: 3, Col: 5, Msg: "bad"}, "a.yaml:3:5: bad"},
		{Lint{Line: 3, Col: 5, Msg: "bad"}, "3:5: bad"},
		{Lint{File: "conf", Msg: "empty folder"}, "conf: empty folder"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	lints := []Lint{{File: "b", Line: 1}, {File: "a", Line: 9, Col: 2}, {File: "a", Line: 9, Col: 1, Level: LevelWarning}}
	SortLints(lints)
	if lints[0].Col != 1 || lints[1].Col != 2 || lints[2].File != "b" {
		t.Errorf("SortLints = %v", lints)
	}
	if !HasErrors(lints) || HasErrors(lints[:1]) {
		t.Error("HasErrors: a warning alone is not an error; an empty Level is")
	}
	err := LintsError(lints)
	if err == nil || strings.Contains(err.Error(), "a:9:1") || len(Lints(err)) != 3 {
		t.Errorf("LintsError = %v: want the errors only, and the lints recoverable", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		c    Component
		want string // substring of the error; "" for none
	}{
		{"valid", Component{Kind: KindSource, Name: "ok", Fields: []Field{NewString("a", "").WithEnum("x", "y").WithDefault("x")},
			Examples: []Example{{Title: "e", YAML: "a: y"}}}, ""},
		{"no name", Component{Kind: KindSource}, "component has no name"},
		{"duplicate", Component{Name: "c", Fields: []Field{NewString("a", ""), NewInt("a", "")}}, `field "a": declared twice`},
		{"bad default", Component{Name: "c", Fields: []Field{NewDuration("d", "").WithDefault("soon")}}, `field "d": spec: field "d": default`},
		{"wrong default type", Component{Name: "c", Fields: []Field{NewInt("i", "").WithDefault("3")}}, "wrong Go type string"},
		{"default outside enum", Component{Name: "c", Fields: []Field{NewString("s", "").WithEnum("a").WithDefault("b")}}, "not one of its values"},
		{"enum on int", Component{Name: "c", Fields: []Field{NewInt("i", "").WithEnum("1")}}, "an enum needs type string"},
		{"fields on string", Component{Name: "c", Fields: []Field{{Name: "s", Type: String, Fields: []Field{NewString("x", "")}}}}, "nested fields"},
		{"nested", Component{Name: "c", Fields: []Field{NewObject("o", "", NewString("", ""))}}, `field "o.": no name`},
		{"bad example", Component{Name: "c", Fields: []Field{NewString("a", "")}, Examples: []Example{{Title: "typo", YAML: "b: 1"}}},
			`example "typo": 1:1: unknown field "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.c)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
