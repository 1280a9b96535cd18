package main

import (
	"context"
	"fmt"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/spec"

	_ "github.com/osprey-health/osprey/channels/all" // every connector this binary ships
	_ "github.com/osprey-health/osprey/mappings/all" // and every mapping
)

func init() {
	register(&command{
		name:    "validate",
		summary: "check configurations (files or folders) and print every problem as file:line:col",
		usage:   "PATH...",
		run: func(_ context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() == 0 {
				return errUsage
			}
			return validate(env, engine.Global, fs.Args())
		},
	})
}

// validate loads each path as its own configuration, as `serve` would, and prints the lints
// in the form editors and CI jump to.
func validate(env *cliEnv, reg config.Lookup, paths []string) error {
	var errs, channels, files int
	for _, p := range paths {
		cfg, lints := config.Load(p, reg)
		for _, l := range lints {
			if l.Level == spec.LevelWarning {
				fmt.Fprintln(env.stdout, warningLine(l))
				continue
			}
			errs++
			fmt.Fprintln(env.stdout, l.String())
		}
		if cfg != nil {
			channels += len(cfg.Channels)
			files += len(cfg.Files)
		}
	}
	if errs > 0 {
		noun := "errors"
		if errs == 1 {
			noun = "error"
		}
		return &exitError{code: 1, msg: fmt.Sprintf("invalid: %d %s", errs, noun)}
	}
	fmt.Fprintf(env.stdout, "ok: %d %s in %d %s\n", channels, plural(channels, "channel"), files, plural(files, "file"))
	return nil
}

// warningLine marks a warning at the start of the line, so `grep -v ^warning:` keeps the errors.
func warningLine(l spec.Lint) string { return "warning: " + l.String() }

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
