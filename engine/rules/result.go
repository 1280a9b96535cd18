package rules

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr/vm"
)

// ResultEnv is what a result rule sees: the study and order of the analysis, and the
// findings of every plugin that answered. Besides the names below, `finding(name)` returns
// the finding a rule asks about (see Finding).
type ResultEnv struct {
	Channel string     `expr:"channel"`
	Study   *StudyView `expr:"study"`
	Order   *OrderView `expr:"order"`
	// Findings lists every finding of the completed results, positive and negative.
	Findings []FindingView `expr:"findings"`
	// Positive is true when any finding is present.
	Positive bool `expr:"positive"`
	// Plugins maps each plugin asked about the study to how its job ended: completed,
	// failed, not_applicable, timeout or invalid.
	Plugins map[string]string `expr:"plugins"`
	// Finding is `finding(name)`: the finding whose code, display or plugin name equals name
	// (case does not matter), the most confident present one when several match. When none
	// matches, its Found is false and every other field is zero, so
	// `finding("ICH").Confidence >= 0.85` is simply false.
	Finding func(name string) FindingView `expr:"finding"`
}

// FindingView is one finding inside result rules.
type FindingView struct {
	Found      bool // false for the zero FindingView finding() returns when nothing matches
	Present    bool
	Confidence float64
	Code       string // e.g. "1386000"
	Display    string // e.g. "Intracranial hemorrhage"
	System     string // e.g. "http://snomed.info/sct"
	Plugin     string
	Model      string
	Version    string // the model's version
	Location   string
	Laterality string // left, right, bilateral or ""
	// Measurements maps each measurement's name (and its code, when it has one) to its
	// value, in the measurement's unit: `finding("ICH").Measurements["volume"] > 30`.
	Measurements map[string]float64
}

// NewResultEnv builds the environment of a result rule over findings.
func NewResultEnv(channel string, s *StudyView, o *OrderView, findings []FindingView, plugins map[string]string) ResultEnv {
	env := ResultEnv{Channel: channel, Study: s, Order: o, Findings: findings, Plugins: plugins}
	if env.Study == nil {
		env.Study = noStudy
	}
	if env.Order == nil {
		env.Order = noOrder
	}
	if env.Findings == nil {
		env.Findings = []FindingView{}
	}
	if env.Plugins == nil {
		env.Plugins = map[string]string{}
	}
	for _, f := range findings {
		env.Positive = env.Positive || f.Present
	}
	env.Finding = func(name string) FindingView { return pick(findings, name) }
	return env
}

func pick(findings []FindingView, name string) FindingView {
	var best FindingView
	for _, f := range findings {
		if !strings.EqualFold(f.Code, name) && !strings.EqualFold(f.Display, name) && !strings.EqualFold(f.Plugin, name) {
			continue
		}
		better := !best.Found ||
			f.Present && !best.Present ||
			f.Present == best.Present && f.Confidence > best.Confidence
		if better {
			best = f
			best.Found = true
		}
	}
	if best.Measurements == nil {
		best.Measurements = map[string]float64{}
	}
	return best
}

// ResultFilter is a compiled boolean expression over [ResultEnv].
type ResultFilter struct {
	src  string
	prog *vm.Program
}

// CompileResultFilter compiles a result rule's `when`. Errors are *ExprError, positioned
// like those of CompileFilter.
func CompileResultFilter(src string) (*ResultFilter, error) {
	prog, err := compileWith(src, boolType, "result rule", ResultEnv{})
	if err != nil {
		return nil, err
	}
	return &ResultFilter{src: src, prog: prog}, nil
}

// Match evaluates the rule.
func (f *ResultFilter) Match(env ResultEnv) (bool, error) {
	if env.Finding == nil {
		env = NewResultEnv(env.Channel, env.Study, env.Order, env.Findings, env.Plugins)
	}
	out, err := runAny(f.prog, env)
	if err != nil {
		return false, fmt.Errorf("result rule: %w", err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("result rule: result is %s, not bool", describe(out))
	}
	return b, nil
}

// String returns the source of the rule.
func (f *ResultFilter) String() string { return f.src }
