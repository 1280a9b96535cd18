package config

import (
	"strings"
	"testing"
)

// FuzzExpand checks the substitution scanner on arbitrary text: no panic, text without a
// reference comes back unchanged, and around a literal text a reference and an escape
// expand as documented.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"plain", "${A}", "x${A:-d}y", "$${A}", "${", "${file:/x}", "$$${A}}", "${A}${B}", "${${}"} {
		f.Add(s)
	}
	echo := func(ref string) (string, error) { return "<" + ref + ">", nil }
	f.Fuzz(func(t *testing.T, in string) {
		out, errs := expand(in, echo)
		if !strings.Contains(in, "${") && (out != in || len(errs) > 0) {
			t.Errorf("expand(%q) = %q, %v; want it unchanged", in, out, errs)
		}
		lit := strings.Map(func(r rune) rune {
			if r == '$' || r == '{' || r == '}' {
				return -1
			}
			return r
		}, in)
		if out, _ := expand(lit+"${R}"+lit, echo); out != lit+"<R>"+lit {
			t.Errorf("reference around %q expanded to %q", lit, out)
		}
		if out, _ := expand("$${"+lit, echo); out != "${"+lit {
			t.Errorf("escape before %q expanded to %q", lit, out)
		}
	})
}

// FuzzLoadFiles feeds arbitrary files to the loader: it must never panic, and a result is
// returned exactly when there are no errors.
func FuzzLoadFiles(f *testing.F) {
	f.Add(goodChannel)
	f.Add("server: {nats: {sync: fast}}\nchannels: [{name: a, source: {mllp: {}}, destinations: [{name: d, file: {dir: x}}]}]\n")
	f.Add("channels:\n  - name: a\n    source: {mlp: {}}\n    filter: msg.Typo\n")
	f.Add("---\nserver: {}\n---\nserver: {}\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, lints := LoadFiles([]File{{Name: "f.yaml", Data: []byte(in)}}, reg)
		errs := false
		for _, l := range lints {
			errs = errs || l.Level != "warning"
		}
		if (c == nil) != errs {
			t.Errorf("config nil=%v with errors=%v", c == nil, errs)
		}
		if c != nil {
			for i := range c.Channels {
				_ = c.Channels[i].Hash()
			}
		}
	})
}
