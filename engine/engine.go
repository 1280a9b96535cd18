package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/config"
	"github.com/osprey-health/osprey/engine/store"
)

// Options are what an Engine runs on. Registry, Broker and Store are required.
type Options struct {
	Registry *Registry
	Broker   *broker.Broker
	Store    store.Store
	Logger   *slog.Logger
	Metrics  *Metrics
	DataDir  string
	// Load reads the configuration again for Reload (SIGHUP, POST /api/v1/reload).
	Load func(ctx context.Context) (*config.Config, error)
	// Retention applies to channels that set none; zero keeps history forever.
	Retention time.Duration
	// Applied, when set, is called after each configuration Apply took in full (at start and
	// on every reload), for what lives beside the engine: serve writes the NATS credentials
	// of newly configured plugins.
	Applied func(cfg *config.Config)
}

// Engine runs channels. Apply starts or changes them; Shutdown stops them all.
type Engine struct {
	opts Options
	log  *slog.Logger
	m    *Metrics

	mu       sync.Mutex // guards channels and serialises Apply
	channels map[string]*channel

	stopRetention context.CancelFunc
	retentionDone chan struct{}

	ai        *dispatcher // the plugin layer (dispatch.go)
	pseudoKey []byte      // keys the patient pseudonyms in jobs
}

// New returns an engine with no channels. It starts the background retention sweeper.
func New(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	e := &Engine{opts: opts, log: opts.Logger, m: opts.Metrics, channels: map[string]*channel{}}
	e.ai = newDispatcher(e)
	key, err := loadPseudoKey(opts.DataDir)
	if err != nil {
		// Jobs still carry no identifiers; only their pseudonyms change at the next start.
		e.log.Error("pseudonymisation key: using one for this process only", "err", err)
		key, _ = loadPseudoKey("")
	}
	e.pseudoKey = key
	ctx, cancel := context.WithCancel(context.Background())
	e.stopRetention, e.retentionDone = cancel, make(chan struct{})
	go e.retentionLoop(ctx)
	return e
}

// Metrics returns the engine's collectors, for /metrics.
func (e *Engine) Metrics() *Metrics { return e.m }

// Apply makes the running channels match cfg. Every new or changed channel is built (and its
// components provisioned) before any running channel is touched; if one fails, nothing
// changes and the error says why. Then changed and removed channels are drained and stopped,
// and new ones started. Unchanged channels keep running untouched. Messages in flight are
// never dropped: they wait in JetStream for the new channel.
func (e *Engine) Apply(ctx context.Context, cfg *config.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()

	want := map[string]config.Channel{}
	for _, c := range cfg.Channels {
		if c.Enabled {
			want[c.Name] = c
		}
	}
	built := map[string]*channel{}
	cleanup := func() {
		for _, ch := range built {
			ch.closeComponents(ctx)
		}
	}
	for name, c := range want {
		if old, ok := e.channels[name]; ok && old.hash == channelHash(c) {
			continue
		}
		ch, err := e.buildChannel(ctx, c)
		if err != nil {
			cleanup()
			return fmt.Errorf("channel %s (%s): %w", name, c.Pos, err)
		}
		built[name] = ch
	}
	// Plugin streams and consumers before any channel starts, so the first routed study has
	// a queue to go to.
	if err := e.ai.sync(ctx, cfg); err != nil {
		cleanup()
		return fmt.Errorf("plugins: %w", err)
	}
	// Stop what changed or went away first, so a changed channel's listener frees its port.
	for name, old := range e.channels {
		if _, keep := want[name]; keep && built[name] == nil {
			continue
		}
		old.stop(ctx)
		delete(e.channels, name)
	}
	var startErr error
	for name, ch := range built {
		if err := ch.start(ctx); err != nil {
			startErr = errors.Join(startErr, fmt.Errorf("channel %s: %w", name, err))
		}
		e.channels[name] = ch
	}
	if startErr == nil && e.opts.Applied != nil {
		e.opts.Applied(cfg)
	}
	return startErr
}

// Reload reads the configuration with Options.Load and applies it. A configuration that does
// not load is refused with a *ConfigError and the running channels stay as they are.
func (e *Engine) Reload(ctx context.Context) error {
	if e.opts.Load == nil {
		return fmt.Errorf("%w: this engine was started without a configuration source", ErrBadRequest)
	}
	cfg, err := e.opts.Load(ctx)
	if err != nil {
		return err
	}
	if err := e.Apply(ctx, cfg); err != nil {
		return err
	}
	e.log.Info("configuration reloaded", "channels", len(cfg.Channels))
	return nil
}

// Shutdown stops every channel: sources stop accepting, work in progress finishes or is
// handed back to JetStream for the next start.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.stopRetention()
	<-e.retentionDone
	defer e.ai.stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	var wg sync.WaitGroup
	for name, ch := range e.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch.stop(ctx)
		}()
		delete(e.channels, name)
	}
	wg.Wait()
	return nil
}

// Channels reports every running channel, sorted by name.
func (e *Engine) Channels() []ChannelStatus {
	e.mu.Lock()
	chs := make([]*channel, 0, len(e.channels))
	for _, ch := range e.channels {
		chs = append(chs, ch)
	}
	e.mu.Unlock()
	out := make([]ChannelStatus, 0, len(chs))
	for _, ch := range chs {
		out = append(out, ch.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Engine) channel(name string) (*channel, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[name]
	if !ok {
		return nil, fmt.Errorf("channel %q: %w", name, ErrUnknownChannel)
	}
	return ch, nil
}

// Control starts, stops or pauses a channel. Pause keeps the source accepting (messages
// queue durably) and holds deliveries; stop closes the source too.
func (e *Engine) Control(ctx context.Context, name, action string) error {
	ch, err := e.channel(name)
	if err != nil {
		return err
	}
	switch action {
	case "start":
		return ch.resume(ctx)
	case "pause":
		ch.pause()
		return nil
	case "stop":
		ch.halt(ctx)
		return nil
	}
	return fmt.Errorf("action %q: %w (want start, stop or pause)", action, ErrBadRequest)
}

// Reprocess sends a stored message through its channel again as a new message that records
// the original's id. The original's history is left as it is.
func (e *Engine) Reprocess(ctx context.Context, id string) (string, error) {
	d, err := e.opts.Store.Get(ctx, id)
	if err != nil {
		return "", fmt.Errorf("reprocess %s: %w", id, err)
	}
	ch, err := e.channel(d.Message.Channel)
	if err != nil {
		return "", fmt.Errorf("reprocess %s: %w", id, err)
	}
	m := &Message{Channel: ch.name, ContentType: d.Message.ContentType, Body: d.Message.Raw,
		ReceivedAt: time.Now().UTC(), Meta: d.Message.Source}
	rec, err := ch.ingest(ctx, m, id)
	if err != nil {
		return "", fmt.Errorf("reprocess %s: %w", id, err)
	}
	return rec.ID, nil
}

// Requeue puts a dead-lettered message back on its destination's queue, with the payload it
// had. An empty destination requeues every destination that dead-lettered it.
func (e *Engine) Requeue(ctx context.Context, id, destination string) error {
	d, err := e.opts.Store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("requeue %s: %w", id, err)
	}
	ch, err := e.channel(d.Message.Channel)
	if err != nil {
		return fmt.Errorf("requeue %s: %w", id, err)
	}
	n := 0
	for _, dl := range d.Deliveries {
		if dl.Status != store.DeliveryDeadLetter || (destination != "" && dl.Destination != destination) {
			continue
		}
		if err := ch.requeue(ctx, d.Message, dl.Destination); err != nil {
			return fmt.Errorf("requeue %s to %s: %w", id, dl.Destination, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("requeue %s: %w: no dead-lettered delivery%s", id, ErrBadRequest, forDest(destination))
	}
	return nil
}

func forDest(d string) string {
	if d == "" {
		return ""
	}
	return " for destination " + d
}

// Ready reports whether NATS and the store answer.
func (e *Engine) Ready(ctx context.Context) error {
	if err := e.opts.Broker.Ping(ctx); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	if err := e.opts.Store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// retentionLoop prunes history older than each channel's retention, hourly, in small
// batches so ingest never waits on it, and refreshes the queue depth gauges.
func (e *Engine) retentionLoop(ctx context.Context) {
	defer close(e.retentionDone)
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	// Queue depths are read from JetStream on a timer so /metrics shows them without a
	// scrape having to wait on NATS.
	gauges := time.NewTicker(10 * time.Second)
	defer gauges.Stop()
	e.pruneOnce(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			e.pruneOnce(ctx)
		case <-gauges.C:
			e.Channels()
		}
	}
}

func (e *Engine) pruneOnce(ctx context.Context) {
	e.mu.Lock()
	keep := map[string]time.Duration{}
	for name, ch := range e.channels {
		r := ch.cfg.Retention
		if r == 0 {
			r = e.opts.Retention
		}
		if r > 0 {
			keep[name] = r
		}
	}
	e.mu.Unlock()
	for name, r := range keep {
		n, err := e.opts.Store.Prune(ctx, name, time.Now().Add(-r), 500)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("retention prune failed", "channel", name, "err", err)
			continue
		}
		if n > 0 {
			e.log.Info("retention pruned messages", "channel", name, "count", n, "older_than", r.String())
		}
	}
}
