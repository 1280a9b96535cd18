package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/osprey-health/osprey/channels/internal/bearer"
	"github.com/osprey-health/osprey/channels/internal/listen"
	"github.com/osprey-health/osprey/engine"
	codec "github.com/osprey-health/osprey/engine/fhir"
)

// Defaults of SourceConfig.
const (
	DefaultAddress     = "127.0.0.1:8083"
	DefaultBasePath    = "/fhir"
	DefaultMaxBodySize = 16 << 20
)

// SourceConfig configures a [Source].
type SourceConfig struct {
	Address  string // host:port to listen on; "" means DefaultAddress
	BasePath string // path of the FHIR base; "" means DefaultBasePath
	// Tokens are the bearer tokens accepted. Empty means no authentication: keep such a
	// source on loopback.
	Tokens      []string
	TLS         *ServerTLS
	MaxBodySize int64 // largest request body; 0 means DefaultMaxBodySize
	// ResourceTypes, when set, are the only resource types accepted (Bundle must be listed
	// to take Bundles); anything else is answered 422 and kept as rejected.
	ResourceTypes []string
}

// Source is a FHIR R4 endpoint that takes resources, Bundles and Subscription rest-hook
// notifications and hands each to the channel as one message. A request is answered only
// once the engine has committed the message, so a 2xx always means it is on disk.
//
// Routes, under the base path:
//
//	POST /                         a Bundle (transaction, batch, message, collection...) or any resource
//	POST /{type}                   a resource of that type (a create)
//	POST /subscription[/{name}]    a notification: empty (id-only, or empty payload) or with a payload
//	PUT  /subscription/{name}/{type}/{id}   an R4 rest-hook notification carrying the resource
//
// Invalid content is answered 400 with an OperationOutcome naming each issue, and is still
// handed to the channel, marked with MetaInvalid, so that the analyst sees what was sent.
type Source struct {
	cfg SourceConfig
	res engine.Resources
	log *slog.Logger

	lis *listen.Point
}

// NewSource checks cfg and returns a source; it listens only in Listen or Run.
func NewSource(cfg SourceConfig, res engine.Resources) (*Source, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.BasePath == "" {
		cfg.BasePath = DefaultBasePath
	}
	if !strings.HasPrefix(cfg.BasePath, "/") {
		return nil, fmt.Errorf("fhir: base_path %q must start with /", cfg.BasePath)
	}
	cfg.BasePath = strings.TrimRight(cfg.BasePath, "/")
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	if cfg.TLS != nil {
		if err := cfg.TLS.Validate(); err != nil {
			return nil, fmt.Errorf("fhir: %w", err)
		}
	}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, res: res, log: res.Logger.With("component", "source.fhir"), lis: listen.New(cfg.Address, cfg.TLS)}, nil
}

// Listen binds the address; Run calls it when it has not been called.
func (s *Source) Listen() error {
	if _, err := s.lis.Listen(); err != nil {
		return fmt.Errorf("fhir: %w", err)
	}
	return nil
}

// Addr is the bound address, nil before Listen.
func (s *Source) Addr() net.Addr { return s.lis.Addr() }

// Ready is closed once the source serves requests.
func (s *Source) Ready() <-chan struct{} { return s.lis.Ready() }

// Run serves requests until ctx ends, then waits for those in flight.
func (s *Source) Run(ctx context.Context, sink engine.Sink) error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = outcomeError
	g := e.Group(s.cfg.BasePath, s.auth)
	base := func(c echo.Context) error { return s.receive(c, sink, c.Param("type"), "") }
	g.POST("", base)
	g.POST("/", base)
	g.POST("/:type", base)
	notify := func(c echo.Context) error { return s.notification(c, sink, c.Param("name")) }
	g.POST("/subscription", notify)
	g.POST("/subscription/:name", notify)
	g.PUT("/subscription/:name/:type/:id", notify)

	// ReadTimeout bounds a sender that trickles a body; 16MiB takes seconds on any real link.
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if err := s.lis.Serve(ctx, srv); err != nil {
		return fmt.Errorf("fhir: %w", err)
	}
	return nil
}

// auth checks the bearer token. Subscription rest-hooks send one when the Subscription's
// channel.header holds "Authorization: Bearer ...".
func (s *Source) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(s.cfg.Tokens) > 0 {
			if !bearer.Accepts(c.Request().Header.Get(echo.HeaderAuthorization), s.cfg.Tokens) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="osprey-fhir"`)
				return problem(http.StatusUnauthorized, "login", "a valid bearer token is required")
			}
		}
		return next(c)
	}
}

// read returns the request body, enforcing the size limit and the content type.
func (s *Source) read(c echo.Context) ([]byte, error) {
	r := c.Request()
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodySize+1))
	if err != nil {
		return nil, problem(http.StatusBadRequest, "structure", "read request: "+err.Error())
	}
	if int64(len(body)) > s.cfg.MaxBodySize {
		return nil, problem(http.StatusRequestEntityTooLarge, "too-long", fmt.Sprintf("request larger than %d bytes", s.cfg.MaxBodySize))
	}
	if len(body) > 0 {
		if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
			mt, _, _ := mime.ParseMediaType(ct)
			if mt != ContentFHIR && mt != "application/json" {
				return nil, problem(http.StatusUnsupportedMediaType, "not-supported", fmt.Sprintf("content type %q is not %s (only JSON is taken)", ct, ContentFHIR))
			}
		}
	}
	return body, nil
}

// receive takes a resource or Bundle; want is the resource type the path names ("" for the base).
func (s *Source) receive(c echo.Context, sink engine.Sink, want, sub string) error {
	body, err := s.read(c)
	if err != nil {
		return err
	}
	return s.take(c, sink, body, want, sub)
}

// take validates body and hands it to the channel.
func (s *Source) take(c echo.Context, sink engine.Sink, body []byte, want, sub string) error {
	meta := map[string]string{"remote_addr": c.Request().RemoteAddr}
	if sub != "" {
		meta[MetaSubscription] = sub
	}
	status := http.StatusOK
	if want != "" && c.Request().Method == http.MethodPost {
		status = http.StatusCreated
	}
	rt, err := codec.Validate(body)
	code := "invalid"
	if want != "" && c.Request().Method == http.MethodPut && err == nil && readHead(body).ID != c.Param("id") {
		err = fmt.Errorf("fhir: the body's id %q is not the URL's %q", readHead(body).ID, c.Param("id"))
	}
	switch {
	case err != nil:
		if len(body) == 0 {
			err = errors.New("fhir: empty body")
		}
	case want != "" && rt != want:
		err = fmt.Errorf("fhir: the body is a %s, the URL names %s", rt, want)
	case len(s.cfg.ResourceTypes) > 0 && !slices.Contains(s.cfg.ResourceTypes, rt):
		err, code = fmt.Errorf("fhir: resource type %s is not accepted here (resource_types: %s)", rt, strings.Join(s.cfg.ResourceTypes, ", ")), "not-supported"
	}
	if err != nil {
		return s.invalid(c, sink, body, meta, code, err)
	}
	h := readHead(body)
	meta[MetaResourceType] = rt
	if h.ID != "" {
		meta[MetaID] = h.ID
	}
	if v := c.Request().Header.Get("If-None-Exist"); v != "" && rt != "Bundle" {
		// Kept so that a channel passing resources on to destination.fhir keeps the
		// sender's conditional create.
		meta[MetaIfNoneExist] = v
	}
	if rt == "Bundle" && h.Type != "" {
		meta[MetaBundleType] = h.Type
	}
	if ref, typ, ok := h.status(); ok && rt == "Bundle" && h.Type == "history" {
		// A Subscriptions Backport (or R4B/R5) notification names its subscription and
		// its kind in the status entry; the notification URL's name, when there is one,
		// is what the site configured, so it wins.
		if meta[MetaSubscription] == "" && ref != "" {
			meta[MetaSubscription] = ref
		}
		if typ != "" {
			meta[MetaNotificationType] = typ
		}
		if typ == "handshake" || typ == "heartbeat" {
			// Liveness checks of the subscription carry no data: answered, not kept, so a
			// heartbeat a minute does not fill the message history.
			s.log.Debug("fhir: subscription "+typ, "subscription", meta[MetaSubscription])
			return c.Blob(http.StatusOK, ContentFHIR, codec.NewOperationOutcome("information", "informational", typ+" acknowledged"))
		}
	}
	return s.hand(c, sink, &engine.Message{Channel: s.res.Channel, ContentType: ContentFHIR, Body: body, ReceivedAt: time.Now().UTC(), Meta: meta}, status)
}

// notification takes a Subscription rest-hook call.
func (s *Source) notification(c echo.Context, sink engine.Sink, name string) error {
	if c.Request().Method == http.MethodPut {
		return s.receive(c, sink, c.Param("type"), name)
	}
	body, err := s.read(c)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		return s.take(c, sink, body, "", name)
	}
	// An id-only or empty R4 notification says only "something changed": the message says
	// which subscription, so a channel can go and read what it needs.
	n := Notification{Subscription: name, ReceivedAt: time.Now().UTC()}
	b, _ := json.Marshal(n) // strings and a time always marshal
	meta := map[string]string{"remote_addr": c.Request().RemoteAddr}
	if name != "" {
		meta[MetaSubscription] = name
	}
	return s.hand(c, sink, &engine.Message{Channel: s.res.Channel, ContentType: ContentNotification, Body: b, ReceivedAt: n.ReceivedAt, Meta: meta}, http.StatusOK)
}

// Notification is the body of a message made from a notification without payload.
type Notification struct {
	Subscription string    `json:"subscription,omitempty"` // the name in the notification URL
	ReceivedAt   time.Time `json:"received_at"`
}

// hand commits m and answers once the engine has decided.
func (s *Source) hand(c echo.Context, sink engine.Sink, m *engine.Message, status int) error {
	rcpt, err := sink.Accept(c.Request().Context(), m)
	if err != nil {
		s.log.Warn("fhir: message not stored", "error", err, "resource_type", m.Meta[MetaResourceType])
		c.Response().Header().Set("Retry-After", "5")
		return problem(http.StatusServiceUnavailable, "transient", "message not stored; try again later")
	}
	c.Response().Header().Set(HeaderMessageID, rcpt.ID)
	if rcpt.Verdict == engine.Rejected {
		reason := "message rejected"
		if rcpt.Reason != nil {
			reason = rcpt.Reason.Error()
		}
		s.log.Info("fhir: message rejected", "id", rcpt.ID, "reason", reason)
		return problem(http.StatusBadRequest, "processing", reason)
	}
	s.log.Debug("fhir: message accepted", "id", rcpt.ID, "verdict", rcpt.Verdict.String(), "resource_type", m.Meta[MetaResourceType], "bytes", len(m.Body))
	text := "accepted as message " + rcpt.ID
	if rcpt.Verdict == engine.Duplicate {
		text = "already received; recorded as message " + rcpt.ID
	}
	return c.Blob(status, ContentFHIR, codec.NewOperationOutcome("information", "informational", text))
}

// invalid keeps content that failed validation and answers 400 (422 for a valid resource of
// a type not taken here) with the issues.
func (s *Source) invalid(c echo.Context, sink engine.Sink, body []byte, meta map[string]string, code string, cause error) error {
	meta[MetaInvalid] = cause.Error()
	if rt, err := codec.ResourceType(body); err == nil {
		meta[MetaResourceType] = rt
	}
	m := &engine.Message{Channel: s.res.Channel, ContentType: ContentFHIR, Body: body, ReceivedAt: time.Now().UTC(), Meta: meta,
		Reject: cause}
	id := ""
	if len(body) > 0 {
		if rcpt, err := sink.Accept(c.Request().Context(), m); err != nil {
			s.log.Warn("fhir: invalid content not stored", "error", err)
		} else {
			id = rcpt.ID
			c.Response().Header().Set(HeaderMessageID, id)
		}
	}
	s.log.Info("fhir: invalid content", "id", id, "reason", cause.Error())
	status := http.StatusBadRequest
	if code == "not-supported" {
		status = http.StatusUnprocessableEntity
	}
	return c.Blob(status, ContentFHIR, outcomeOf(code, cause))
}

// head is what the source reads of a valid body for the message's metadata.
type head struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Entry []struct {
		Resource struct {
			ResourceType string    `json:"resourceType"`
			Subscription reference `json:"subscription"`
			Type         string    `json:"type"`
			Parameter    []struct {
				Name           string    `json:"name"`
				ValueReference reference `json:"valueReference"`
				ValueCode      string    `json:"valueCode"`
			} `json:"parameter"`
		} `json:"resource"`
	} `json:"entry"`
}

type reference struct {
	Reference string `json:"reference"`
}

func readHead(body []byte) head {
	var h head
	_ = json.Unmarshal(body, &h) // body has been validated
	return h
}

// status reads the subscription status a notification Bundle starts with: the
// subscription's reference and the notification type (event-notification, handshake,
// heartbeat...). ok is false when the first entry is no status.
func (h head) status() (ref, typ string, ok bool) {
	if len(h.Entry) == 0 {
		return "", "", false
	}
	// A SubscriptionStatus (R4B, R5) or, in the R4 Subscriptions Backport, a Parameters
	// resource with "subscription" and "type" parameters.
	r := h.Entry[0].Resource
	switch r.ResourceType {
	case "SubscriptionStatus":
		return r.Subscription.Reference, r.Type, true
	case "Parameters":
		for _, p := range r.Parameter {
			switch p.Name {
			case "subscription":
				ref, ok = p.ValueReference.Reference, true
			case "type":
				typ = p.ValueCode
			}
		}
		return ref, typ, ok
	}
	return "", "", false
}

// problem is an error answered as an OperationOutcome.
func problem(status int, code, text string) error {
	return &echo.HTTPError{Code: status, Message: text, Internal: errors.New(code)}
}

// outcomeError answers every error as an OperationOutcome, as FHIR clients expect.
func outcomeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, text := http.StatusInternalServerError, "exception", "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status, text = he.Code, fmt.Sprint(he.Message)
		switch {
		case he.Internal != nil:
			code = he.Internal.Error()
		case status == http.StatusNotFound:
			code = "not-found"
		case status == http.StatusMethodNotAllowed:
			code = "not-supported"
		}
	}
	_ = c.Blob(status, ContentFHIR, codec.NewOperationOutcome("error", code, text))
}

// Interface guards.
var _ engine.Source = (*Source)(nil)
