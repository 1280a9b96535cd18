package spec

import (
	"strings"
	"testing"
)

// FuzzParseYAML feeds arbitrary text to the parser: it must never panic, and every lint
// must point inside the input.
func FuzzParseYAML(f *testing.F) {
	for _, seed := range []string{
		"address: x\nport: 1\n",
		"tls: {cert_file: a, key_file: b}\nroutes: [{to: x}, {to: y, weight: 2}]\n",
		"source:\n  mllp: {address: x}\n  file: {}\n",
		"base: &b {to: x}\nroutes:\n  - <<: *b\n    weight: 1\n",
		"filter: |\n  a ==\n    b\n",
		"size: 16MiB\nwait: 1d2h\nlevels: [info, x]\nmeta: {a: [1]}\n",
		"- a\n- b\n",
		"",
	} {
		f.Add(seed)
	}
	src := Component{Kind: KindSource, Name: "mllp", Fields: []Field{NewString("address", "")}}
	other := Component{Kind: KindSource, Name: "file", Fields: []Field{NewString("dir", "").WithDefault("/")}}
	fields := []Field{
		NewString("address", "").AsOptional(),
		NewInt("port", "").WithDefault(1),
		NewBytes("size", "").WithDefault("1MiB"),
		NewDuration("wait", "").WithDefault("1s"),
		NewFloat("ratio", "").WithDefault(1.0),
		NewBool("on", "").WithDefault(true),
		NewStrings("levels", "").WithEnum("info", "warn").AsOptional(),
		NewMap("meta", "").AsOptional(),
		NewExpr("filter", "").AsOptional(),
		NewString("secret", "").AsSecret().AsOptional(),
		NewObject("tls", "", NewString("cert_file", ""), NewString("key_file", "")).AsOptional(),
		NewObject("base", "", NewString("to", "").AsOptional()).AsOptional(),
		NewObjects("routes", "", NewString("to", ""), NewInt("weight", "").WithDefault(1)).AsOptional(),
		NewObject("source", "").WithChoices(KindSource, src, other).AsOptional(),
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, lints := ParseYAML(in, fields)
		if p == nil {
			t.Fatal("nil Parsed")
		}
		lines := strings.Count(in, "\n") + strings.Count(in, "\r") + 2 // YAML breaks lines at \r too
		for _, l := range lints {
			if l.Line < 1 || l.Line > lines || l.Col < 1 {
				t.Errorf("lint outside the input: %s", l)
			}
		}
		_ = p.Value()
		_, _ = p.Object("source").Choice()
	})
}
