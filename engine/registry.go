package engine

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/osprey-health/osprey/engine/spec"
	"github.com/osprey-health/osprey/mappings"
)

// SourceConstructor builds a source from its parsed config. It must not start anything:
// listeners open in Run, so `osprey validate` can construct every component safely.
type SourceConstructor func(conf *spec.Parsed, res Resources) (Source, error)

// DestinationConstructor builds a destination from its parsed config, without side effects.
type DestinationConstructor func(conf *spec.Parsed, res Resources) (Destination, error)

// Mapping turns the reconciled AI analysis of a study into the message one destination
// sends (mappings/oru, mappings/fhir, mappings/sr). It is pure: the same analysis gives the
// same bytes, which is what makes a resend the same message for the receiver.
type Mapping interface {
	Map(a *mappings.Analysis) (body []byte, contentType string, err error)
}

// ErrNothingToSend is wrapped by a mapping that has nothing for its destination in this
// analysis (a withdrawn result the PACS has no SR for): the delivery is recorded as done,
// with the reason, rather than failed.
var ErrNothingToSend = errors.New("nothing to send")

// MappingConstructor builds a mapping from its parsed config (the site profile).
type MappingConstructor func(conf *spec.Parsed) (Mapping, error)

type mappingEntry struct {
	spec spec.Component
	ctor MappingConstructor
}

type sourceEntry struct {
	spec spec.Component
	ctor SourceConstructor
}

type destinationEntry struct {
	spec spec.Component
	ctor DestinationConstructor
}

// Registry holds the components an engine can build. Connectors register into Global from
// init(), like database/sql drivers; tests build their own with NewRegistry so they see only
// the connectors they import on purpose.
type Registry struct {
	mu           sync.RWMutex
	sources      map[string]sourceEntry
	destinations map[string]destinationEntry
	mappings     map[string]mappingEntry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{sources: map[string]sourceEntry{}, destinations: map[string]destinationEntry{}, mappings: map[string]mappingEntry{}}
}

// Global is the registry that connector packages register into from init().
var Global = NewRegistry()

// RegisterSource adds a source to Global. It panics on a duplicate or malformed name,
// because that can only be a programming error found at start-up.
func RegisterSource(c spec.Component, ctor SourceConstructor) { Global.RegisterSource(c, ctor) }

// RegisterDestination adds a destination to Global; it panics like RegisterSource.
func RegisterDestination(c spec.Component, ctor DestinationConstructor) {
	Global.RegisterDestination(c, ctor)
}

// RegisterSource adds a source to r.
func (r *Registry) RegisterSource(c spec.Component, ctor SourceConstructor) {
	c.Kind = spec.KindSource
	r.mu.Lock()
	defer r.mu.Unlock()
	mustBeNew(c, r.sources[c.Name].ctor != nil, ctor == nil)
	r.sources[c.Name] = sourceEntry{c, ctor}
}

// RegisterDestination adds a destination to r.
func (r *Registry) RegisterDestination(c spec.Component, ctor DestinationConstructor) {
	c.Kind = spec.KindDestination
	r.mu.Lock()
	defer r.mu.Unlock()
	mustBeNew(c, r.destinations[c.Name].ctor != nil, ctor == nil)
	r.destinations[c.Name] = destinationEntry{c, ctor}
}

// RegisterMapping adds a mapping to Global; it panics like RegisterSource.
func RegisterMapping(c spec.Component, ctor MappingConstructor) { Global.RegisterMapping(c, ctor) }

// RegisterMapping adds a mapping to r.
func (r *Registry) RegisterMapping(c spec.Component, ctor MappingConstructor) {
	c.Kind = spec.KindMapping
	r.mu.Lock()
	defer r.mu.Unlock()
	mustBeNew(c, r.mappings[c.Name].ctor != nil, ctor == nil)
	r.mappings[c.Name] = mappingEntry{c, ctor}
}

// MappingSpec returns the declaration of a registered mapping.
func (r *Registry) MappingSpec(name string) (spec.Component, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.mappings[name]
	return e.spec, ok
}

// MappingNames lists registered mappings, sorted.
func (r *Registry) MappingNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.mappings)
}

// CheckMapping builds the named mapping and discards it: config.Load calls it so that a bad
// site profile is a lint at its position, not a failure at start.
func (r *Registry) CheckMapping(name string, conf *spec.Parsed) error {
	_, err := r.NewMapping(name, conf)
	return err
}

// NewMapping builds the named mapping.
func (r *Registry) NewMapping(name string, conf *spec.Parsed) (Mapping, error) {
	r.mu.RLock()
	e, ok := r.mappings[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown mapping %q (known: %v)", name, r.MappingNames())
	}
	return e.ctor(conf)
}

func mustBeNew(c spec.Component, exists, nilCtor bool) {
	switch {
	case c.Name == "":
		panic("engine: register component with empty name")
	case nilCtor:
		panic("engine: register " + c.ID() + " with nil constructor")
	case exists:
		panic("engine: component " + c.ID() + " registered twice")
	}
}

// SourceSpec returns the declaration of a registered source.
func (r *Registry) SourceSpec(name string) (spec.Component, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.sources[name]
	return e.spec, ok
}

// DestinationSpec returns the declaration of a registered destination.
func (r *Registry) DestinationSpec(name string) (spec.Component, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.destinations[name]
	return e.spec, ok
}

// NewSource builds the named source.
func (r *Registry) NewSource(name string, conf *spec.Parsed, res Resources) (Source, error) {
	r.mu.RLock()
	e, ok := r.sources[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown source %q (known: %v)", name, r.SourceNames())
	}
	return e.ctor(conf, res)
}

// NewDestination builds the named destination.
func (r *Registry) NewDestination(name string, conf *spec.Parsed, res Resources) (Destination, error) {
	r.mu.RLock()
	e, ok := r.destinations[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown destination %q (known: %v)", name, r.DestinationNames())
	}
	return e.ctor(conf, res)
}

// SourceNames lists registered sources, sorted.
func (r *Registry) SourceNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.sources)
}

// DestinationNames lists registered destinations, sorted.
func (r *Registry) DestinationNames() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return sortedKeys(r.destinations)
}

// Components lists every registered declaration (sources, destinations, mappings), for docs
// and schema.
func (r *Registry) Components() []spec.Component {
	var out []spec.Component
	for _, n := range r.SourceNames() {
		c, _ := r.SourceSpec(n)
		out = append(out, c)
	}
	for _, n := range r.DestinationNames() {
		c, _ := r.DestinationSpec(n)
		out = append(out, c)
	}
	for _, n := range r.MappingNames() {
		c, _ := r.MappingSpec(n)
		out = append(out, c)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
