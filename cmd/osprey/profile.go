package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"
)

// `osprey profile`: fetch a Go runtime profile of a running server through the admin API,
// since `go tool pprof` cannot send the bearer token the API needs.

// profileKinds are the profiles the admin API serves, by the name this command takes.
var profileKinds = []string{"cpu", "heap", "allocs", "goroutine", "block", "mutex", "threadcreate", "trace"}

func init() {
	register(&command{
		name:    "profile",
		summary: "fetch a CPU, heap, goroutine or other Go runtime profile of a running osprey (admin token)",
		usage:   "[--api URL] [--token T] [--seconds N] [-o FILE] [cpu|heap|allocs|goroutine|block|mutex|threadcreate|trace]",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			api := addAPIFlags(fs)
			seconds := fs.Int("seconds", 30, "how long a cpu profile or a trace samples")
			out := fs.String("o", "", "file to write (default osprey-KIND-TIME.pprof, or .trace for a trace)")
			pos, err := parseInterspersed(fs, args)
			if err != nil {
				return err
			}
			kind := "cpu"
			switch len(pos) {
			case 0:
			case 1:
				kind = pos[0]
			default:
				return errUsage
			}
			if !slices.Contains(profileKinds, kind) {
				return fmt.Errorf("unknown profile %q; want one of %v", kind, profileKinds)
			}
			timed := kind == "cpu" || kind == "trace"
			if timed && (*seconds < 1 || *seconds > 600) {
				return fmt.Errorf("--seconds %d: want 1 to 600", *seconds)
			}
			client, err := api.client()
			if err != nil {
				return err
			}
			path, q := "/api/v1/debug/pprof/"+kind, url.Values{}
			if kind == "cpu" {
				path = "/api/v1/debug/pprof/profile"
			}
			if timed {
				q.Set("seconds", strconv.Itoa(*seconds))
				client.http.Timeout = time.Duration(*seconds)*time.Second + time.Minute
			}
			file := *out
			if file == "" {
				ext := ".pprof"
				if kind == "trace" {
					ext = ".trace"
				}
				file = "osprey-" + kind + "-" + time.Now().UTC().Format("20060102T150405Z") + ext
			}
			if timed {
				fmt.Fprintf(env.stderr, "sampling %s for %ds...\n", kind, *seconds)
			}
			body, err := client.get(ctx, path, q, nil)
			if err != nil {
				return err
			}
			if err := os.WriteFile(file, body, 0o600); err != nil {
				return err
			}
			tool := "go tool pprof -top " + file
			if kind == "trace" {
				tool = "go tool trace " + file
			}
			fmt.Fprintf(env.stdout, "wrote %s (%d bytes); read it with: %s\n", file, len(body), tool)
			return nil
		},
	})
}
