package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/errorreporter"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// ContainedResource is the R4 proto that can hold any resource; Bundle entries carry one.
type ContainedResource = bcrpb.ContainedResource

// The library's marshallers and unmarshaller hold no per-call state, so one of each serves
// every goroutine. UTC is the time zone used for dates without one; it never changes how a
// value with an offset is read.
var (
	unmarshaller *jsonformat.Unmarshaller
	marshaller   *jsonformat.Marshaller
	pretty       *jsonformat.Marshaller
)

func init() {
	var err error
	if unmarshaller, err = jsonformat.NewUnmarshaller("UTC", fhirversion.R4); err != nil {
		panic(fmt.Sprintf("fhir: unmarshaller: %v", err))
	}
	if marshaller, err = jsonformat.NewMarshaller(false, "", "", fhirversion.R4); err != nil {
		panic(fmt.Sprintf("fhir: marshaller: %v", err))
	}
	if pretty, err = jsonformat.NewPrettyMarshaller(fhirversion.R4); err != nil {
		panic(fmt.Sprintf("fhir: marshaller: %v", err))
	}
}

// Issue is one problem found in a resource, in OperationOutcome terms.
type Issue struct {
	Severity    string   `json:"severity"`              // fatal, error, warning, information
	Code        string   `json:"code"`                  // IssueType: invalid, value, required, structure…
	Diagnostics string   `json:"diagnostics,omitempty"` // what is wrong
	Expression  []string `json:"expression,omitempty"`  // where: FHIRPath-like element paths
}

// String returns "severity code at expr: diagnostics".
func (i Issue) String() string {
	var b strings.Builder
	b.WriteString(i.Severity)
	if i.Code != "" {
		b.WriteString(" " + i.Code)
	}
	if len(i.Expression) > 0 {
		b.WriteString(" at " + strings.Join(i.Expression, ", "))
	}
	if i.Diagnostics != "" {
		b.WriteString(": " + i.Diagnostics)
	}
	return b.String()
}

// ValidationError is why some JSON or a proto is not a valid R4 resource.
type ValidationError struct {
	ResourceType string // "" when it could not be read
	Issues       []Issue
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.String()
	}
	rt := e.ResourceType
	if rt == "" {
		rt = "resource"
	}
	return "fhir: invalid " + rt + ": " + strings.Join(parts, "; ")
}

// ResourceType returns the "resourceType" member of a JSON object without validating the rest.
func ResourceType(data []byte) (string, error) {
	var head struct {
		ResourceType *string `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("fhir: not a JSON object: %w", err)
	}
	if head.ResourceType == nil || *head.ResourceType == "" {
		return "", errors.New("fhir: no resourceType")
	}
	return *head.ResourceType, nil
}

// collector keeps what the validator reports, with the element it concerns.
type collector struct{ issues []Issue }

func (c *collector) ReportValidationError(path string, err error) error {
	is := issueOf("error", path, err)
	// Name the missing element itself, so the expression points at what to add.
	const missing = "missing required field "
	if rest, ok := strings.CutPrefix(is.Diagnostics, missing); ok {
		if name, uerr := strconv.Unquote(rest); uerr == nil {
			is.Code = "required"
			is.Expression = []string{joinPath(path, name)}
			is.Diagnostics = "required element " + strconv.Quote(name) + " is missing"
		}
	}
	c.issues = append(c.issues, is)
	return nil
}

func (c *collector) ReportValidationWarning(path string, err error) error { return nil }

var _ errorreporter.ErrorReporter = (*collector)(nil)

// issueOf turns a library error into an Issue. The library's errors print as
// `error at "Path": details`; the path is lifted into Expression so callers can show it.
func issueOf(severity, path string, err error) Issue {
	msg := err.Error()
	if strings.HasPrefix(msg, `error at "`) {
		if end := strings.Index(msg[len(`error at "`):], `": `); end >= 0 {
			p := msg[len(`error at "`) : len(`error at "`)+end]
			if path == "" {
				path = p
			}
			msg = msg[len(`error at "`)+end+3:]
		}
	}
	is := Issue{Severity: severity, Code: "invalid", Diagnostics: msg}
	if path != "" {
		is.Expression = []string{path}
	}
	return is
}

// UnmarshalContained reads and validates R4 JSON into a ContainedResource.
func UnmarshalContained(data []byte) (*ContainedResource, error) {
	rt, _ := ResourceType(data)
	c := &collector{}
	m, err := unmarshaller.UnmarshalWithErrorReporter(data, c)
	if err != nil {
		c.issues = append(c.issues, libraryIssues(err)...)
	}
	if len(c.issues) > 0 {
		return nil, &ValidationError{ResourceType: rt, Issues: c.issues}
	}
	cr, ok := m.(*ContainedResource)
	if !ok {
		return nil, fmt.Errorf("fhir: unmarshal gave %T, not an R4 ContainedResource", m)
	}
	return cr, nil
}

// Unmarshal reads and validates R4 JSON and returns the resource it holds (for instance a
// *diagnostic_report_go_proto.DiagnosticReport).
func Unmarshal(data []byte) (proto.Message, error) {
	cr, err := UnmarshalContained(data)
	if err != nil {
		return nil, err
	}
	return Unwrap(cr)
}

// Unwrap returns the resource a ContainedResource holds.
func Unwrap(cr *ContainedResource) (proto.Message, error) {
	r := cr.ProtoReflect()
	fd := r.WhichOneof(r.Descriptor().Oneofs().ByName("oneof_resource"))
	if fd == nil {
		return nil, errors.New("fhir: empty ContainedResource")
	}
	return r.Get(fd).Message().Interface(), nil
}

// Wrap puts a resource into a ContainedResource, as a Bundle entry needs it. A
// ContainedResource is returned as it is.
func Wrap(m proto.Message) (*ContainedResource, error) {
	if cr, ok := m.(*ContainedResource); ok {
		return cr, nil
	}
	cr := &ContainedResource{}
	r := cr.ProtoReflect()
	name := m.ProtoReflect().Descriptor().FullName()
	fields := r.Descriptor().Oneofs().ByName("oneof_resource").Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.Message() != nil && fd.Message().FullName() == name {
			r.Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
			return cr, nil
		}
	}
	return nil, fmt.Errorf("fhir: %s is not an R4 resource", name)
}

// Marshal writes a resource (or a ContainedResource) as compact R4 JSON. Members are in a
// fixed order, so the same proto always gives the same bytes. It does not validate: call
// ValidateMessage first when the proto was built by hand.
func Marshal(m proto.Message) ([]byte, error) {
	return marshal(marshaller, m)
}

// MarshalIndent is Marshal with two-space indentation, for people and golden files.
func MarshalIndent(m proto.Message) ([]byte, error) {
	return marshal(pretty, m)
}

func marshal(mm *jsonformat.Marshaller, m proto.Message) ([]byte, error) {
	cr, err := Wrap(m)
	if err != nil {
		return nil, err
	}
	out, err := mm.Marshal(cr)
	if err != nil {
		return nil, fmt.Errorf("fhir: marshal %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return out, nil
}

// ValidateMessage runs the library's validator (required elements, reference target types,
// primitive formats) over a resource or ContainedResource built in Go.
func ValidateMessage(m proto.Message) error {
	cr, err := Wrap(m)
	if err != nil {
		return err
	}
	inner, err := Unwrap(cr)
	if err != nil {
		return err
	}
	rt := string(inner.ProtoReflect().Descriptor().Name())
	c := &collector{}
	if err := fhirvalidate.ValidateWithErrorReporter(cr, c); err != nil {
		c.issues = append(c.issues, issueOf("error", "", err))
	}
	if len(c.issues) > 0 {
		return &ValidationError{ResourceType: rt, Issues: c.issues}
	}
	return nil
}

// Validate checks that data is a valid R4 resource and returns its type.
func Validate(data []byte) (string, error) {
	cr, err := UnmarshalContained(data)
	if err != nil {
		return "", err
	}
	inner, err := Unwrap(cr)
	if err != nil {
		return "", err
	}
	return string(inner.ProtoReflect().Descriptor().Name()), nil
}

// libraryIssues turns an error of the library's unmarshaller into Issues. Its error types are
// internal, so their exported fields (Path, Details, Diagnostics) are read by reflection;
// an error of another shape becomes one issue with its text. Diagnostics are used only for
// an unknown element, where they are the element's name: elsewhere they may echo a value,
// which could be PHI.
func libraryIssues(err error) []Issue {
	v := reflect.ValueOf(err)
	var elems []reflect.Value
	switch {
	case v.Kind() == reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			elems = append(elems, v.Index(i))
		}
	case v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct:
		elems = []reflect.Value{v}
	}
	var out []Issue
	for _, e := range elems {
		if e.Kind() == reflect.Pointer {
			if e.IsNil() {
				continue
			}
			e = e.Elem()
		}
		if e.Kind() != reflect.Struct {
			return []Issue{issueOf("error", "", err)}
		}
		path, pok := stringField(e, "Path")
		details, dok := stringField(e, "Details")
		diag, _ := stringField(e, "Diagnostics")
		if !pok || !dok {
			return []Issue{issueOf("error", "", err)}
		}
		is := Issue{Severity: "error", Code: "invalid", Diagnostics: details}
		if details == "unknown field" {
			if name, uerr := strconv.Unquote(diag); uerr == nil && name != "" {
				is.Code = "structure"
				is.Diagnostics = "unknown element " + strconv.Quote(name)
				path = joinPath(path, name)
			}
		}
		if path != "" {
			is.Expression = []string{path}
		}
		out = append(out, is)
	}
	if len(out) == 0 {
		return []Issue{issueOf("error", "", err)}
	}
	return out
}

func stringField(v reflect.Value, name string) (string, bool) {
	f := v.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.String {
		return "", false
	}
	return f.String(), true
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
