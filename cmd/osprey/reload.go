package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// `osprey reload`: ask a running server to read its configuration again.

func init() {
	register(&command{
		name:    "reload",
		summary: "make a running osprey reload its configuration (prints the lints when it is refused)",
		usage:   "[--api URL] [--token T]",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			api := addAPIFlags(fs)
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return errUsage
			}
			client, err := api.client()
			if err != nil {
				return err
			}
			_, err = client.post(ctx, "/api/v1/reload", nil, nil)
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity {
				for _, l := range ae.Lints {
					text := l.Text
					if text == "" {
						text = fmt.Sprintf("%s:%d:%d: %s", l.File, l.Line, l.Col, l.Message)
					}
					fmt.Fprintln(env.stderr, text)
				}
				return &exitError{code: 1, msg: "osprey reload: " + ae.Message}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, "configuration reloaded")
			return nil
		},
	})
}
