package rules

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/engine/spec"
)

// ErrUnmapped is wrapped by the map step's error when a value is not in the table and the
// step has neither a default nor keep_unmapped.
var ErrUnmapped = errors.New("value not in table")

func mapSpec() spec.Component {
	return spec.Component{
		Kind:    spec.KindTransform,
		Name:    StepMap,
		Summary: "Translates a field through a lookup table.",
		Description: "The table is given inline (`table`) or as a file (`file`): CSV whose first row " +
			"is a header (columns `from` and `to` by name, otherwise the first two columns), or a " +
			"YAML mapping. A relative file is resolved against the directory of the config file. " +
			"The file is read once, when the channel loads; a missing file, a duplicate key or a " +
			"malformed row is a load error. A value not in the table becomes `default` when one is " +
			"given, stays as it is when `keep_unmapped` is true (the default), and fails the " +
			"message when `keep_unmapped` is false.",
		Fields: []spec.Field{
			pathField(fieldPath, "The HL7 path whose value is translated in place.").
				WithExamples("PV1-3.1", "OBR-4.1"),
			spec.NewMap(fieldTable, "The lookup table inline: from value to replacement.").AsOptional().
				WithExamples(map[string]any{"ER": "ED", "RAD": "RADIOLOGY"}),
			spec.NewString(fieldFile, "A lookup table file, `.csv`, `.yaml` or `.yml`, relative to the config file.").
				AsOptional().WithExamples("tables/locations.csv", "tables/units.yaml"),
			spec.NewString(fieldDefault, "The value written when the table has no entry for the field's value.").
				AsOptional().WithExamples("UNKNOWN", ""),
			spec.NewBool(fieldKeepUnmapped, "Without a default: true leaves an unmapped value as it is, "+
				"false fails the message so that no unknown code reaches the receiver.").WithDefault(true),
			ifField(),
		},
		Examples: []spec.Example{
			{
				Title:   "Location codes from a CSV file",
				Summary: "Translate the assigned patient location; unknown ones become UNKNOWN.",
				YAML:    "path: PV1-3.1\nfile: tables/locations.csv\ndefault: UNKNOWN\n",
			},
			{
				Title:   "Inline table, strict",
				Summary: "Translate the patient class and refuse any class the table lacks.",
				YAML:    "path: PV1-2\ntable: {E: EMERGENCY, I: INPATIENT, O: OUTPATIENT}\nkeep_unmapped: false\n",
			},
		},
	}
}

type mapStep struct {
	path       string
	p          hl7v2.Path
	table      map[string]string
	def        string
	hasDefault bool
	keep       bool
}

func newMap(conf *spec.Parsed, baseDir string) (Step, error) {
	s := &mapStep{
		path:       conf.String(fieldPath),
		def:        conf.String(fieldDefault),
		hasDefault: conf.Has(fieldDefault),
		keep:       conf.Bool(fieldKeepUnmapped),
	}
	var err error
	if s.p, err = checkPath(s.path); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldDesc(conf, fieldPath), err)
	}
	if s.hasDefault && conf.Has(fieldKeepUnmapped) && s.keep {
		return nil, fmt.Errorf("%s: default and keep_unmapped: true contradict each other; keep one", s.path)
	}
	hasTable, hasFile := conf.Has(fieldTable), conf.Has(fieldFile)
	switch {
	case hasTable && hasFile:
		return nil, fmt.Errorf("%s: give either table or file, not both", s.path)
	case hasTable:
		s.table = conf.Map(fieldTable)
	case hasFile:
		name := conf.String(fieldFile)
		if !filepath.IsAbs(name) {
			name = filepath.Join(baseDir, name)
		}
		t, err := LoadTable(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", s.path, fieldDesc(conf, fieldFile), err)
		}
		s.table = t
	default:
		return nil, fmt.Errorf("%s: one of table or file is required", s.path)
	}
	return s, nil
}

func (s *mapStep) Apply(ctx context.Context, env Env) error {
	if err := ready(ctx, env); err != nil {
		return fmt.Errorf("transform map %s: %w", s.path, err)
	}
	v, _ := env.Msg.m.At(s.p)
	to, ok := s.table[v]
	switch {
	case ok:
	case s.hasDefault:
		to = s.def
	case s.keep:
		return nil
	default:
		return fmt.Errorf("transform map %s: %q: %w", s.path, v, ErrUnmapped)
	}
	if to == v {
		return nil
	}
	if err := env.Msg.m.SetAt(s.p, to); err != nil {
		return fmt.Errorf("transform map %s: %w", s.path, err)
	}
	env.Msg.refresh()
	return nil
}

// LoadTable reads a lookup table from a .csv, .yaml or .yml file. CSV files start with a
// header row; the columns named "from" and "to" are used when present, otherwise the first
// two. Lines starting with # are comments. Keys and values are trimmed of surrounding
// spaces. A key given twice is an error naming both lines.
func LoadTable(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("lookup table: %w", err)
	}
	defer f.Close()
	var t map[string]string
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".csv":
		t, err = readCSVTable(f)
	case ".yaml", ".yml":
		t, err = readYAMLTable(f)
	default:
		return nil, fmt.Errorf("lookup table %s: unsupported extension %q (use .csv, .yaml or .yml)", name, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("lookup table %s: %w", name, err)
	}
	return t, nil
}

func readCSVTable(r io.Reader) (map[string]string, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // rows may carry extra columns (descriptions) we ignore
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty file: a header row (from,to) is required")
	}
	if err != nil {
		return nil, err
	}
	fromCol, toCol := 0, 1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "from":
			fromCol = i
		case "to":
			toCol = i
		}
	}
	if len(header) < 2 {
		return nil, errors.New("header row must have at least two columns (from,to)")
	}
	t := map[string]string{}
	first := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if fromCol >= len(rec) || toCol >= len(rec) {
			return nil, fmt.Errorf("line %d: %d columns, need at least %d", line, len(rec), max(fromCol, toCol)+1)
		}
		k, v := strings.TrimSpace(rec[fromCol]), strings.TrimSpace(rec[toCol])
		if prev, dup := first[k]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q (first on line %d)", line, k, prev)
		}
		first[k] = line
		t[k] = v
	}
}

func readYAMLTable(r io.Reader) (map[string]string, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: a mapping of from: to is required")
		}
		return nil, err
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the table must be a mapping of from: to", root.Line)
	}
	t := make(map[string]string, len(root.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keys and values must be plain values, not lists or mappings", k.Line)
		}
		if prev, dup := first[k.Value]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q (first on line %d)", k.Line, k.Value, prev)
		}
		first[k.Value] = k.Line
		val := v.Value
		if v.Tag == "!!null" {
			val = ""
		}
		t[k.Value] = val
	}
	return t, nil
}
