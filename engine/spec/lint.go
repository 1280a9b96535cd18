package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Level says whether a lint stops a configuration from loading.
type Level string

const (
	LevelError   Level = "error"   // the configuration is refused
	LevelWarning Level = "warning" // the configuration loads; the analyst should look
)

// Lint types, stable strings for tools and tests.
const (
	LintFile         = "file"          // a file or folder cannot be read
	LintYAML         = "yaml"          // the file is not valid YAML
	LintUnknownField = "unknown_field" // a key no spec declares
	LintBadType      = "bad_type"      // a value of the wrong shape or unparseable
	LintMissing      = "missing"       // a required field is absent
	LintEnum         = "enum"          // a value outside the declared set
	LintDeprecated   = "deprecated"    // a deprecated field is used
	LintDuplicate    = "duplicate"     // a key or name given twice
	LintExpr         = "expr"          // an expression does not compile
	LintLint         = "lint"          // a field's own check failed
	LintSubstitution = "substitution"  // a ${...} reference cannot be resolved
	LintSecret       = "secret"        // a secret written in clear in the file
	LintComponent    = "component"     // an unknown component or a malformed component block
)

// Lint is one finding about a configuration, positioned at the YAML node it concerns.
type Lint struct {
	File  string `json:"file,omitempty"`
	Line  int    `json:"line"`
	Col   int    `json:"col"`
	Level Level  `json:"level"`
	Type  string `json:"type"`
	Msg   string `json:"message"`
}

// String renders the lint as "file:line:col: message", the form editors and CI understand;
// "file: message" when the lint is about a whole file (Line 0).
func (l Lint) String() string {
	if l.Line == 0 { // about a whole file: it cannot be read, a folder is empty
		if l.File == "" {
			return l.Msg
		}
		return l.File + ": " + l.Msg
	}
	if l.File == "" {
		return fmt.Sprintf("%d:%d: %s", l.Line, l.Col, l.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", l.File, l.Line, l.Col, l.Msg)
}

// Error lets a lint travel as an error.
func (l Lint) Error() string { return l.String() }

// HasErrors reports whether any lint is an error (not a warning).
func HasErrors(lints []Lint) bool {
	for _, l := range lints {
		if l.Level != LevelWarning {
			return true
		}
	}
	return false
}

// SortLints orders lints by file, line and column, keeping the order of equal positions.
func SortLints(lints []Lint) {
	sort.SliceStable(lints, func(i, j int) bool {
		a, b := lints[i], lints[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// LintsError joins lints into one error, nil when there are no errors among them.
func LintsError(lints []Lint) error {
	if !HasErrors(lints) {
		return nil
	}
	var b strings.Builder
	n := 0
	for _, l := range lints {
		if l.Level == LevelWarning {
			continue
		}
		if n > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.String())
		n++
	}
	return &lintsError{msg: b.String(), lints: lints}
}

type lintsError struct {
	msg   string
	lints []Lint
}

func (e *lintsError) Error() string { return e.msg }

// Lints returns the lints behind an error made by LintsError, or nil.
func Lints(err error) []Lint {
	if le, ok := err.(*lintsError); ok {
		return le.lints
	}
	return nil
}

// Suggest returns the candidate closest to name by edit distance, or "" when none is close
// enough to be a plausible typo.
func Suggest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 {
		return ""
	}
	limit := max(2, len(name)/3)
	if bestD <= limit && bestD < len(name) {
		return best
	}
	// A prefix (listen for listen_address) is a plausible slip too.
	for _, c := range candidates {
		if len(name) >= 3 && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c)) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance with adjacent transpositions counted as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
