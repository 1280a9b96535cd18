// Package fhir is Osprey's FHIR R4 connector over HTTP (JSON only).
//
//   - source.fhir is a FHIR endpoint: it takes resources and Bundles by POST, and R4
//     Subscription rest-hook notifications with or without payload, validates them with
//     engine/fhir and hands each to the channel as one message, answering only once the
//     engine has committed it. Invalid content is answered 400 with an OperationOutcome and
//     is kept too, marked with MetaInvalid.
//   - destination.fhir delivers FHIR JSON to a FHIR server: a transaction or batch Bundle
//     to the service base, any other resource as a create to base/<type>, with
//     If-None-Exist for conditional creates. Credentials are a bearer token, HTTP basic, or
//     OAuth2 client credentials with the token cached until it expires or is refused.
//
// Answers map onto the engine's delivery semantics as for every destination: 2xx is
// delivered (for a batch, only when every entry succeeded); no answer, 408, 429 and 5xx are
// a *RetryError carrying the server's Retry-After; any other 4xx is a rejection
// (engine.ErrRejected) whose summary is the OperationOutcome's text; content that is not
// valid R4 is undeliverable (engine.ErrUndeliverable). The server's answer, OperationOutcome
// or Bundle, is the delivery's reply.
//
// Importing the package registers "source.fhir" and "destination.fhir" in engine.Global.
// See docs/fhir.md.
package fhir

import codec "github.com/osprey-health/osprey/engine/fhir"

// Content types of the messages the source makes. Resources and Bundles keep FHIR's own
// media type; a notification without payload has no FHIR body, so it gets Osprey's.
const (
	ContentFHIR = codec.MediaType // application/fhir+json
	// ContentNotification is a Subscription notification without payload; the body is the
	// JSON of a [Notification].
	ContentNotification = "application/vnd.osprey.fhir-notification+json"
)

// Message metadata keys the source sets and the destination reads.
const (
	MetaResourceType = "fhir.resource_type" // of the body: "Patient", "Bundle"
	MetaID           = "fhir.id"            // the body's id, when it has one
	MetaBundleType   = "fhir.bundle_type"   // transaction, batch, history, message...
	// MetaSubscription is the subscription a notification is for: the name in the
	// notification URL, or the SubscriptionStatus reference of a notification Bundle.
	MetaSubscription = "fhir.subscription"
	// MetaNotificationType is the type a notification Bundle's status gives:
	// event-notification, query-status... (handshakes and heartbeats make no message).
	MetaNotificationType = "fhir.notification_type"
	// MetaInvalid holds why the source found the content invalid (it answered 400).
	MetaInvalid = "fhir.invalid"
	// MetaIfNoneExist, on a message to destination.fhir, is the conditional-create query
	// sent as If-None-Exist ("identifier=http://hospital.example/mrn|12345").
	MetaIfNoneExist = "fhir.if_none_exist"
)

// HeaderMessageID is the response header in which the source names the message id the
// engine assigned, for the sender's log and for support calls.
const HeaderMessageID = "X-Osprey-Message-Id"
