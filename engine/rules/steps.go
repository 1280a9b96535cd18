package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/spec"
)

// Step is one transform step of a channel. Apply edits the message behind env.Msg in place;
// the header fields of env.Msg are refreshed afterwards, so a later step (or the channel's
// routing) sees the edit. A compiled Step is safe for concurrent use.
type Step interface {
	Apply(ctx context.Context, env Env) error
}

// Step names, as written in a channel's transform list.
const (
	StepSet    = "set"
	StepCopy   = "copy"
	StepDelete = "delete"
	StepMap    = "map"
	StepWhen   = "when"
)

// Field names shared by the step declarations.
const (
	fieldIf           = "if"
	fieldPath         = "path"
	fieldPaths        = "paths"
	fieldValue        = "value"
	fieldExpr         = "expr"
	fieldFrom         = "from"
	fieldTo           = "to"
	fieldTable        = "table"
	fieldFile         = "file"
	fieldDefault      = "default"
	fieldKeepUnmapped = "keep_unmapped"
	fieldThen         = "then"
	fieldElse         = "else"
)

// ErrUnknownStep is returned by NewStep for a name that is not a built-in step.
var ErrUnknownStep = errors.New("unknown transform step")

// Steps returns the declarations of every built-in step, for config linting and docs.
func Steps() []spec.Component {
	return append(basicSteps(), whenSpec(), toFHIRSpec())
}

// basicSteps are the steps a when may contain: when does not nest, which keeps channel
// configs flat enough to read and the declarations finite.
func basicSteps() []spec.Component {
	return []spec.Component{setSpec(), copySpec(), deleteSpec(), mapSpec()}
}

// NewStep builds the named step from its parsed configuration. baseDir is the directory
// relative table files are resolved against (the directory of the config file). Everything
// that can be checked is checked here, once: paths, expressions and table files.
func NewStep(name string, conf *spec.Parsed, baseDir string) (Step, error) {
	var (
		s   Step
		err error
	)
	if conf == nil && slices.Contains(stepNames(), name) {
		return nil, fmt.Errorf("transform %s: no configuration", name)
	}
	switch name {
	case StepSet:
		s, err = newSet(conf)
	case StepCopy:
		s, err = newCopy(conf)
	case StepDelete:
		s, err = newDelete(conf)
	case StepMap:
		s, err = newMap(conf, baseDir)
	case StepToFHIR:
		s, err = newToFHIR(conf)
	case StepWhen:
		// when's `if` is its own condition, not the guard every other step may have.
		s, err := newWhen(conf, baseDir)
		if err != nil {
			return nil, fmt.Errorf("transform when: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownStep, name, strings.Join(stepNames(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("transform %s: %w", name, err)
	}
	if conf.Has(fieldIf) {
		cond, err := CompileFilter(conf.String(fieldIf))
		if err != nil {
			return nil, fmt.Errorf("transform %s: %w", name, exprFieldError(conf, fieldIf, err))
		}
		s = &guarded{cond: cond, name: name + label(s), step: s}
	}
	return s, nil
}

// FieldError is an expression error in a step's configuration, positioned in the config
// file. It unwraps to the *ExprError, whose Line and Col stay relative to the expression.
type FieldError struct {
	Pos   string // "file:line:col" of the error inside the file, or "line:col" without a file
	Field string // the config field holding the expression, e.g. "expr" or "if"
	Err   *ExprError
}

func (e *FieldError) Error() string { return e.Pos + ": " + e.Field + ": " + e.Err.Msg }
func (e *FieldError) Unwrap() error { return e.Err }

// exprFieldError positions err, when it is an *ExprError, in the config file.
func exprFieldError(conf *spec.Parsed, field string, err error) error {
	var ee *ExprError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", fieldDesc(conf, field), err)
	}
	file, line, col := conf.ExprPos(field, ee.Line, ee.Col)
	pos := fmt.Sprintf("%d:%d", line, col)
	if file != "" {
		pos = file + ":" + pos
	}
	return &FieldError{Pos: pos, Field: field, Err: ee}
}

func stepNames() []string {
	var names []string
	for _, c := range Steps() {
		names = append(names, c.Name)
	}
	return names
}

// fieldDesc names a config field for an error, with its position when the config came
// from a file.
func fieldDesc(conf *spec.Parsed, name string) string {
	if pos := conf.Pos(name); pos != "" {
		return pos + ": " + name
	}
	return name
}

// --- field declarations -------------------------------------------------------------

func ifField() spec.Field {
	return spec.NewExpr(fieldIf, "Apply the step only when this filter expression is true; "+
		"the same language and environment as the channel filter.").
		AsOptional().
		WithExamples(`msg.Type == "ORM"`, `msg.Has("PV1-3.1")`).
		WithLint(lintFilter)
}

func pathField(name, desc string) spec.Field {
	return spec.NewString(name, desc).WithLint(lintPath)
}

func lintPath(v any) error {
	s, _ := v.(string)
	_, err := checkPath(s)
	return err
}

func lintFilter(v any) error {
	s, _ := v.(string)
	_, err := CompileFilter(s)
	return err
}

func lintKey(v any) error {
	s, _ := v.(string)
	_, err := CompileKey(s)
	return err
}

func checkPath(s string) (hl7v2.Path, error) {
	p, err := hl7v2.ParsePath(s)
	if err != nil {
		return p, &pathError{msg: pathMessage(s, err), err: err}
	}
	return p, nil
}

// pathError keeps hl7v2's error for errors.Is while saying it once, without the package
// prefix that would only repeat what the step name already says.
type pathError struct {
	msg string
	err error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.err }

// pathMessage phrases a ParsePath error for an analyst: `invalid path "PID-3,1": want ...`.
func pathMessage(path string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "hl7v2: ")
	if !strings.Contains(msg, path) {
		msg = fmt.Sprintf("invalid path %q: %s", path, msg)
	}
	return msg
}

// --- set ------------------------------------------------------------------------------

func setSpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepSet,
		Summary: "Sets a field to a constant or to the result of an expression.",
		Description: "Exactly one of `value` and `expr` is given. The value is escaped on the way " +
			"in, so a `|` or `^` in it stays data and never creates a new field or component. " +
			"Setting a field of a segment the message lacks appends that segment.",
		Fields: []spec.Field{
			pathField(fieldPath, "The HL7 path to set, e.g. `MSH-5` or `PV1-3.1`.").
				WithExamples("MSH-5", "PV1-3.1", "OBR-4[1].2"),
			spec.NewString(fieldValue, "The constant value to write.").AsOptional().
				WithExamples("RIS", ""),
			spec.NewExpr(fieldExpr, "A string expression over the message whose result is written.").
				AsOptional().WithLint(lintKey).
				WithExamples(`upper(msg.Get("PID-5.1"))`, `msg.Facility + "-" + msg.Get("PV1-3.1")`),
			ifField(),
		},
		Examples: []spec.Example{
			{
				Title:   "Route to the RIS",
				Summary: "Overwrite the receiving application.",
				YAML:    "path: MSH-5\nvalue: RIS\n",
			},
			{
				Title:   "Computed value",
				Summary: "Prefix the visit number with the sending facility.",
				YAML:    "path: PV1-19\nexpr: 'msg.Facility + \"-\" + msg.Get(\"PV1-19\")'\n",
			},
		},
	}
}

type setStep struct {
	path  string
	p     hl7v2.Path
	value string
	expr  *Key // nil for a constant
}

func newSet(conf *spec.Parsed) (Step, error) {
	s := &setStep{path: conf.String(fieldPath)}
	var err error
	if s.p, err = checkPath(s.path); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldDesc(conf, fieldPath), err)
	}
	hasValue, hasExpr := conf.Has(fieldValue), conf.Has(fieldExpr)
	switch {
	case hasValue && hasExpr:
		return nil, fmt.Errorf("%s: give either value or expr, not both", s.path)
	case hasValue:
		s.value = conf.String(fieldValue)
	case hasExpr:
		k, err := CompileKey(conf.String(fieldExpr))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, exprFieldError(conf, fieldExpr, err))
		}
		s.expr = k
	default:
		return nil, fmt.Errorf("%s: one of value or expr is required", s.path)
	}
	return s, nil
}

func (s *setStep) Apply(ctx context.Context, env Env) error {
	if err := ready(ctx, env); err != nil {
		return fmt.Errorf("transform set %s: %w", s.path, err)
	}
	v := s.value
	if s.expr != nil {
		var err error
		if v, err = s.expr.Eval(env); err != nil {
			return fmt.Errorf("transform set %s: %w", s.path, err)
		}
	}
	if err := env.Msg.m.SetAt(s.p, v); err != nil {
		return fmt.Errorf("transform set %s: %w", s.path, err)
	}
	env.Msg.refresh()
	return nil
}

// --- copy -----------------------------------------------------------------------------

func copySpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepCopy,
		Summary: "Copies the value at one path to another.",
		Description: "The element is copied as encoded, structure included: copying `PID-5` to " +
			"`NK1-2` copies every component, and escaped delimiters stay escaped. Copying an element " +
			"that has components into a single component (`PID-5` to `PV1-50.1`) fails for a " +
			"message where the source really has several, rather than flattening them silently. " +
			"An absent source clears the target.",
		Fields: []spec.Field{
			pathField(fieldFrom, "The path to read.").WithExamples("PID-3[1].1"),
			pathField(fieldTo, "The path to write.").WithExamples("PID-2.1"),
			ifField(),
		},
		Examples: []spec.Example{{
			Title:   "Medical record number into the visit",
			Summary: "Copy the first patient identifier into PV1-50.",
			YAML:    "from: PID-3[1].1\nto: PV1-50.1\n",
		}},
	}
}

type copyStep struct{ from, to string }

func newCopy(conf *spec.Parsed) (Step, error) {
	s := &copyStep{from: conf.String(fieldFrom), to: conf.String(fieldTo)}
	for _, f := range []string{fieldFrom, fieldTo} {
		if _, err := checkPath(conf.String(f)); err != nil {
			return nil, fmt.Errorf("%s: %w", fieldDesc(conf, f), err)
		}
	}
	return s, nil
}

func (s *copyStep) Apply(ctx context.Context, env Env) error {
	if err := ready(ctx, env); err != nil {
		return fmt.Errorf("transform copy %s to %s: %w", s.from, s.to, err)
	}
	// Raw and SetRaw keep the element's structure and escapes as they are; the message's
	// own delimiters are used on both sides, so nothing needs re-encoding.
	if err := env.Msg.m.SetRaw(s.to, env.Msg.m.Raw(s.from)); err != nil {
		return fmt.Errorf("transform copy %s to %s: %w", s.from, s.to, err)
	}
	env.Msg.refresh()
	return nil
}

// --- delete ---------------------------------------------------------------------------

func deleteSpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepDelete,
		Summary: "Clears fields or removes whole segments.",
		Description: "A path naming only a segment (`ZPI`, `NTE`) removes every segment of that " +
			"name; with an occurrence (`NTE[2]`) only that one. A field path (`PID-19`, `PID-3[2]`, " +
			"`PID-11.7`) empties the element. Deleting something absent is not an error. Give " +
			"`path` for one, `paths` for several, applied in order.",
		Fields: []spec.Field{
			pathField(fieldPath, "One path or segment name to delete.").AsOptional().
				WithExamples("PID-19", "ZPI"),
			spec.NewStrings(fieldPaths, "Several paths or segment names to delete, in order.").
				AsOptional().WithLint(lintPaths).
				WithExamples([]any{"NTE", "ZPI", "PID-19"}),
			ifField(),
		},
		Examples: []spec.Example{
			{Title: "Drop a Z segment", Summary: "Remove every ZPI segment.", YAML: "path: ZPI\n"},
			{Title: "Strip notes and the SSN", Summary: "Remove notes and clear PID-19.", YAML: "paths: [NTE, PID-19]\n"},
		},
	}
}

func lintPaths(v any) error {
	var list []string
	switch t := v.(type) {
	case []string:
		list = t
	case []any:
		for _, e := range t {
			s, _ := e.(string)
			list = append(list, s)
		}
	}
	for _, p := range list {
		if _, err := checkPath(p); err != nil {
			return err
		}
	}
	return nil
}

type deleteStep struct {
	paths  []string
	parsed []hl7v2.Path
}

func newDelete(conf *spec.Parsed) (Step, error) {
	var s deleteStep
	if conf.Has(fieldPath) {
		s.paths = append(s.paths, conf.String(fieldPath))
	}
	if conf.Has(fieldPaths) {
		if len(s.paths) > 0 {
			return nil, errors.New("give either path or paths, not both")
		}
		s.paths = append(s.paths, conf.Strings(fieldPaths)...)
	}
	if len(s.paths) == 0 {
		return nil, errors.New("one of path or paths is required")
	}
	for _, p := range s.paths {
		parsed, err := checkPath(p)
		if err != nil {
			f := fieldPath
			if conf.Has(fieldPaths) {
				f = fieldPaths
			}
			return nil, fmt.Errorf("%s: %w", fieldDesc(conf, f), err)
		}
		if parsed.Segment == "MSH" && parsed.Field == 0 {
			return nil, fmt.Errorf("%s: the MSH segment cannot be deleted", fieldDesc(conf, fieldPath))
		}
		s.parsed = append(s.parsed, parsed)
	}
	return &s, nil
}

func (s *deleteStep) Apply(ctx context.Context, env Env) error {
	defer env.Msg.refresh()
	for i, p := range s.parsed {
		if err := ready(ctx, env); err != nil {
			return fmt.Errorf("transform delete %s: %w", s.paths[i], err)
		}
		m := env.Msg.m
		// hl7v2 removes one segment per Delete; a bare segment name means all of them.
		all := p.Field == 0 && p.SegmentRep == 0
		for n := m.Count(p.Segment); n > 0; n-- {
			if err := m.Delete(s.paths[i]); err != nil {
				return fmt.Errorf("transform delete %s: %w", s.paths[i], err)
			}
			if !all {
				break
			}
		}
	}
	return nil
}

// --- when -----------------------------------------------------------------------------

func whenSpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepWhen,
		Summary: "Applies a group of steps when a condition holds, another group when it does not.",
		Description: "For a single step, the `if` field every step has is shorter. A when holds " +
			"set, copy, delete and map steps; it does not nest.",
		Fields: []spec.Field{
			spec.NewExpr(fieldIf, "The filter expression deciding which group runs.").
				WithExamples(`msg.Type == "ORM" && msg.Event == "O01"`).WithLint(lintFilter),
			spec.NewObjects(fieldThen, "The steps applied, in order, when the condition is true.").
				WithChoices(spec.KindTransform, basicSteps()...),
			spec.NewObjects(fieldElse, "The steps applied, in order, when it is false.").AsOptional().
				WithChoices(spec.KindTransform, basicSteps()...),
		},
		Examples: []spec.Example{{
			Title:   "New orders only",
			Summary: "Route new orders to the RIS and strip their notes; mark everything else.",
			YAML: "if: msg.Get(\"ORC-1\") == \"NW\"\n" +
				"then:\n  - set: {path: MSH-5, value: RIS}\n  - delete: {path: NTE}\n" +
				"else:\n  - set: {path: MSH-5, value: ARCHIVE}\n",
		}},
	}
}

type whenStep struct {
	cond      *Filter
	then, els []Step
}

func newWhen(conf *spec.Parsed, baseDir string) (Step, error) {
	cond, err := CompileFilter(conf.String(fieldIf))
	if err != nil {
		return nil, exprFieldError(conf, fieldIf, err)
	}
	s := &whenStep{cond: cond}
	if s.then, err = NewSteps(conf.Objects(fieldThen), baseDir); err != nil {
		return nil, fmt.Errorf("then: %w", err)
	}
	if len(s.then) == 0 {
		return nil, fmt.Errorf("%s: then has no steps", fieldDesc(conf, fieldThen))
	}
	if conf.Has(fieldElse) {
		if s.els, err = NewSteps(conf.Objects(fieldElse), baseDir); err != nil {
			return nil, fmt.Errorf("else: %w", err)
		}
	}
	return s, nil
}

func (s *whenStep) Apply(ctx context.Context, env Env) error {
	ok, err := s.cond.Match(env)
	if err != nil {
		return fmt.Errorf("transform when: if: %w", err)
	}
	group := s.then
	if !ok {
		group = s.els
	}
	return Apply(ctx, group, env)
}

// --- lists of steps -------------------------------------------------------------------

// TransformField declares a list of transform steps, each item naming one built-in step:
// a channel's `transform:`. Parse it with the spec package and build it with NewSteps.
func TransformField(name, desc string) spec.Field {
	return spec.NewObjects(name, desc).AsOptional().WithChoices(spec.KindTransform, Steps()...)
}

// FilterField declares an expression field that must compile as a filter; the spec lint
// reports a bad one at load, with the expression's own error.
func FilterField(name, desc string) spec.Field { return spec.NewExpr(name, desc).WithLint(lintFilter) }

// KeyField declares an expression field that must compile as a key.
func KeyField(name, desc string) spec.Field { return spec.NewExpr(name, desc).WithLint(lintKey) }

// NewSteps builds the steps of a list parsed against TransformField (or a when's then and
// else). Errors are prefixed with the position of the failing item.
func NewSteps(items []*spec.Parsed, baseDir string) ([]Step, error) {
	steps := make([]Step, 0, len(items))
	for _, item := range items {
		name, conf := item.Choice()
		if conf == nil {
			return nil, fmt.Errorf("%s: no transform step named", item.Pos(""))
		}
		s, err := NewStep(name, conf, baseDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", item.ChoicePos(), err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// Apply applies steps in order and stops at the first error.
func Apply(ctx context.Context, steps []Step, env Env) error {
	for _, s := range steps {
		if err := s.Apply(ctx, env); err != nil {
			return err
		}
	}
	return nil
}

// --- shared ---------------------------------------------------------------------------

// guarded applies a step only when its `if` filter matches.
type guarded struct {
	cond *Filter
	name string
	step Step
}

// label is what a step's errors name besides the step: its path.
func label(s Step) string {
	switch s := s.(type) {
	case *setStep:
		return " " + s.path
	case *copyStep:
		return " " + s.from + " to " + s.to
	case *deleteStep:
		return " " + strings.Join(s.paths, ", ")
	case *mapStep:
		return " " + s.path
	}
	return ""
}

func (g *guarded) Apply(ctx context.Context, env Env) error {
	ok, err := g.cond.Match(env)
	if err != nil {
		return fmt.Errorf("transform %s: if: %w", g.name, err)
	}
	if !ok {
		return nil
	}
	return g.step.Apply(ctx, env)
}

// ErrNoMessage is returned by a step applied to an environment without a message.
var ErrNoMessage = errors.New("no message to transform")

func ready(ctx context.Context, env Env) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if env.Msg == nil || env.Msg.m == nil {
		return ErrNoMessage
	}
	return nil
}
