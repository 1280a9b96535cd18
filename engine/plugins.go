package engine

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// PluginStatus is what the engine knows of one plugin: its configuration, the instances
// discovery found, and how its jobs went.
type PluginStatus struct {
	Name       string           `json:"name"`
	Configured bool             `json:"configured"` // some running channel lists it
	Channels   []string         `json:"channels,omitempty"`
	Mode       string           `json:"mode,omitempty"`
	MinVersion string           `json:"min_version,omitempty"`
	Versions   []string         `json:"versions"`
	Instances  []PluginInstance `json:"instances"`
	// Jobs counts the plugin's stored jobs by status; InFlight is queued plus running.
	Jobs     map[string]int64 `json:"jobs"`
	InFlight int64            `json:"in_flight"`
	Errors   int64            `json:"errors"` // failed and invalid
	Timeouts int64            `json:"timeouts"`
	// Latency is from a job's publication to its result, over the last results since the
	// engine started.
	Latency LatencySummary `json:"latency"`
}

// PluginInstance is one running instance, as NATS micro discovery describes it.
type PluginInstance struct {
	ID       string            `json:"id"`
	Version  string            `json:"version"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// BelowMinimum is true when the instance's version is older than the channel accepts.
	BelowMinimum bool `json:"below_minimum,omitempty"`
}

// LatencySummary summarises recent job latencies in milliseconds.
type LatencySummary struct {
	Count int     `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

// pluginStats keeps the latest latencies of one plugin in a ring.
type pluginStats struct {
	mu   sync.Mutex
	ring []time.Duration
	next int
	full bool
}

const latencyWindow = 1024

func newPluginStats() *pluginStats { return &pluginStats{ring: make([]time.Duration, latencyWindow)} }

func (s *pluginStats) observe(d time.Duration) {
	s.mu.Lock()
	s.ring[s.next] = d
	s.next = (s.next + 1) % len(s.ring)
	s.full = s.full || s.next == 0
	s.mu.Unlock()
}

func (s *pluginStats) summary() LatencySummary {
	s.mu.Lock()
	n := s.next
	if s.full {
		n = len(s.ring)
	}
	vals := slices.Clone(s.ring[:n])
	s.mu.Unlock()
	if len(vals) == 0 {
		return LatencySummary{}
	}
	slices.Sort(vals)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return vals[min(len(vals)-1, int(q*float64(len(vals))))] }
	return LatencySummary{Count: len(vals), P50MS: ms(at(0.50)), P99MS: ms(at(0.99)), MaxMS: ms(vals[len(vals)-1])}
}

// discoveryWait is how long Plugins collects answers to its discovery request.
const discoveryWait = 500 * time.Millisecond

// Plugins reports every plugin that is configured, has jobs in the store, or answered
// discovery, in name order.
func (e *Engine) Plugins(ctx context.Context) ([]PluginStatus, error) {
	byName := map[string]*PluginStatus{}
	get := func(name string) *PluginStatus {
		p, ok := byName[name]
		if !ok {
			p = &PluginStatus{Name: name, Versions: []string{}, Instances: []PluginInstance{}, Jobs: map[string]int64{}}
			byName[name] = p
		}
		return p
	}
	e.mu.Lock()
	for _, ch := range e.channels {
		for _, pc := range ch.cfg.Plugins {
			p := get(pc.Name)
			p.Configured = true
			p.Channels = append(p.Channels, ch.name)
			p.Mode, p.MinVersion = pc.Mode, pc.MinVersion
		}
	}
	e.mu.Unlock()
	counts, err := e.opts.Store.JobCounts(ctx)
	if err != nil {
		return nil, err
	}
	for name, byStatus := range counts {
		p := get(name)
		for s, n := range byStatus {
			p.Jobs[string(s)] = n
			switch s {
			case store.JobQueued, store.JobRunning:
				p.InFlight += n
			case store.JobFailed, store.JobInvalid:
				p.Errors += n
			case store.JobTimeout:
				p.Timeouts += n
			}
		}
	}
	for _, info := range discover(ctx, e.opts.Broker.Conn()) {
		if !protocol.ValidName(info.Name) {
			continue // some other micro service on the same NATS
		}
		p := get(info.Name)
		in := PluginInstance{ID: info.ID, Version: info.Version, Metadata: info.Metadata}
		in.BelowMinimum = p.MinVersion != "" && compareSemver(info.Version, p.MinVersion) < 0
		p.Instances = append(p.Instances, in)
		if !slices.Contains(p.Versions, info.Version) {
			p.Versions = append(p.Versions, info.Version)
		}
	}
	out := make([]PluginStatus, 0, len(byName))
	for _, p := range byName {
		if r := e.ai.runner(p.Name); r != nil {
			p.Latency = r.stats.summary()
		}
		sort.Strings(p.Channels)
		sort.Strings(p.Versions)
		sort.Slice(p.Instances, func(i, j int) bool { return p.Instances[i].ID < p.Instances[j].ID })
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// discover asks every micro service on the connection for its info and collects the answers
// that arrive within discoveryWait.
func discover(ctx context.Context, nc *nats.Conn) []micro.Info {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SRV.INFO", inbox, nil); err != nil {
		return nil
	}
	deadline := time.Now().Add(discoveryWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var out []micro.Info
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return out
		}
		m, err := sub.NextMsg(wait)
		if err != nil {
			return out
		}
		var info micro.Info
		if json.Unmarshal(m.Data, &info) == nil && info.Name != "" && !strings.HasPrefix(info.Name, "$") {
			out = append(out, info)
		}
	}
}
