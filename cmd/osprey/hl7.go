package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

func init() {
	register(&command{
		name:    "hl7 get",
		summary: "print the values at HL7 paths (PID-5.1, OBX[2]-5, ...), one per line",
		usage:   "[--raw] FILE|- PATH...",
		run:     func(_ context.Context, env *cliEnv, get *command, args []string) error { return hl7Get(env, get, args) },
	})

	register(&command{
		name:    "hl7 fmt",
		summary: "show a message with one segment per line, or as structured JSON",
		usage:   "[--json] FILE|-",
		run: func(_ context.Context, env *cliEnv, fmtCmd *command, args []string) error {
			return hl7Fmt(env, fmtCmd, args)
		},
	})

	register(&command{
		name:    "hl7 ack",
		summary: "print the acknowledgment Osprey would send for a message",
		usage:   "[--code AA|AE|AR|CA|CE|CR] [--error TEXT [--error-code N] [--location PATH]] FILE|-",
		run:     func(_ context.Context, env *cliEnv, ack *command, args []string) error { return hl7Ack(env, ack, args) },
	})
}

// hl7Read reads FILE ("-" is stdin).
func hl7Read(env *cliEnv, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(env.stdin)
	}
	return os.ReadFile(name)
}

// hl7Split splits what hl7Read returned into messages: a file may hold one message,
// several in a row, or HL7 batches.
func hl7Split(name string, data []byte) ([][]byte, error) {
	msgs, err := hl7v2.Split(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%s: no HL7 message (no MSH segment)", name)
	}
	return msgs, nil
}

func hl7Input(env *cliEnv, name string) ([][]byte, error) {
	data, err := hl7Read(env, name)
	if err != nil {
		return nil, err
	}
	return hl7Split(name, data)
}

// hl7Parse parses one message leniently and reports what the parser tolerated on stderr, so
// an analyst sees why a feed is odd without the tool refusing to work.
func hl7Parse(env *cliEnv, name string, i, n int, b []byte, warn bool) (*hl7v2.Message, error) {
	where := name
	if n > 1 {
		where = fmt.Sprintf("%s: message %d", name, i+1)
	}
	m, err := hl7v2.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if warn {
		for _, is := range m.Issues() {
			fmt.Fprintf(env.stderr, "%s: warning: %s\n", where, is)
		}
	}
	return m, nil
}

// hl7Get prints, for each message of FILE, the value at each path on its own line (unescaped
// unless --raw; an absent element prints an empty line). Messages are separated by a blank
// line. A value holding a line break (\.br\) spans lines; --raw keeps it on one.
func hl7Get(env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	raw := fs.Bool("raw", false, "print values as encoded, escape sequences and delimiters intact")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return errUsage
	}
	paths := fs.Args()[1:]
	for _, p := range paths {
		if _, err := hl7v2.ParsePath(p); err != nil {
			return &exitError{code: 2, msg: "osprey hl7 get: " + err.Error()}
		}
	}
	msgs, err := hl7Input(env, fs.Arg(0))
	if err != nil {
		return err
	}
	for i, b := range msgs {
		m, err := hl7Parse(env, fs.Arg(0), i, len(msgs), b, false)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		for _, p := range paths {
			if *raw {
				fmt.Fprintln(env.stdout, m.Raw(p))
			} else {
				fmt.Fprintln(env.stdout, m.Get(p))
			}
		}
	}
	return nil
}

// hl7Fmt prints each message with one segment per line (a blank line between messages), or
// with --json a JSON array holding, per message, its segments > fields > repetitions >
// components > subcomponents named by path, and the parser's issues.
func hl7Fmt(env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	asJSON := fs.Bool("json", false, "print a structured JSON view")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errUsage
	}
	msgs, err := hl7Input(env, fs.Arg(0))
	if err != nil {
		return err
	}
	type jsonMessage struct {
		Segments json.RawMessage `json:"segments"`
		Issues   []string        `json:"issues,omitempty"`
	}
	var views []jsonMessage
	for i, b := range msgs {
		m, err := hl7Parse(env, fs.Arg(0), i, len(msgs), b, !*asJSON)
		if err != nil {
			return err
		}
		if *asJSON {
			segs, err := m.MarshalJSON()
			if err != nil {
				return err
			}
			v := jsonMessage{Segments: segs}
			for _, is := range m.Issues() {
				v.Issues = append(v.Issues, is.String())
			}
			views = append(views, v)
			continue
		}
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		for _, s := range m.Segments() {
			fmt.Fprintln(env.stdout, termSafeHL7(s.Raw()))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(views)
	}
	return nil
}

// termSafeHL7 keeps control characters in a segment from reaching the terminal raw.
func termSafeHL7(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < ' ' && r != '\t' || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// hl7Ack prints, for each message of FILE, the acknowledgment Osprey would send, one
// segment per line. The default code is AA, or CA when the message asks for enhanced
// acknowledgment (MSH-15/16); --error adds an ERR segment and makes the default AE (CE).
// A message that does not parse gets AR (CR) with the parse error in MSA-3, built from
// what can be salvaged of its MSH.
func hl7Ack(env *cliEnv, c *command, args []string) error {
	fs := newFlags(env, c)
	code := fs.String("code", "", "acknowledgment code (MSA-1); default AA/CA, AE/CE with --error")
	errText := fs.String("error", "", "add an ERR segment with this user message (ERR-8)")
	errCode := fs.Int("error-code", 207, "HL7 table 0357 error code for --error (ERR-3)")
	location := fs.String("location", "", "HL7 path the error is about, e.g. PID-3 (ERR-2)")
	controlID := fs.String("control-id", "", "MSH-10 of the ACK; default a new unique ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errUsage
	}
	if *code != "" && !hl7v2.AckCode(*code).Valid() {
		return &exitError{code: 2, msg: fmt.Sprintf("osprey hl7 ack: --code %q: want AA, AE, AR, CA, CE or CR", *code)}
	}
	if *location != "" {
		if _, err := hl7v2.ParsePath(*location); err != nil {
			return &exitError{code: 2, msg: "osprey hl7 ack: --location: " + err.Error()}
		}
	}
	data, err := hl7Read(env, fs.Arg(0))
	if err != nil {
		return err
	}
	msgs, err := hl7Split(fs.Arg(0), data)
	if err != nil {
		// Not even splittable into messages: acknowledge it as one unreadable message,
		// as the MLLP source would.
		msgs = [][]byte{data}
	}
	for i, b := range msgs {
		opts := hl7v2.AckOptions{ControlID: *controlID}
		if *errText != "" {
			opts.Errors = []hl7v2.AckError{{Code: *errCode, Location: *location, Text: *errText}}
		}
		var out []byte
		m, perr := hl7v2.Parse(b)
		enhanced := perr == nil && hl7v2.EnhancedMode(m)
		ac := hl7v2.AckCode(*code)
		switch {
		case ac != "":
		case perr != nil:
			ac = pick(enhanced, hl7v2.CommitReject, hl7v2.ApplicationReject)
		case *errText != "":
			ac = pick(enhanced, hl7v2.CommitError, hl7v2.ApplicationError)
		default:
			ac = pick(enhanced, hl7v2.CommitAccept, hl7v2.ApplicationAccept)
		}
		if perr != nil {
			opts.Text = perr.Error()
			out = hl7v2.AckBytes(b, ac, opts)
		} else {
			out = hl7v2.NewAck(m, ac, opts).Encode()
		}
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		for _, seg := range bytes.Split(bytes.TrimRight(out, "\r"), []byte{'\r'}) {
			fmt.Fprintln(env.stdout, termSafeHL7(string(seg)))
		}
	}
	return nil
}

func pick(enhanced bool, commit, application hl7v2.AckCode) hl7v2.AckCode {
	if enhanced {
		return commit
	}
	return application
}
