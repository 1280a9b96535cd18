// Package admin is Osprey's admin HTTP API: channel status and control, message search,
// detail and reprocessing, dead letters and requeueing, AI plugins, jobs and analyses,
// configuration reload, health, readiness and Prometheus metrics.
//
// Handlers return errors; one error type, [Error], carries the HTTP status and the message
// the client sees, and a central handler maps every other error to one (see [StatusOf]).
// Every /api route needs a bearer token; read tokens may GET, admin tokens may also POST.
// /healthz, /readyz and /metrics are open, as Prometheus and load balancers expect.
//
// The package consumes the runtime through the small [Engine] interface (and the optional
// [PluginLister]) and reads history, jobs and analyses straight from a [store.Store]; it
// never imports a connector.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Engine is what the API needs from the runtime. An Engine that also implements
// [PluginLister] serves GET /api/v1/plugins.
type Engine interface {
	// Channels reports every configured channel.
	Channels() []engine.ChannelStatus
	// Control starts, stops or pauses a channel. An unknown channel wraps
	// engine.ErrUnknownChannel; an unknown action wraps engine.ErrBadRequest.
	Control(ctx context.Context, channel, action string) error
	// Reprocess feeds a stored message through its channel again as a new message and
	// returns the new id. A missing message wraps engine.ErrNotFound or store.ErrNotFound.
	Reprocess(ctx context.Context, messageID string) (newID string, err error)
	// Requeue puts a dead-lettered delivery back on its destination's queue; destination ""
	// means every dead-lettered destination of the message. A message that is not dead
	// lettered wraps engine.ErrBadRequest.
	Requeue(ctx context.Context, messageID, destination string) error
	// Reload reads the configuration again and swaps it in. A configuration that does not
	// pass validation returns *engine.ConfigError and the running one keeps running.
	Reload(ctx context.Context) error
	// Ready reports whether the engine can do its work (NATS and store reachable).
	Ready(ctx context.Context) error
}

// Roles a token can have.
const (
	RoleAdmin = "admin" // every route
	RoleRead  = "read"  // GET routes only
)

// Token is one bearer token the API accepts.
type Token struct {
	Name  string // who holds it; logged with each request, never the token itself
	Token string // the secret
	Role  string // RoleAdmin or RoleRead
}

// Options configure a Server. Engine and Store are required.
type Options struct {
	Engine   Engine
	Store    store.Store
	Gatherer prometheus.Gatherer // served on /metrics; nil leaves /metrics out
	Tokens   []Token             // none configured: every /api call is refused with 401
	Logger   *slog.Logger        // nil: slog.Default()
	Version  string              // reported by /api/v1/version

	// MaxBodyBytes limits a request body; 0 means 1 MiB. No route takes a large body.
	MaxBodyBytes int64
	// ShutdownTimeout bounds how long Serve waits for requests in flight once its context is
	// cancelled; 0 means 10 seconds.
	ShutdownTimeout time.Duration
}

// Server is the admin API. Build it with New; it is safe for concurrent use.
type Server struct {
	eng      Engine
	store    store.Store
	gatherer prometheus.Gatherer
	log      *slog.Logger
	version  string
	shutdown time.Duration

	tokens   []credential
	tokenErr error // the first unusable token in Options; Serve refuses to start with it

	echo *echo.Echo
}

// credential is an accepted token, kept as a hash so every comparison takes the same time
// whatever the length of the presented token.
type credential struct {
	name string
	role string
	sum  [sha256.Size]byte
}

// New builds a Server. It panics when Engine or Store is nil, since that is a programming
// error. Unusable tokens (empty, unknown role, the same secret twice) are left out and
// logged; Serve then refuses to start.
func New(opts Options) *Server {
	if opts.Engine == nil || opts.Store == nil {
		panic("admin: New needs an Engine and a Store")
	}
	s := &Server{
		eng:      opts.Engine,
		store:    opts.Store,
		gatherer: opts.Gatherer,
		log:      opts.Logger,
		version:  opts.Version,
		shutdown: opts.ShutdownTimeout,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.shutdown <= 0 {
		s.shutdown = 10 * time.Second
	}
	s.tokens, s.tokenErr = credentials(opts.Tokens)
	if s.tokenErr != nil {
		s.log.Warn("admin: ignoring unusable token", "error", s.tokenErr)
	}
	limit := opts.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	s.echo = s.routes(limit)
	return s
}

func credentials(tokens []Token) ([]credential, error) {
	var (
		creds []credential
		first error
		seen  = map[[sha256.Size]byte]string{}
	)
	for i, t := range tokens {
		name := t.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		var err error
		sum := sha256.Sum256([]byte(t.Token))
		switch {
		case t.Token == "":
			err = fmt.Errorf("admin: token %s: empty secret", name)
		case t.Role != RoleAdmin && t.Role != RoleRead:
			err = fmt.Errorf("admin: token %s: role %q is neither %q nor %q", name, t.Role, RoleAdmin, RoleRead)
		case seen[sum] != "":
			err = fmt.Errorf("admin: token %s: same secret as token %s", name, seen[sum])
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		seen[sum] = name
		creds = append(creds, credential{name: name, role: t.Role, sum: sum})
	}
	return creds, first
}

// Handler returns the API as an http.Handler, for tests or to mount behind another server.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers requests on ln until ctx is cancelled, then stops accepting, waits up to
// the shutdown timeout for requests in flight and returns nil. With a non-nil tlsConfig it
// serves HTTPS (the config must carry a certificate). Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	if s.tokenErr != nil {
		ln.Close()
		return s.tokenErr
	}
	if len(s.tokens) == 0 {
		s.log.Warn("admin: no API tokens configured; every /api request will be refused with 401",
			"addr", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			srv.TLSConfig = tlsConfig.Clone()
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	s.log.Info("admin: serving", "addr", ln.Addr().String(), "tls", tlsConfig != nil)

	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdown)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("admin: shutdown: %w", err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("admin: serve %s: %w", ln.Addr(), serr)
	}
	return err
}

func (s *Server) routes(bodyLimit int64) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.logRequests, s.recoverPanics, secureHeaders,
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: fmt.Sprintf("%dB", bodyLimit)}),
		s.authenticate)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if s.gatherer != nil {
		e.GET("/metrics", s.metricsHandler())
	}

	api := "/api/v1"
	e.GET(api+"/version", s.getVersion)
	e.GET(api+"/channels", s.listChannels)
	e.GET(api+"/channels/:name", s.getChannel)
	for _, action := range []string{"start", "stop", "pause"} {
		e.POST(api+"/channels/:name/"+action, s.controlChannel(action))
	}
	e.GET(api+"/messages", s.searchMessages)
	e.GET(api+"/messages/:id", s.getMessage)
	e.POST(api+"/messages/:id/reprocess", s.reprocessMessage)
	e.GET(api+"/messages/:id/analysis", s.getAnalysis)
	e.POST(api+"/messages/:id/analysis/withdraw", s.withdrawAnalysis)
	e.GET(api+"/plugins", s.listPlugins)
	e.GET(api+"/jobs", s.listJobs)
	e.GET(api+"/jobs/:id", s.getJob)
	e.GET(api+"/deadletters", s.listDeadLetters)
	e.POST(api+"/deadletters/:id/requeue", s.requeueDeadLetter)
	e.POST(api+"/reload", s.reload)
	s.debugRoutes(e)
	return e
}
