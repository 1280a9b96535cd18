package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/osprey-health/osprey/engine/broker"
)

// Message is one unit of work as it enters a channel: the bytes a peer sent plus what the
// source knew about where they came from. The engine assigns ID when it commits the message;
// every later record (stages, attempts, audit) refers to it.
type Message struct {
	ID          string            `json:"id"`
	Channel     string            `json:"channel"`
	ContentType string            `json:"content_type"`
	Body        []byte            `json:"body"`
	ReceivedAt  time.Time         `json:"received_at"`
	Meta        map[string]string `json:"meta,omitempty"` // source facts: remote_addr, tls_subject, listener
	// Reject, set by a source that found the content unusable (a FHIR resource that does not
	// validate), makes the engine store the message as rejected with this reason and answer
	// Rejected, as it does itself for HL7v2 that does not parse.
	Reject error `json:"-"`
}

// RetryAfter is implemented by delivery errors that know when the peer wants the next try
// (HTTP 429 or 503 with Retry-After): the engine waits at least that long, even when its
// backoff would try sooner.
type RetryAfter interface {
	RetryAfter() time.Duration
}

// Content types the engine understands natively.
const (
	ContentHL7v2 = "application/hl7-v2"
	// ContentStudy is a complete imaging study as one message: a JSON summary of its
	// series and instances (see engine/dicom), produced by the DICOMweb sources.
	ContentStudy = "application/vnd.osprey.study+json"
)

// Verdict is the engine's answer to a source about one message.
type Verdict int

const (
	// Accepted: the message is on disk and will be processed.
	Accepted Verdict = iota
	// Duplicate: an earlier copy was already accepted; the message is recorded, not processed again.
	Duplicate
	// Rejected: the content is unusable (unparseable, missing MSH-10...). It is stored with its
	// error for the analyst, and the sender should be told AE.
	Rejected
)

func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Receipt is what Sink.Accept returns once the engine has decided about a message.
type Receipt struct {
	ID      string  // message id assigned by the engine
	Verdict Verdict // what happened
	Reason  error   // why, when Rejected
}

// Sink is what a source hands its messages to. Accept returns only when the verdict is
// durable: for Accepted, the message is committed to the channel's inbound stream. An error
// means nothing was committed (the engine is stopping, NATS is unreachable) and the sender
// must be told to retry (MLLP AR, HTTP 503).
type Sink interface {
	Accept(ctx context.Context, m *Message) (Receipt, error)
}

// SinkFunc adapts a function to Sink, for tests and tools such as `osprey listen`.
type SinkFunc func(ctx context.Context, m *Message) (Receipt, error)

// Accept calls f.
func (f SinkFunc) Accept(ctx context.Context, m *Message) (Receipt, error) { return f(ctx, m) }

// Source receives messages from peers and hands each to the sink. Run blocks until ctx is
// cancelled, then stops accepting, waits for in-flight Accept calls and returns nil; any
// other return is a failure of the source itself (listener could not bind...).
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// Reply is what a destination's peer answered: an HL7 ACK, an HTTP body, a DICOM response
// dataset. It is stored with the delivery attempt.
type Reply struct {
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
	Summary     string `json:"summary,omitempty"` // one line for lists: "AA", "201 Created", "AE: unknown patient"
	// Sent is what went to the peer when it is not the queued payload (a mapped analysis:
	// the ORU, the Bundle, the SR); the engine keeps it with the attempt.
	Sent []byte `json:"-"`
}

// Destination delivers one message to a peer. Send returns the peer's reply with a nil error
// only when the peer confirmed delivery. A rejection by the peer (AE/AR, HTTP 4xx) wraps
// ErrRejected so the retry policy can tell it from a transport failure; the reply is still
// returned for the record.
type Destination interface {
	Send(ctx context.Context, m *Message) (Reply, error)
}

// ErrRejected marks an error where the peer received the message and refused it.
var ErrRejected = errors.New("rejected by peer")

// ErrUndeliverable marks an error no retry can cure: the message cannot be sent as it is
// (an HL7 message without MSH-10 to match its ACK by). The engine dead-letters it at once.
var ErrUndeliverable = errors.New("undeliverable")

// Parallel is implemented by destinations that carry several messages at once (an MLLP
// destination with a pool of connections). The engine lets at most Parallelism messages be
// sent and not yet recorded as delivered at any moment, which bounds what a crash can repeat
// to one message per connection. Destinations without it are treated as one connection.
type Parallel interface {
	Parallelism() int
}

// Optional lifecycle steps, in the order the engine calls them: construct (no side effects),
// Provision, use, Close. A component implements only the ones it needs.
type (
	Provisioner interface {
		Provision(ctx context.Context) error
	}
	Closer interface {
		Close(ctx context.Context) error
	}
)

// Resources are what the engine lends a component at construction.
type Resources struct {
	Logger  *slog.Logger
	DataDir string
	Channel string // the channel the component belongs to
	// Broker is the engine's NATS connection, for components that keep data in JetStream
	// (the DICOMweb source's object store). Nil in tools that run a component alone.
	Broker *broker.Broker
}
