// Command osprey-ich runs the demonstration intracranial haemorrhage plugin (plugins/ich) as
// a stand-alone binary: the shape of a model team's plugin. NOT FOR CLINICAL USE.
//
//	osprey-ich --nats nats://osprey:4222 --creds /etc/osprey/ich.creds
//
// Without flags it reads OSPREY_NATS_URL, OSPREY_NATS_CREDS and OSPREY_NATS_NKEY. It stops on
// SIGINT or SIGTERM, letting running jobs finish for --drain and handing the rest back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/osprey-health/osprey/plugins/ich"
	"github.com/osprey-health/osprey/plugins/sdk"
)

func main() {
	if err := run(os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "osprey-ich:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("osprey-ich", flag.ContinueOnError)
	url := fs.String("nats", "", "NATS server URL (default $"+sdk.EnvURL+", else nats://127.0.0.1:4222)")
	creds := fs.String("creds", "", "NATS credentials file (default $"+sdk.EnvCreds+")")
	nkey := fs.String("nkey", "", "file with an nkey seed, instead of --creds (default $"+sdk.EnvNkey+")")
	drain := fs.Duration("drain", sdk.DefaultDrainTimeout, "how long running jobs may finish after SIGTERM")
	concurrency := fs.Int("concurrency", 1, "jobs run at once by this instance")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Warn("NOT FOR CLINICAL USE: the ich plugin is a demonstration detector", "plugin", ich.PluginName, "version", ich.PluginVersion)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := ich.Plugin
	p.Concurrency = *concurrency
	opts := []sdk.Option{sdk.WithLogger(log), sdk.WithDrainTimeout(max(*drain, time.Second))}
	if *url != "" {
		opts = append(opts, sdk.WithURL(*url))
	}
	if *creds != "" {
		opts = append(opts, sdk.WithCreds(*creds))
	}
	if *nkey != "" {
		opts = append(opts, sdk.WithNkey(*nkey))
	}
	return sdk.Run(ctx, p, opts...)
}
