package main

import (
	"context"
	"io"
	"slices"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

func init() {
	register(&command{
		name:    "config docs",
		summary: "print the Markdown reference of every configuration key (docs/config.md)",
		run: func(_ context.Context, env *cliEnv, docs *command, args []string) error {
			fs := newFlags(env, docs)
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return errUsage
			}
			return renderDocs(env.stdout, engine.Global)
		},
	})

	register(&command{
		name:    "config schema",
		summary: "print the JSON Schema of a configuration file (docs/config.schema.json)",
		run: func(_ context.Context, env *cliEnv, schema *command, args []string) error {
			fs := newFlags(env, schema)
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return errUsage
			}
			return spec.RenderJSONSchema(env.stdout, "Osprey configuration file", config.FileSpec(engine.Global))
		},
	})
}

// docRegistry is what the reference is generated from; *engine.Registry satisfies it.
type docRegistry interface {
	config.Lookup
	Components() []spec.Component
}

// renderDocs writes the reference: the file's sections, then every registered source and
// destination, then the transform steps.
func renderDocs(w io.Writer, reg docRegistry) error {
	comps := config.Sections(reg)
	comps = append(comps, reg.Components()...)
	steps := rules.Steps()
	for i := range steps {
		steps[i].Kind = spec.KindTransform
	}
	slices.SortStableFunc(steps, func(a, b spec.Component) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return spec.RenderMarkdown(w, append(comps, steps...))
}
