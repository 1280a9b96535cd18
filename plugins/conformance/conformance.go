package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// JobIDPrefix begins the id of every canned job, so an engine reading the same results
// stream knows the result answers a conformance run, not one of its jobs.
const JobIDPrefix = "check-"

// Defaults of Options.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultDICOMwebListen   = "127.0.0.1:0"
	DefaultDiscoveryTimeout = 5 * time.Second
	DefaultSettle           = time.Second
)

// Options configure a conformance run.
type Options struct {
	// Plugin is the plugin name, as in its micro service and its subjects.
	Plugin string
	// Timeout is how long each job may take: its deadline is this long after it is sent.
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// DICOMwebListen is the host:port the run's own DICOMweb origin listens on; "" means
	// DefaultDICOMwebListen (loopback, a free port).
	DICOMwebListen string
	// PublicURL is the DICOMweb root as the plugin reaches it, when that is not the listener
	// (the plugin runs in a container, say): jobs carry it as dicomweb.base_url.
	PublicURL string
	// DiscoveryTimeout bounds the wait for the first instance to answer $SRV.INFO; 0 means
	// DefaultDiscoveryTimeout.
	DiscoveryTimeout time.Duration
	// Settle is how long the run keeps listening after the last job's answer, to catch a
	// second result or a late heartbeat; 0 means DefaultSettle.
	Settle time.Duration
	// Logger receives the run's progress; nil discards it.
	Logger *slog.Logger
}

// Check is one row of the report.
type Check struct {
	Name   string // what was checked, e.g. "ct-head-bleed: schema"
	Pass   bool
	Detail string // what was seen; on failure, every violation found
}

// Outcome is what the plugin answered to one canned job.
type Outcome struct {
	Case   string // the canned case, e.g. "ct-head-bleed"
	JobID  string
	Result *protocol.Result // the first result decoded, nil when none arrived or it did not decode
}

// Report is the outcome of a run: one row per check, in the order they ran.
type Report struct {
	Plugin   string
	Checks   []Check
	Outcomes []Outcome
}

// Passed reports whether every check passed (and there was at least one).
func (r *Report) Passed() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Check returns the row named name.
func (r *Report) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

func (r *Report) add(name string, pass bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
}

// semverRE is the regular expression semver.org gives for a version (without a leading v).
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
	`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// ValidSemver reports whether v is a semantic version such as "1.4.0" or "2.0.0-rc.1".
func ValidSemver(v string) bool { return semverRE.MatchString(v) }

// Run checks the running plugin opts.Plugin over b's NATS connection and returns the report.
// Faults of the plugin are failed rows of the report; the error is for what stops the run
// itself (a bad option, NATS or the DICOMweb origin failing, ctx ending). When discovery finds
// no instance, or the streams cannot serve the plugin, the report ends there without jobs.
//
// b is the broker of the Osprey installation the plugin is attached to: its connection
// discovers and sends, and its JetStream keeps the canned studies while the run lasts.
func Run(ctx context.Context, b *broker.Broker, opts Options) (*Report, error) {
	if b == nil {
		return nil, errors.New("conformance: no broker")
	}
	if !protocol.ValidName(opts.Plugin) {
		return nil, fmt.Errorf("conformance: plugin name %q: want lower-case letters, digits, '-' and '_' (^[a-z0-9][a-z0-9_-]{0,63}$)", opts.Plugin)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.DICOMwebListen == "" {
		opts.DICOMwebListen = DefaultDICOMwebListen
	}
	if opts.DiscoveryTimeout <= 0 {
		opts.DiscoveryTimeout = DefaultDiscoveryTimeout
	}
	if opts.Settle <= 0 {
		opts.Settle = DefaultSettle
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var id [5]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("conformance: run id: %w", err)
	}
	r := &run{
		b:     b,
		opts:  opts,
		log:   opts.Logger.With("component", "plugin-check", "plugin", opts.Plugin),
		runID: hex.EncodeToString(id[:]),
		rep:   &Report{Plugin: opts.Plugin},
	}
	err := r.run(ctx)
	return r.rep, err
}

// run is the state of one conformance run.
type run struct {
	b     *broker.Broker
	opts  Options
	log   *slog.Logger
	runID string // random, in every job id and bucket name of the run
	rep   *Report

	versions map[string]bool // service versions the instances announced
}

func (r *run) run(ctx context.Context) error {
	r.log.Info("plugin check starting", "run", r.runID)
	if !r.discover(ctx) {
		return ctx.Err()
	}
	if ok, err := r.ensureStreams(ctx); err != nil || !ok {
		return err
	}
	org, err := r.startOrigin(ctx)
	if err != nil {
		return err
	}
	defer org.close()
	cases, err := r.cannedCases(ctx, org)
	if err != nil {
		return err
	}
	return r.runJobs(ctx, org, cases)
}
