package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/rules"
	"github.com/osprey-health/osprey/engine/spec"
)

// Field names of the AI sections of a channel.
const (
	fieldPlugins      = "plugins"
	fieldRoute        = "route"
	fieldResultRules  = "result_rules"
	fieldWhen         = "when"
	fieldTimeout      = "timeout"
	fieldConcurrency  = "concurrency"
	fieldMode         = "mode"
	fieldMinVersion   = "min_version"
	fieldPriority     = "priority"
	fieldRedeliveries = "max_redeliveries"
	fieldPluginToken  = "plugin_token"
)

// Plugin modes.
const (
	// ModeSilent stores and audits results; nothing leaves Osprey. For trying a model on
	// live traffic before anyone sees its output.
	ModeSilent = "silent"
	// ModeNotify sends results to the destinations the result rules name, without
	// changing the study's priority.
	ModeNotify = "notify"
	// ModeActive also applies the priority the result rules set (the worklist moves).
	ModeActive = "active"
)

// Priorities a result rule may set.
const (
	PriorityStat    = "stat"
	PriorityUrgent  = "urgent"
	PriorityRoutine = "routine"
)

// Plugin is the channel's settings for one AI plugin.
type Plugin struct {
	Name        string
	Timeout     time.Duration // per attempt: from the job's publication to its result
	MaxAttempts int           // engine-level attempts: a failed or timed-out job is sent again until this many
	// MaxRedeliveries bounds how often JetStream hands one attempt's job to an instance
	// again after an instance died with it (no ack, no progress within the ack wait).
	MaxRedeliveries int
	Concurrency     int    // jobs in flight across all instances; 0 = no limit
	Mode            string // ModeSilent, ModeNotify or ModeActive
	MinVersion      string // semantic version; results of older plugin versions are invalid
	Pos             string
	Conf            *spec.Parsed
}

// Route selects plugins for the studies its expression matches.
type Route struct {
	Name    string
	When    string
	Match   *rules.Filter
	Plugins []string
	Pos     string
}

// ResultRule decides what a reconciled analysis does: its priority and where it goes.
type ResultRule struct {
	Name         string
	When         string
	Match        *rules.ResultFilter
	Priority     string // PriorityStat, PriorityUrgent, PriorityRoutine or ""
	Destinations []string
	Pos          string
}

var semverRe = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)

func lintSemver(v any) error {
	if s := v.(string); s != "" && !semverRe.MatchString(s) {
		return fmt.Errorf("%q is not a semantic version such as 1.4.0", s)
	}
	return nil
}

// aiSpec declares the channel fields of the plugin layer.
func aiSpec(ec *exprCache) []spec.Field {
	return []spec.Field{
		spec.NewObjects(fieldPlugins, "AI plugins this channel may send studies to, with their settings. A plugin "+
			"listed here gets its jobs stream and its credentials file (`<data_dir>/creds/<plugin>.creds`); see "+
			"docs/plugins.md.",
			spec.NewString(fieldName, "The plugin's name, as it registers with NATS micro.").
				WithLint(lintPluginName).WithExamples("ich"),
			spec.NewDuration(fieldTimeout, "How long one attempt may take, from the job's publication to its result; "+
				"a plugin that is down makes the job wait this long. Then the attempt counts as `timeout`.").
				WithDefault("5m").WithLint(positive),
			spec.NewInt(fieldMaxAttempts, "Attempts per study: a failed or timed-out job is sent again, with a new "+
				"deadline, until this many attempts were made.").
				WithDefault(1).WithLint(intRange(1, 100)),
			spec.NewInt(fieldRedeliveries, "How often one attempt's job is handed to another instance after the "+
				"instance holding it died (no result, no progress within 30 s). 0 means no limit within the timeout.").
				WithDefault(5).WithLint(intRange(0, 1000)),
			spec.NewInt(fieldConcurrency, "Jobs in flight at once across all instances of the plugin; 0 means no "+
				"limit. The same plugin in two channels must have the same value.").
				WithDefault(0).WithLint(intRange(0, 100000)),
			spec.NewString(fieldMode, "`silent` stores and audits results but sends nothing; `notify` sends them where "+
				"the result rules say without changing priority; `active` also applies the rules' priority.").
				WithEnum(ModeSilent, ModeNotify, ModeActive).WithDefault(ModeSilent),
			spec.NewString(fieldMinVersion, "Lowest plugin version (semver) whose results are accepted; older "+
				"instances' results are recorded as invalid.").
				WithDefault("").WithLint(lintSemver).WithExamples("0.3.0"),
		).AsOptional(),
		spec.NewString(fieldPluginToken, "Bearer token AI jobs carry to fetch the study when the channel's source "+
			"does not serve its studies with study-scoped tokens (`dicomweb_notify`, `qido_poll`: the plugins then "+
			"read the PACS, with the PACS's own token). It opens more than one study, so give the plugins one of "+
			"their own, read-only; `source.dicomweb` mints a scoped token per job and needs none.").
			AsSecret().WithDefault("").WithExamples("${PACS_PLUGIN_TOKEN}"),
		spec.NewObjects(fieldRoute, "Routing rules: which plugins see which study. Every rule whose `when` is "+
			"true adds its plugins; a study no rule selects is recorded and goes no further. In a channel with "+
			"routes the destinations receive analyses (see `result_rules`), not the study itself.",
			spec.NewString(fieldName, "A name for the rule, shown in the message history.").
				WithDefault("").WithExamples("non-contrast-head-ct"),
			spec.NewExpr(fieldWhen, "Expression over `study`, `order`, `channel` and `meta` (docs/rules.md).").
				WithLint(ec.lintFilter).
				WithExamples(`study.Modality == "CT" && study.BodyPart == "HEAD" && !study.Contrast`),
			spec.NewStrings(fieldPlugins, "Plugins to send the study to; each must be listed in `plugins`.").
				WithExamples([]any{"ich"}),
		).AsOptional(),
		spec.NewObjects(fieldResultRules, "What to do once every plugin a study was sent to has answered (or timed "+
			"out): every rule whose `when` is true contributes; the highest priority wins and the destinations add up.",
			spec.NewString(fieldName, "A name for the rule, kept with the analysis and in the audit trail.").
				WithDefault("").WithExamples("ich-stat"),
			spec.NewExpr(fieldWhen, "Expression over `findings`, `finding(name)`, `positive`, `plugins`, `study`, "+
				"`order` and `channel` (docs/rules.md).").
				WithLint(ec.lintResult).WithExamples(`finding("ICH").Present && finding("ICH").Confidence >= 0.85`),
			spec.NewString(fieldPriority, "Priority of the study when the rule matches; applied by `active` plugins only.").
				WithEnum(PriorityStat, PriorityUrgent, PriorityRoutine, "").WithDefault(""),
			spec.NewStrings(fieldDestinations, "Destinations of this channel the analysis goes to.").
				WithExamples([]any{"ris", "ehr"}),
		).AsOptional(),
	}
}

var pluginNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func lintPluginName(v any) error {
	if !pluginNameRe.MatchString(v.(string)) {
		return errors.New("a plugin name is lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 64 characters")
	}
	return nil
}

// ai reads and cross-checks the plugin layer of a channel.
func (l *loader) ai(ch *Channel, cp *spec.Parsed) {
	ch.PluginToken = cp.String(fieldPluginToken)
	known := map[string]string{}
	for _, pp := range cp.Objects(fieldPlugins) {
		p := Plugin{
			Name:            pp.String(fieldName),
			Timeout:         pp.Duration(fieldTimeout),
			MaxAttempts:     pp.Int(fieldMaxAttempts),
			MaxRedeliveries: pp.Int(fieldRedeliveries),
			Concurrency:     pp.Int(fieldConcurrency),
			Mode:            pp.String(fieldMode),
			MinVersion:      strings.TrimPrefix(pp.String(fieldMinVersion), "v"),
			Pos:             pp.Pos(""),
			Conf:            pp,
		}
		if first, dup := known[p.Name]; dup && p.Name != "" {
			l.errorAt(pp, fieldName, spec.LintDuplicate, "plugin %q is listed twice in channel %q (first at %s)", p.Name, ch.Name, first)
		}
		known[p.Name] = pp.Pos(fieldName)
		ch.Plugins = append(ch.Plugins, p)
	}
	names := slices.Sorted(maps.Keys(known))
	for _, rp := range cp.Objects(fieldRoute) {
		r := Route{Name: rp.String(fieldName), When: rp.String(fieldWhen), Plugins: rp.Strings(fieldPlugins), Pos: rp.Pos("")}
		if r.When != "" {
			r.Match, _ = l.exprs.filter(r.When)
		}
		if len(r.Plugins) == 0 {
			l.errorAt(rp, fieldPlugins, spec.LintMissing, "a route needs at least one plugin")
		}
		for _, name := range r.Plugins {
			if _, ok := known[name]; !ok {
				l.errorAt(rp, fieldPlugins, spec.LintLint, "plugin %q is not listed in this channel's plugins%s", name, didYouMean(name, names))
			}
		}
		ch.Routes = append(ch.Routes, r)
	}
	if len(ch.Plugins) > 0 && len(ch.Routes) == 0 {
		l.warnAt(cp, fieldPlugins, spec.LintLint, "channel %q lists plugins but no route sends studies to them", ch.Name)
	}
	if len(ch.Destinations) == 0 {
		// Legitimate (order context only, an archive that only receives), but rarely meant.
		l.warnAt(cp, fieldName, spec.LintMissing, "channel %q has no destinations: its messages are stored and go no further", ch.Name)
	}
	var dests []string
	for _, d := range ch.Destinations {
		dests = append(dests, d.Name)
		if d.Mapping.Name != "" && len(ch.Routes) == 0 {
			l.warnAt(d.Conf, fieldMapping, spec.LintLint, "destination %q maps AI analyses, but channel %q has no route: "+
				"its messages are sent as they are", d.Name, ch.Name)
		}
		if d.Mapping.Name == "" && len(ch.Routes) > 0 {
			l.warnAt(d.Conf, fieldName, spec.LintLint, "destination %q of routed channel %q has no mapping: it gets "+
				"analyses as Osprey's own JSON (application/vnd.osprey.analysis+json); give it a mapping (oru, fhir, sr)",
				d.Name, ch.Name)
		}
	}
	for _, rp := range cp.Objects(fieldResultRules) {
		r := ResultRule{Name: rp.String(fieldName), When: rp.String(fieldWhen), Priority: rp.String(fieldPriority),
			Destinations: rp.Strings(fieldDestinations), Pos: rp.Pos("")}
		if r.When != "" {
			r.Match, _ = l.exprs.result(r.When)
		}
		for _, d := range r.Destinations {
			if !slices.Contains(dests, d) {
				l.errorAt(rp, fieldDestinations, spec.LintLint, "destination %q is not a destination of channel %q%s", d, ch.Name, didYouMean(d, dests))
			}
		}
		if r.Priority == "" && len(r.Destinations) == 0 {
			l.warnAt(rp, fieldWhen, spec.LintLint, "this result rule sets no priority and names no destination: it only records that it matched")
		}
		ch.ResultRules = append(ch.ResultRules, r)
	}
	if len(ch.ResultRules) > 0 && len(ch.Routes) == 0 {
		l.errorAt(cp, fieldResultRules, spec.LintLint, "result_rules need a route: without one no plugin is asked and no result comes")
	}
}

func didYouMean(name string, candidates []string) string {
	if s := spec.Suggest(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(candidates) > 0 {
		return " (known: " + strings.Join(candidates, ", ") + ")"
	}
	return ""
}

// checkPlugins cross-checks plugins configured in several channels: they share one jobs
// consumer, whose concurrency limit must therefore agree.
func (l *loader) checkPlugins() {
	first := map[string]Plugin{}
	for _, ch := range l.cfg.Channels {
		for _, p := range ch.Plugins {
			f, ok := first[p.Name]
			if !ok {
				first[p.Name] = p
				continue
			}
			if f.Concurrency != p.Concurrency || f.MaxRedeliveries != p.MaxRedeliveries {
				l.errorAt(p.Conf, fieldConcurrency, spec.LintLint, "plugin %q has concurrency %d and max_redeliveries %d here but %d and %d at %s; all instances share one queue, so they must agree",
					p.Name, p.Concurrency, p.MaxRedeliveries, f.Concurrency, f.MaxRedeliveries, f.Pos)
			}
		}
	}
}

// Plugins returns every plugin configured in an enabled channel, once, in name order.
func (c *Config) Plugins() []Plugin {
	seen := map[string]Plugin{}
	for _, ch := range c.Channels {
		if !ch.Enabled {
			continue
		}
		for _, p := range ch.Plugins {
			if _, ok := seen[p.Name]; !ok {
				seen[p.Name] = p
			}
		}
	}
	out := make([]Plugin, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Plugin) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Plugin returns the channel's settings for plugin name.
func (c *Channel) Plugin(name string) (Plugin, bool) {
	for _, p := range c.Plugins {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}
