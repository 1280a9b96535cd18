package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// ExprError is a compile or evaluation error inside an expression. Line and Col are 1-based
// and count characters (not bytes) from the start of the expression source, so a config
// loader can add them to the position of the YAML value that holds the expression.
type ExprError struct {
	Line, Col int
	Msg       string
}

func (e *ExprError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// ExprPosition returns Line and Col. It lets packages that cannot import rules (the config
// linter) find the position with errors.As and an interface, and map it into the file.
func (e *ExprError) ExprPosition() (line, col int) { return e.Line, e.Col }

// Filter is a compiled boolean expression over [Env].
type Filter struct {
	src  string
	prog *vm.Program
}

// Key is a compiled string expression over [Env], used for ordering keys and computed
// field values.
type Key struct {
	src  string
	prog *vm.Program
}

var (
	boolType   = reflect.TypeOf(true)
	stringType = reflect.TypeOf("")
	viewType   = reflect.TypeOf((*MsgView)(nil))
	studyType  = reflect.TypeOf((*StudyView)(nil))
	orderType  = reflect.TypeOf((*OrderView)(nil))
)

// CompileFilter compiles a filter expression. Syntax errors, unknown names, type errors,
// malformed path literals and a result that is not a boolean are reported as *ExprError.
func CompileFilter(src string) (*Filter, error) {
	prog, err := compile(src, boolType, "filter")
	if err != nil {
		return nil, err
	}
	return &Filter{src: src, prog: prog}, nil
}

// Match evaluates the filter for one message.
func (f *Filter) Match(env Env) (bool, error) {
	out, err := run(f.prog, env)
	if err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	b, ok := out.(bool)
	if !ok {
		// Only reachable when part of the expression has no static type (a value of type any).
		return false, fmt.Errorf("filter: result is %s, not bool", describe(out))
	}
	return b, nil
}

// String returns the source of the filter.
func (f *Filter) String() string { return f.src }

// CompileKey compiles an expression that must yield a string. A number must be converted
// explicitly with string(...), so that a key never changes form silently.
func CompileKey(src string) (*Key, error) {
	prog, err := compile(src, stringType, "key")
	if err != nil {
		return nil, err
	}
	return &Key{src: src, prog: prog}, nil
}

// Eval evaluates the key for one message.
func (k *Key) Eval(env Env) (string, error) {
	out, err := run(k.prog, env)
	if err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	s, ok := out.(string)
	if !ok {
		return "", fmt.Errorf("key: result is %s, not string", describe(out))
	}
	return s, nil
}

// String returns the source of the key.
func (k *Key) String() string { return k.src }

// vms are reused between evaluations: a VM keeps its stack, so a warm filter evaluation
// allocates almost nothing.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

func run(prog *vm.Program, env Env) (any, error) {
	env.fill()
	return runAny(prog, env)
}

// runAny runs prog on any environment value; run fills an Env's zero views first.
func runAny(prog *vm.Program, env any) (any, error) {
	machine := vms.Get().(*vm.VM)
	out, err := machine.Run(prog, env)
	vms.Put(machine)
	if err != nil {
		return nil, toExprError(prog.Source().String(), err)
	}
	return out, nil
}

func compile(src string, want reflect.Type, what string) (*vm.Program, error) {
	return compileWith(src, want, what, Env{})
}

// compileWith compiles src against the environment type of env (Env or ResultEnv).
func compileWith(src string, want reflect.Type, what string, env any) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Line: 1, Col: 1, Msg: what + " is empty"}
	}
	lits := &literalCheck{}
	opts := append([]expr.Option{expr.Env(env), expr.Patch(lits)}, functions...)
	prog, err := expr.Compile(src, opts...)
	var first *ExprError
	if err != nil {
		first = toExprError(src, err)
		if _, isResult := env.(ResultEnv); isResult {
			first.Msg = strings.Replace(first.Msg, "(known names: "+strings.Join(topNames, ", ")+")",
				"(known names: "+strings.Join(resultNames, ", ")+")", 1)
		}
	}
	// The literal check runs on the typed tree before the final type check, so it may have
	// found a bad path even when the type check also failed: report whichever comes first.
	for _, le := range lits.errs {
		e := &ExprError{Msg: le.msg}
		e.Line, e.Col = position(src, le.from)
		if first == nil || e.Line < first.Line || e.Line == first.Line && e.Col < first.Col {
			first = e
		}
	}
	if first != nil {
		return nil, first
	}
	got := prog.Node().Type()
	if got != nil && got.Kind() != reflect.Interface && got != want {
		e := &ExprError{Msg: fmt.Sprintf("%s must be a %s expression, but this one yields %s", what, typeWord(want), typeName(got))}
		if want == stringType && isNumber(got) {
			e.Msg += "; convert it with string(...)"
		}
		e.Line, e.Col = position(src, firstNonSpace(src))
		return nil, e
	}
	return prog, nil
}

// toExprError turns expr's errors into positioned ExprErrors with messages that speak of
// the configuration's names rather than Go types.
func toExprError(src string, err error) *ExprError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &ExprError{Line: 1, Col: 1, Msg: humanize(err.Error())}
	}
	e := &ExprError{Msg: suggest(humanize(strings.TrimSpace(fe.Message)))}
	if fe.Prev != nil && !strings.Contains(fe.Message, fe.Prev.Error()) {
		e.Msg += ": " + humanize(fe.Prev.Error())
	}
	e.Line, e.Col = position(src, fe.From)
	return e
}

var goNames = strings.NewReplacer(
	"*rules.MsgView", "msg",
	"rules.MsgView", "msg",
	"*rules.StudyView", "study",
	"rules.StudyView", "study",
	"*rules.OrderView", "order",
	"rules.OrderView", "order",
	"[]rules.SeriesView", "list of series",
	"rules.SeriesView", "series",
	"[]rules.FindingView", "list of findings",
	"rules.FindingView", "finding",
	"rules.Env", "the environment",
	"rules.ResultEnv", "the environment of result rules",
	"interface {}", "any",
	fnGetPath, "msg.Get", fnGet, "msg.Get", fnHasPath, "msg.Has", fnHas, "msg.Has", fnCount, "msg.Count",
)

func humanize(s string) string { return goNames.Replace(s) }

// position converts a character offset into a 1-based line and column.
func position(src string, from int) (line, col int) {
	line, col = 1, 1
	n := 0
	for _, r := range src {
		if n == from {
			break
		}
		n++
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func firstNonSpace(src string) int {
	n := 0
	for _, r := range src {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return n
		}
		n++
	}
	return 0
}

func typeWord(t reflect.Type) string {
	if t == boolType {
		return "boolean"
	}
	return t.String()
}

func typeName(t reflect.Type) string {
	switch {
	case t == viewType:
		return "msg"
	case t == studyType:
		return "study"
	case t == orderType:
		return "order"
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		return "map of strings"
	}
	return humanize(t.String())
}

func isNumber(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func describe(v any) string {
	if v == nil {
		return "nil"
	}
	return humanize(reflect.TypeOf(v).String())
}

// literalCheck is an expr patcher that validates constant arguments at compile time (HL7
// paths given to msg.Get and msg.Has, segment names given to msg.Count, dates given to
// hl7date and age) and rewrites the calls it understands for speed:
//
//   - msg.Get, msg.Has and msg.Count become calls of the internal functions below, which
//     expr invokes directly instead of through reflection (about five times faster);
//   - a literal path is parsed once, here, and passed to them already parsed;
//   - hl7date of a literal becomes the time it denotes.
//
// It only records problems; compile reports them with positions.
type literalCheck struct {
	errs []literalError
}

type literalError struct {
	from int
	msg  string
}

func (c *literalCheck) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 {
		return
	}
	arg, literal := call.Arguments[0].(*ast.StringNode)
	// Only calls that type-check are rewritten, so that the checker's complaint about a bad
	// argument names msg.Get and not an internal function.
	stringArg := literal || call.Arguments[0].Type() == stringType
	switch callee := call.Callee.(type) {
	case *ast.MemberNode:
		name, ok := callee.Property.(*ast.StringNode)
		if !ok || callee.Node.Type() != viewType || callee.Optional || !stringArg {
			return
		}
		switch name.Value {
		case "Get", "Has":
			fn := map[string]string{"Get": fnGet, "Has": fnHas}[name.Value]
			if !literal {
				c.replace(node, fn, callee.Node, call.Arguments[0])
				return
			}
			p, err := hl7v2.ParsePath(arg.Value)
			if err != nil {
				c.fail(arg, fmt.Sprintf("msg.%s: %s", name.Value, pathMessage(arg.Value, err)))
				return
			}
			c.replace(node, fn+"Path", callee.Node, &ast.ConstantNode{Value: p})
		case "Count":
			if literal && !validSegmentName(arg.Value) {
				c.fail(arg, fmt.Sprintf("msg.Count: %q is not a segment name (three letters or digits, such as \"OBX\")", arg.Value))
				return
			}
			c.replace(node, fnCount, callee.Node, call.Arguments[0])
		}
	case *ast.IdentifierNode:
		if !literal {
			return
		}
		switch callee.Value {
		case "hl7date", "age":
			t, err := ParseHL7Time(arg.Value)
			if err != nil {
				c.fail(arg, fmt.Sprintf("%s: %v", callee.Value, err))
				return
			}
			if callee.Value == "hl7date" {
				ast.Patch(node, &ast.ConstantNode{Value: t})
			}
		}
	}
}

// replace patches *node into a call of an internal function with the given arguments,
// keeping the node's position for run-time errors.
func (c *literalCheck) replace(node *ast.Node, fn string, args ...ast.Node) {
	ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: fn}, Arguments: args})
}

func (c *literalCheck) fail(n ast.Node, msg string) {
	c.errs = append(c.errs, literalError{from: n.Location().From, msg: msg})
}

// validSegmentName reports whether s looks like an HL7 segment ID: three upper-case letters
// or digits, the first a letter.
func validSegmentName(s string) bool {
	if utf8.RuneCountInString(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Names an expression can use, for "did you mean" hints.
var (
	msgMembers    = []string{"Type", "Event", "ControlID", "Version", "Sender", "Facility", "Get", "Has", "Count"}
	studyMembers  = fieldNames(StudyView{})
	orderMembers  = fieldNames(OrderView{})
	seriesMembers = fieldNames(SeriesView{})
	topNames      = []string{"msg", "channel", "meta", "study", "order", "hl7date", "age", "now"}
	resultNames   = []string{"findings", "finding", "positive", "plugins", "study", "order", "channel", "hl7date", "age", "now"}
	unknownRe     = regexp.MustCompile(`^(?:type (msg|study|order|series|finding) has no (?:field|method) |unknown name )(\w+)$`)
)

// fieldNames lists the exported fields of a view struct, in declaration order.
func fieldNames(v any) []string {
	t := reflect.TypeOf(v)
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			out = append(out, f.Name)
		}
	}
	return out
}

// suggest appends the closest known name to an "unknown name" message.
func suggest(msg string) string {
	m := unknownRe.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	names, what := topNames, "known names"
	switch m[1] {
	case "msg":
		names, what = msgMembers, "msg has"
	case "study":
		names, what = studyMembers, "study has"
	case "order":
		names, what = orderMembers, "order has"
	case "series":
		names, what = seriesMembers, "a series has"
	case "finding":
		names, what = fieldNames(FindingView{}), "a finding has"
	}
	best, bestD := "", 0
	for _, n := range names {
		// One edit per three letters is a typo; more is another word.
		d := distance(strings.ToLower(m[2]), strings.ToLower(n))
		// d == 0 is a name of the other environment (msg in a result rule): no suggestion.
		if n != m[2] && d <= max(1, len(n)/3) && (best == "" || d < bestD) {
			best, bestD = n, d
		}
	}
	if best != "" {
		return msg + " (did you mean " + best + "?)"
	}
	if what == "known names" {
		return msg + " (known names: " + strings.Join(names, ", ") + ")"
	}
	return msg + " (" + what + " " + strings.Join(names, ", ") + ")"
}

// distance is the optimal string alignment distance between a and b: the Levenshtein
// distance with a swap of two neighbours counted as one edit, the commonest typo.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
