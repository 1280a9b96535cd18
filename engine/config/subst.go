package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/osprey-health/osprey/engine/spec"
)

// maxFileRef bounds what ${file:...} reads: it is meant for secrets and small snippets.
const maxFileRef = 1 << 20

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// substituter expands ${...} references in the scalar values of a parsed YAML tree. It runs
// after parsing, on node values, so every position stays that of the original text and a
// substituted value can never inject YAML structure.
type substituter struct {
	file    string // the config file, for positions and relative ${file:} paths
	lookup  func(string) (string, bool)
	done    map[*yaml.Node]bool // visited, so an anchor shared by aliases expands once
	changed map[*yaml.Node]bool // nodes whose value held a reference
	lints   []spec.Lint
}

func newSubstituter(file string) *substituter {
	return &substituter{file: file, lookup: os.LookupEnv, done: map[*yaml.Node]bool{}, changed: map[*yaml.Node]bool{}}
}

func (s *substituter) walk(n *yaml.Node) {
	if n == nil || s.done[n] {
		return
	}
	s.done[n] = true
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			s.walk(c)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			s.walk(n.Content[i+1]) // keys are names, never substituted
		}
	case yaml.AliasNode:
		s.walk(n.Alias)
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		out, errs := expand(n.Value, s.resolve)
		for _, err := range errs {
			s.lints = append(s.lints, spec.Lint{File: s.file, Line: n.Line, Col: n.Column,
				Level: spec.LevelError, Type: spec.LintSubstitution, Msg: err.Error()})
		}
		if len(errs) == 0 {
			n.Value = out
			s.changed[n] = true
		}
	}
}

// resolve returns the value of one reference: the text between "${" and "}".
func (s *substituter) resolve(ref string) (string, error) {
	if path, ok := strings.CutPrefix(ref, "file:"); ok {
		if path == "" {
			return "", fmt.Errorf("${file:} needs a path")
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(s.file), path)
		}
		b, err := readLimited(path)
		if err != nil {
			return "", fmt.Errorf("${file:%s}: %w", strings.TrimPrefix(ref, "file:"), err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	name, def, hasDef := strings.Cut(ref, ":-")
	if !envNameRe.MatchString(name) {
		return "", fmt.Errorf("invalid reference ${%s}: use ${VAR}, ${VAR:-default} or ${file:/path}, and $${ for a literal ${", ref)
	}
	v, ok := s.lookup(name)
	if hasDef && v == "" {
		return def, nil
	}
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set; set it, or give a default with ${%s:-value}", name, name)
	}
	return v, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileRef+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileRef {
		return nil, fmt.Errorf("file is larger than %d bytes", maxFileRef)
	}
	return b, nil
}

// expand replaces every ${ref} in s with resolve(ref); $${ stands for a literal ${. It
// returns every error, not just the first, so one pass reports all missing variables.
func expand(s string, resolve func(string) (string, error)) (string, []error) {
	var (
		b    strings.Builder
		errs []error
	)
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), errs
		}
		if i > 0 && s[i-1] == '$' { // $${ escapes
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			errs = append(errs, fmt.Errorf("unterminated ${ in value; write $${ for a literal ${"))
			b.WriteString(s[i:])
			return b.String(), errs
		}
		ref := s[i+2 : i+2+end]
		v, err := resolve(ref)
		if err != nil {
			errs = append(errs, err)
		}
		b.WriteString(v)
		s = s[i+2+end+1:]
	}
}
