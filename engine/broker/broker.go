// Package broker is Osprey's NATS room: it runs the embedded nats-server with JetStream (or
// connects to an external cluster), creates the streams the engine needs, and writes
// messages durably through a group-committing Committer.
//
// Durability is the point of this package. An acknowledgement from it means the message is
// on disk: the embedded server runs JetStream with sync_interval "always", so every write is
// fsynced before the server acknowledges it. Throughput comes from group commit, where the
// entries that many callers commit at the same time travel as one JetStream message (a
// record, see EncodeRecord) and share one fsync, never from a weaker sync setting. The
// opt-in "fast" mode keeps the server default (fsync every two minutes) and says so in the
// log at start.
//
// Nobody connects to the embedded server anonymously. It runs in operator (JWT) mode with
// one application account, holding the JetStream data, and a system account; the broker's
// own in-process connections authenticate as an internal user minted at each start, and
// plugins and tools through the listener with a credentials file from Creds, limited to
// the subjects they need. With Config.KeysDir set the signing keys outlast restarts, and so
// do the credentials they signed.
//
// Everything on the external path uses features of NATS 2.9 and later only: plain publishes
// with headers, Nats-Msg-Id deduplication, pull consumers and the usual retention policies.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sync modes of the embedded server.
const (
	// SyncAlways fsyncs every JetStream write before it is acknowledged. The default.
	SyncAlways = "always"
	// SyncFast keeps the nats-server default: writes are flushed to the operating system at
	// once but fsynced only every two minutes, so acknowledged messages can be lost when the
	// machine loses power.
	SyncFast = "fast"
)

// Errors returned by Start and the Committer.
var (
	// ErrNoJetStream means the server or the account has JetStream disabled.
	ErrNoJetStream = errors.New("jetstream not enabled")
	// ErrTooLarge means an entry does not fit in one NATS message of the server. Unlike
	// other commit errors it is permanent: a retry fails the same way, so reject the message
	// (MLLP AE, HTTP 413) rather than asking the sender to retry.
	ErrTooLarge = errors.New("entry too large")
	// ErrClosed means the Committer or Broker was closed.
	ErrClosed = errors.New("closed")
)

// readyTimeout bounds how long Start waits for the embedded server to accept clients.
const readyTimeout = 10 * time.Second

// embeddedMaxPayload is the embedded server's max_payload: room for a 4 MiB group-commit
// record with headroom, and the largest size nats-server accepts without a warning.
const embeddedMaxPayload = 8 << 20

// Config says which NATS the broker uses and how.
type Config struct {
	URL      string // "" runs the embedded server; otherwise the external server or cluster URL(s), comma separated
	Listen   string // embedded: client listener "host:port" for plugins and tools (port 0 picks one); clients need credentials from Creds; "" = in-process only
	StoreDir string // embedded: JetStream file store directory, created if missing
	KeysDir  string // embedded: where the operator and account nkeys are kept (dir 0700, files 0600), created on first start and reused; default StoreDir/keys
	Sync     string // embedded: SyncAlways (default) or SyncFast
	Creds    string // external: NATS credentials file
	Replicas int    // replicas of the streams EnsureStream creates; default 1
	Name     string // connection name shown by the server; default "osprey"
}

// Broker is a connection to NATS with JetStream, and, when embedded, the server itself.
type Broker struct {
	cfg       Config
	log       *slog.Logger
	serverLog *slog.Logger   // for the embedded server's own lines
	srv       *server.Server // nil when external
	auth      *authority     // nil when external
	nc        *nats.Conn
	js        jetstream.JetStream
	url       string // ClientURL
	closed    chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start runs the embedded server (when cfg.URL is empty) or connects to cfg.URL, and returns
// once JetStream answers. ctx bounds the connection and the JetStream check, not the life of
// the broker: call Close to stop it.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("broker: replicas %d: must be 1 or more", cfg.Replicas)
	}
	if cfg.URL == "" && cfg.Replicas > 1 {
		return nil, fmt.Errorf("broker: replicas %d: the embedded server is a single node, use 1 or an external cluster", cfg.Replicas)
	}
	if cfg.Name == "" {
		cfg.Name = "osprey"
	}
	switch cfg.Sync {
	case "":
		cfg.Sync = SyncAlways
	case SyncAlways, SyncFast:
	default:
		return nil, fmt.Errorf("broker: sync %q: want %q or %q", cfg.Sync, SyncAlways, SyncFast)
	}
	b := &Broker{
		cfg:       cfg,
		log:       log.With("component", "broker"),
		serverLog: log.With("component", "nats-server"),
		closed:    make(chan struct{}),
	}
	var err error
	if cfg.URL == "" {
		err = b.startEmbedded()
	} else {
		err = b.connectExternal()
	}
	if err != nil {
		b.shutdown()
		return nil, err
	}
	if err := b.checkJetStream(ctx); err != nil {
		b.shutdown()
		return nil, err
	}
	return b, nil
}

func (b *Broker) startEmbedded() error {
	cfg := b.cfg
	if cfg.StoreDir == "" {
		return errors.New("broker: embedded server: store dir not set")
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return fmt.Errorf("broker: embedded server: create store dir: %w", err)
	}
	if cfg.KeysDir == "" {
		// Beside the data: the streams are stored per account, so whoever has the store
		// needs the account key that goes with it.
		cfg.KeysDir = filepath.Join(cfg.StoreDir, "keys")
		b.cfg.KeysDir = cfg.KeysDir
	}
	auth, created, err := newAuthority(cfg.KeysDir)
	if err != nil {
		return err
	}
	if len(created) > 0 {
		b.log.Info("created NATS signing keys", "keys_dir", cfg.KeysDir, "files", created)
	}
	if old := orphanedAccounts(cfg.StoreDir, auth.accPub); len(old) > 0 {
		// The streams of another account are invisible to this one: the engine starts with
		// empty queues, and what was in flight stays on disk, unreachable.
		b.log.Warn("JetStream store holds data of accounts other than the one keys_dir signs for; were the keys replaced?",
			"store_dir", cfg.StoreDir, "keys_dir", cfg.KeysDir, "account", auth.accPub, "other_accounts", old)
	}
	b.auth = auth
	opts := &server.Options{
		ServerName: "osprey",
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: embeddedMaxPayload,
		DontListen: cfg.Listen == "",
	}
	auth.configure(opts)
	switch cfg.Sync {
	case SyncAlways:
		// The same settings the server's config parser makes of `sync_interval: always`.
		opts.SyncAlways = true
		opts.SyncInterval = 2 * time.Minute
	case SyncFast:
		// Zero values: the server default applies.
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			return err
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("broker: embedded server: %w", err)
	}
	sl := &serverLog{log: b.serverLog}
	srv.SetLoggerV2(sl, false, false, false)
	b.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		return fmt.Errorf("broker: embedded server not ready for connections after %s (store dir %s): %w",
			readyTimeout, cfg.StoreDir, errNotReady)
	}
	sl.started.Store(true)
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("broker: embedded server in %s: %w", cfg.StoreDir, ErrNoJetStream)
	}
	if cfg.Listen != "" {
		b.url = listenerURL(srv.Addr())
	}
	if cfg.Sync == SyncFast {
		b.log.Warn("sync fast: JetStream fsyncs only every two minutes; acknowledged messages can be lost on power failure or OS crash",
			"sync", cfg.Sync, "store_dir", cfg.StoreDir)
	}
	b.log.Info("embedded NATS server started", "store_dir", cfg.StoreDir, "sync", cfg.Sync,
		"listen", b.url, "keys_dir", cfg.KeysDir, "account", auth.accPub, "version", server.VERSION)
	nc, err := nats.Connect("", append(b.connOptions(), nats.InProcessServer(srv))...)
	if err != nil {
		return fmt.Errorf("broker: connect in-process: %w", err)
	}
	b.nc = nc
	return nil
}

// errNotReady is wrapped by the readiness error so that it carries a %w cause.
var errNotReady = errors.New("timeout")

// dial opens another connection to the same server, for a component whose traffic should
// not queue behind everyone else's on the shared connection.
func (b *Broker) dial(name string) (*nats.Conn, error) {
	// The broker's ClosedHandler is for its own connection; this one closes with its owner.
	opts := append(b.connOptions(), nats.Name(b.cfg.Name+" "+name), nats.ClosedHandler(nil))
	if b.srv != nil {
		return nats.Connect("", append(opts, nats.InProcessServer(b.srv))...)
	}
	if b.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.Creds))
	}
	return nats.Connect(b.cfg.URL, opts...)
}

func (b *Broker) connectExternal() error {
	opts := b.connOptions()
	if b.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.Creds))
	}
	nc, err := nats.Connect(b.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("broker: connect %s: %w", redactURL(b.cfg.URL), err)
	}
	b.nc = nc
	b.url = b.cfg.URL
	b.log.Info("connected to NATS", "url", redactURL(nc.ConnectedUrlRedacted()),
		"server_version", nc.ConnectedServerVersion(), "replicas", b.cfg.Replicas)
	if b.cfg.Sync == SyncFast {
		b.log.Warn("sync fast has no effect on an external server: durability is the servers' sync_interval and the stream replicas")
	}
	return nil
}

// connOptions are the options of every connection the broker makes.
func (b *Broker) connOptions() []nats.Option {
	opts := []nats.Option{
		nats.Name(b.cfg.Name),
		nats.MaxReconnects(-1),
		// No reconnect buffer: a publish while disconnected fails at once instead of waiting
		// in client memory, so a Commit never reports an outcome the server has not seen.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
	}
	if b.auth != nil {
		opts = append(opts, b.auth.connOption())
	}
	return opts
}

// checkJetStream makes one JetStream API round trip, so that Start fails with a clear error
// against a server without JetStream instead of at the first publish.
func (b *Broker) checkJetStream(ctx context.Context) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("broker: jetstream: %w", err)
	}
	b.js = js
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		where := "embedded server"
		if b.srv == nil {
			where = redactURL(b.cfg.URL)
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("broker: %s: enable JetStream in the server configuration (jetstream { store_dir: ..., sync_interval: always }) or for this account: %w: %w",
				where, ErrNoJetStream, err)
		}
		return fmt.Errorf("broker: %s: jetstream account info: %w", where, err)
	}
	return nil
}

// Conn is the broker's connection. Do not close it; Close the broker.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// JetStream is a JetStream context on Conn.
func (b *Broker) JetStream() jetstream.JetStream { return b.js }

// ClientURL is the URL plugins and tools connect to: the embedded listener, or the external
// URL as configured (with any credentials it carries: do not log it). It is "" for an
// embedded server without a listener.
func (b *Broker) ClientURL() string { return b.url }

// Embedded reports whether the broker runs its own server.
func (b *Broker) Embedded() bool { return b.srv != nil }

// Ping checks that JetStream answers, for readiness probes.
func (b *Broker) Ping(ctx context.Context) error {
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("broker: ping: %w", err)
	}
	return nil
}

// Close drains the connection, then shuts the embedded server down and waits for it. It is
// safe to call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown() })
	return b.closeErr
}

func (b *Broker) shutdown() error {
	var errs []error
	if b.nc != nil && !b.nc.IsClosed() {
		err := b.nc.Drain()
		switch {
		case err == nil, errors.Is(err, nats.ErrConnectionClosed):
		case errors.Is(err, nats.ErrConnectionReconnecting):
			// Nothing can be drained while disconnected; Drain closed the connection.
		default:
			errs = append(errs, fmt.Errorf("broker: drain: %w", err))
			b.nc.Close()
		}
		// Drain is asynchronous; the closed handler tells when it is done. The drain timeout
		// of the connection (30s by default) bounds this wait.
		<-b.closed
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return errors.Join(errs...)
}

// EnsureStream creates the stream, or updates it to cfg when it exists. It sets file storage
// and, when cfg.Replicas is 0, the broker's replica count. It refuses the asynchronous persist
// mode unless the broker runs in fast mode, since that mode acknowledges before the fsync.
func (b *Broker) EnsureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if cfg.PersistMode == jetstream.AsyncPersistMode && b.cfg.Sync != SyncFast {
		return nil, fmt.Errorf("broker: ensure stream %s: persist mode async acknowledges before data is on disk; use sync %q to allow it",
			cfg.Name, SyncFast)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = b.cfg.Replicas
	}
	cfg.Storage = jetstream.FileStorage
	s, err := b.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("broker: ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// splitListen turns "host:port" into nats-server options; port 0 becomes a random port.
func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("broker: listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("broker: listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// listenerURL is a URL a local client can dial for the listener at addr.
func listenerURL(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "nats://" + addr.String()
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(ta.Port))
}
