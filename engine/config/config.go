// Package config loads Osprey's configuration: one YAML file or a folder of them, with
// ${ENV} and ${file:} substitution, checked against the declarations of the server, the
// channels and every registered component. Loading reports every problem at once as
// positioned lints (file:line:col), compiles every expression and builds every transform
// step, so `osprey validate` and a reload catch in advance what would fail at run time.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

// Config is a loaded configuration.
type Config struct {
	Server   Server
	Channels []Channel
	Files    []string // the files read, in order
}

// Server holds the process-wide settings, defaults applied.
type Server struct {
	DataDir   string
	Admin     Admin
	NATS      NATS
	Store     Store
	Retention time.Duration // default message history retention
	Procs     int           // GOMAXPROCS for serve; 0 = twice the CPUs
	Log       Log
	Pos       string // "file:line:col" of the server section, "" when the configuration has none

	hash string
}

// Admin is the admin HTTP listener.
type Admin struct {
	Listen string
	Tokens []Token
	TLS    TLS
}

// Token is one bearer token for the admin API.
type Token struct {
	Name  string
	Token string // secret
	Role  string // RoleAdmin or RoleRead
}

// String keeps the secret out of logs and %v.
func (t Token) String() string { return fmt.Sprintf("{%s %s ***}", t.Name, t.Role) }

// TLS names a certificate and key; both empty means no TLS.
type TLS struct {
	CertFile, KeyFile string
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// NATS configures the backbone.
type NATS struct {
	URL            string // empty: embedded server
	Listen         string // embedded server's client listener; empty: in-process only
	Sync           string // SyncAlways or SyncFast
	Creds          string
	StreamReplicas int
}

// Embedded reports whether Osprey runs its own NATS server.
func (n NATS) Embedded() bool { return n.URL == "" }

// Store configures the message store.
type Store struct {
	SQLite   string // path, resolved to <data_dir>/osprey.db when not set
	Postgres string // DSN (secret); when set, PostgreSQL is used
}

// String keeps the DSN, which may hold a password, out of logs.
func (s Store) String() string {
	if s.Postgres != "" {
		return "{postgres ***}"
	}
	return "{sqlite " + s.SQLite + "}"
}

// Log configures process logs.
type Log struct {
	Level  string // debug, info, warn, error
	Format string // json or text
}

// Channel is one channel, defaults applied.
type Channel struct {
	Name         string
	Enabled      bool
	Source       Component
	Filter       string // expression; "" when none
	FilterPos    string
	Transform    []Step
	Destinations []Destination
	Ordered      bool
	OrderedBy    string // expression; "" when none
	OrderedByPos string
	DedupeWindow time.Duration
	JoinWait     time.Duration // join.wait: how long a study waits for its order; 0 does not wait
	Retention    time.Duration // the channel's own, or server.retention
	Pos          string        // "file:line:col" of the channel's item
	File         string        // the file it came from
	Conf         *spec.Parsed  // the whole parsed item

	// The plugin layer (plugins.go): settings, routing rules, result rules.
	Plugins     []Plugin
	Routes      []Route
	ResultRules []ResultRule
	PluginToken string // secret: the token jobs carry when the source mints no scoped ones

	// Compiled forms, ready to use: Load compiled them to check them.
	Match    *rules.Filter // nil when there is no filter
	OrderKey *rules.Key    // nil when there is no ordered_by

	hash string
}

// Component is a source or destination connector named in a channel.
type Component struct {
	Name string // "mllp"
	Conf *spec.Parsed
	Pos  string // position of the connector's key
}

// Step is one transform step.
type Step struct {
	Name string // "set"
	Conf *spec.Parsed
	Pos  string
	Impl rules.Step // built by Load; not started (steps have no lifecycle)
}

// Destination is one destination of a channel.
type Destination struct {
	Name string // the destination's own name, unique within the channel
	Component
	Retry     Retry
	OnReject  string // OnRejectRetry or OnRejectDeadLetter
	Filter    string
	FilterPos string
	Match     *rules.Filter // nil when there is no filter
	Conf      *spec.Parsed  // the whole item, common fields included
	// Mapping names the mapping that turns analyses into this destination's messages; ""
	// sends analyses as JSON.
	Mapping Component
}

// Retry is a destination's retry policy.
type Retry struct {
	MaxAttempts    int // 0: no limit
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// Backoff returns the wait before attempt n+1 after n failed attempts (n >= 1).
func (r Retry) Backoff(n int) time.Duration {
	d := float64(r.InitialBackoff)
	for i := 1; i < n && d < float64(r.MaxBackoff); i++ {
		d *= r.Multiplier
	}
	return min(time.Duration(d), r.MaxBackoff)
}

// Channel returns the channel with the given name, or nil.
func (c *Config) Channel(name string) *Channel {
	for i := range c.Channels {
		if c.Channels[i].Name == name {
			return &c.Channels[i]
		}
	}
	return nil
}

// ErrInvalid is wrapped by LoadError's result when the configuration has error lints.
var ErrInvalid = errors.New("invalid configuration")

// Load reads a configuration: a YAML file, or a folder whose *.yaml and *.yml files are
// read in name order. It returns every lint found, sorted by position; the Config is nil
// when any lint is an error, so a caller cannot run a configuration that failed.
func Load(path string, reg Lookup) (*Config, []spec.Lint) {
	files, lint := list(path)
	if lint != nil {
		return nil, []spec.Lint{*lint}
	}
	srcs := make([]File, 0, len(files))
	var lints []spec.Lint
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			lints = append(lints, fileLint(f, "cannot read: %v", err))
			continue
		}
		srcs = append(srcs, File{Name: f, Data: b})
	}
	c, more := LoadFiles(srcs, reg)
	lints = append(lints, more...)
	spec.SortLints(lints)
	if spec.HasErrors(lints) {
		return nil, lints
	}
	return c, lints
}

// LoadError is Load with the lints as one error (wrapping ErrInvalid) and the warnings
// returned apart, for callers that only need to know whether it worked.
func LoadError(path string, reg Lookup) (*Config, []spec.Lint, error) {
	c, lints := Load(path, reg)
	if err := spec.LintsError(lints); err != nil {
		return nil, lints, fmt.Errorf("%w:\n%w", ErrInvalid, err)
	}
	return c, lints, nil
}

// File is one configuration file's content, for LoadFiles.
type File struct {
	Name string // as shown in lints; relative ${file:} paths are relative to its folder
	Data []byte
}

// LoadFiles is Load for contents already read (a test, a configuration posted to the API).
func LoadFiles(files []File, reg Lookup) (*Config, []spec.Lint) {
	ec := newExprCache()
	l := &loader{reg: reg, root: fileSpec(reg, ec), exprs: ec}
	for _, f := range files {
		l.file(f)
	}
	c := l.finish()
	spec.SortLints(l.lints)
	if spec.HasErrors(l.lints) {
		return nil, l.lints
	}
	return c, l.lints
}

// list returns the files a path names.
func list(path string) ([]string, *spec.Lint) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, ptr(fileLint(path, "cannot read configuration: %v", err))
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, ptr(fileLint(path, "cannot read configuration folder: %v", err))
	}
	var files []string
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if (ext != ".yaml" && ext != ".yml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		// Stat follows symlinks: a Kubernetes ConfigMap mounts each file as one.
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		return nil, ptr(fileLint(path, "no *.yaml or *.yml files in the folder"))
	}
	sort.Strings(files)
	return files, nil
}

func ptr[T any](v T) *T { return &v }

func fileLint(file, format string, args ...any) spec.Lint {
	return spec.Lint{File: file, Level: spec.LevelError, Type: spec.LintFile, Msg: fmt.Sprintf(format, args...)}
}

// loader accumulates the files of one configuration.
type loader struct {
	reg   Lookup
	root  []spec.Field
	exprs *exprCache
	lints []spec.Lint
	cfg   Config

	server       *spec.Parsed
	serverKey    string            // position of the first `server:` key
	channelNames map[string]string // name -> position of its first definition
	ownRetention []bool            // per channel: retention set on the channel itself
}

func (l *loader) add(lints ...spec.Lint) { l.lints = append(l.lints, lints...) }

func (l *loader) errorAt(p *spec.Parsed, field string, typ, format string, args ...any) {
	file, line, col := p.Position(field)
	l.add(spec.Lint{File: file, Line: line, Col: col, Level: spec.LevelError, Type: typ, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) warnAt(p *spec.Parsed, field string, typ, format string, args ...any) {
	file, line, col := p.Position(field)
	l.add(spec.Lint{File: file, Line: line, Col: col, Level: spec.LevelWarning, Type: typ, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) file(f File) {
	l.cfg.Files = append(l.cfg.Files, f.Name)
	dec := yaml.NewDecoder(strings.NewReader(string(f.Data)))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			l.add(spec.YAMLError(f.Name, err))
			return
		}
		l.document(f, &doc)
	}
}

func (l *loader) document(f File, doc *yaml.Node) {
	sub := newSubstituter(f.Name)
	sub.walk(doc)
	l.add(sub.lints...)
	p, lints := spec.ParseNodeWith(doc, l.root, spec.Options{
		File:        f.Name,
		Source:      f.Data,
		Substituted: func(n *yaml.Node) bool { return sub.changed[n] },
		ErrorPos:    exprErrorPos,
	})
	l.add(lints...)
	if p.Has(fieldServer) {
		if l.server != nil {
			file, line, col := p.KeyPosition(fieldServer)
			l.add(spec.Lint{File: file, Line: line, Col: col, Level: spec.LevelError, Type: spec.LintDuplicate,
				Msg: fmt.Sprintf("server is configured twice (first at %s); keep it in one file", l.serverKey)})
		} else {
			l.server = p.Object(fieldServer)
			file, line, col := p.KeyPosition(fieldServer)
			l.serverKey = fmt.Sprintf("%s:%d:%d", file, line, col)
		}
	}
	seq := p.Node(fieldChannels)
	for i, cp := range p.Objects(fieldChannels) {
		var item *yaml.Node
		if seq != nil && i < len(seq.Content) {
			item = seq.Content[i]
		}
		l.channel(f, cp, item, lints)
	}
}

func (l *loader) channel(f File, cp *spec.Parsed, item *yaml.Node, parseLints []spec.Lint) {
	ch := Channel{
		Name:         cp.String(fieldName),
		Enabled:      cp.Bool(fieldEnabled),
		Filter:       cp.String(fieldFilter),
		FilterPos:    cp.Pos(fieldFilter),
		Ordered:      cp.Bool(fieldOrdered),
		OrderedBy:    cp.String(fieldOrderedBy),
		OrderedByPos: cp.Pos(fieldOrderedBy),
		DedupeWindow: cp.Object(fieldDedupe).Duration(fieldWindow),
		JoinWait:     cp.Object(fieldJoin).Duration(fieldWait),
		Retention:    cp.Duration(fieldRetention),
		Pos:          cp.Pos(""),
		File:         f.Name,
		Conf:         cp,
	}
	if ch.Name != "" {
		if first, dup := l.channelNames[ch.Name]; dup {
			l.errorAt(cp, fieldName, spec.LintDuplicate, "channel %q is defined twice (first at %s)", ch.Name, first)
			for _, other := range l.cfg.Channels {
				if other.Name == ch.Name {
					l.errorAt(other.Conf, fieldName, spec.LintDuplicate, "channel %q is defined again at %s", ch.Name, cp.Pos(fieldName))
					break
				}
			}
		} else {
			if l.channelNames == nil {
				l.channelNames = map[string]string{}
			}
			l.channelNames[ch.Name] = cp.Pos(fieldName)
		}
	}

	src := cp.Object(fieldSource)
	name, conf := src.Choice()
	ch.Source = Component{Name: name, Conf: conf, Pos: src.ChoicePos()}

	if ch.Filter != "" {
		ch.Match, _ = l.exprs.filter(ch.Filter) // compiled, and any error linted, by the parse
	}
	if ch.OrderedBy != "" {
		ch.OrderKey, _ = l.exprs.key(ch.OrderedBy)
	}
	if ch.Ordered && cp.Has(fieldOrderedBy) {
		l.errorAt(cp, fieldOrderedBy, spec.LintLint,
			"ordered_by and ordered: true are mutually exclusive: ordered keeps one order for the whole channel, "+
				"ordered_by one order per key; remove one")
	}

	tseq := cp.Node(fieldTransform)
	for i, sp := range cp.Objects(fieldTransform) {
		name, conf := sp.Choice()
		st := Step{Name: name, Conf: conf, Pos: sp.ChoicePos()}
		if name != "" && tseq != nil && i < len(tseq.Content) && !hasErrorsIn(parseLints, f.Name, tseq.Content[i]) {
			impl, err := rules.NewStep(name, conf, filepath.Dir(f.Name))
			if err != nil {
				file, line, col := sp.Position("")
				if conf != nil {
					file, line, col = conf.Position("")
				}
				l.add(spec.Lint{File: file, Line: line, Col: col, Level: spec.LevelError, Type: spec.LintLint, Msg: err.Error()})
			}
			st.Impl = impl
		}
		ch.Transform = append(ch.Transform, st)
	}
	for i, sp := range cp.Objects(fieldTransform) {
		if st := ch.Transform[i]; st.Impl != nil && rules.IsConverter(st.Impl) && i != len(ch.Transform)-1 {
			l.errorAt(sp, "", spec.LintLint, "transform %s replaces the HL7 message, so it must be the last step (it is step %d of %d)",
				st.Name, i+1, len(ch.Transform))
		}
	}

	destNames := map[string]string{}
	for _, dp := range cp.Objects(fieldDestinations) {
		cname, cconf := dp.Choice()
		rp := dp.Object(fieldRetry)
		d := Destination{
			Name:      dp.String(fieldName),
			Component: Component{Name: cname, Conf: cconf, Pos: dp.ChoicePos()},
			Retry: Retry{
				MaxAttempts:    rp.Int(fieldMaxAttempts),
				InitialBackoff: rp.Duration(fieldInitialBackoff),
				MaxBackoff:     rp.Duration(fieldMaxBackoff),
				Multiplier:     rp.Float(fieldMultiplier),
			},
			OnReject:  dp.String(fieldOnReject),
			Mapping:   mappingOf(dp),
			Filter:    dp.String(fieldFilter),
			FilterPos: dp.Pos(fieldFilter),
			Conf:      dp,
		}
		if d.Filter != "" {
			d.Match, _ = l.exprs.filter(d.Filter)
		}
		if d.Mapping.Name != "" && d.Mapping.Conf != nil {
			if mn := dp.Node(fieldMapping); mn != nil && !hasErrorsIn(parseLints, f.Name, mn) {
				if err := l.reg.CheckMapping(d.Mapping.Name, d.Mapping.Conf); err != nil {
					file, line, col := d.Mapping.Conf.Position("")
					l.add(spec.Lint{File: file, Line: line, Col: col, Level: spec.LevelError, Type: spec.LintLint,
						Msg: fmt.Sprintf("mapping %s: %v", d.Mapping.Name, err)})
				}
			}
		}
		if d.Name != "" {
			if first, dup := destNames[d.Name]; dup {
				l.errorAt(dp, fieldName, spec.LintDuplicate, "destination %q is defined twice in channel %q (first at %s)", d.Name, ch.Name, first)
			} else {
				destNames[d.Name] = dp.Pos(fieldName)
			}
		}
		if d.Retry.InitialBackoff > d.Retry.MaxBackoff {
			l.errorAt(rp, fieldInitialBackoff, spec.LintLint, "initial_backoff %s is longer than max_backoff %s",
				d.Retry.InitialBackoff, d.Retry.MaxBackoff)
		}
		ch.Destinations = append(ch.Destinations, d)
	}
	l.ai(&ch, cp)
	l.ownRetention = append(l.ownRetention, cp.Has(fieldRetention))
	l.cfg.Channels = append(l.cfg.Channels, ch)
}

func mappingOf(dp *spec.Parsed) Component {
	if !dp.Has(fieldMapping) {
		return Component{}
	}
	mp := dp.Object(fieldMapping)
	name, conf := mp.Choice()
	return Component{Name: name, Conf: conf, Pos: mp.ChoicePos()}
}

// hasErrorsIn reports whether an error lint lies within node n's lines, so a component that
// failed its spec is not also built (which would only repeat the error).
func hasErrorsIn(lints []spec.Lint, file string, n *yaml.Node) bool {
	first, last := span(n)
	for _, li := range lints {
		if li.Level != spec.LevelWarning && li.File == file && li.Line >= first && li.Line <= last {
			return true
		}
	}
	return false
}

func span(n *yaml.Node) (first, last int) {
	first, last = n.Line, n.Line
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		last = max(last, n.Line+strings.Count(n.Value, "\n"))
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return first, last
}

// finish builds the server settings and resolves what depends on them.
func (l *loader) finish() *Config {
	sp := l.server
	if sp == nil {
		sp, _ = spec.ParseYAML("", ServerSpec()) // all defaults
	}
	l.cfg.Server = l.buildServer(sp, l.server != nil)
	l.checkPlugins()
	for i := range l.cfg.Channels {
		if !l.ownRetention[i] {
			l.cfg.Channels[i].Retention = l.cfg.Server.Retention
		}
	}
	if len(l.cfg.Channels) == 0 && len(l.cfg.Files) > 0 && !spec.HasErrors(l.lints) {
		l.add(spec.Lint{File: l.cfg.Files[0], Line: 1, Col: 1, Level: spec.LevelWarning, Type: spec.LintMissing,
			Msg: "no channels are configured"})
	}
	c := l.cfg
	return &c
}

func (l *loader) buildServer(sp *spec.Parsed, given bool) Server {
	ap, np, stp, lp := sp.Object(fieldAdmin), sp.Object(fieldNATS), sp.Object(fieldStore), sp.Object(fieldLog)
	tp := ap.Object(fieldTLS)
	s := Server{
		DataDir: sp.String(fieldDataDir),
		Admin: Admin{
			Listen: ap.String(fieldListen),
			TLS:    TLS{CertFile: tp.String(fieldCertFile), KeyFile: tp.String(fieldKeyFile)},
		},
		NATS: NATS{
			URL:            np.String(fieldURL),
			Listen:         np.String(fieldListen),
			Sync:           np.String(fieldSync),
			Creds:          np.String(fieldCreds),
			StreamReplicas: np.Int(fieldReplicas),
		},
		Store:     Store{SQLite: stp.String(fieldSQLite), Postgres: stp.String(fieldPostgres)},
		Retention: sp.Duration(fieldRetention),
		Procs:     sp.Int(fieldProcs),
		Log:       Log{Level: lp.String(fieldLevel), Format: lp.String(fieldFormat)},
	}
	if given {
		s.Pos = sp.Pos("")
	}
	if s.Store.SQLite == "" {
		s.Store.SQLite = filepath.Join(s.DataDir, "osprey.db")
	}

	if (s.Admin.TLS.CertFile == "") != (s.Admin.TLS.KeyFile == "") {
		l.errorAt(tp, "", spec.LintLint, "tls: set both cert_file and key_file, or neither")
	}
	names := map[string]string{}
	var values []string
	for _, tk := range ap.Objects(fieldTokens) {
		t := Token{Name: tk.String(fieldName), Token: tk.String(fieldToken), Role: tk.String(fieldRole)}
		if first, dup := names[t.Name]; dup && t.Name != "" {
			l.errorAt(tk, fieldName, spec.LintDuplicate, "token name %q is used twice (first at %s)", t.Name, first)
		} else {
			names[t.Name] = tk.Pos(fieldName)
		}
		if t.Token != "" && slices.Contains(values, t.Token) {
			l.errorAt(tk, fieldToken, spec.LintDuplicate, "token %q has the same value as another token; give each holder its own", t.Name)
		}
		values = append(values, t.Token)
		s.Admin.Tokens = append(s.Admin.Tokens, t)
	}

	switch {
	case s.NATS.Embedded() && s.NATS.StreamReplicas > 1:
		l.errorAt(np, fieldReplicas, spec.LintLint, "the embedded NATS server is a single node: stream_replicas must be 1 without nats.url")
	case !s.NATS.Embedded() && s.NATS.Listen != "":
		l.warnAt(np, fieldListen, spec.LintLint, "nats.listen applies to the embedded server only; it is ignored with nats.url")
	}
	if s.NATS.Embedded() && s.NATS.Creds != "" {
		l.warnAt(np, fieldCreds, spec.LintLint, "nats.creds applies to an external cluster only; it is ignored without nats.url")
	}
	if s.NATS.Sync == SyncFast {
		l.warnAt(np, fieldSync, spec.LintLint, "nats.sync is fast: a crash or power failure can lose messages already acknowledged to senders")
	}
	if s.Store.Postgres != "" && stp.Has(fieldSQLite) {
		l.warnAt(stp, fieldSQLite, spec.LintLint, "store.sqlite is ignored: store.postgres is set")
	}
	return s
}
