package engine

import (
	"errors"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/spec"
)

// ChannelState is what a channel is doing.
type ChannelState string

const (
	StateRunning ChannelState = "running" // accepting and delivering
	StatePaused  ChannelState = "paused"  // accepting and queueing, not delivering
	StateStopped ChannelState = "stopped" // source closed; queued work stays queued
	StateFailed  ChannelState = "failed"  // the source could not run (e.g. address in use); see LastError
)

// Counters are cumulative since the process started.
type Counters struct {
	Received int64 `json:"received"`
	Rejected int64 `json:"rejected"`
	Filtered int64 `json:"filtered"`
	Sent     int64 `json:"sent"`
	Errored  int64 `json:"errored"`
	Queued   int64 `json:"queued"` // waiting now (inbound plus per destination), not cumulative
}

// DestinationStatus is one destination of a channel.
type DestinationStatus struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Sent        int64     `json:"sent"`
	Errored     int64     `json:"errored"`
	DeadLetters int64     `json:"dead_letters"`
	Queued      int64     `json:"queued"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ChannelStatus is the admin view of one channel.
type ChannelStatus struct {
	Name         string              `json:"name"`
	State        ChannelState        `json:"state"`
	Source       string              `json:"source"`
	Counters     Counters            `json:"counters"`
	LastError    string              `json:"last_error,omitempty"`
	LastErrorAt  time.Time           `json:"last_error_at,omitzero"`
	Destinations []DestinationStatus `json:"destinations"`
}

// Errors the admin API maps to HTTP statuses.
var (
	ErrUnknownChannel = errors.New("unknown channel")
	ErrNotFound       = errors.New("not found")
	ErrBadRequest     = errors.New("bad request")
)

// ConfigError is a configuration that did not pass validation; the running one is untouched.
type ConfigError struct {
	Lints []spec.Lint
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, l := range e.Lints {
		b.WriteString("\n  ")
		b.WriteString(l.String())
	}
	return b.String()
}
