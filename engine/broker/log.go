package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
)

// serverLog routes the embedded server's log lines to slog. The server's start-up banner
// (some thirty notice lines, ASCII art included) goes to debug: Start logs one line that
// says what matters.
type serverLog struct {
	log     *slog.Logger
	started atomic.Bool
}

func (l *serverLog) logf(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (l *serverLog) Noticef(format string, v ...any) {
	level := slog.LevelInfo
	if !l.started.Load() {
		level = slog.LevelDebug
	}
	l.logf(level, format, v)
}
func (l *serverLog) Warnf(format string, v ...any)  { l.logf(slog.LevelWarn, format, v) }
func (l *serverLog) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }
func (l *serverLog) Fatalf(format string, v ...any) { l.logf(slog.LevelError, format, v) }
func (l *serverLog) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *serverLog) Tracef(format string, v ...any) { l.logf(slog.LevelDebug-4, format, v) }

// redactURL hides passwords and tokens in a comma-separated list of NATS URLs, for logs and
// error messages.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil {
			if strings.Contains(p, "@") {
				p = "[unparseable url]"
			}
			parts[i] = p
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
