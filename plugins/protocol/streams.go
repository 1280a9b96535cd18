package protocol

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HeaderPluginVersion is the header a plugin sets on each result it publishes: its semantic
// version (the micro service version), so the engine can enforce a channel's minimum
// version without asking discovery which instance answered.
const HeaderPluginVersion = "Osprey-Plugin-Version"

// ResultsDuplicateWindow is the results stream's duplicate window: a result republished
// with the same Nats-Msg-Id within it is dropped.
const ResultsDuplicateWindow = 2 * time.Minute

// JobsStreamConfig is the configuration of plugin's jobs stream: a file-backed work queue on
// [JobsSubject], so a job is removed once a plugin acks it and waits, surviving restarts,
// while no instance runs. Whoever creates the stream first (the engine, or a conformance
// run) creates it this way, so the other finds it as expected.
func JobsStreamConfig(plugin string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        JobsStream(plugin),
		Description: "Osprey AI jobs for plugin " + plugin,
		Subjects:    []string{JobsSubject(plugin)},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  ResultsDuplicateWindow,
	}
}

// JobsConsumerConfig is the configuration of the durable pull consumer all instances of
// plugin share. maxDeliver bounds JetStream redeliveries of one job (an instance dying
// mid-job); maxAckPending bounds the jobs in flight across all instances (the plugin's
// concurrency setting); 0 leaves either unlimited.
func JobsConsumerConfig(plugin string, maxDeliver, maxAckPending int) jetstream.ConsumerConfig {
	if maxDeliver <= 0 {
		maxDeliver = -1
	}
	if maxAckPending <= 0 {
		maxAckPending = -1
	}
	return jetstream.ConsumerConfig{
		Durable:       Consumer(plugin),
		Description:   "instances of plugin " + plugin,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       DefaultAckWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: maxAckPending,
		FilterSubject: JobsSubject(plugin),
	}
}

// ResultsStreamConfig is the configuration of the results stream: every plugin's results,
// kept (limits retention) so the engine and a conformance run can each read them with
// their own consumer, deduplicated by Nats-Msg-Id.
func ResultsStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        ResultsStream,
		Description: "Osprey AI results of every plugin",
		Subjects:    []string{ResultsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  ResultsDuplicateWindow,
	}
}
