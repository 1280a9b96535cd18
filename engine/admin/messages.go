package admin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/store"
)

// Bodies (a message as received, a stage's output, what was sent, the peer's reply) are
// bytes. In JSON each is one of two fields: "<name>" holding the text when the bytes are
// valid UTF-8 (HL7 segment separators come out as "\r"), or "<name>_base64" holding
// standard base64 otherwise (HL7 in ISO 8859-1, DICOM). An empty body has neither.
func body(b []byte) (text, b64 string) {
	switch {
	case len(b) == 0:
		return "", ""
	case utf8.Valid(b):
		return string(b), ""
	}
	return "", base64.StdEncoding.EncodeToString(b)
}

// messageView is a store.Message as the API shows it.
type messageView struct {
	ID          string            `json:"id"`
	Channel     string            `json:"channel"`
	ContentType string            `json:"content_type"`
	ReceivedAt  time.Time         `json:"received_at"`
	Source      map[string]string `json:"source,omitempty"`
	ControlID   string            `json:"control_id,omitempty"`
	MessageType string            `json:"message_type,omitempty"`
	PatientID   string            `json:"patient_id,omitempty"`
	Accession   string            `json:"accession,omitempty"`
	Sender      string            `json:"sender,omitempty"`
	Status      store.Status      `json:"status"`
	Error       string            `json:"error,omitempty"`
	UpdatedAt   time.Time         `json:"updated_at"`
	ReprocessOf string            `json:"reprocess_of,omitempty"`
	Size        int               `json:"size,omitempty"` // bytes of raw; detail only
	Raw         string            `json:"raw,omitempty"`
	RawBase64   string            `json:"raw_base64,omitempty"`
}

func viewMessage(m store.Message) messageView {
	v := messageView{
		ID: m.ID, Channel: m.Channel, ContentType: m.ContentType, ReceivedAt: m.ReceivedAt,
		Source: m.Source, ControlID: m.ControlID, MessageType: m.MessageType, PatientID: m.PatientID,
		Accession: m.Accession, Sender: m.Sender, Status: m.Status, Error: m.Error,
		UpdatedAt: m.UpdatedAt, ReprocessOf: m.ReprocessOf, Size: len(m.Raw),
	}
	v.Raw, v.RawBase64 = body(m.Raw)
	return v
}

type stageView struct {
	Seq          int       `json:"seq"`
	Name         string    `json:"name"`
	At           time.Time `json:"at"`
	Output       string    `json:"output,omitempty"`
	OutputBase64 string    `json:"output_base64,omitempty"`
	Error        string    `json:"error,omitempty"`
}

type attemptView struct {
	Destination  string    `json:"destination"`
	Number       int       `json:"number"`
	At           time.Time `json:"at"`
	DurationMS   float64   `json:"duration_ms"`
	OK           bool      `json:"ok"`
	Error        string    `json:"error,omitempty"`
	ReplySummary string    `json:"reply_summary,omitempty"`
	Reply        string    `json:"reply,omitempty"`
	ReplyBase64  string    `json:"reply_base64,omitempty"`
	Sent         string    `json:"sent,omitempty"`
	SentBase64   string    `json:"sent_base64,omitempty"`
}

// detailView is the answer of GET /api/v1/messages/{id}.
type detailView struct {
	Message    messageView      `json:"message"`
	Stages     []stageView      `json:"stages"`
	Attempts   []attemptView    `json:"attempts"`
	Deliveries []store.Delivery `json:"deliveries"`
}

func viewDetail(d store.Detail) detailView {
	v := detailView{
		Message:    viewMessage(d.Message),
		Stages:     make([]stageView, len(d.Stages)),
		Attempts:   make([]attemptView, len(d.Attempts)),
		Deliveries: d.Deliveries,
	}
	for i, st := range d.Stages {
		v.Stages[i] = stageView{Seq: st.Seq, Name: st.Name, At: st.At, Error: st.Error}
		v.Stages[i].Output, v.Stages[i].OutputBase64 = body(st.Output)
	}
	for i, a := range d.Attempts {
		av := attemptView{Destination: a.Destination, Number: a.Number, At: a.At,
			DurationMS: float64(a.Duration) / float64(time.Millisecond),
			OK:         a.OK, Error: a.Error, ReplySummary: a.ReplySummary}
		av.Reply, av.ReplyBase64 = body(a.Reply)
		av.Sent, av.SentBase64 = body(a.Sent)
		v.Attempts[i] = av
	}
	if v.Deliveries == nil {
		v.Deliveries = []store.Delivery{}
	}
	return v
}

// searchResult is the answer of GET /api/v1/messages.
type searchResult struct {
	Messages []messageView `json:"messages"`
	Next     string        `json:"next,omitempty"`
}

var statuses = []store.Status{store.StatusReceived, store.StatusRejected, store.StatusDuplicate,
	store.StatusFiltered, store.StatusQueued, store.StatusSent, store.StatusError}

func (s *Server) searchMessages(c echo.Context) error {
	p, err := queryParams(c, "channel", "status", "type", "control_id", "patient_id", "accession",
		"sender", "q", "from", "to", "limit", "cursor")
	if err != nil {
		return err
	}
	q := store.Query{
		Channel:     p.str("channel"),
		Status:      store.Status(p.str("status")),
		MessageType: p.str("type"),
		ControlID:   p.str("control_id"),
		PatientID:   p.str("patient_id"),
		Accession:   p.str("accession"),
		Sender:      p.str("sender"),
		Text:        p.v.Get("q"), // a substring: blanks can matter
		Cursor:      p.str("cursor"),
	}
	if q.Status != "" && !knownStatus(q.Status) {
		return badParam("status", "%q is not one of %v", q.Status, statuses)
	}
	if q.Limit, err = p.limit(); err != nil {
		return err
	}
	if q.From, err = p.time("from"); err != nil {
		return err
	}
	if q.To, err = p.time("to"); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return badParam("to", "must be after from (%s)", q.From.Format(time.RFC3339))
	}
	page, err := s.store.Search(c.Request().Context(), q)
	if errors.Is(err, store.ErrInvalidCursor) {
		return badParam("cursor", "not a cursor from a previous page's next")
	}
	if err != nil {
		return fmt.Errorf("search messages: %w", err)
	}
	res := searchResult{Messages: make([]messageView, len(page.Messages)), Next: page.Next}
	for i, m := range page.Messages {
		m.Raw = nil // search results are summaries; the detail route has the body
		res.Messages[i] = viewMessage(m)
		res.Messages[i].Size = 0
	}
	return c.JSON(http.StatusOK, res)
}

func knownStatus(st store.Status) bool {
	for _, k := range statuses {
		if st == k {
			return true
		}
	}
	return false
}

// notFound turns a missing message into a 404 that names it; other errors pass through.
func notFound(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, engine.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("message %q not found", id), Err: err}
	}
	return err
}

func (s *Server) getMessage(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	d, err := s.store.Get(c.Request().Context(), id)
	if err != nil {
		return notFound(err, id)
	}
	return c.JSON(http.StatusOK, viewDetail(d))
}

// reprocessResult is the answer of POST /api/v1/messages/{id}/reprocess.
type reprocessResult struct {
	ID          string `json:"id"`
	ReprocessOf string `json:"reprocess_of"`
}

func (s *Server) reprocessMessage(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if _, err := queryParams(c); err != nil {
		return err
	}
	newID, err := s.eng.Reprocess(c.Request().Context(), id)
	if err != nil {
		return notFound(err, id)
	}
	s.log.Info("admin: reprocess", "message_id", id, "new_id", newID, "token", c.Get(principalKey))
	return c.JSON(http.StatusAccepted, reprocessResult{ID: newID, ReprocessOf: id})
}

// deadLetterList is the answer of GET /api/v1/deadletters.
type deadLetterList struct {
	DeadLetters []store.Delivery `json:"dead_letters"`
	Next        string           `json:"next,omitempty"`
}

func (s *Server) listDeadLetters(c echo.Context) error {
	p, err := queryParams(c, "channel", "destination", "limit", "cursor")
	if err != nil {
		return err
	}
	q := store.DeadLetterQuery{Channel: p.str("channel"), Destination: p.str("destination"), Cursor: p.str("cursor")}
	if q.Limit, err = p.limit(); err != nil {
		return err
	}
	page, err := s.store.DeadLetters(c.Request().Context(), q)
	if errors.Is(err, store.ErrInvalidCursor) {
		return badParam("cursor", "not a cursor from a previous page's next")
	}
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	res := deadLetterList{DeadLetters: page.Deliveries, Next: page.Next}
	if res.DeadLetters == nil {
		res.DeadLetters = []store.Delivery{}
	}
	return c.JSON(http.StatusOK, res)
}

// requeueResult is the answer of POST /api/v1/deadletters/{id}/requeue.
type requeueResult struct {
	ID          string `json:"id"`
	Destination string `json:"destination,omitempty"` // absent: every dead-lettered destination
	Status      string `json:"status"`
}

func (s *Server) requeueDeadLetter(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	p, err := queryParams(c, "destination")
	if err != nil {
		return err
	}
	dest := p.str("destination")
	if err := s.eng.Requeue(c.Request().Context(), id, dest); err != nil {
		// The engine's text says whether the message or the destination is missing.
		return fmt.Errorf("requeue: %w", err)
	}
	s.log.Info("admin: requeue", "message_id", id, "destination", dest, "token", c.Get(principalKey))
	return c.JSON(http.StatusAccepted, requeueResult{ID: id, Destination: dest, Status: "requeued"})
}
