package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/plugins/conformance"
	"github.com/osprey-health/osprey/plugins/sdk"

	_ "github.com/osprey-health/osprey/plugins/ich" // the plugins this binary ships
)

// defaultPluginNATS is where a plugin finds the NATS of `osprey serve` when neither --nats nor
// OSPREY_NATS_URL says: the examples' nats.listen (4222 may be a system NATS).
const defaultPluginNATS = "nats://127.0.0.1:4223"

func init() {
	register(&command{
		name:    "plugin run",
		summary: "run a shipped AI plugin (" + strings.Join(sdk.Names(), ", ") + ") against an Osprey NATS",
		usage:   "NAME [--nats URL] [--creds FILE] [--nkey FILE] [--data DIR]",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				return errUsage
			}
			name := args[0]
			fs := newFlags(env, c)
			url, creds, nkey, data := natsFlags(fs)
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			p, ok := sdk.Lookup(name)
			if !ok {
				return fmt.Errorf("no shipped plugin %q (this binary has: %s)", name, strings.Join(sdk.Names(), ", "))
			}
			cf := pickCreds(*creds, *data, name+".creds")
			log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			opts := []sdk.Option{sdk.WithURL(pickURL(*url)), sdk.WithLogger(log)}
			switch {
			case cf != "":
				opts = append(opts, sdk.WithCreds(cf))
			case *nkey != "":
				opts = append(opts, sdk.WithNkey(*nkey))
			}
			log.Info("plugin starting", "plugin", p.Name, "version", p.Version, "nats", pickURL(*url), "creds", cf)
			return sdk.Run(ctx, p, opts...)
		},
	})
	register(&command{
		name:    "plugin check",
		summary: "send canned jobs to a running plugin and check its answers against the protocol (a pass/fail table)",
		usage:   "--plugin NAME [--nats URL] [--creds FILE] [--timeout 2m] [--dicomweb-listen ADDR] [--public-url URL]",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			plugin := fs.String("plugin", "", "the plugin to check (required)")
			url, creds, _, data := natsFlags(fs)
			timeout := fs.Duration("timeout", conformance.DefaultTimeout, "deadline of each canned job")
			listen := fs.String("dicomweb-listen", "", "address the check's own DICOMweb server listens on (default loopback, a free port)")
			public := fs.String("public-url", "", "that server's root as the plugin reaches it, when not the listener")
			if err := fs.Parse(args); err != nil {
				return err
			}
			if *plugin == "" || fs.NArg() != 0 {
				return errUsage
			}
			cf := pickCreds(*creds, *data, adminCreds)
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			b, err := broker.Start(sctx, broker.Config{URL: pickURL(*url), Creds: cf, Name: "osprey plugin check"}, nil)
			if err != nil {
				return fmt.Errorf("connect to NATS at %s: %w (is osprey serve running with nats.listen, and --creds its %s?)", pickURL(*url), err, adminCreds)
			}
			defer b.Close()
			log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			rep, err := conformance.Run(ctx, b, conformance.Options{Plugin: *plugin, Timeout: *timeout,
				DICOMwebListen: *listen, PublicURL: *public, Logger: log})
			if err != nil {
				return err
			}
			if err := rep.WriteTable(env.stdout); err != nil {
				return err
			}
			if !rep.Passed() {
				return &exitError{code: 1, msg: fmt.Sprintf("plugin %s failed %d of %d checks", *plugin, len(rep.Failed()), len(rep.Checks))}
			}
			fmt.Fprintf(env.stdout, "plugin %s passed all %d checks\n", *plugin, len(rep.Checks))
			return nil
		},
	})
}

type flagSet interface {
	String(name, value, usage string) *string
}

func natsFlags(fs flagSet) (url, creds, nkey, data *string) {
	url = fs.String("nats", "", "NATS URL (default $OSPREY_NATS_URL, else "+defaultPluginNATS+")")
	creds = fs.String("creds", "", "NATS credentials `FILE` (default $OSPREY_NATS_CREDS, else the one osprey serve wrote under --data)")
	nkey = fs.String("nkey", "", "NATS nkey seed `FILE`, instead of --creds")
	data = fs.String("data", "", "data dir of osprey serve, for its creds/ (default $OSPREY_DATA, else ./data)")
	return url, creds, nkey, data
}

func pickURL(flag string) string {
	switch {
	case flag != "":
		return flag
	case os.Getenv("OSPREY_NATS_URL") != "":
		return os.Getenv("OSPREY_NATS_URL")
	}
	return defaultPluginNATS
}

// pickCreds chooses the credentials file: the flag, OSPREY_NATS_CREDS, or file in the creds
// dir serve writes, when it exists.
func pickCreds(flag, data, file string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv("OSPREY_NATS_CREDS"); env != "" {
		return env
	}
	if data == "" {
		data = os.Getenv("OSPREY_DATA")
	}
	if data == "" {
		data = "./data"
	}
	p := filepath.Join(credsDir(data), file)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
