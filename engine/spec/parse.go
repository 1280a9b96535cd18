package spec

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Parsed is a configuration object that has passed its spec: every field present or
// defaulted and of the right type. Getters never fail for declared fields; asking for an
// undeclared name, or with the getter of another type, panics, because that is a
// programming error in the component.
type Parsed struct {
	file      string
	line, col int
	fields    []Field
	vals      map[string]*entry

	// A component choice (Field.Choices): the chosen name and its parsed configuration.
	choice     string
	choiceKey  *yaml.Node
	choiceConf *Parsed
}

// entry is one field's value and where it came from.
type entry struct {
	v      any
	set    bool       // given in the YAML, not defaulted
	key    *yaml.Node // the mapping key, when set
	node   *yaml.Node // the value node, when set
	indent int        // block scalars: columns of indentation of the content, 0 if unknown
}

// Options tune ParseNodeWith.
type Options struct {
	// File names the source in positions; "" leaves it out.
	File string
	// Source is the text the node was parsed from. When given, positions inside block
	// scalars (`|`) are exact; without it the indentation is assumed to be the key's plus two.
	Source []byte
	// Substituted reports whether a scalar's value came from ${...} substitution. When set,
	// a Secret field written in clear in the file gets a warning.
	Substituted func(n *yaml.Node) bool
	// ErrorPos recognises errors from Field.Lint that point inside the value (line and
	// column within its text, 1-based) so the lint lands on the character. Errors
	// implementing PositionError are recognised without it.
	ErrorPos func(err error) (line, col int, msg string, ok bool)
}

// ParseYAML parses a YAML snippet against fields, for tests, examples and single snippets.
// Positions carry no file name.
func ParseYAML(src string, fields []Field) (*Parsed, []Lint) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		return emptyParsed(fields, ""), []Lint{YAMLError("", err)}
	}
	return ParseNodeWith(&doc, fields, Options{Source: []byte(src)})
}

// ParseNode checks a mapping node against fields and returns the parsed values with every
// lint found (it never stops at the first). The Parsed is usable even when there are
// errors: fields in error hold their defaults or zero values.
func ParseNode(n *yaml.Node, fields []Field, file string) (*Parsed, []Lint) {
	return ParseNodeWith(n, fields, Options{File: file})
}

// ParseNodeWith is ParseNode with options.
func ParseNodeWith(n *yaml.Node, fields []Field, opts Options) (*Parsed, []Lint) {
	ps := &parser{opts: opts}
	if opts.Source != nil {
		ps.lines = strings.Split(string(opts.Source), "\n")
	}
	n = resolve(n)
	if n != nil && n.Kind == 0 { // what yaml.Unmarshal leaves for an empty input
		n = nil
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			n = nil
		} else {
			n = resolve(n.Content[0])
		}
	}
	at := n
	if at == nil {
		at = &yaml.Node{Line: 1, Column: 1}
	}
	if n != nil && !isNull(n) && n.Kind != yaml.MappingNode {
		ps.lint(n, LevelError, LintBadType, "expected an object (a YAML mapping), got %s", describe(n))
		n = nil
	}
	p := ps.object(n, decl{fields: fields}, "", at)
	return p, ps.lints
}

// YAMLError turns a yaml.v3 error into a lint, recovering the line it names.
func YAMLError(file string, err error) Lint {
	msg := err.Error()
	line := 1
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.Replace(msg, m[0], "yaml: ", 1)
	}
	return Lint{File: file, Line: line, Col: 1, Level: LevelError, Type: LintYAML, Msg: msg}
}

var yamlLineRe = regexp.MustCompile(`yaml: line (\d+): `)

func emptyParsed(fields []Field, file string) *Parsed {
	return emptyParsedQuiet(fields, file, &yaml.Node{Line: 1, Column: 1})
}

type parser struct {
	opts  Options
	lines []string
	lints []Lint
}

func (ps *parser) lint(n *yaml.Node, lv Level, typ, format string, args ...any) {
	ps.lints = append(ps.lints, Lint{
		File: ps.opts.File, Line: n.Line, Col: n.Column, Level: lv, Type: typ,
		Msg: fmt.Sprintf(format, args...),
	})
}

// decl is what an object is checked against: its fields and, for a component choice, the
// components one of whose names must appear as a key.
type decl struct {
	fields  []Field
	choices []Component
	kind    Kind // non-empty: the object names exactly one component of this kind
}

func declOf(f *Field) decl { return decl{fields: f.Fields, choices: f.Choices, kind: f.ChoiceKind} }

// object parses mapping n (nil when absent) against d; at positions lints about
// missing fields when n is nil.
func (ps *parser) object(n *yaml.Node, d decl, path string, at *yaml.Node) *Parsed {
	fields := d.fields
	p := &Parsed{file: ps.opts.File, line: at.Line, col: at.Column, fields: fields, vals: make(map[string]*entry, len(fields))}
	if n != nil {
		p.line, p.col = n.Line, n.Column
	}
	given := map[string][2]*yaml.Node{}
	suggested := map[string]bool{} // a typo already reported needs no "missing" lint too
	var chosen [2]*yaml.Node
	unknownChoice := false
	if n != nil && n.Kind == yaml.MappingNode {
		names := fieldNames(fields)
		choiceNames := componentNames(d.choices)
		seen := map[string]bool{}
		for _, kv := range ps.pairs(n) {
			k := kv[0]
			if seen[k.Value] {
				ps.lint(k, LevelError, LintDuplicate, "field %q given twice", path+k.Value)
				continue
			}
			seen[k.Value] = true
			if find(fields, k.Value) != nil {
				given[k.Value] = kv
				continue
			}
			if d.kind != "" && slices.Contains(choiceNames, k.Value) {
				if chosen[0] != nil {
					ps.lint(k, LevelError, LintComponent, "%smore than one %s: %q and %q; give exactly one",
						where(path), kindNoun(d.kind), chosen[0].Value, k.Value)
					continue
				}
				chosen = kv
				continue
			}
			fs, cs := Suggest(k.Value, names), Suggest(k.Value, choiceNames)
			switch {
			case fs != "" && (cs == "" || editDistance(k.Value, fs) <= editDistance(k.Value, cs)):
				suggested[fs] = true
				ps.lint(k, LevelError, LintUnknownField, "unknown field %q; did you mean %q?", path+k.Value, fs)
			case d.kind != "" && (cs != "" || chosen[0] == nil):
				unknownChoice = true
				msg := fmt.Sprintf("unknown %s %q", kindNoun(d.kind), k.Value)
				if cs != "" {
					msg += fmt.Sprintf("; did you mean %q?", cs)
				}
				ps.lint(k, LevelError, LintComponent, "%s%s", msg, knownList(d.kind, choiceNames))
			default:
				msg := fmt.Sprintf("unknown field %q", path+k.Value)
				if len(names) > 0 && len(names) <= 12 {
					msg += " (known: " + strings.Join(names, ", ") + ")"
				}
				ps.lint(k, LevelError, LintUnknownField, "%s", msg)
			}
		}
	}
	for i := range fields {
		f := &fields[i]
		kv, ok := given[f.Name]
		if ok && ignorable(f, kv[1]) {
			ok = false // `key:` with nothing (or an empty ${VAR:-}) is the same as leaving it out
		}
		if ok {
			e := ps.value(f, kv[0], kv[1], path)
			p.vals[f.Name] = e
			if f.Deprecated != "" {
				ps.lint(kv[0], LevelWarning, LintDeprecated, "field %q is deprecated: %s", path+f.Name, f.Deprecated)
			}
			continue
		}
		p.vals[f.Name] = ps.absent(f, path, n, at, suggested[f.Name])
	}
	if d.kind == "" {
		return p
	}
	pos := at
	if n != nil {
		pos = n
	}
	switch {
	case chosen[0] != nil:
		k, v := chosen[0], chosen[1]
		comp := d.choices[slices.Index(componentNames(d.choices), k.Value)]
		cd := decl{fields: comp.Fields}
		cpath := path + k.Value + "."
		p.choice, p.choiceKey = k.Value, k
		switch {
		case isNull(v):
			p.choiceConf = ps.object(nil, cd, cpath, k)
		case v.Kind == yaml.MappingNode:
			p.choiceConf = ps.object(v, cd, cpath, v)
		default:
			ps.lint(v, LevelError, LintBadType, "%s %q: expected an object, got %s", kindNoun(d.kind), k.Value, describe(v))
			p.choiceConf = emptyParsedQuiet(comp.Fields, ps.opts.File, v)
		}
	case !unknownChoice:
		names := componentNames(d.choices)
		if len(names) == 0 {
			ps.lint(pos, LevelError, LintComponent, "%smissing a %s, and none is registered in this build", where(path), kindNoun(d.kind))
		} else {
			ps.lint(pos, LevelError, LintComponent, "%smissing a %s: give exactly one of %s", where(path), kindNoun(d.kind), strings.Join(names, ", "))
		}
	}
	return p
}

// where prefixes a message with the object's path ("destinations[0]: ").
func where(path string) string {
	if path == "" {
		return ""
	}
	return strings.TrimSuffix(path, ".") + ": "
}

func kindNoun(k Kind) string {
	if k == KindTransform {
		return "transform step"
	}
	return string(k)
}

func knownList(k Kind, names []string) string {
	if len(names) == 0 {
		return fmt.Sprintf(" (no %ss are registered in this build)", kindNoun(k))
	}
	return " (known: " + strings.Join(names, ", ") + ")"
}

func componentNames(cs []Component) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// ignorable reports whether a given value counts as absent: a YAML null, or an empty
// string for a field whose type has no empty value (what ${VAR:-} leaves behind).
func ignorable(f *Field, n *yaml.Node) bool {
	if f.Type == Object {
		return false
	}
	if isNull(n) {
		return true
	}
	switch f.Type {
	case Int, Float, Bool, Duration, Bytes:
		return n.Kind == yaml.ScalarNode && n.Value == ""
	}
	return false
}

func emptyParsedQuiet(fields []Field, file string, at *yaml.Node) *Parsed {
	ps := &parser{opts: Options{File: file}}
	return ps.object(nil, decl{fields: fields}, "", at)
}

// absent fills a field that the YAML does not give: its default, a defaulted object, or a
// missing lint when it is required.
func (ps *parser) absent(f *Field, path string, n, at *yaml.Node, quiet bool) *entry {
	if quiet {
		saved := ps.lints
		defer func() { ps.lints = saved }()
	}
	pos := at
	if n != nil {
		pos = n
	}
	switch f.Type {
	case Object:
		sub := &parser{opts: ps.opts, lines: ps.lines}
		obj := sub.object(nil, declOf(f), path+f.Name+".", pos)
		if f.Optional || f.Default != nil {
			return &entry{v: obj}
		}
		if len(sub.lints) > 0 {
			ps.lint(pos, LevelError, LintMissing, "missing required field %q", path+f.Name)
		}
		return &entry{v: obj}
	case Objects:
		if f.Default == nil && !f.Optional {
			ps.lint(pos, LevelError, LintMissing, "missing required field %q", path+f.Name)
		}
		return &entry{v: []*Parsed(nil)}
	}
	if f.Default != nil {
		v, err := normalizeDefault(*f)
		if err != nil {
			panic(err.Error())
		}
		return &entry{v: v}
	}
	if !f.Optional {
		ps.lint(pos, LevelError, LintMissing, "missing required field %q", path+f.Name)
	}
	return &entry{v: zero(f.Type)}
}

// value parses one given value.
func (ps *parser) value(f *Field, k, n *yaml.Node, path string) *entry {
	if f.Secret {
		// Whatever a check says about a secret, its text must not end up in a lint.
		before := len(ps.lints)
		defer func() { ps.mask(ps.lints[before:], n) }()
	}
	name := path + f.Name
	e := &entry{set: true, key: k, node: n}
	v, ok := ps.typed(f, n, name)
	if !ok {
		switch {
		case f.Type == Object:
			e.v = emptyParsedQuiet(f.Fields, ps.opts.File, n)
		case f.Default != nil && f.Type != Objects:
			e.v, _ = normalizeDefault(*f)
		default:
			e.v = zero(f.Type)
		}
		return e
	}
	e.v = v
	if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		e.indent = ps.blockIndent(k, n)
	}
	if f.Secret && ps.opts.Substituted != nil && n.Kind == yaml.ScalarNode && n.Value != "" && !ps.opts.Substituted(n) {
		ps.lint(n, LevelWarning, LintSecret, "field %q is a secret written in clear; use ${ENV_VAR} or ${file:/path}", name)
	}
	if f.Lint != nil {
		if err := f.Lint(v); err != nil {
			ps.fieldLint(f, n, e.indent, name, err)
		}
	}
	return e
}

// mask replaces the secret scalars under n in lint messages.
func (ps *parser) mask(lints []Lint, n *yaml.Node) {
	var secrets []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n = resolve(n); n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && len(n.Value) >= 4 {
			secrets = append(secrets, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	for i := range lints {
		for _, s := range secrets {
			lints[i].Msg = strings.ReplaceAll(lints[i].Msg, s, "***")
		}
	}
}

// PositionError is implemented by errors that point inside a value, such as an
// expression's compile error, so that a Field.Lint error lands on the offending character
// rather than the start of the value. Line and col are 1-based within the value's text.
type PositionError interface {
	error
	ValuePos() (line, col int, msg string)
}

func (ps *parser) fieldLint(f *Field, n *yaml.Node, indent int, name string, err error) {
	typ := LintLint
	if f.Type == Expr {
		typ = LintExpr
	}
	line, col, msg, ok := 0, 0, "", false
	if ps.opts.ErrorPos != nil {
		line, col, msg, ok = ps.opts.ErrorPos(err)
	}
	if pe := PositionError(nil); !ok && errors.As(err, &pe) {
		line, col, msg = pe.ValuePos()
		ok = true
	}
	if !ok || n.Kind != yaml.ScalarNode {
		ps.lint(n, LevelError, typ, "field %q: %v", name, err)
		return
	}
	l, c := mapPos(n, indent, line, col)
	ps.lints = append(ps.lints, Lint{File: ps.opts.File, Line: l, Col: c, Level: LevelError, Type: typ,
		Msg: fmt.Sprintf("field %q: %s", name, msg)})
}

func (ps *parser) typed(f *Field, n *yaml.Node, name string) (any, bool) {
	bad := func(want string) (any, bool) {
		got := describe(n)
		if f.Secret && n.Kind == yaml.ScalarNode {
			got = "a value (hidden: secret)"
		}
		ps.lint(n, LevelError, LintBadType, "field %q: expected %s, got %s", name, want, got)
		return nil, false
	}
	switch f.Type {
	case String, Expr:
		if n.Kind != yaml.ScalarNode {
			return bad(typeWords[f.Type])
		}
		if !ps.enumOK(f, n, n.Value, name) {
			return nil, false
		}
		return n.Value, true
	case Int:
		if n.Kind != yaml.ScalarNode {
			return bad("an integer")
		}
		i, err := parseInt(n.Value)
		if err != nil {
			return bad("an integer")
		}
		return i, true
	case Float:
		if n.Kind != yaml.ScalarNode {
			return bad("a number")
		}
		x, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return bad("a number")
		}
		return x, true
	case Bool:
		if n.Kind != yaml.ScalarNode {
			return bad("true or false")
		}
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
		return bad("true or false")
	case Duration:
		if n.Kind != yaml.ScalarNode {
			return bad(typeWords[Duration])
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			return bad(typeWords[Duration])
		}
		return d, true
	case Bytes:
		if n.Kind != yaml.ScalarNode {
			return bad(typeWords[Bytes])
		}
		b, err := ParseBytes(n.Value)
		if err != nil {
			return bad(typeWords[Bytes])
		}
		return b, true
	case Strings:
		if n.Kind != yaml.SequenceNode {
			return bad("a list of strings")
		}
		out := make([]string, 0, len(n.Content))
		ok := true
		for i, it := range n.Content {
			it = resolve(it)
			if it.Kind != yaml.ScalarNode || isNull(it) {
				ps.lint(it, LevelError, LintBadType, "field %q: item %d: expected a string, got %s", name, i+1, describe(it))
				ok = false
				continue
			}
			if !ps.enumOK(f, it, it.Value, fmt.Sprintf("%s[%d]", name, i)) {
				ok = false
				continue
			}
			out = append(out, it.Value)
		}
		return out, ok
	case Map:
		if n.Kind != yaml.MappingNode {
			return bad("a map of strings")
		}
		out := map[string]string{}
		ok := true
		for _, kv := range ps.pairs(n) {
			k, v := kv[0], kv[1]
			if _, dup := out[k.Value]; dup {
				ps.lint(k, LevelError, LintDuplicate, "field %q: key %q given twice", name, k.Value)
				ok = false
				continue
			}
			if v.Kind != yaml.ScalarNode {
				ps.lint(v, LevelError, LintBadType, "field %q: key %q: expected a string, got %s", name, k.Value, describe(v))
				ok = false
				continue
			}
			if isNull(v) {
				out[k.Value] = ""
			} else {
				out[k.Value] = v.Value
			}
		}
		return out, ok
	case Object:
		if isNull(n) {
			return ps.object(nil, declOf(f), name+".", n), true
		}
		if n.Kind != yaml.MappingNode {
			return bad("an object")
		}
		return ps.object(n, declOf(f), name+".", n), true
	case Objects:
		if n.Kind != yaml.SequenceNode {
			return bad("a list of objects")
		}
		out := make([]*Parsed, 0, len(n.Content))
		for i, it := range n.Content {
			it = resolve(it)
			ipath := fmt.Sprintf("%s[%d].", name, i)
			if it.Kind != yaml.MappingNode {
				ps.lint(it, LevelError, LintBadType, "field %q: item %d: expected an object, got %s", name, i+1, describe(it))
				out = append(out, emptyParsedQuiet(f.Fields, ps.opts.File, it))
				continue
			}
			out = append(out, ps.object(it, declOf(f), ipath, it))
		}
		return out, true
	}
	panic(fmt.Sprintf("spec: field %q has unknown type %q", name, f.Type))
}

func (ps *parser) enumOK(f *Field, n *yaml.Node, v, name string) bool {
	if len(f.Enum) == 0 || slices.Contains(f.Enum, v) {
		return true
	}
	shown := strconv.Quote(v)
	if f.Secret {
		shown = "the value"
	}
	msg := fmt.Sprintf("field %q: %s is not one of %s", name, shown, strings.Join(f.Enum, ", "))
	if s := Suggest(v, f.Enum); s != "" && !f.Secret {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	ps.lint(n, LevelError, LintEnum, "%s", msg)
	return false
}

// blockIndent finds the indentation of a block scalar's content: from the source when
// known, else the YAML convention of two more than the key.
func (ps *parser) blockIndent(k, n *yaml.Node) int {
	if ps.lines != nil {
		for i := n.Line; i < len(ps.lines); i++ { // n.Line is 1-based: index n.Line is the next line
			l := strings.TrimRight(ps.lines[i], "\r")
			if strings.TrimSpace(l) == "" {
				continue
			}
			return len(l) - len(strings.TrimLeft(l, " "))
		}
	}
	if k != nil {
		return k.Column - 1 + 2
	}
	return n.Column - 1 + 2
}

// pairs lists a mapping's key/value pairs with YAML merge keys (<<: *base) expanded: keys
// written in the mapping win over merged ones, earlier merges over later ones.
func (ps *parser) pairs(n *yaml.Node) [][2]*yaml.Node {
	var out, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			v = resolve(v)
			var srcs []*yaml.Node
			if v.Kind == yaml.SequenceNode {
				srcs = v.Content
			} else {
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				s = resolve(s)
				if s.Kind != yaml.MappingNode {
					ps.lint(s, LevelError, LintBadType, "merge key: expected a mapping, got %s", describe(s))
					continue
				}
				merged = append(merged, ps.pairs(s)...)
			}
			continue
		}
		out = append(out, [2]*yaml.Node{k, resolve(v)})
	}
	if len(merged) == 0 {
		return out
	}
	seen := map[string]bool{}
	for _, kv := range out {
		seen[kv[0].Value] = true
	}
	for _, kv := range merged {
		if !seen[kv[0].Value] {
			seen[kv[0].Value] = true
			out = append(out, kv)
		}
	}
	return out
}

// Pairs lists a mapping node's key/value pairs with aliases resolved and merge keys
// expanded, for consumers that walk component blocks themselves.
func Pairs(n *yaml.Node) [][2]*yaml.Node {
	ps := &parser{}
	return ps.pairs(resolve(n))
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// IsNull reports whether a node is absent or a YAML null (`key:` with nothing, `~`, `null`).
func IsNull(n *yaml.Node) bool { return isNull(resolve(n)) }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing (null)"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		return strconv.Quote(v)
	}
	return "something else"
}

// Describe says what a node holds ("an object", "a list", a quoted scalar) for messages.
func Describe(n *yaml.Node) string { return describe(resolve(n)) }

var typeWords = map[Type]string{
	String:   "a string",
	Expr:     "an expression (a string)",
	Int:      "an integer",
	Float:    "a number",
	Bool:     "true or false",
	Duration: `a duration such as "500ms", "30s", "5m", "2h" or "7d"`,
	Bytes:    `a size such as 1048576, "512KiB", "16MiB" or "1GB"`,
	Strings:  "a list of strings",
	Map:      "a map of strings",
	Object:   "an object",
	Objects:  "a list of objects",
}

func fieldNames(fields []Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}

func find(fields []Field, name string) *Field {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

func parseInt(s string) (int, error) {
	s = strings.ReplaceAll(s, "_", "")
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// YAML 1.2 also allows 0x and 0o; strconv's base 0 reads both.
		if i2, err2 := strconv.ParseInt(s, 0, 64); err2 == nil {
			i, err = i2, nil
		}
	}
	if err != nil || i < math.MinInt || i > math.MaxInt {
		return 0, fmt.Errorf("not an integer: %q", s)
	}
	return int(i), nil
}

// ParseDuration reads a Go duration ("1h30m", "500ms") and also whole days ("7d", "1d12h"),
// which retention settings want.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseUint(s[:i], 10, 32)
		if err == nil {
			rest := time.Duration(0)
			if i+1 < len(s) {
				if rest, err = time.ParseDuration(s[i+1:]); err != nil || rest < 0 {
					return 0, fmt.Errorf("invalid duration %q", s)
				}
			}
			return time.Duration(days)*24*time.Hour + rest, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var bytesRe = regexp.MustCompile(`^([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// ParseBytes reads a size: a plain number of bytes, or a number with a unit. KB, MB, GB, TB
// are powers of 1000; KiB, MiB, GiB, TiB (and the short K, M, G, T) powers of 1024. Units
// are case-insensitive.
func ParseBytes(s string) (int64, error) {
	m := bytesRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult, ok := byteUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q", s, m[2])
	}
	x, err := strconv.ParseFloat(strings.ReplaceAll(m[1], "_", ""), 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	v := x * mult
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

func zero(t Type) any {
	switch t {
	case String, Expr:
		return ""
	case Int:
		return 0
	case Float:
		return 0.0
	case Bool:
		return false
	case Duration:
		return time.Duration(0)
	case Bytes:
		return int64(0)
	case Strings:
		return []string(nil)
	case Map:
		return map[string]string(nil)
	case Objects:
		return []*Parsed(nil)
	}
	return nil
}

// normalizeDefault converts a declared default to the getter's Go type, accepting the
// forms a declaration naturally uses (durations as strings or time.Duration, sizes as
// strings or integers).
func normalizeDefault(f Field) (any, error) {
	bad := func(err error) (any, error) {
		return nil, fmt.Errorf("spec: field %q: default %#v is not a valid %s: %v", f.Name, f.Default, f.Type, err)
	}
	d := f.Default
	switch f.Type {
	case String, Expr:
		if s, ok := d.(string); ok {
			return s, nil
		}
	case Int:
		switch v := d.(type) {
		case int:
			return v, nil
		case int64:
			return int(v), nil
		case int32:
			return int(v), nil
		}
	case Float:
		switch v := d.(type) {
		case float64:
			return v, nil
		case float32:
			return float64(v), nil
		case int:
			return float64(v), nil
		}
	case Bool:
		if b, ok := d.(bool); ok {
			return b, nil
		}
	case Duration:
		switch v := d.(type) {
		case time.Duration:
			return v, nil
		case string:
			x, err := ParseDuration(v)
			if err != nil {
				return bad(err)
			}
			return x, nil
		case int:
			if v == 0 {
				return time.Duration(0), nil
			}
		}
	case Bytes:
		switch v := d.(type) {
		case int:
			return int64(v), nil
		case int64:
			return v, nil
		case string:
			x, err := ParseBytes(v)
			if err != nil {
				return bad(err)
			}
			return x, nil
		}
	case Strings:
		switch v := d.(type) {
		case []string:
			return slices.Clone(v), nil
		case []any:
			out := make([]string, 0, len(v))
			for _, x := range v {
				s, ok := x.(string)
				if !ok {
					return bad(fmt.Errorf("item %#v is not a string", x))
				}
				out = append(out, s)
			}
			return out, nil
		}
	case Map:
		if m, ok := d.(map[string]string); ok {
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[k] = v
			}
			return out, nil
		}
	case Object, Objects:
		return nil, nil
	}
	return bad(fmt.Errorf("wrong Go type %T", d))
}

// get returns the entry for name, panicking on a programming error.
func (p *Parsed) get(name string, types ...Type) *entry {
	f := find(p.fields, name)
	if f == nil {
		panic(fmt.Sprintf("spec: field %q is not declared (declared: %s)", name, strings.Join(fieldNames(p.fields), ", ")))
	}
	if len(types) > 0 && !slices.Contains(types, f.Type) {
		panic(fmt.Sprintf("spec: field %q is %s, not %s", name, f.Type, types[0]))
	}
	return p.vals[name]
}

// String returns a String or Expr field.
func (p *Parsed) String(name string) string { return p.get(name, String, Expr).v.(string) }

// Int returns an Int field.
func (p *Parsed) Int(name string) int { return p.get(name, Int).v.(int) }

// Float returns a Float field.
func (p *Parsed) Float(name string) float64 { return p.get(name, Float).v.(float64) }

// Bool returns a Bool field.
func (p *Parsed) Bool(name string) bool { return p.get(name, Bool).v.(bool) }

// Duration returns a Duration field.
func (p *Parsed) Duration(name string) time.Duration {
	return p.get(name, Duration).v.(time.Duration)
}

// Bytes returns a Bytes field in bytes.
func (p *Parsed) Bytes(name string) int64 { return p.get(name, Bytes).v.(int64) }

// Strings returns a Strings field; the caller may modify the slice.
func (p *Parsed) Strings(name string) []string {
	return slices.Clone(p.get(name, Strings).v.([]string))
}

// Map returns a Map field; the caller may modify the map.
func (p *Parsed) Map(name string) map[string]string {
	m := p.get(name, Map).v.(map[string]string)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Object returns an Object field. It is never nil: an absent object holds its defaults.
func (p *Parsed) Object(name string) *Parsed { return p.get(name, Object).v.(*Parsed) }

// Objects returns an Objects field, one Parsed per list item.
func (p *Parsed) Objects(name string) []*Parsed {
	return slices.Clone(p.get(name, Objects).v.([]*Parsed))
}

// Has reports whether the field was set explicitly in the YAML (not defaulted).
func (p *Parsed) Has(name string) bool { return p.get(name).set }

// Pos returns "file:line:col" of the field's value, or of the enclosing object when the
// field was not set; Pos("") is the object's own position. It is meant for runtime errors
// that point at the configuration.
func (p *Parsed) Pos(name string) string {
	return formatPos(p.Position(name))
}

// Position is Pos as parts.
func (p *Parsed) Position(name string) (file string, line, col int) {
	if name != "" {
		if e := p.get(name); e.node != nil {
			return p.file, e.node.Line, e.node.Column
		}
	}
	return p.file, p.line, p.col
}

// KeyPosition returns the position of the field's key (the value's for a list item), or
// of the object when the field was not set.
func (p *Parsed) KeyPosition(name string) (file string, line, col int) {
	if e := p.get(name); e.key != nil {
		return p.file, e.key.Line, e.key.Column
	}
	return p.file, p.line, p.col
}

// Node returns the YAML node the field's value was read from, nil when defaulted.
func (p *Parsed) Node(name string) *yaml.Node { return p.get(name).node }

// File is the file the object was read from.
func (p *Parsed) File() string { return p.file }

// Fields returns the declaration the object was parsed against.
func (p *Parsed) Fields() []Field { return p.fields }

// ExprPos maps a position inside an expression field's text (1-based line and column, as
// expression compilers report them) to the position in the file. It knows plain, quoted and
// block (| and >) scalars; an unset field maps to the object's position.
func (p *Parsed) ExprPos(name string, line, col int) (file string, fileLine, fileCol int) {
	e := p.get(name)
	if e.node == nil {
		return p.file, p.line, p.col
	}
	fileLine, fileCol = mapPos(e.node, e.indent, line, col)
	return p.file, fileLine, fileCol
}

// ExprPos is Parsed.ExprPos as a function.
func ExprPos(p *Parsed, name string, line, col int) (file string, fileLine, fileCol int) {
	return p.ExprPos(name, line, col)
}

// mapPos maps (line, col) inside scalar n's value to the file. Escapes in quoted scalars
// and folding shift columns slightly; the line is always right for block scalars.
func mapPos(n *yaml.Node, indent, line, col int) (int, int) {
	line, col = max(line, 1), max(col, 1)
	switch {
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		if indent == 0 {
			indent = n.Column + 1
		}
		return n.Line + line, indent + col
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		if line > 1 {
			return n.Line + line - 1, col
		}
		return n.Line, n.Column + col
	default:
		if line > 1 {
			return n.Line + line - 1, col
		}
		return n.Line, n.Column + col - 1
	}
}

// Value returns the object as plain Go values (strings, numbers, bools, durations as
// strings, lists and maps), defaults included: a canonical form for hashing and display.
// Secret fields are included; do not log the result.
func (p *Parsed) Value() map[string]any {
	out := make(map[string]any, len(p.fields))
	for _, f := range p.fields {
		e := p.vals[f.Name]
		if e == nil {
			continue
		}
		switch v := e.v.(type) {
		case *Parsed:
			out[f.Name] = v.Value()
		case []*Parsed:
			l := make([]any, len(v))
			for i, x := range v {
				l[i] = x.Value()
			}
			out[f.Name] = l
		case time.Duration:
			out[f.Name] = v.String()
		default:
			out[f.Name] = v
		}
	}
	if p.choice != "" {
		out[p.choice] = p.choiceConf.Value()
	}
	return out
}

// Choice returns the component an object with Field.Choices names, and its configuration;
// "" and nil when none was given (the lints said so).
func (p *Parsed) Choice() (name string, conf *Parsed) { return p.choice, p.choiceConf }

// ChoicePos is the "file:line:col" of the chosen component's key, or of the object.
func (p *Parsed) ChoicePos() string {
	if p.choiceKey == nil {
		return p.Pos("")
	}
	return formatPos(p.file, p.choiceKey.Line, p.choiceKey.Column)
}

func formatPos(file string, line, col int) string {
	if file == "" {
		return fmt.Sprintf("%d:%d", line, col)
	}
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}
