package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

// Field names of the configuration file, shared by the declarations and the loader.
const (
	fieldServer   = "server"
	fieldChannels = "channels"

	fieldDataDir   = "data_dir"
	fieldAdmin     = "admin"
	fieldListen    = "listen"
	fieldTokens    = "tokens"
	fieldName      = "name"
	fieldToken     = "token"
	fieldRole      = "role"
	fieldTLS       = "tls"
	fieldCertFile  = "cert_file"
	fieldKeyFile   = "key_file"
	fieldNATS      = "nats"
	fieldURL       = "url"
	fieldSync      = "sync"
	fieldCreds     = "creds"
	fieldReplicas  = "stream_replicas"
	fieldStore     = "store"
	fieldSQLite    = "sqlite"
	fieldPostgres  = "postgres"
	fieldRetention = "retention"
	fieldProcs     = "procs"
	fieldLog       = "log"
	fieldLevel     = "level"
	fieldFormat    = "format"

	fieldEnabled      = "enabled"
	fieldSource       = "source"
	fieldFilter       = "filter"
	fieldTransform    = "transform"
	fieldDestinations = "destinations"
	fieldOrdered      = "ordered"
	fieldOrderedBy    = "ordered_by"
	fieldDedupe       = "dedupe"
	fieldWindow       = "window"
	fieldJoin         = "join"
	fieldWait         = "wait"

	fieldRetry          = "retry"
	fieldMaxAttempts    = "max_attempts"
	fieldInitialBackoff = "initial_backoff"
	fieldMaxBackoff     = "max_backoff"
	fieldMultiplier     = "multiplier"
	fieldOnReject       = "on_reject"
	fieldMapping        = "mapping"
)

// Values of enumerated fields.
const (
	RoleAdmin = "admin" // read and write: reload, reprocess, resend
	RoleRead  = "read"  // dashboards and search only

	SyncAlways = "always" // fsync before every ACK
	SyncFast   = "fast"   // JetStream's periodic flush: faster, loses acknowledged messages on power failure

	OnRejectRetry      = "retry"       // a peer's AE/AR is retried like a transport failure
	OnRejectDeadLetter = "dead_letter" // a peer's AE/AR parks the message for the analyst
)

// Lookup is what the loader needs from a component registry; *engine.Registry satisfies it.
type Lookup interface {
	SourceSpec(name string) (spec.Component, bool)
	DestinationSpec(name string) (spec.Component, bool)
	SourceNames() []string
	DestinationNames() []string
	MappingSpec(name string) (spec.Component, bool)
	MappingNames() []string
	// CheckMapping builds a mapping (mappings are pure, so this is safe at load time) and
	// reports why its profile is unusable, so `osprey validate` catches it.
	CheckMapping(name string, conf *spec.Parsed) error
}

var channelNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ServerSpec declares the `server` section.
func ServerSpec() []spec.Field {
	return []spec.Field{
		spec.NewString(fieldDataDir, "Directory for the embedded NATS JetStream store, the SQLite database and other "+
			"state. Relative paths are relative to the working directory of `osprey serve`.").
			WithDefault("./data"),
		spec.NewObject(fieldAdmin, "The admin HTTP listener: REST API, dashboard, `/metrics`, `/healthz` and `/readyz`.",
			spec.NewString(fieldListen, "Address the admin API listens on, host:port. Keep it on loopback or a management "+
				"network; every `/api` call needs a bearer token.").
				WithDefault("127.0.0.1:8080").WithExamples("127.0.0.1:8080", "0.0.0.0:8443"),
			spec.NewObjects(fieldTokens, "Bearer tokens accepted by `/api`. Without any, the API answers 401 to everything "+
				"but health and metrics.",
				spec.NewString(fieldName, "Who holds the token; appears in the audit log. Unique.").WithExamples("ops"),
				spec.NewString(fieldToken, "The token. Give it with `${ENV_VAR}` or `${file:/path}`, never in clear.").
					AsSecret().WithLint(lintToken).WithExamples("${OSPREY_TOKEN}"),
				spec.NewString(fieldRole, "`admin` may read and change (reload, reprocess, resend); `read` may only read.").
					WithEnum(RoleAdmin, RoleRead).WithDefault(RoleRead),
			).AsOptional(),
			tlsField("the admin listener"),
		),
		spec.NewObject(fieldNATS, "The NATS JetStream backbone: embedded by default, or an external cluster.",
			spec.NewString(fieldURL, "URL of an external NATS cluster, e.g. `nats://nats-1:4222,nats://nats-2:4222`. "+
				"Empty runs an embedded server with its store under `data_dir`.").
				WithDefault("").WithExamples("nats://127.0.0.1:4222"),
			spec.NewString(fieldListen, "Client listener of the embedded server, for plugins and tools, e.g. "+
				"`127.0.0.1:4223`. Empty keeps the embedded server in-process only.").
				WithDefault("").WithExamples("127.0.0.1:4223"),
			spec.NewString(fieldSync, "Durability of the embedded server. `always` fsyncs before every ACK, so an "+
				"acknowledged message survives a power failure. `fast` uses JetStream's periodic flush: much faster, "+
				"but a crash can lose messages already acknowledged to the sender. For an external cluster set "+
				"`sync_interval: always` on the servers, or rely on R3 replication knowingly.").
				WithEnum(SyncAlways, SyncFast).WithDefault(SyncAlways),
			spec.NewString(fieldCreds, "Credentials file for the external cluster (`nats.url`).").
				WithDefault("").WithExamples("/etc/osprey/osprey.creds"),
			spec.NewInt(fieldReplicas, "Replicas of each JetStream stream Osprey creates: 1 for the embedded server, "+
				"3 on a cluster for production.").
				WithDefault(1).WithLint(intRange(1, 5)),
		),
		spec.NewObject(fieldStore, "The message store: searchable history, order context and audit.",
			spec.NewString(fieldSQLite, "Path of the SQLite database. Empty means `<data_dir>/osprey.db`.").
				WithDefault(""),
			spec.NewString(fieldPostgres, "PostgreSQL DSN. When set, PostgreSQL is used instead of SQLite.").
				AsSecret().WithDefault("").WithExamples("${OSPREY_POSTGRES}"),
		),
		spec.NewDuration(fieldRetention, "How long message history is kept; a channel may override it.").
			WithDefault("720h").WithLint(nonNegative),
		spec.NewInt(fieldProcs, "How many threads run Osprey's Go code at once (Go's GOMAXPROCS). 0 means twice the "+
			"CPUs available to the process: much of the work waits in system calls (JetStream's fsync before every "+
			"ACK, the store's writes, the sockets), and with a thread per CPU the runnable work waits for them; on "+
			"two CPUs twice as many took 25-30% more ACKs per second with 32 senders. The `GOMAXPROCS` environment "+
			"variable, when set, wins.").
			WithDefault(0).WithLint(intRange(0, 4096)),
		spec.NewObject(fieldLog, "Process logs (log/slog). Message bodies are never logged.",
			spec.NewString(fieldLevel, "Lowest level written.").
				WithEnum("debug", "info", "warn", "error").WithDefault("info"),
			spec.NewString(fieldFormat, "`json` for log shippers, `text` for a terminal.").
				WithEnum("json", "text").WithDefault("json"),
		),
	}
}

func tlsField(what string) spec.Field {
	return spec.NewObject(fieldTLS, "TLS for "+what+". Set both files to serve HTTPS; leave both empty for plain HTTP.",
		spec.NewString(fieldCertFile, "PEM certificate chain.").WithDefault("").WithExamples("/etc/osprey/tls/cert.pem"),
		spec.NewString(fieldKeyFile, "PEM private key.").WithDefault("").WithExamples("/etc/osprey/tls/key.pem"),
	)
}

// RetrySpec declares a destination's retry policy.
func RetrySpec() []spec.Field {
	return []spec.Field{
		spec.NewInt(fieldMaxAttempts, "Delivery attempts before the message is dead-lettered; 0 retries forever "+
			"(an ordered channel then waits for the peer).").
			WithDefault(10).WithLint(intRange(0, 1<<31-1)),
		spec.NewDuration(fieldInitialBackoff, "Wait before the second attempt.").
			WithDefault("1s").WithLint(positive),
		spec.NewDuration(fieldMaxBackoff, "Longest wait between attempts.").
			WithDefault("5m").WithLint(positive),
		spec.NewFloat(fieldMultiplier, "Factor the wait grows by after each failed attempt.").
			WithDefault(2.0).WithLint(func(v any) error {
			if v.(float64) < 1 {
				return errors.New("must be at least 1")
			}
			return nil
		}),
	}
}

// DestinationSpec declares the fields every destination has besides its connector key.
func DestinationSpec() []spec.Field { return destinationSpec(nil, nil) }

func destinationSpec(ec *exprCache, maps []spec.Component) []spec.Field {
	return []spec.Field{
		spec.NewObject(fieldMapping, "How an AI analysis becomes what this destination sends: exactly one key naming "+
			"a mapping (`oru`, `fhir`, `sr`), with its site profile as the value. Only analyses are mapped (channels "+
			"with `route`); without a mapping a destination gets the analysis as JSON.").
			AsOptional().WithChoices(spec.KindMapping, maps...).
			WithExamples(map[string]any{"oru": map[string]any{"profile": "2.5.1-tq1"}}),
		spec.NewString(fieldName, "Name of the destination, unique within the channel; it names the destination's "+
			"queue and appears in the message history.").
			WithLint(lintName).WithExamples("ris", "ehr-fhir"),
		spec.NewObject(fieldRetry, "How failed deliveries are retried, with exponential backoff.", RetrySpec()...),
		spec.NewString(fieldOnReject, "What to do when the peer receives the message and refuses it (HL7 AE/AR, "+
			"HTTP 4xx): `retry` like a transport failure, or `dead_letter` at once for the analyst.").
			WithEnum(OnRejectRetry, OnRejectDeadLetter).WithDefault(OnRejectRetry),
		spec.NewExpr(fieldFilter, "Deliver to this destination only when the expression is true.").
			AsOptional().WithLint(ec.lintFilter).WithExamples(`msg.Get("MSH-5") == "RIS"`),
	}
}

// ChannelSpec declares one item of `channels`, with the sources, destinations and
// transform steps reg and the rules package know.
func ChannelSpec(reg Lookup) []spec.Field { return channelSpec(reg, nil) }

func channelSpec(reg Lookup, ec *exprCache) []spec.Field {
	var sources, dests []spec.Component
	for _, n := range reg.SourceNames() {
		if c, ok := reg.SourceSpec(n); ok {
			c.Kind = spec.KindSource
			sources = append(sources, c)
		}
	}
	for _, n := range reg.DestinationNames() {
		if c, ok := reg.DestinationSpec(n); ok {
			c.Kind = spec.KindDestination
			dests = append(dests, c)
		}
	}
	var maps []spec.Component
	for _, n := range reg.MappingNames() {
		if c, ok := reg.MappingSpec(n); ok {
			c.Kind = spec.KindMapping
			maps = append(maps, c)
		}
	}
	steps := rules.Steps()
	for i := range steps {
		steps[i].Kind = spec.KindTransform
	}
	return append([]spec.Field{
		spec.NewString(fieldName, "Name of the channel: lowercase letters, digits, `-` and `_`, starting with a letter "+
			"or digit; unique across all files. It names the channel's streams, so renaming a channel starts it afresh.").
			WithLint(lintName).WithExamples("adt-in", "ris-orders"),
		spec.NewBool(fieldEnabled, "A disabled channel is validated but not started.").WithDefault(true),
		spec.NewObject(fieldSource, "Where messages come from: exactly one key naming a source, with that source's "+
			"configuration as its value.").
			WithChoices(spec.KindSource, sources...).WithExamples(map[string]any{"mllp": map[string]any{"address": "0.0.0.0:2575"}}),
		spec.NewExpr(fieldFilter, "Process only messages for which this expression is true; the others are "+
			"acknowledged, recorded as filtered, and go no further.").
			AsOptional().WithLint(ec.lintFilter).WithExamples(`msg.Type == "ADT"`, `msg.Event in ["A01", "A04", "A08"]`),
		spec.NewObjects(fieldTransform, "Steps applied in order to every message that passes the filter. Each item "+
			"has exactly one key naming the step.").
			AsOptional().WithChoices(spec.KindTransform, steps...).
			WithExamples([]any{map[string]any{"set": map[string]any{"path": "PV1-3.1", "value": "ED"}}}),
		spec.NewObjects(fieldDestinations, "Where messages go. Each item has the fields below and exactly one key "+
			"naming a destination connector. Every destination has its own queue, retries and dead letters.",
			destinationSpec(ec, maps)...).
			AsOptional().WithChoices(spec.KindDestination, dests...),
		spec.NewBool(fieldOrdered, "Deliver messages one at a time in the order received, per destination; a "+
			"failing message holds back the ones after it. ADT feeds usually need it.").WithDefault(false),
		spec.NewExpr(fieldOrderedBy, "Keep order only among messages with the same key (for example per patient), "+
			"so one stuck patient does not hold back the others. Mutually exclusive with `ordered: true`.").
			AsOptional().WithLint(ec.lintKey).WithExamples(`msg.Get("PID-3.1")`),
		spec.NewObject(fieldDedupe, "Duplicate detection on MSH-10.",
			spec.NewDuration(fieldWindow, "When above 0, a message with the MSH-10 of one already accepted from the same "+
				"sender within the window is answered AA and recorded as a duplicate, not processed again.").
				WithDefault("0s").WithLint(nonNegative),
		),
		spec.NewObject(fieldJoin, "How studies join their orders (order context from ORM/OMI messages, kept by "+
			"accession number). A study message sees its order as `order` in filters; see docs/study-context.md.",
			spec.NewDuration(fieldWait, "When above 0, a study whose order has not arrived yet is held until the "+
				"order arrives or this long has passed, then processed (with `order.Found` false if it never came). "+
				"At 0 a study is processed at once with whatever order is known.").
				WithDefault("0s").WithLint(nonNegative).WithExamples("10m"),
		),
		spec.NewDuration(fieldRetention, "Message history retention for this channel; defaults to `server.retention`.").
			AsOptional().WithLint(nonNegative),
	}, aiSpec(ec)...)
}

// FileSpec declares one configuration file: the root of the JSON Schema.
func FileSpec(reg Lookup) []spec.Field { return fileSpec(reg, nil) }

func fileSpec(reg Lookup, ec *exprCache) []spec.Field {
	return []spec.Field{
		spec.NewObject(fieldServer, serverDesc, ServerSpec()...).AsOptional(),
		spec.NewObjects(fieldChannels, channelsDesc, channelSpec(reg, ec)...).AsOptional(),
	}
}

const (
	serverDesc   = "Process-wide settings: data directory, admin API, NATS, store, retention, logs. At most one file of a folder may have them."
	channelsDesc = "The channels: each takes messages from one source, filters and transforms them, and delivers them to its destinations."
)

// Sections describes the configuration file for the reference docs, as components of kind
// config: the file's top level, the server section and a channel.
func Sections(reg Lookup) []spec.Component {
	return []spec.Component{
		{Kind: spec.KindConfig, Name: "file", Summary: "A configuration file, or each file of a folder.",
			Description: "A configuration is one YAML file or a folder of them (`*.yaml`, `*.yml`, read in name " +
				"order). `server` may appear in at most one file; the `channels` of all files are concatenated and " +
				"their names must be unique. Unknown keys are errors.\n\n" +
				"Any scalar value may use `${VAR}` (an environment variable; unset is an error), `${VAR:-default}` " +
				"(the default when unset or empty) and `${file:/path}` (the file's content without its trailing " +
				"newline; a relative path is relative to the configuration file). `$${` writes a literal `${`. " +
				"Substitution happens after the YAML is parsed, so a value can never change the file's structure.",
			Fields: []spec.Field{
				spec.NewObject(fieldServer, serverDesc+" See [server](#config.server).").AsOptional(),
				spec.NewObjects(fieldChannels, channelsDesc+" See [channel](#config.channel).").AsOptional(),
			}},
		{Kind: spec.KindConfig, Name: fieldServer, Summary: "Process-wide settings; every one has a default.",
			Fields: []spec.Field{spec.NewObject(fieldServer, serverDesc, ServerSpec()...)}},
		{Kind: spec.KindConfig, Name: "channel", Summary: "One item of `channels`.",
			Description: "Expressions (`filter`, `ordered_by`, a destination's `filter`, a step's `if`) are " +
				"compiled when the configuration loads: a typo in a field name is a load error with its position.",
			Fields: []spec.Field{spec.NewObjects(fieldChannels, channelsDesc, ChannelSpec(reg)...)}},
	}
}

func lintName(v any) error {
	s := v.(string)
	if !channelNameRe.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use lowercase letters, digits, '-' and '_', starting with a letter or digit", s)
	}
	if len(s) > 64 {
		return fmt.Errorf("name is %d characters long; at most 64", len(s))
	}
	return nil
}

func lintToken(v any) error {
	if len(v.(string)) < 16 {
		return errors.New("token is shorter than 16 characters; use a long random value")
	}
	return nil
}

// exprCache holds the expressions one load compiled, by source text: the lints compile
// each expression once (a typo is a lint with a position, not a runtime surprise), the
// loader hands the compiled form to the channel, and channels that share an expression
// share its program. A nil cache compiles without keeping anything.
type exprCache struct {
	results map[string]*rules.ResultFilter
	filters map[string]*rules.Filter
	keys    map[string]*rules.Key
	errs    map[string]error
}

func newExprCache() *exprCache {
	return &exprCache{results: map[string]*rules.ResultFilter{}, filters: map[string]*rules.Filter{}, keys: map[string]*rules.Key{}, errs: map[string]error{}}
}

func (c *exprCache) filter(src string) (*rules.Filter, error) {
	if c == nil {
		return rules.CompileFilter(src)
	}
	if f, ok := c.filters[src]; ok {
		return f, c.errs["f"+src]
	}
	f, err := rules.CompileFilter(src)
	c.filters[src], c.errs["f"+src] = f, err
	return f, err
}

func (c *exprCache) key(src string) (*rules.Key, error) {
	if c == nil {
		return rules.CompileKey(src)
	}
	if k, ok := c.keys[src]; ok {
		return k, c.errs["k"+src]
	}
	k, err := rules.CompileKey(src)
	c.keys[src], c.errs["k"+src] = k, err
	return k, err
}

func (c *exprCache) result(src string) (*rules.ResultFilter, error) {
	if c == nil {
		return rules.CompileResultFilter(src)
	}
	if f, ok := c.results[src]; ok {
		return f, c.errs["r"+src]
	}
	f, err := rules.CompileResultFilter(src)
	c.results[src], c.errs["r"+src] = f, err
	return f, err
}

func (c *exprCache) lintResult(v any) error {
	_, err := c.result(v.(string))
	return err
}

func (c *exprCache) lintFilter(v any) error {
	_, err := c.filter(v.(string))
	return err
}

func (c *exprCache) lintKey(v any) error {
	_, err := c.key(v.(string))
	return err
}

// exprErrorPos lets the spec linter place an expression error on its character.
func exprErrorPos(err error) (line, col int, msg string, ok bool) {
	var ee *rules.ExprError
	if errors.As(err, &ee) {
		return ee.Line, ee.Col, ee.Msg, true
	}
	return 0, 0, "", false
}

func intRange(lo, hi int) func(any) error {
	return func(v any) error {
		if i := v.(int); i < lo || i > hi {
			return fmt.Errorf("%d is out of range [%d, %d]", i, lo, hi)
		}
		return nil
	}
}

func nonNegative(v any) error {
	if v.(time.Duration) < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

func positive(v any) error {
	if v.(time.Duration) <= 0 {
		return errors.New("must be greater than 0")
	}
	return nil
}
