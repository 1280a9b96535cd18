package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// `osprey messages search|show|reprocess`: the message history of a running server,
// through the admin API.

func init() {
	register(&command{
		name:    "messages search",
		summary: "search the message history of a running osprey",
		usage:   "[--channel C] [--status S] [--type T] [--control-id ID] [--patient P] [--accession A] [--sender S] [--text Q] [--from T] [--to T] [--limit N] [--cursor C] [--json]",
		run:     messagesSearch,
	})

	register(&command{
		name:    "messages show",
		summary: "show one message with its stages, delivery attempts and deliveries",
		usage:   "[--json] ID",
		run:     messagesShow,
	})

	register(&command{
		name:    "messages reprocess",
		summary: "feed a stored message through its channel again, as a new message",
		usage:   "[--json] ID",
		run:     messagesReprocess,
	})
}

// apiMessage is a message as the admin API shows it.
type apiMessage struct {
	ID          string            `json:"id"`
	Channel     string            `json:"channel"`
	ContentType string            `json:"content_type"`
	ReceivedAt  time.Time         `json:"received_at"`
	Source      map[string]string `json:"source"`
	ControlID   string            `json:"control_id"`
	MessageType string            `json:"message_type"`
	PatientID   string            `json:"patient_id"`
	Accession   string            `json:"accession"`
	Sender      string            `json:"sender"`
	Status      string            `json:"status"`
	Error       string            `json:"error"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ReprocessOf string            `json:"reprocess_of"`
	Size        int               `json:"size"`
	Raw         string            `json:"raw"`
	RawBase64   string            `json:"raw_base64"`
}

type apiDetail struct {
	Message apiMessage `json:"message"`
	Stages  []struct {
		Seq          int       `json:"seq"`
		Name         string    `json:"name"`
		At           time.Time `json:"at"`
		Output       string    `json:"output"`
		OutputBase64 string    `json:"output_base64"`
		Error        string    `json:"error"`
	} `json:"stages"`
	Attempts []struct {
		Destination  string    `json:"destination"`
		Number       int       `json:"number"`
		At           time.Time `json:"at"`
		DurationMS   float64   `json:"duration_ms"`
		OK           bool      `json:"ok"`
		Error        string    `json:"error"`
		ReplySummary string    `json:"reply_summary"`
		Reply        string    `json:"reply"`
		ReplyBase64  string    `json:"reply_base64"`
	} `json:"attempts"`
	Deliveries []apiDelivery `json:"deliveries"`
}

type apiDelivery struct {
	MessageID   string    `json:"message_id"`
	Channel     string    `json:"channel"`
	Destination string    `json:"destination"`
	Status      string    `json:"status"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func messagesSearch(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	api := addAPIFlags(fs)
	// Flag name -> API parameter. The CLI spells them for people (--patient); the API for
	// the store (patient_id).
	params := []struct{ flag, param, help string }{
		{"channel", "channel", "channel name"},
		{"status", "status", "received, rejected, duplicate, filtered, queued, sent or error"},
		{"type", "type", "message type, a prefix: ADT or ADT^A01"},
		{"control-id", "control_id", "MSH-10 control id"},
		{"patient", "patient_id", "patient id (PID-3.1)"},
		{"accession", "accession", "accession number"},
		{"sender", "sender", "sending application^facility (MSH-3^MSH-4)"},
		{"text", "q", "text anywhere in the message, case-insensitive"},
		{"cursor", "cursor", "continue after a previous page (printed as 'more:')"},
	}
	vals := make([]*string, len(params))
	for i, p := range params {
		vals[i] = fs.String(p.flag, "", p.help)
	}
	from := fs.String("from", "", "received at or after: RFC 3339, 2006-01-02[T15:04] (local), or an age such as 90m, 2h, 3d")
	to := fs.String("to", "", "received before; same forms as --from")
	limit := fs.Int("limit", 0, "messages per page, 1 to 1000 (default 50)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return errUsage
	}
	q := url.Values{}
	for i, p := range params {
		if *vals[i] != "" {
			q.Set(p.param, *vals[i])
		}
	}
	now := time.Now()
	for _, t := range []struct{ name, val string }{{"from", *from}, {"to", *to}} {
		when, err := parseWhen(t.val, now)
		if err != nil {
			return fmt.Errorf("--%s: %w", t.name, err)
		}
		if when != "" {
			q.Set(t.name, when)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	return printList(ctx, env, api, "/api/v1/messages", q, *asJSON, "messages",
		[]string{"TIME", "ID", "CHANNEL", "TYPE", "CONTROL ID", "STATUS"},
		func(m apiMessage) []string {
			return []string{m.ReceivedAt.Format(time.RFC3339), termSafe(m.ID), termSafe(m.Channel),
				orDash(m.MessageType), orDash(m.ControlID), termSafe(m.Status)}
		}, "no messages match")
}

// parseWhen turns a --from/--to value into RFC 3339: RFC 3339 as it is; a date or a date
// and time without zone in local time; an age (90m, 2h, 3d) as that long before now.
func parseWhen(s string, now time.Time) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.Format(time.RFC3339Nano), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t.Format(time.RFC3339), nil
		}
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC().Format(time.RFC3339), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	return "", fmt.Errorf("%q is not a time: use RFC 3339 (2026-01-02T15:04:05Z), a local date 2026-01-02[T15:04], or an age such as 90m, 2h, 3d", s)
}

func messagesShow(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	api := addAPIFlags(fs)
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
	var d apiDetail
	body, err := client.get(ctx, "/api/v1/messages/"+url.PathEscape(rest[0]), nil, &d)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, body)
	}
	printDetail(env.stdout, &d)
	return nil
}

func printDetail(w io.Writer, d *apiDetail) {
	m := &d.Message
	tw := newTable(w)
	tw.row("message", termSafe(m.ID))
	tw.row("channel", termSafe(m.Channel))
	tw.row("received", m.ReceivedAt.Format(time.RFC3339Nano))
	tw.row("status", termSafe(m.Status))
	if m.Error != "" {
		tw.row("error", termSafe(m.Error))
	}
	tw.row("type", orDash(m.MessageType))
	tw.row("control id", orDash(m.ControlID))
	tw.row("sender", orDash(m.Sender))
	tw.row("patient id", orDash(m.PatientID))
	tw.row("accession", orDash(m.Accession))
	tw.row("content type", orDash(m.ContentType))
	if len(m.Source) > 0 {
		keys := make([]string, 0, len(m.Source))
		for k := range m.Source {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+m.Source[k])
		}
		tw.row("source", termSafe(strings.Join(parts, " ")))
	}
	if m.ReprocessOf != "" {
		tw.row("reprocess of", termSafe(m.ReprocessOf))
	}
	tw.row("updated", m.UpdatedAt.Format(time.RFC3339Nano))
	tw.flush()

	fmt.Fprintf(w, "\nbody (%d bytes):\n", m.Size)
	printBody(w, m.Raw, m.RawBase64)

	fmt.Fprintf(w, "\nstages (%d):\n", len(d.Stages))
	tw = newTable(w)
	for _, s := range d.Stages {
		note := ""
		if s.Output != "" || s.OutputBase64 != "" {
			note = "changed the message"
		}
		if s.Error != "" {
			note = "error: " + termSafe(s.Error)
		}
		tw.row("  "+strconv.Itoa(s.Seq), s.At.Format(time.RFC3339Nano), termSafe(s.Name), note)
	}
	tw.flush()

	fmt.Fprintf(w, "\nattempts (%d):\n", len(d.Attempts))
	tw = newTable(w)
	for _, a := range d.Attempts {
		outcome := "ok"
		if !a.OK {
			outcome = "failed"
		}
		detail := a.ReplySummary
		if a.Error != "" && a.Error != a.ReplySummary {
			detail = strings.TrimPrefix(detail+"; "+a.Error, "; ")
		}
		tw.row(fmt.Sprintf("  %s #%d", termSafe(a.Destination), a.Number), a.At.Format(time.RFC3339Nano),
			formatMS(a.DurationMS), outcome, termSafe(detail))
	}
	tw.flush()

	fmt.Fprintf(w, "\ndeliveries (%d):\n", len(d.Deliveries))
	tw = newTable(w)
	for _, dl := range d.Deliveries {
		tw.row("  "+termSafe(dl.Destination), termSafe(dl.Status), attemptCount(dl.Attempts), termSafe(dl.LastError))
	}
	tw.flush()
}

// printBody prints a message body one segment a line, indented; HL7 separates segments
// with \r, which a terminal would print over each other.
func printBody(w io.Writer, text, b64 string) {
	raw := []byte(text)
	if b64 != "" {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			fmt.Fprintf(w, "  (undecodable body: %v)\n", err)
			return
		}
		raw = b
		fmt.Fprintln(w, "  (not UTF-8: other bytes shown as \\xNN)")
	}
	if len(raw) == 0 {
		fmt.Fprintln(w, "  (empty)")
		return
	}
	lines := strings.FieldsFunc(string(raw), func(r rune) bool { return r == '\r' || r == '\n' })
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", termSafe(l))
	}
}

// termSafe escapes bytes that are not valid UTF-8 and control characters other than tab, so
// stored text can never drive the terminal.
func termSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `\x%02X`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func formatMS(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return termSafe(s)
}

func messagesReprocess(ctx context.Context, env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	api := addAPIFlags(fs)
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
	var res struct {
		ID string `json:"id"`
	}
	body, err := client.post(ctx, "/api/v1/messages/"+url.PathEscape(rest[0])+"/reprocess", nil, &res)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, body)
	}
	fmt.Fprintf(env.stdout, "reprocessing %s as %s\n", rest[0], res.ID)
	return nil
}

func attemptCount(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}
