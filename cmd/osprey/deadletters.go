package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// `osprey deadletters list|requeue`: deliveries that ran out of retries, through the admin API.

func init() {
	register(&command{
		name:    "deadletters list",
		summary: "list dead-lettered deliveries of a running osprey, newest first",
		usage:   "[--channel C] [--destination D] [--limit N] [--cursor C] [--json]",
		run:     deadLettersList,
	})

	register(&command{
		name:    "deadletters requeue",
		summary: "put a dead-lettered message back on its destination's queue",
		usage:   "[--destination D] [--json] MESSAGE-ID",
		run:     deadLettersRequeue,
	})
}

func deadLettersList(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	api := addAPIFlags(fs)
	channel := fs.String("channel", "", "channel name")
	destination := fs.String("destination", "", "destination name")
	limit := fs.Int("limit", 0, "rows per page, 1 to 1000 (default 50)")
	cursor := fs.String("cursor", "", "continue after a previous page (printed as 'more:')")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return errUsage
	}
	q := url.Values{}
	for name, v := range map[string]string{"channel": *channel, "destination": *destination, "cursor": *cursor} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	return printList(ctx, env, api, "/api/v1/deadletters", q, *asJSON, "dead_letters",
		[]string{"UPDATED", "MESSAGE ID", "CHANNEL", "DESTINATION", "ATTEMPTS", "LAST ERROR"},
		func(d apiDelivery) []string {
			return []string{d.UpdatedAt.Format(time.RFC3339), termSafe(d.MessageID), termSafe(d.Channel),
				termSafe(d.Destination), strconv.Itoa(d.Attempts), orDash(d.LastError)}
		}, "no dead letters")
}

func deadLettersRequeue(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	api := addAPIFlags(fs)
	destination := fs.String("destination", "", "only this destination (default every dead-lettered destination of the message)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return errUsage
	}
	client, err := api.client()
	if err != nil {
		return err
	}
	var q url.Values
	if *destination != "" {
		q = url.Values{"destination": {*destination}}
	}
	body, err := client.post(ctx, "/api/v1/deadletters/"+url.PathEscape(rest[0])+"/requeue", q, nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, body)
	}
	if *destination != "" {
		fmt.Fprintf(env.stdout, "requeued %s to %s\n", rest[0], *destination)
	} else {
		fmt.Fprintf(env.stdout, "requeued %s to every dead-lettered destination\n", rest[0])
	}
	return nil
}
