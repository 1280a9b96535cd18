package spec

import (
	"encoding/json"
	"io"
	"slices"
)

// substitutionPattern matches a value that holds a ${...} reference: the loader substitutes
// it before checking the type, so the schema must let it through wherever a typed value
// (a number, a boolean, an enumerated string) is expected.
const substitutionPattern = `\$\{`

// JSONSchema returns a JSON Schema (draft 2020-12) for a document with the given fields,
// as nested maps ready for encoding/json. Component choices become oneOf over required keys,
// with each component's schema under $defs keyed by its ID ("source.mllp"), so editors
// complete and check a channel file against what this build knows.
func JSONSchema(title string, root []Field) map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	s := g.object(root, nil, "")
	out := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"title":   title,
	}
	for k, v := range s {
		out[k] = v
	}
	if len(g.defs) > 0 {
		out["$defs"] = g.defs
	}
	return out
}

// RenderJSONSchema writes JSONSchema(title, root) as indented JSON.
func RenderJSONSchema(w io.Writer, title string, root []Field) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(JSONSchema(title, root))
}

type schemaGen struct {
	defs map[string]any
}

func (g *schemaGen) object(fields []Field, choices []Component, kind Kind) map[string]any {
	props := map[string]any{}
	var req []string
	for _, f := range fields {
		props[f.Name] = g.field(f)
		if required(f) {
			req = append(req, f.Name)
		}
	}
	s := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if len(req) > 0 {
		s["required"] = req
	}
	if kind != "" {
		var one []any
		for _, c := range choices {
			id := c.ID()
			if c.Kind == "" {
				id = string(kind) + "." + c.Name
			}
			if _, done := g.defs[id]; !done {
				g.defs[id] = nil // reserve: a component that refers to itself must not recurse forever
				def := g.object(c.Fields, nil, "")
				def["type"] = []string{"object", "null"}
				if c.Summary != "" {
					def["description"] = c.Summary
				}
				g.defs[id] = def
			}
			props[c.Name] = map[string]any{"$ref": "#/$defs/" + id}
			one = append(one, map[string]any{"required": []string{c.Name}})
		}
		if len(one) > 0 {
			s["oneOf"] = one
		}
	}
	return s
}

func (g *schemaGen) field(f Field) map[string]any {
	var s map[string]any
	switch f.Type {
	case String, Expr:
		s = map[string]any{"type": "string"}
		if len(f.Enum) > 0 {
			s = orSubstitution(map[string]any{"enum": slices.Clone(f.Enum)})
		}
	case Int:
		s = orSubstitution(map[string]any{"type": "integer"})
	case Float:
		s = orSubstitution(map[string]any{"type": "number"})
	case Bool:
		s = orSubstitution(map[string]any{"type": "boolean"})
	case Duration:
		s = map[string]any{"type": "string", "pattern": `^(0|([0-9]+d)?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))*|.*\$\{.*)$`}
	case Bytes:
		s = map[string]any{"anyOf": []any{
			map[string]any{"type": "integer", "minimum": 0},
			map[string]any{"type": "string", "pattern": `^([0-9][0-9_]*(\.[0-9]+)?\s*([KkMmGgTt]i?[Bb]?|[Bb])?|.*\$\{.*)$`},
		}}
	case Strings:
		items := map[string]any{"type": "string"}
		if len(f.Enum) > 0 {
			items = orSubstitution(map[string]any{"enum": slices.Clone(f.Enum)})
		}
		s = map[string]any{"type": "array", "items": items}
	case Map:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean", "null"}}}
	case Object:
		s = g.object(f.Fields, f.Choices, f.ChoiceKind)
	case Objects:
		s = map[string]any{"type": "array", "items": g.object(f.Fields, f.Choices, f.ChoiceKind)}
	default:
		s = map[string]any{}
	}
	if f.Description != "" {
		s["description"] = f.Description
	}
	if f.Default != nil && f.Type != Object && f.Type != Objects {
		if v, err := normalizeDefault(f); err == nil {
			switch {
			case f.Type == Duration:
				s["default"] = formatDefault(f)
			case f.Type == Bytes:
				s["default"] = f.Default // as declared: 1048576 or "16MiB"
			default:
				s["default"] = v
			}
		}
	}
	if f.Deprecated != "" {
		s["deprecated"] = true
	}
	if f.Secret {
		s["writeOnly"] = true
	}
	if len(f.Examples) > 0 && f.ChoiceKind == "" {
		s["examples"] = f.Examples
	}
	return s
}

func orSubstitution(s map[string]any) map[string]any {
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "string", "pattern": substitutionPattern}}}
}
