package protocol

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is the JSON Schema (draft 2020-12) of this protocol version. Jobs, results and
// progress heartbeats are its $defs "job", "result" and "progress".
//
//go:embed schema/osprey-ai-v1.schema.json
var Schema []byte

// SchemaFile is the name the schema is published under, beside docs/plugins.md.
const SchemaFile = "osprey-ai-v1.schema.json"

// ErrInvalid is matched (errors.Is) by every error the validators and checks return.
var ErrInvalid = errors.New("protocol: invalid message")

// Violation is one reason a message is invalid.
type Violation struct {
	// Pointer is the JSON pointer (RFC 6901) of the offending value, e.g.
	// "/findings/0/confidence"; "" is the whole message.
	Pointer string
	// Reason says what is wrong, e.g. "must be <= 1 but found 1.5".
	Reason string
}

// String returns "pointer: reason", with "/" for the whole message.
func (v Violation) String() string {
	p := v.Pointer
	if p == "" {
		p = "/"
	}
	return p + ": " + v.Reason
}

// ValidationError lists every violation found in one message. It matches [ErrInvalid].
type ValidationError struct {
	Kind       string // "job", "result" or "progress"
	Violations []Violation
}

// Error returns "protocol: invalid <kind>: " and the violations separated by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.String()
	}
	return "protocol: invalid " + e.Kind + ": " + strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Message kinds, as named in ValidationError.Kind and in the schema's $defs.
const (
	KindJob      = "job"
	KindResult   = "result"
	KindProgress = "progress"
)

var (
	compileOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	compileErr  error
	printer     = message.NewPrinter(language.English)
)

func compiled() (map[string]*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
		if err != nil {
			compileErr = fmt.Errorf("protocol: parse embedded schema: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		const loc = "urn:osprey:schema:osprey-ai-v1"
		if err := c.AddResource(loc, doc); err != nil {
			compileErr = fmt.Errorf("protocol: load embedded schema: %w", err)
			return
		}
		m := make(map[string]*jsonschema.Schema)
		for _, k := range []string{KindJob, KindResult, KindProgress} {
			s, err := c.Compile(loc + "#/$defs/" + k)
			if err != nil {
				compileErr = fmt.Errorf("protocol: compile schema for %s: %w", k, err)
				return
			}
			m[k] = s
		}
		schemas = m
	})
	return schemas, compileErr
}

// ValidateJob checks data, one JSON job, against the schema.
func ValidateJob(data []byte) error { return validate(KindJob, data) }

// ValidateResult checks data, one JSON result, against the schema. It does not know the
// job; [CheckResult] adds the checks that need it.
func ValidateResult(data []byte) error { return validate(KindResult, data) }

// ValidateProgress checks data, one JSON progress heartbeat, against the schema.
func ValidateProgress(data []byte) error { return validate(KindProgress, data) }

func validate(k string, data []byte) error {
	_, err := validateDoc(k, data)
	return err
}

// validateDoc validates data as a message of kind k and returns it parsed, numbers kept as
// json.Number.
func validateDoc(k string, data []byte) (any, error) {
	m, err := compiled()
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, &ValidationError{Kind: k, Violations: []Violation{{Reason: "not a JSON document: " + err.Error()}}}
	}
	err = m[k].Validate(doc)
	if err == nil {
		return doc, nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return nil, fmt.Errorf("protocol: validate %s: %w", k, err)
	}
	vs := violations(verr, nil)
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].Pointer != vs[j].Pointer {
			return vs[i].Pointer < vs[j].Pointer
		}
		return vs[i].Reason < vs[j].Reason
	})
	return nil, &ValidationError{Kind: k, Violations: dedupe(vs)}
}

// violations flattens a jsonschema error tree to its leaves, the causes a reader can act on.
func violations(e *jsonschema.ValidationError, out []Violation) []Violation {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			out = violations(c, out)
		}
		return out
	}
	ptr := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, name := range k.Missing {
			out = append(out, Violation{Pointer: ptr + "/" + escape(name), Reason: "is required"})
		}
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			out = append(out, Violation{Pointer: ptr + "/" + escape(name), Reason: "is not a field of this protocol version"})
		}
	case *kind.FalseSchema:
		out = append(out, Violation{Pointer: ptr, Reason: "is not allowed here"})
	case *kind.Not:
		out = append(out, Violation{Pointer: ptr, Reason: "must not carry identifying fields (name, mrn, birth_date)"})
	default:
		out = append(out, Violation{Pointer: ptr, Reason: e.ErrorKind.LocalizedString(printer)})
	}
	return out
}

func dedupe(vs []Violation) []Violation {
	out := vs[:0]
	for i, v := range vs {
		if i > 0 && v == vs[i-1] {
			continue
		}
		out = append(out, v)
	}
	return out
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escape(t))
	}
	return sb.String()
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escape(token string) string { return pointerEscaper.Replace(token) }

// decode validates data as a message of kind k and decodes it into v. JSON Schema counts
// 2.0 as an integer while encoding/json refuses it for an int field, so integral numbers are
// written as integers first: what the schema accepts, decoding accepts.
func decode(k string, data []byte, v any) error {
	doc, err := validateDoc(k, data)
	if err != nil {
		return err
	}
	if integral(doc) {
		if data, err = json.Marshal(doc); err != nil {
			return fmt.Errorf("protocol: decode %s: %w", k, err)
		}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("protocol: decode %s: %w", k, err)
	}
	return nil
}

// integral rewrites, in place, numbers with an integral value written with a fraction or an
// exponent (2.0, 1e3) as plain integers, and reports whether it rewrote any.
func integral(v any) bool {
	changed := false
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if n, ok := e.(json.Number); ok {
				if i, ok := asInteger(n); ok {
					x[k], changed = i, true
				}
			} else if integral(e) {
				changed = true
			}
		}
	case []any:
		for i, e := range x {
			if n, ok := e.(json.Number); ok {
				if in, ok := asInteger(n); ok {
					x[i], changed = in, true
				}
			} else if integral(e) {
				changed = true
			}
		}
	}
	return changed
}

// asInteger returns n as a plain integer when it is integral but written otherwise.
func asInteger(n json.Number) (json.Number, bool) {
	if !strings.ContainsAny(n.String(), ".eE") {
		return n, false
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return n, false
	}
	return json.Number(strconv.FormatInt(int64(f), 10)), true
}

// DecodeJob validates data against the schema and decodes it.
func DecodeJob(data []byte) (Job, error) {
	var j Job
	err := decode(KindJob, data, &j)
	return j, err
}

// DecodeResult validates data against the schema and decodes it. Callers that know the job
// should then call [CheckResult].
func DecodeResult(data []byte) (Result, error) {
	var r Result
	err := decode(KindResult, data, &r)
	return r, err
}

// DecodeProgress validates data against the schema and decodes it.
func DecodeProgress(data []byte) (Progress, error) {
	var p Progress
	err := decode(KindProgress, data, &p)
	return p, err
}
