// Package spec is how a component declares its configuration: fields with types, defaults,
// doc strings, examples and lints. One declaration drives strict parsing, `osprey validate`,
// `osprey config docs` and the JSON Schema, so they can never disagree.
package spec

import "time"

// Type is the YAML shape a field accepts.
type Type string

const (
	String   Type = "string"
	Int      Type = "int"
	Float    Type = "float"
	Bool     Type = "bool"
	Duration Type = "duration" // Go duration string: "500ms", "30s", "2h"
	Bytes    Type = "bytes"    // size with optional unit: 1048576, "1MiB", "16MB"
	Strings  Type = "strings"  // list of strings
	Object   Type = "object"   // nested fields
	Objects  Type = "objects"  // list of objects with the same fields
	Map      Type = "map"      // string to string
	Expr     Type = "expr"     // an expr-lang expression, compiled by the component's lint
)

// Field declares one configuration key.
type Field struct {
	Name        string
	Type        Type
	Description string
	Default     any      // nil means no default; a field without default and not Optional is required
	Optional    bool     // may be absent with no default
	Secret      bool     // value is masked in logs and docs; should come from ${ENV} or ${file:...}
	Advanced    bool     // hidden from the short docs
	Deprecated  string   // non-empty: the lint warns with this text
	Enum        []string // allowed values for String
	Examples    []any
	Fields      []Field // for Object and Objects
	// Choices make an Object (or each item of Objects) name one component: besides Fields,
	// the mapping must hold exactly one key among the choices' names, whose value is
	// parsed against that component's fields. A channel's `source: {mllp: {...}}` is one.
	Choices    []Component
	ChoiceKind Kind // what the choices are, for messages: "source", "destination", "transform"
	// Lint checks a parsed value beyond its type; the error text is reported at the value's position.
	Lint func(v any) error
}

// Constructors keep declarations short and readable; chain the With methods.

func NewString(name, desc string) Field { return Field{Name: name, Type: String, Description: desc} }
func NewInt(name, desc string) Field    { return Field{Name: name, Type: Int, Description: desc} }
func NewFloat(name, desc string) Field  { return Field{Name: name, Type: Float, Description: desc} }
func NewBool(name, desc string) Field   { return Field{Name: name, Type: Bool, Description: desc} }
func NewDuration(name, desc string) Field {
	return Field{Name: name, Type: Duration, Description: desc}
}
func NewBytes(name, desc string) Field   { return Field{Name: name, Type: Bytes, Description: desc} }
func NewStrings(name, desc string) Field { return Field{Name: name, Type: Strings, Description: desc} }
func NewMap(name, desc string) Field     { return Field{Name: name, Type: Map, Description: desc} }
func NewExpr(name, desc string) Field    { return Field{Name: name, Type: Expr, Description: desc} }
func NewObject(name, desc string, fields ...Field) Field {
	return Field{Name: name, Type: Object, Description: desc, Fields: fields}
}
func NewObjects(name, desc string, fields ...Field) Field {
	return Field{Name: name, Type: Objects, Description: desc, Fields: fields}
}

func (f Field) WithDefault(v any) Field          { f.Default = v; return f }
func (f Field) AsOptional() Field                { f.Optional = true; return f }
func (f Field) AsSecret() Field                  { f.Secret = true; return f }
func (f Field) AsAdvanced() Field                { f.Advanced = true; return f }
func (f Field) WithEnum(values ...string) Field  { f.Enum = values; return f }
func (f Field) WithExamples(ex ...any) Field     { f.Examples = ex; return f }
func (f Field) WithLint(l func(any) error) Field { f.Lint = l; return f }
func (f Field) DeprecatedFor(msg string) Field   { f.Deprecated = msg; return f }

// WithChoices makes an Object or Objects field name one component of kind among comps.
func (f Field) WithChoices(kind Kind, comps ...Component) Field {
	f.ChoiceKind, f.Choices = kind, comps
	return f
}

// Kind is the namespace a component lives in.
type Kind string

const (
	KindSource      Kind = "source"
	KindDestination Kind = "destination"
	KindTransform   Kind = "transform"
	KindMapping     Kind = "mapping" // turns an AI analysis into what a destination sends
	KindConfig      Kind = "config"  // a section of the configuration file itself: server, channel
)

// Example is a runnable configuration snippet shown in the docs and linted by the tests.
type Example struct {
	Title   string
	Summary string
	YAML    string
}

// Component is the whole declaration of one connector or step.
type Component struct {
	Kind        Kind
	Name        string // "mllp"; the ID is Kind.Name, e.g. "source.mllp"
	Summary     string // one line
	Description string // Markdown
	Fields      []Field
	Examples    []Example
}

// ID is the namespaced identifier, e.g. "destination.mllp".
func (c Component) ID() string { return string(c.Kind) + "." + c.Name }

// Parsed is a configuration object that has passed its spec: every field present or
// defaulted and of the right type. Getters never fail for declared fields; asking for an
// undeclared name panics, because that is a programming error in the component.
//
// The getters are implemented in parse.go.
var _ interface {
	String(name string) string
	Int(name string) int
	Float(name string) float64
	Bool(name string) bool
	Duration(name string) time.Duration
	Bytes(name string) int64
	Strings(name string) []string
	Map(name string) map[string]string
	Object(name string) *Parsed
	Objects(name string) []*Parsed
	Has(name string) bool   // set explicitly in the YAML (not defaulted)
	Pos(name string) string // "file:line:col" of the value, for runtime errors that point at config
} = (*Parsed)(nil)
