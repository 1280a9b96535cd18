// Package store is Osprey's searchable message history: every message as received, each
// stage it went through, each delivery attempt with the peer's reply, and the dead letters.
// JetStream holds work in flight; the store is what an analyst searches and reprocesses
// from. It also keeps the order context that studies join (Order), and the AI jobs made
// for study messages with their reconciled analyses (JobStore). One interface, two
// implementations: SQLite (embedded default) and PostgreSQL.
//
// Every write is idempotent by its natural key (message id; message id + stage seq;
// message id + destination + attempt number; job id; message id for an analysis), so a
// redelivery after a crash never duplicates a record.
//
// Both implementations also agree on these details, which the conformance suite in
// storetest checks:
//   - Times are kept in UTC to the microsecond and returned in UTC.
//   - On write, a zero ReceivedAt, UpdatedAt, Stage.At or Attempt.At becomes now; an
//     empty Status is StatusReceived and an empty DeliveryStatus is DeliveryQueued; a
//     Delivery with an empty Channel takes its message's. Unknown statuses are errors.
//   - Writes that name a message that is not stored fail with ErrNotFound and write
//     nothing. AddAttempt creates the delivery row when there is none yet.
//   - Get, Search and DeadLetters return empty slices rather than nil. Search results
//     leave Raw empty; Get and DeadLetters leave Delivery.Payload empty (Delivery has it).
//   - Search sorts by (ReceivedAt, ID) and DeadLetters by (UpdatedAt, MessageID,
//     Destination), newest first, comparing ids byte by byte; cursors are keysets, so
//     new rows never shift a page being walked.
package store

import (
	"context"
	"errors"
	"time"
)

// Status is where a message stands as a whole.
type Status string

const (
	StatusReceived  Status = "received"  // committed, not yet processed
	StatusRejected  Status = "rejected"  // unusable content, answered AE/AR, kept for the analyst
	StatusDuplicate Status = "duplicate" // same control id from the same sender within the window
	StatusFiltered  Status = "filtered"  // the channel filter said no
	StatusQueued    Status = "queued"    // processed, waiting on one or more destinations
	StatusSent      Status = "sent"      // every destination confirmed
	StatusError     Status = "error"     // processing failed or a destination dead-lettered it
)

// DeliveryStatus is where a message stands for one destination.
type DeliveryStatus string

const (
	DeliveryQueued     DeliveryStatus = "queued"
	DeliverySent       DeliveryStatus = "sent"
	DeliveryDeadLetter DeliveryStatus = "dead_letter"
)

// Message is one received message and its key fields.
type Message struct {
	ID          string            `json:"id"`
	Channel     string            `json:"channel"`
	ContentType string            `json:"content_type"`
	Raw         []byte            `json:"raw"`
	ReceivedAt  time.Time         `json:"received_at"`
	Source      map[string]string `json:"source,omitempty"`
	ControlID   string            `json:"control_id,omitempty"`   // MSH-10
	MessageType string            `json:"message_type,omitempty"` // "ADT^A01"
	PatientID   string            `json:"patient_id,omitempty"`   // PID-3.1 of the first repetition
	Accession   string            `json:"accession,omitempty"`    // OBR-18 / ORC-2 / study accession
	Sender      string            `json:"sender,omitempty"`       // MSH-3^MSH-4
	Status      Status            `json:"status"`
	Error       string            `json:"error,omitempty"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ReprocessOf string            `json:"reprocess_of,omitempty"` // id of the original when reprocessed
}

// Stage is one step of processing: "filter", "transform[0] set", "route".
type Stage struct {
	Seq    int       `json:"seq"` // order within the message; with the message id, the key
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Output []byte    `json:"output,omitempty"` // the message after this stage, when it changed
	Error  string    `json:"error,omitempty"`
}

// StageSet is the stages of one message, for AddStageSets.
type StageSet struct {
	MessageID string
	Stages    []Stage
}

// Attempt is one try at delivering to one destination.
type Attempt struct {
	Destination  string        `json:"destination"`
	Number       int           `json:"number"` // 1-based; with message id and destination, the key
	At           time.Time     `json:"at"`
	Duration     time.Duration `json:"duration"`
	OK           bool          `json:"ok"`
	Error        string        `json:"error,omitempty"`
	ReplySummary string        `json:"reply_summary,omitempty"` // "AA", "AE: unknown patient"
	Reply        []byte        `json:"reply,omitempty"`         // the peer's raw answer (the ACK)
	Sent         []byte        `json:"sent,omitempty"`          // what was sent, when it differs from the last stage output
}

// Delivery is the state of one message for one destination.
type Delivery struct {
	MessageID   string         `json:"message_id"`
	Channel     string         `json:"channel"`
	Destination string         `json:"destination"`
	Status      DeliveryStatus `json:"status"`
	Attempts    int            `json:"attempts"`
	LastError   string         `json:"last_error,omitempty"`
	UpdatedAt   time.Time      `json:"updated_at"`
	// Payload is what the destination is to send, kept so a dead letter can be requeued.
	// Left empty it is the message's raw bytes, the common case, which then are not stored
	// twice (nor rewritten with the row at every attempt); Delivery returns them.
	Payload []byte `json:"-"`
}

// Detail is a message with everything that happened to it.
type Detail struct {
	Message    Message    `json:"message"`
	Stages     []Stage    `json:"stages"`
	Attempts   []Attempt  `json:"attempts"`
	Deliveries []Delivery `json:"deliveries"`
}

// Query selects messages. Zero values mean "any". Results are newest first.
type Query struct {
	Channel     string
	Status      Status
	From, To    time.Time // ReceivedAt in [From, To)
	MessageType string    // prefix match: "ADT" or "ADT^A01"
	ControlID   string
	PatientID   string
	Accession   string
	Sender      string
	Text        string // substring of the raw message, case-insensitive
	Limit       int    // default 50, at most 1000
	Cursor      string // from Page.Next
}

// Page is one page of search results.
type Page struct {
	Messages []Message `json:"messages"` // Raw is left empty in search results
	Next     string    `json:"next,omitempty"`
}

// DeadLetterQuery selects dead letters, newest first.
type DeadLetterQuery struct {
	Channel     string
	Destination string
	Limit       int
	Cursor      string
}

// DeadLetterPage is one page of dead letters.
type DeadLetterPage struct {
	Deliveries []Delivery `json:"dead_letters"`
	Next       string     `json:"next,omitempty"`
}

// Order is the order context of one imaging procedure, as the RIS last described it in an
// ORM^O01 or OMI^O23 message (see engine/orders for where each field comes from). A study
// joins its order by accession number.
type Order struct {
	Accession         string `json:"accession"`                     // the key
	PlacerOrderNumber string `json:"placer_order_number,omitempty"` // ORC-2 / OBR-2
	FillerOrderNumber string `json:"filler_order_number,omitempty"` // ORC-3 / OBR-3
	PatientID         string `json:"patient_id,omitempty"`          // PID-3.1 of the first repetition
	PatientName       string `json:"patient_name,omitempty"`        // PID-5 as encoded, "DOE^JANE"
	PatientSex        string `json:"patient_sex,omitempty"`         // PID-8
	PatientBirthDate  string `json:"patient_birth_date,omitempty"`  // PID-7, HL7 date
	// PatientIDAuthority is the assigning authority of the MRN, PID-3.4.1 of the first
	// repetition ("GENHOSP"); a RIS that serves several facilities needs it to read the MRN.
	PatientIDAuthority string `json:"patient_id_authority,omitempty"`
	// PatientClass is PV1-2, HL7 table 0004: E (emergency), I (inpatient), O (outpatient)...
	PatientClass string `json:"patient_class,omitempty"`
	// Priority is the order's priority code, upper case: S (stat), A (ASAP), R (routine),
	// P, C, T, PRN. From TQ1-9, ORC-7.6, OBR-27.6 or OBR-5, the first that is given.
	Priority         string    `json:"priority,omitempty"`
	OrderingProvider string    `json:"ordering_provider,omitempty"` // ORC-12 / OBR-16, "1234^SMITH^JANE"
	Location         string    `json:"location,omitempty"`          // PV1-3.1, the point of care
	ProcedureCode    string    `json:"procedure_code,omitempty"`    // OBR-4.1
	ProcedureText    string    `json:"procedure_text,omitempty"`    // OBR-4.2
	Reason           string    `json:"reason,omitempty"`            // OBR-31 (text, else code), else OBR-13
	Status           string    `json:"status,omitempty"`            // HL7 table 0038: CA, DC, CM, IP, SC, HD...
	MessageID        string    `json:"message_id,omitempty"`        // the message that last updated it
	Channel          string    `json:"channel,omitempty"`           // the channel that message came in on
	OrderedAt        time.Time `json:"ordered_at,omitzero"`         // ORC-9 / OBR-6 / MSH-7; zero when unknown
	UpdatedAt        time.Time `json:"updated_at"`                  // MSH-7 of the last message, else when it was processed
	// MessageIDs is the history: every message that described this order, oldest first.
	// Order and OrderByNumber fill it; PutOrder ignores it (MessageID is what joins).
	MessageIDs []string `json:"message_ids,omitempty"`
}

// ErrInvalidOrder is returned by PutOrder for an order it cannot key (no accession).
var ErrInvalidOrder = errors.New("store: invalid order")

// ErrNotFound is returned when a message, delivery, order, job or analysis does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrInvalidCursor is returned when a Query, DeadLetterQuery or JobQuery carries a cursor
// that no page of that kind produced; the admin API answers it with 400.
var ErrInvalidCursor = errors.New("store: invalid cursor")

// Page sizes for Query.Limit and DeadLetterQuery.Limit: zero or less means DefaultLimit,
// more than MaxLimit means MaxLimit.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Store is the message history. Implementations are safe for concurrent use.
type Store interface {
	// JobStore keeps the AI jobs made for study messages and their reconciled analyses.
	JobStore

	// PutMessages inserts messages in one transaction; a message whose id exists already is
	// left as it is (first write wins), which makes redelivery harmless.
	PutMessages(ctx context.Context, msgs []Message) error
	// SetStatus updates a message's status and error text.
	SetStatus(ctx context.Context, id string, status Status, errText string) error
	// AddStages records processing stages; an existing (id, seq) is left as it is.
	AddStages(ctx context.Context, id string, stages []Stage) error
	// AddStageSets is AddStages for several messages in one transaction, as the processor
	// records a pass: one commit, not one per message. A message that is not stored fails
	// the call with ErrNotFound, and none of it is written.
	AddStageSets(ctx context.Context, sets []StageSet) error
	// PutDeliveries creates or replaces the delivery rows of messages (one per destination).
	PutDeliveries(ctx context.Context, ds []Delivery) error
	// AddAttempt records an attempt and updates the delivery row (status, attempts, last
	// error) in the same transaction; an existing (id, destination, number) is left as it is.
	// When the delivery leaves no destination queued, the message status becomes sent, or
	// error if any destination dead-lettered. Every later call sees the attempt. For a
	// message that is not stored it returns ErrNotFound, or, where attempts are recorded
	// ahead of the tables (the SQLite store's attempt log), drops the attempt later.
	AddAttempt(ctx context.Context, id string, a Attempt, status DeliveryStatus) error
	// Delivery returns one delivery row, with its payload.
	Delivery(ctx context.Context, id, destination string) (Delivery, error)
	// DeliveryStates returns, for those of ids that have a delivery row for destination, that
	// row without its payload, keyed by message id. It is how the runtime learns, in one
	// query per batch, which messages an earlier pass already queued or delivered.
	DeliveryStates(ctx context.Context, destination string, ids []string) (map[string]Delivery, error)
	// Get returns a message with its stages, attempts and deliveries.
	Get(ctx context.Context, id string) (Detail, error)
	// Search finds messages, newest first, one page at a time.
	Search(ctx context.Context, q Query) (Page, error)
	// DeadLetters lists deliveries in dead_letter state, newest first.
	DeadLetters(ctx context.Context, q DeadLetterQuery) (DeadLetterPage, error)
	// Prune deletes messages of a channel received before the cutoff, with their stages,
	// attempts and deliveries, in batches of at most batch rows per transaction so ingest is
	// never blocked for long. It returns how many messages it deleted.
	Prune(ctx context.Context, channel string, before time.Time, batch int) (int64, error)
	// PutOrder records order context (see Order), keyed by accession number. A later
	// message for the same accession updates the stored order field by field: a non-empty
	// field replaces the stored one, an empty field keeps it, OrderedAt keeps the first value
	// known. A message older than the stored state (by UpdatedAt) changes no field, so a
	// late or replayed old message cannot undo a newer one; its message id still joins the
	// history. Writing the same message twice changes nothing. An empty Accession is an
	// error wrapping ErrInvalidOrder.
	PutOrder(ctx context.Context, o Order) error
	// PutOrders is PutOrder for several orders in one transaction, as the processor records
	// a pass of order messages: one commit, not one per order. Orders of one accession are
	// merged in the order given. An order without an accession fails the call before
	// anything is written.
	PutOrders(ctx context.Context, os []Order) error
	// Order returns the order context of an accession number, with MessageIDs filled, or
	// ErrNotFound.
	Order(ctx context.Context, accession string) (Order, error)
	// OrderByNumber returns the most recently updated order whose placer or filler order
	// number is n, or ErrNotFound.
	OrderByNumber(ctx context.Context, n string) (Order, error)
	// Ping checks the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}
