package protocol

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Streams and subjects. Plugin names are single NATS subject tokens (see [ValidName]), so
// every name below is well formed for any valid plugin.
const (
	// JobsStreamPrefix begins the name of each plugin's jobs stream; see [JobsStream].
	JobsStreamPrefix = "OSPREY_JOBS_"
	// JobsSubjectPrefix begins the subject jobs are published on; see [JobsSubject].
	JobsSubjectPrefix = "osprey.jobs."
	// ResultsStream is the one JetStream stream all plugins publish results to. The engine
	// creates it over [ResultsSubjects].
	ResultsStream = "OSPREY_RESULTS"
	// ResultsSubjectPrefix begins the subject results are published on; see [ResultsSubject].
	ResultsSubjectPrefix = "osprey.results."
	// ResultsSubjects is the filter covering every plugin's results subject.
	ResultsSubjects = ResultsSubjectPrefix + "*"
	// ProgressSubjectPrefix begins the core NATS subject of progress heartbeats; see
	// [ProgressSubject].
	ProgressSubjectPrefix = "osprey.progress."
	// ProgressSubjects is the filter covering every job's progress subject.
	ProgressSubjects = ProgressSubjectPrefix + "*"
	// ConsumerPrefix begins the name of the durable pull consumer of a jobs stream; see
	// [Consumer].
	ConsumerPrefix = "plugin-"
)

// DefaultAckWait is how long the jobs consumer waits for an ack (or an in-progress signal)
// before it redelivers a job, possibly to another instance of the plugin. Plugins working
// longer must signal progress (a JetStream "+WPI" ack) more often than this.
const DefaultAckWait = 30 * time.Second

// JobsStream returns the JetStream work-queue stream holding jobs for plugin:
// "OSPREY_JOBS_" followed by the upper-cased plugin name ("ich" gives "OSPREY_JOBS_ICH").
// Upper-casing is one-to-one on valid names, so two plugins never share a stream.
func JobsStream(plugin string) string { return JobsStreamPrefix + strings.ToUpper(plugin) }

// JobsSubject returns the subject jobs for plugin are published on: "osprey.jobs.<plugin>".
func JobsSubject(plugin string) string { return JobsSubjectPrefix + plugin }

// Consumer returns the durable pull consumer on [JobsStream] that all instances of plugin
// share: "plugin-<plugin>". The engine creates it; plugins bind to it and fetch.
func Consumer(plugin string) string { return ConsumerPrefix + plugin }

// ResultsSubject returns the subject plugin publishes its results on (stored in
// [ResultsStream]): "osprey.results.<plugin>".
func ResultsSubject(plugin string) string { return ResultsSubjectPrefix + plugin }

// ProgressSubject returns the core NATS subject (not stored) progress heartbeats for a job
// are published on: "osprey.progress.<job_id>".
func ProgressSubject(jobID string) string { return ProgressSubjectPrefix + jobID }

// ResultMsgID returns the value of the Nats-Msg-Id header a plugin sets when publishing
// the result of a job attempt: "<job_id>:<attempt>". If an instance dies after publishing
// but before acking, the redelivered job's result carries the same id and the results
// stream drops it as a duplicate, while a later engine attempt gets a new id.
func ResultMsgID(jobID string, attempt int) string { return jobID + ":" + strconv.Itoa(attempt) }

// Keys of the NATS micro service metadata every plugin instance announces. The service
// name is the plugin name and the service version the plugin's semantic version.
const (
	MetaModelName    = "model_name"
	MetaModelVersion = "model_version"
	MetaManufacturer = "manufacturer"
	MetaDeviceUID    = "device_uid"
	MetaModalities   = "modalities" // comma-separated DICOM modalities, e.g. "CT"
	MetaBodyParts    = "body_parts" // comma-separated DICOM body parts, e.g. "HEAD,BRAIN"
	MetaProtocol     = "protocol"   // the protocol version spoken, Version
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	uidRE   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
)

// ValidName reports whether name is a valid plugin name: ^[a-z0-9][a-z0-9_-]{0,63}$.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ValidJobID reports whether id is a valid job id: ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$, so
// that it is a single NATS subject token (UUIDs, ULIDs and NUIDs qualify).
func ValidJobID(id string) bool { return jobIDRE.MatchString(id) }

// ValidUID reports whether uid is a well-formed DICOM UID: digits and dots, at most 64
// characters.
func ValidUID(uid string) bool { return len(uid) <= 64 && uidRE.MatchString(uid) }

// Permissions is what one plugin's NATS credentials allow: exactly the subjects the flow in
// docs/plugins.md uses, nothing of other plugins' jobs or results.
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the plugin reply to requests it receives (micro discovery)
	// without being allowed to publish to every inbox.
	AllowResponses bool
}

// InboxPrefix returns the inbox prefix a plugin's connection must use ("_INBOX_<plugin>",
// set with nats.CustomInboxPrefix or the client's equivalent). Its credentials may subscribe
// to its own inboxes only: with the shared "_INBOX.>" one plugin could read the pull
// responses, and so the jobs, of every other.
func InboxPrefix(plugin string) string { return "_INBOX_" + plugin }

// PluginPermissions returns the permissions the credentials of plugin must grant: bind to and
// pull from its jobs consumer, ack its jobs, publish its results and progress, and take part
// in micro discovery.
func PluginPermissions(plugin string) Permissions {
	stream, consumer := JobsStream(plugin), Consumer(plugin)
	return Permissions{
		Publish: []string{
			"$JS.API.CONSUMER.INFO." + stream + "." + consumer,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
			"$JS.ACK." + stream + "." + consumer + ".>",
			ResultsSubject(plugin),
			ProgressSubjectPrefix + ">",
		},
		Subscribe:      []string{InboxPrefix(plugin) + ".>", "$SRV.>"},
		AllowResponses: true,
	}
}
