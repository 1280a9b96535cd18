package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// RewriteReferences replaces, anywhere in a resource or Bundle, every Reference.reference
// equal to a key of refs with its value, and returns the new JSON (members in sorted order,
// numbers as written). A sender that posts the resources of a transaction one by one uses
// it to turn the bundle-local "urn:uuid:…" of an earlier entry into the "Type/id" the
// server assigned it.
func RewriteReferences(data []byte, refs map[string]string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("fhir: rewrite references: %w", err)
	}
	rewrite(v, refs)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("fhir: rewrite references: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func rewrite(v any, refs map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if s, ok := val.(string); ok && k == "reference" {
				if n, ok := refs[s]; ok {
					t[k] = n
				}
				continue
			}
			rewrite(val, refs)
		}
	case []any:
		for _, val := range t {
			rewrite(val, refs)
		}
	}
}

// References returns every Reference.reference in a resource or Bundle, in document order
// of a sorted-member walk, duplicates included.
func References(data []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("fhir: references: %w", err)
	}
	var out []string
	collect(v, &out)
	return out, nil
}

func collect(v any, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s, ok := t[k].(string); ok && k == "reference" {
				*out = append(*out, s)
				continue
			}
			collect(t[k], out)
		}
	case []any:
		for _, val := range t {
			collect(val, out)
		}
	}
}
