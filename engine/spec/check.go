package spec

import (
	"errors"
	"fmt"
	"slices"
)

// Check verifies a component's declaration: names present and unique, defaults of the
// field's type (and within its enum), nested fields only on objects, and every example
// passing the fields. Connector tests call it so a bad declaration fails in CI rather than
// as a panic on the first load.
func Check(c Component) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("component has no name"))
	}
	checkFields(c.Fields, "", &errs)
	for _, ex := range c.Examples {
		_, lints := ParseYAML(ex.YAML, c.Fields)
		for _, l := range lints {
			errs = append(errs, fmt.Errorf("example %q: %s", ex.Title, l))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spec: %s: %w", c.ID(), err)
	}
	return nil
}

func checkFields(fields []Field, path string, errs *[]error) {
	seen := map[string]bool{}
	fail := func(f Field, format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("field %q: %s", path+f.Name, fmt.Sprintf(format, args...)))
	}
	for _, f := range fields {
		switch {
		case f.Name == "":
			fail(f, "no name")
			continue
		case seen[f.Name]:
			fail(f, "declared twice")
		}
		seen[f.Name] = true
		if _, ok := typeWords[f.Type]; !ok {
			fail(f, "unknown type %q", f.Type)
			continue
		}
		if f.Default != nil {
			if v, err := normalizeDefault(f); err != nil {
				fail(f, "%v", err)
			} else if s, ok := v.(string); ok && len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
				fail(f, "default %q is not one of its values %v", s, f.Enum)
			}
		}
		if len(f.Enum) > 0 && f.Type != String && f.Type != Strings {
			fail(f, "an enum needs type string or strings, not %s", f.Type)
		}
		isObj := f.Type == Object || f.Type == Objects
		if !isObj && (len(f.Fields) > 0 || f.ChoiceKind != "") {
			fail(f, "nested fields or choices need type object or objects, not %s", f.Type)
		}
		if len(f.Choices) > 0 && f.ChoiceKind == "" {
			fail(f, "choices without a kind: use WithChoices")
		}
		for _, c := range f.Choices {
			if seen[c.Name] || find(f.Fields, c.Name) != nil {
				fail(f, "choice %q clashes with a field of the same name", c.Name)
			}
		}
		if isObj {
			checkFields(f.Fields, path+f.Name+".", errs)
		}
	}
}
