package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osprey-health/osprey/channels/mllp"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/hl7v2"
)

func init() {
	register(&command{
		name:    "listen",
		summary: "receive HL7v2 messages over MLLP, print them and answer each with an ACK",
		usage:   "[--port N] [--host ADDR] [--ack AA|AE|AR] [--out DIR] [--count N]",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			port := fs.Int("port", 2575, "TCP port to listen on (0 picks a free one)")
			host := fs.String("host", "127.0.0.1", "address to listen on; 0.0.0.0 for every interface")
			ackCode := fs.String("ack", "AA", "ACK code to answer with: AA, AE or AR (CA, CE, CR when a message asks for enhanced mode)")
			out := fs.String("out", "", "write each message, as received, to its own file in `DIR` (000001-<MSH-10>.hl7)")
			count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
			certFile := fs.String("tls-cert", "", "serve TLS with this PEM certificate `FILE`")
			keyFile := fs.String("tls-key", "", "PEM private key `FILE` for --tls-cert")
			clientCA := fs.String("tls-client-ca", "", "verify client certificates against the CAs in this PEM `FILE`")
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() != 0 {
				return errUsage
			}
			l := &listener{env: env, count: *count, outDir: *out}
			switch strings.ToUpper(*ackCode) {
			case "AA":
			case "AE":
				l.reject = true
			case "AR":
				l.fail = true
			default:
				return fmt.Errorf("--ack %q: want AA, AE or AR", *ackCode)
			}
			if *out != "" {
				if err := os.MkdirAll(*out, 0o755); err != nil {
					return err
				}
			}
			cfg := mllp.SourceConfig{Address: net.JoinHostPort(*host, strconv.Itoa(*port)), IdleTimeout: 0}
			if *certFile != "" || *keyFile != "" {
				cfg.TLS = &mllp.ServerTLS{CertFile: *certFile, KeyFile: *keyFile, ClientCAFile: *clientCA}
			}
			log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return l.run(ctx, cfg, log)
		},
	})
}

// listener is the state of one `osprey listen`: the sink that prints, saves and counts.
type listener struct {
	env          *cliEnv
	count        int
	outDir       string
	reject, fail bool

	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (l *listener) run(ctx context.Context, cfg mllp.SourceConfig, log *slog.Logger) error {
	src, err := mllp.NewSource(cfg, engine.Resources{Logger: log, Channel: "listen"})
	if err != nil {
		return err
	}
	if err := src.Listen(); err != nil {
		return err
	}
	ctx, l.cancel = context.WithCancel(ctx)
	defer l.cancel()
	proto := "MLLP"
	if cfg.TLS != nil {
		proto = "MLLP over TLS"
	}
	fmt.Fprintf(l.env.stderr, "listening on %s (%s); Ctrl-C to stop\n", src.Addr(), proto)
	return src.Run(ctx, engine.SinkFunc(l.accept))
}

// errNotStored is the sink error behind --ack AR; the source answers AR for it.
var errNotStored = errors.New("osprey listen --ack AR")

func (l *listener) accept(_ context.Context, m *engine.Message) (engine.Receipt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count > 0 && l.n >= l.count {
		// Already stopping: tell late senders to come back rather than drop their message.
		return engine.Receipt{}, errors.New("osprey listen: --count reached")
	}
	l.n++
	n := l.n

	msgType, id := "?", ""
	if pm, err := hl7v2.Parse(m.Body); err == nil {
		msgType, id = pm.Get("MSH-9"), pm.ControlID()
	}
	fmt.Fprintf(l.env.stdout, "%s\t%s\t%s\t%s\t%d bytes\n",
		m.ReceivedAt.Format(time.RFC3339Nano), m.Meta["remote_addr"], dashIfEmpty(msgType), dashIfEmpty(id), len(m.Body))

	if l.outDir != "" {
		name := filepath.Join(l.outDir, fmt.Sprintf("%06d-%s.hl7", n, fileSafe(id)))
		if err := os.WriteFile(name, m.Body, 0o644); err != nil {
			return engine.Receipt{}, err // answered AR: the sender will retry
		}
	}
	if l.count > 0 && n >= l.count {
		l.cancel() // the source still sends this message's ACK before it stops
	}
	receipt := engine.Receipt{ID: strconv.Itoa(n), Verdict: engine.Accepted}
	switch {
	case l.fail:
		return engine.Receipt{}, errNotStored
	case l.reject:
		receipt.Verdict, receipt.Reason = engine.Rejected, errors.New("rejected by osprey listen --ack AE")
	}
	return receipt, nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fileSafe keeps ASCII letters, digits, '.', '_' and '-' of a control id, replaces the
// rest with '_' and cuts it at 64 bytes. With no separator left, and behind the sequence
// number prefix, an id can never name a path outside the output folder.
func fileSafe(id string) string {
	var b strings.Builder
	for _, r := range id {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "noid"
	}
	return b.String()
}
