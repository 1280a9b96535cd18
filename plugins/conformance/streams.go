package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// ensureStreams makes sure the plugin's jobs stream and consumer and the results stream
// exist. An absent one is created with the protocol's configuration, as the engine creates
// it; an existing one is never changed (it may be the engine's, tuned by the channel's plugin
// settings) but must be able to carry the run: a FAIL row says why not. It returns false when
// one cannot.
func (r *run) ensureStreams(ctx context.Context) (bool, error) {
	js := r.b.JetStream()
	plugin := r.opts.Plugin

	jobs, created, err := ensureStream(ctx, js, protocol.JobsStreamConfig(plugin))
	if err != nil {
		r.rep.add("jobs stream", false, "%s: %v", protocol.JobsStream(plugin), err)
		return false, nil
	}
	ok := true
	if v := streamProblems(jobs.CachedInfo().Config, protocol.JobsSubject(plugin)); v != "" {
		r.rep.add("jobs stream", false, "%s: %s", protocol.JobsStream(plugin), v)
		ok = false
	} else {
		r.rep.add("jobs stream", true, "%s %s", protocol.JobsStream(plugin), createdOrFound(created))
	}

	name := protocol.Consumer(plugin)
	cons, err := jobs.Consumer(ctx, name)
	created = false
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		// Unlimited deliveries and jobs in flight: the channel's plugin settings bound them
		// when the engine creates the consumer; the run deletes its own jobs when it ends.
		cons, err = jobs.CreateConsumer(ctx, protocol.JobsConsumerConfig(plugin, 0, 0))
		created = err == nil
		if errors.Is(err, jetstream.ErrConsumerExists) { // the engine made it meanwhile
			cons, err = jobs.Consumer(ctx, name)
		}
	}
	if err != nil {
		r.rep.add("jobs consumer", false, "%s on %s: %v", name, protocol.JobsStream(plugin), err)
		return false, nil
	}
	if v := consumerProblems(cons.CachedInfo().Config, protocol.JobsSubject(plugin)); v != "" {
		r.rep.add("jobs consumer", false, "%s: %s", name, v)
		ok = false
	} else {
		r.rep.add("jobs consumer", true, "%s %s", name, createdOrFound(created))
	}

	results, created, err := ensureStream(ctx, js, protocol.ResultsStreamConfig())
	if err != nil {
		r.rep.add("results stream", false, "%s: %v", protocol.ResultsStream, err)
		return false, nil
	}
	if v := streamProblems(results.CachedInfo().Config, protocol.ResultsSubject(plugin)); v != "" {
		r.rep.add("results stream", false, "%s: %s", protocol.ResultsStream, v)
		ok = false
	} else {
		r.rep.add("results stream", true, "%s %s", protocol.ResultsStream, createdOrFound(created))
	}
	return ok, ctx.Err()
}

// ensureStream returns the stream cfg names, creating it with cfg only when it is absent.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (s jetstream.Stream, created bool, err error) {
	s, err = js.Stream(ctx, cfg.Name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return s, false, err
	}
	s, err = js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile, by the engine
		s, err = js.Stream(ctx, cfg.Name)
		return s, false, err
	}
	return s, err == nil, err
}

func createdOrFound(created bool) string {
	if created {
		return "created (it did not exist)"
	}
	return "found"
}

// streamProblems says why a stream with cfg cannot store messages on subject, or "".
func streamProblems(cfg jetstream.StreamConfig, subject string) string {
	for _, f := range cfg.Subjects {
		if subjectMatches(f, subject) {
			if cfg.Sealed {
				return "the stream is sealed"
			}
			return ""
		}
	}
	return fmt.Sprintf("its subjects %v do not include %s; fix or delete it (the engine creates it anew)", cfg.Subjects, subject)
}

// consumerProblems says why a consumer with cfg cannot hand the plugin jobs on subject as the
// protocol says (a durable pull consumer with explicit acks), or "".
func consumerProblems(cfg jetstream.ConsumerConfig, subject string) string {
	var vs []string
	if cfg.DeliverSubject != "" {
		vs = append(vs, "it is a push consumer, plugins pull")
	}
	if cfg.AckPolicy != jetstream.AckExplicitPolicy {
		vs = append(vs, fmt.Sprintf("ack policy %s, want explicit", cfg.AckPolicy))
	}
	filters := cfg.FilterSubjects
	if cfg.FilterSubject != "" {
		filters = append(filters, cfg.FilterSubject)
	}
	if len(filters) > 0 && !slices.ContainsFunc(filters, func(f string) bool { return subjectMatches(f, subject) }) {
		vs = append(vs, fmt.Sprintf("its filter %v does not include %s", filters, subject))
	}
	return strings.Join(vs, "; ")
}

// subjectMatches reports whether the NATS subject filter (with * and > wildcards) matches
// the literal subject.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
