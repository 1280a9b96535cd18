package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..."; a plain `go build`
// falls back to the module version recorded by the toolchain.
var version = ""

func init() {
	register(&command{
		name:    "version",
		summary: "print the version of this binary",
		run: func(_ context.Context, env *cliEnv, _ *command, _ []string) error {
			fmt.Fprintf(env.stdout, "osprey %s %s/%s %s\n", buildVersion(), runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	})
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
