package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

func init() {
	register(&command{
		name:    "send",
		summary: "send HL7v2 messages from files over MLLP and print each ACK",
		usage:   "--to HOST:PORT [flags] FILE|DIR|-...",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			fs.Usage = func() {
				fmt.Fprintf(env.stderr, `usage: osprey send %s

Sends every message in the given files over one MLLP connection, one at a time, waiting
for each ACK. A file may hold one message, several in a row, or an HL7 batch (FHS/BHS);
a DIR means every regular file in it, in name order; - reads standard input.
Segment terminators LF and CRLF are converted to CR before sending, since MLLP receivers
expect CR.

Prints one line per message: its number, MSH-10, the ACK's MSA-1 and MSA-3 (or the error).
Exits 1 if any message was not answered AA or CA.

flags:
`, c.usage)
				fs.PrintDefaults()
			}
			to := fs.String("to", "", "receiver `HOST:PORT` (required)")
			useTLS := fs.Bool("tls", false, "connect with TLS (implied by --ca, --cert)")
			ca := fs.String("ca", "", "PEM `FILE` with the CAs that sign the receiver's certificate (default: system roots)")
			cert := fs.String("cert", "", "PEM `FILE` with a client certificate")
			key := fs.String("key", "", "PEM `FILE` with the client certificate's key")
			serverName := fs.String("server-name", "", "name to verify in the receiver's certificate (default: the host of --to)")
			insecure := fs.Bool("insecure", false, "accept any receiver certificate (testing only)")
			timeout := fs.Duration("timeout", mllp.DefaultAckTimeout, "how long to wait for each ACK (and for the connection)")
			if err := fs.Parse(args); err != nil {
				return err
			}
			if *to == "" || fs.NArg() == 0 {
				return errUsage
			}
			cfg := mllp.ClientConfig{Address: *to, AckTimeout: *timeout, ConnectTimeout: *timeout}
			if *useTLS || *ca != "" || *cert != "" || *key != "" || *insecure || *serverName != "" {
				tc, err := (&mllp.ClientTLS{CAFile: *ca, CertFile: *cert, KeyFile: *key, ServerName: *serverName, InsecureSkipVerify: *insecure}).Config()
				if err != nil {
					return err
				}
				cfg.TLS = tc
			}
			msgs, err := readMessages(env.stdin, fs.Args())
			if err != nil {
				return err
			}
			if len(msgs) == 0 {
				return errors.New("no HL7 messages found in the input")
			}
			return sendAll(ctx, env, cfg, msgs)
		},
	})
}

// message is one message to send and where it came from, for error lines.
type message struct {
	from string
	body []byte
}

// readMessages loads and splits every input, in order.
func readMessages(stdin io.Reader, args []string) ([]message, error) {
	var files []string
	for _, a := range args {
		if a == "-" {
			files = append(files, a)
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if e.Type().IsRegular() {
				names = append(names, filepath.Join(a, e.Name()))
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	var out []message
	for _, f := range files {
		var data []byte
		var err error
		if f == "-" {
			data, err = io.ReadAll(stdin)
			f = "stdin"
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, err
		}
		parts, err := hl7v2.Split(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, p := range parts {
			out = append(out, message{from: f, body: toCR(p)})
		}
	}
	return out, nil
}

// toCR turns LF and CRLF segment terminators into CR, the only one HL7 defines.
func toCR(b []byte) []byte {
	if bytes.IndexByte(b, '\n') < 0 {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\r"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
}

// sendAll sends msgs one at a time over one connection, reconnecting after a failure.
func sendAll(ctx context.Context, env *cliEnv, cfg mllp.ClientConfig, msgs []message) error {
	var bar *progress
	if len(msgs) > 10 && isTerminal(env.stderr) {
		bar = &progress{w: env.stderr, total: len(msgs)}
	}
	var client *mllp.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	accepted, notAccepted, failed := 0, 0, 0
	for i, m := range msgs {
		if ctx.Err() != nil {
			break
		}
		id := "?"
		if pm, err := hl7v2.Parse(m.body); err == nil && pm.ControlID() != "" {
			id = pm.ControlID()
		}
		var line string
		if client != nil && !client.Alive() {
			client.Close() // the receiver closed it; a new connection loses nothing
			client = nil
		}
		if client == nil {
			c, err := mllp.Dial(ctx, cfg)
			if err != nil {
				bar.clear()
				return err
			}
			client = c
		}
		ack, _, err := client.Send(ctx, m.body)
		switch {
		case err != nil:
			failed++
			line = fmt.Sprintf("%d\t%s\tERROR\t%v", i+1, id, err)
			if !errors.Is(err, mllp.ErrInvalidMessage) {
				client.Close()
				client = nil
			}
		case ack.Code.Accepted():
			accepted++
			line = fmt.Sprintf("%d\t%s\t%s\t%s", i+1, id, ack.Code, ack.Text)
		default:
			notAccepted++
			text := ack.Text
			if text == "" && len(ack.Errors) > 0 {
				text = ack.Errors[0].Text
			}
			line = fmt.Sprintf("%d\t%s\t%s\t%s", i+1, id, ack.Code, text)
		}
		bar.clear()
		fmt.Fprintln(env.stdout, strings.TrimRight(line, "\t"))
		bar.set(i + 1)
	}
	bar.clear()
	total := accepted + notAccepted + failed
	if notAccepted > 0 || failed > 0 || total < len(msgs) {
		return &exitError{code: 1, msg: fmt.Sprintf("osprey send: %d of %d messages accepted (%d rejected, %d failed)",
			accepted, len(msgs), notAccepted, failed+len(msgs)-total)}
	}
	fmt.Fprintf(env.stderr, "osprey send: %d %s accepted\n", accepted, plural(accepted, "message"))
	return nil
}

// isTerminal reports whether w is a character device (a terminal), where a progress bar
// makes sense; a file or a pipe gets none.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress is a one-line progress bar redrawn in place on a terminal. A nil *progress
// draws nothing, so callers need no conditionals.
type progress struct {
	w     io.Writer
	total int
	start time.Time
	shown bool
}

func (p *progress) set(n int) {
	if p == nil {
		return
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	const width = 30
	fill := width * n / p.total
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %.0f msg/s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), n, p.total, rate)
	p.shown = true
}

// clear erases the bar so a line can be printed in its place.
func (p *progress) clear() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.shown = false
}
