package sdk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// Plugin describes a plugin to [Run]: who it is, which model it runs, and the function that
// answers one job.
type Plugin struct {
	// Name is the plugin name (see protocol.ValidName): the micro service name and the
	// stem of its streams, subjects and consumer.
	Name string
	// Version is the plugin's semantic version ("1.4.0"): the micro service version, and the
	// header protocol.HeaderPluginVersion of every result.
	Version     string
	Description string
	// Model names the model; Run fills it into results that leave it empty.
	Model protocol.Model
	// Modalities and BodyParts are the DICOM values the plugin is meant for, announced in
	// discovery ("CT"; "HEAD", "BRAIN").
	Modalities, BodyParts []string
	// Concurrency is how many jobs one instance runs at a time; 0 means 1.
	Concurrency int
	// Handle answers one job. ctx ends at the job's deadline or when Run gives up on the job
	// (shutdown past the drain timeout); Handle should return soon after.
	//
	// A returned error makes a failed result: a *protocol.Error chooses the code; an error
	// of NotApplicable (or ErrNotApplicable) makes a not_applicable result; fetch errors of
	// [Client] give fetch_failed, decoding errors of [DecodeImage] invalid_input, anything
	// else internal. A returned result needs only Status (default completed), Findings and
	// Summary: Run fills in the protocol, job id, plugin, model and timings it leaves empty.
	Handle func(ctx context.Context, job *Job) (protocol.Result, error)
}

// check reports what makes p unusable by Run.
func (p Plugin) check() error {
	switch {
	case !protocol.ValidName(p.Name):
		return fmt.Errorf("sdk: plugin name %q: must match ^[a-z0-9][a-z0-9_-]{0,63}$", p.Name)
	case p.Version == "":
		return fmt.Errorf("sdk: plugin %s: a version is required", p.Name)
	case p.Model.Name == "" || p.Model.Version == "":
		return fmt.Errorf("sdk: plugin %s: the model needs a name and a version (completed results carry them)", p.Name)
	case p.Handle == nil:
		return fmt.Errorf("sdk: plugin %s: Handle is nil", p.Name)
	case p.Concurrency < 0:
		return fmt.Errorf("sdk: plugin %s: concurrency %d", p.Name, p.Concurrency)
	}
	return nil
}

// metadata is what the micro service announces (docs/plugins.md, Discovery).
func (p Plugin) metadata() map[string]string {
	return map[string]string{
		protocol.MetaModelName:    p.Model.Name,
		protocol.MetaModelVersion: p.Model.Version,
		protocol.MetaManufacturer: p.Model.Manufacturer,
		protocol.MetaDeviceUID:    p.Model.DeviceUID,
		protocol.MetaModalities:   strings.Join(p.Modalities, ","),
		protocol.MetaBodyParts:    strings.Join(p.BodyParts, ","),
		protocol.MetaProtocol:     protocol.Version,
	}
}

// ErrNotApplicable, returned by a handler, makes a not_applicable result: the study is
// outside what the model is for. [NotApplicable] gives the reason too.
var ErrNotApplicable = errors.New("not applicable")

type notApplicable struct{ reason string }

func (e *notApplicable) Error() string        { return "not applicable: " + e.reason }
func (e *notApplicable) Is(target error) bool { return target == ErrNotApplicable }

// NotApplicable returns an error that makes a not_applicable result whose summary is reason
// ("no axial non-contrast brain series").
func NotApplicable(reason string) error { return &notApplicable{reason: reason} }

var registry = struct {
	sync.RWMutex
	plugins map[string]Plugin
}{plugins: make(map[string]Plugin)}

// Register makes p available under its name to [Lookup], for a runner such as
// `osprey plugin run NAME`. It is meant for init functions and panics when the plugin is
// unusable or its name is already registered.
func Register(p Plugin) {
	if err := p.check(); err != nil {
		panic(err)
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.plugins[p.Name]; dup {
		panic("sdk: Register called twice for plugin " + p.Name)
	}
	registry.plugins[p.Name] = p
}

// Lookup returns the registered plugin called name.
func Lookup(name string) (Plugin, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.plugins[name]
	return p, ok
}

// Names returns the names of the registered plugins, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.plugins))
	for n := range registry.plugins {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
