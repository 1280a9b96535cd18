package rules

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/osprey-health/osprey/engine/spec"
)

var fenceRe = regexp.MustCompile("(?s)```(\\w*)\\n(.*?)```")

// TestDocsExamples compiles every example in docs/rules.md the way the engine would, so
// the documentation cannot show an expression or a step that does not load.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	dir := t.TempDir()
	var checked int
	for i, m := range fenceRe.FindAllStringSubmatch(string(doc), -1) {
		lang, body := m[1], m[2]
		first, _, _ := strings.Cut(body, "\n")
		name := strings.ReplaceAll(first, " ", "_")
		t.Run(name, func(t *testing.T) {
			switch {
			case lang == "expr":
				if _, err := CompileFilter(body); err != nil {
					t.Errorf("block %d %q: %v", i, body, err)
				}
			case lang == "result-rule":
				if _, err := CompileResultFilter(body); err != nil {
					t.Errorf("block %d %q: %v", i, body, err)
				}
			case strings.HasPrefix(first, "# tables/"):
				// A table file shown in the docs: it must load, and later examples use it.
				file := filepath.Join(dir, strings.TrimPrefix(first, "# "))
				writeFile(t, dir, strings.TrimPrefix(first, "# "), body)
				if _, err := LoadTable(file); err != nil {
					t.Errorf("table %s: %v", first, err)
				}
			case lang == "yaml":
				checkDocYAML(t, body, dir)
			default:
				return
			}
			checked++
		})
	}
	if checked < 20 {
		t.Errorf("only %d examples checked; did the docs' fences change?", checked)
	}
}

func checkDocYAML(t *testing.T, body, dir string) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, body)
	}
	root := doc.Content[0]
	var objects []*yaml.Node
	if chans := child(root, "channels"); chans != nil {
		objects = chans.Content
	} else {
		objects = []*yaml.Node{root}
	}
	for _, obj := range objects {
		if n := child(obj, "filter"); n != nil {
			if _, err := CompileFilter(n.Value); err != nil {
				t.Errorf("filter %q: %v", n.Value, err)
			}
		}
		if n := child(obj, "ordered_by"); n != nil {
			if _, err := CompileKey(n.Value); err != nil {
				t.Errorf("ordered_by %q: %v", n.Value, err)
			}
		}
		n := child(obj, "transform")
		if n == nil {
			continue
		}
		wrapper := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "transform"}, n}}
		parsed, lints := spec.ParseNode(wrapper, []spec.Field{TransformField("transform", "")}, "")
		if len(lints) > 0 {
			t.Errorf("transform lints: %v", lints)
			continue
		}
		// Tables the examples name but the docs do not show get a placeholder.
		for _, name := range regexp.MustCompile(`tables/\w+\.(?:csv|yaml)`).FindAllString(body, -1) {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				writeFile(t, dir, name, map[bool]string{true: "from,to\n", false: "{}\n"}[strings.HasSuffix(name, ".csv")])
			}
		}
		steps, err := NewSteps(parsed.Objects("transform"), dir)
		if err != nil {
			t.Errorf("transform: %v", err)
			continue
		}
		// The examples are written for an order; they must run on one.
		if err := Apply(context.Background(), steps, NewEnv(parse(t, ormO01()), "orders", nil)); err != nil {
			t.Errorf("apply: %v", err)
		}
	}
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
