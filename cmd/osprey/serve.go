package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	_ "github.com/osprey-health/osprey/channels/all" // register every connector
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/admin"
	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/engine/store/backend"
	_ "github.com/osprey-health/osprey/mappings/all" // and every mapping
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run the channels of a configuration (file or folder)",
		usage:   "-c PATH",
		run: func(ctx context.Context, env *cliEnv, c *command, args []string) error {
			fs := newFlags(env, c)
			path := fs.String("c", "osprey.yaml", "configuration file or folder")
			if err := fs.Parse(args); err != nil {
				return err
			}
			return serve(ctx, env, *path)
		},
	})
}

// serve runs until ctx is cancelled (SIGINT/SIGTERM), reloading channels on SIGHUP.
func serve(ctx context.Context, env *cliEnv, path string) error {
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	log := newLogger(env, cfg.Server.Log)
	slog.SetDefault(log)
	setProcs(cfg.Server.Procs, log)
	dataDir := cfg.Server.DataDir
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	// Everything started is stopped in reverse order, also when a later step fails.
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	br, err := broker.Start(ctx, broker.Config{
		URL: cfg.Server.NATS.URL, Listen: cfg.Server.NATS.Listen, Sync: cfg.Server.NATS.Sync,
		StoreDir: filepath.Join(dataDir, "nats"), Creds: cfg.Server.NATS.Creds,
		Replicas: cfg.Server.NATS.StreamReplicas, Name: "osprey",
	}, log)
	if err != nil {
		return err
	}
	stops = append(stops, func() {
		if err := br.Close(); err != nil {
			log.Warn("nats close", "err", err)
		}
	})

	st, err := openStore(ctx, cfg.Server)
	if err != nil {
		return err
	}
	stops = append(stops, func() {
		if err := st.Close(); err != nil {
			log.Warn("store close", "err", err)
		}
	})

	eng := engine.New(engine.Options{
		Registry: engine.Global, Broker: br, Store: st, Logger: log, DataDir: dataDir,
		Retention: cfg.Server.Retention,
		Applied: func(c *config.Config) {
			if err := writeCreds(br, c, dataDir, log); err != nil {
				log.Error("NATS credentials not written; plugins cannot connect", "err", err)
			}
		},
		Load: func(context.Context) (*config.Config, error) {
			c, err := loadConfig(path)
			if err != nil {
				return nil, err
			}
			if !sameServer(cfg, c) {
				log.Warn("server settings changed; they apply at the next restart, channel changes apply now")
			}
			return c, nil
		},
	})
	stops = append(stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := eng.Shutdown(sctx); err != nil {
			log.Warn("engine shutdown", "err", err)
		}
	})
	if err := eng.Apply(ctx, cfg); err != nil {
		return err
	}

	api := admin.New(admin.Options{Engine: eng, Store: st, Gatherer: eng.Metrics().Registry,
		Tokens: adminTokens(cfg.Server.Admin), Logger: log, Version: buildVersion()})
	ln, err := net.Listen("tcp", cfg.Server.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", cfg.Server.Admin.Listen, err)
	}
	var tlsConf *tls.Config
	if cfg.Server.Admin.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Server.Admin.TLS.CertFile, cfg.Server.Admin.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin tls: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	apiCtx, stopAPI := context.WithCancel(context.Background())
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Serve(apiCtx, ln, tlsConf) }()
	stops = append(stops, func() { stopAPI(); <-apiDone })

	log.Info("osprey serving", "version", buildVersion(), "config", path, "channels", len(cfg.Channels),
		"admin", ln.Addr().String(), "nats", natsWhere(br), "data_dir", dataDir)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping: no new messages are accepted; work in flight finishes or stays queued")
			return nil
		case err := <-apiDone:
			return fmt.Errorf("admin api: %w", err)
		case <-hup:
			if err := eng.Reload(ctx); err != nil {
				log.Error("reload refused; the running configuration is unchanged", "err", err)
			}
		}
	}
}

// loadConfig loads and validates; lints come back as one *engine.ConfigError.
func loadConfig(path string) (*config.Config, error) {
	cfg, lints := config.Load(path, engine.Global)
	if cfg == nil {
		return nil, &engine.ConfigError{Lints: errorLints(lints)}
	}
	for _, l := range lints {
		slog.Warn("configuration", "lint", l.String())
	}
	return cfg, nil
}

func errorLints(lints []spec.Lint) []spec.Lint {
	var out []spec.Lint
	for _, l := range lints {
		if l.Level == spec.LevelError {
			out = append(out, l)
		}
	}
	return out
}

func openStore(ctx context.Context, s config.Server) (store.Store, error) {
	path := s.Store.SQLite
	if path == "" {
		path = filepath.Join(s.DataDir, "osprey.db")
	}
	return backend.Open(ctx, backend.Config{SQLite: path, Postgres: s.Store.Postgres})
}

func adminTokens(a config.Admin) []admin.Token {
	var out []admin.Token
	for _, t := range a.Tokens {
		out = append(out, admin.Token{Name: t.Name, Token: t.Token, Role: t.Role})
	}
	return out
}

func newLogger(env *cliEnv, l config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(l.Format, "text") {
		return slog.New(slog.NewTextHandler(env.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(env.stderr, opts))
}

func natsWhere(b *broker.Broker) string {
	switch {
	case !b.Embedded():
		return b.ClientURL()
	case b.ClientURL() != "":
		return "embedded, listening on " + b.ClientURL()
	}
	return "embedded, in-process only"
}

func sameServer(a, b *config.Config) bool {
	return a.Server.Hash() == b.Server.Hash()
}

// setProcs applies server.procs to GOMAXPROCS, unless the GOMAXPROCS environment variable
// has set it already (the Go convention operators expect to work).
func setProcs(configured int, log *slog.Logger) {
	cpus := runtime.GOMAXPROCS(0) // Go's default: the CPUs this process may use, cgroup limits included
	if _, ok := os.LookupEnv("GOMAXPROCS"); ok {
		log.Info("threads running Go code", "procs", cpus, "set_by", "GOMAXPROCS")
		return
	}
	n := procsFor(configured, cpus)
	runtime.GOMAXPROCS(n)
	log.Info("threads running Go code", "procs", n, "cpus", cpus, "set_by", "server.procs")
}

// procsFor is server.procs resolved: 0 means twice the CPUs. Much of Osprey's time is spent
// in system calls that block their thread (JetStream's fsync before each ACK, the store's
// writes, socket I/O); with one thread per CPU the goroutines that could run meanwhile wait
// for the scheduler to notice, and the senders' ACKs wait with them.
func procsFor(configured, cpus int) int {
	if configured > 0 {
		return configured
	}
	return 2 * max(cpus, 1)
}
