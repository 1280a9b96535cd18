package fhir

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine"
	codec "github.com/osprey-health/osprey/engine/fhir"
)

// Defaults for DestinationConfig fields left zero.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultParallelism = 4
)

// Conditional-create modes of DestinationConfig.Conditional.
const (
	// ConditionalNone sends If-None-Exist only when the message carries MetaIfNoneExist.
	ConditionalNone = "none"
	// ConditionalIdentifier derives If-None-Exist from the resource's first identifier
	// ("identifier=system|value") when the message carries none, so a redelivery finds the
	// resource created the first time instead of creating a second one.
	ConditionalIdentifier = "identifier"
)

// maxResponse bounds a server's answer read into memory: a transaction-response Bundle with
// return=representation for a large transaction is some megabytes.
const maxResponse = 64 << 20

// DestinationConfig configures a [Destination].
type DestinationConfig struct {
	URL     string // the FHIR service base, "https://ehr.example.org/fhir/R4"; required
	Auth    Auth
	TLS     *ClientTLS    // nil: system roots
	Timeout time.Duration // per request, token requests included; 0 means DefaultTimeout
	// Conditional is ConditionalNone (the default when empty) or ConditionalIdentifier.
	Conditional string
	// Prefer is sent as "Prefer: return=<Prefer>": "OperationOutcome" (the default when
	// empty), "minimal" or "representation".
	Prefer string
	// Headers are sent with every request (a tenant or API-gateway key, say).
	Headers map[string]string
	// Parallelism is how many messages may be in flight at once; 0 means DefaultParallelism.
	Parallelism int
}

// Destination delivers FHIR R4 JSON to a FHIR server: a transaction or batch Bundle is
// POSTed to the service base, any other resource to base/<resourceType> (a create), with
// If-None-Exist when a conditional query is known. See DestinationSpec for how answers map to
// delivered, retried and rejected.
type Destination struct {
	cfg    DestinationConfig
	base   string
	http   *http.Client
	tokens *tokens // nil unless OAuth2
	log    *slog.Logger
}

// RetryError is a failure worth retrying: no answer, 408, 429 or 5xx. RetryAfter is the
// wait the server asked for with Retry-After (0 when it named none); the engine's backoff
// should wait at least that long before the next attempt.
type RetryError struct {
	Status int           // HTTP status; 0 when no answer arrived
	After  time.Duration // from Retry-After
	Err    error
}

func (e *RetryError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter is the wait the server asked for before the next attempt.
func (e *RetryError) RetryAfter() time.Duration { return e.After }

// NewDestination checks cfg and returns a destination; it connects nowhere until Send.
func NewDestination(cfg DestinationConfig, res engine.Resources) (*Destination, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fhir: destination url %q is not an http(s) URL", cfg.URL)
	}
	if err := cfg.Auth.check(); err != nil {
		return nil, err
	}
	switch cfg.Conditional {
	case "":
		cfg.Conditional = ConditionalNone
	case ConditionalNone, ConditionalIdentifier:
	default:
		return nil, fmt.Errorf("fhir: conditional %q is not %q or %q", cfg.Conditional, ConditionalNone, ConditionalIdentifier)
	}
	switch cfg.Prefer {
	case "":
		cfg.Prefer = "OperationOutcome"
	case "OperationOutcome", "minimal", "representation":
	default:
		return nil, fmt.Errorf("fhir: prefer %q is not OperationOutcome, minimal or representation", cfg.Prefer)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = DefaultParallelism
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Parallelism
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("fhir: destination tls: %w", err)
		}
		tr.TLSClientConfig = tc
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A FHIR server that redirects a POST is misconfigured or moved; following would
		// turn the create into a GET and report a success that never happened.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	log := res.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Destination{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), http: client, log: log.With("component", "destination.fhir", "peer", u.Host)}
	if cfg.Auth.OAuth2 != nil {
		d.tokens = newTokens(cfg.Auth.OAuth2, client)
	}
	return d, nil
}

// Parallelism bounds the messages in flight (see engine.Parallel).
func (d *Destination) Parallelism() int { return d.cfg.Parallelism }

// request is what Send derived from a message: where it goes and how.
type request struct {
	url         string
	rt          string // resource type of the body
	bundleType  string // for a Bundle
	ifNoneExist string
}

// plan validates the message and decides its request. Its errors are undeliverable.
func (d *Destination) plan(m *engine.Message) (request, error) {
	if mt, _, _ := mime.ParseMediaType(m.ContentType); m.ContentType != "" && mt != ContentFHIR && mt != "application/json" {
		return request{}, fmt.Errorf("content type %q is not %s (add a transform that maps it to FHIR)", m.ContentType, ContentFHIR)
	}
	rt, err := codec.Validate(m.Body)
	if err != nil {
		return request{}, err
	}
	r := request{rt: rt, url: d.base + "/" + rt}
	var head struct {
		Type       string `json:"type"`
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := json.Unmarshal(m.Body, &head); err != nil {
		return request{}, err
	}
	if rt == "Bundle" {
		r.bundleType = head.Type
		if head.Type == "transaction" || head.Type == "batch" {
			r.url = d.base
			return r, nil // conditional creates of a Bundle live in its entries' request.ifNoneExist
		}
	}
	r.ifNoneExist = m.Meta[MetaIfNoneExist]
	if r.ifNoneExist == "" && d.cfg.Conditional == ConditionalIdentifier && len(head.Identifier) > 0 && head.Identifier[0].Value != "" {
		id := head.Identifier[0]
		tok := id.Value
		if id.System != "" {
			tok = id.System + "|" + id.Value
		}
		r.ifNoneExist = url.Values{"identifier": {tok}}.Encode()
	}
	return r, nil
}

// Send POSTs the message's resource or Bundle and returns the server's answer.
func (d *Destination) Send(ctx context.Context, m *engine.Message) (engine.Reply, error) {
	r, err := d.plan(m)
	if err != nil {
		// What is wrong is the message itself: no retry can cure it.
		return engine.Reply{Summary: "not sent: " + err.Error()}, fmt.Errorf("fhir: message %s: %w: %w", m.ID, err, engine.ErrUndeliverable)
	}
	resp, body, err := d.post(ctx, r, m.Body)
	if err != nil {
		return engine.Reply{Summary: "no answer"}, &RetryError{Err: err}
	}
	reply := engine.Reply{ContentType: resp.Header.Get("Content-Type"), Body: body, Summary: fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	text, isOutcome := outcomeText(body)
	switch st := resp.StatusCode; {
	case st >= 200 && st < 300:
		return d.delivered(r, resp, body, reply)
	case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500:
		reply.Summary = withText(reply.Summary, text, isOutcome, body)
		after := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return reply, &RetryError{Status: st, After: after, Err: fmt.Errorf("fhir: POST %s: %s", r.url, reply.Summary)}
	default:
		reply.Summary = withText(reply.Summary, text, isOutcome, body)
		return reply, fmt.Errorf("fhir: POST %s: %s: %w", r.url, reply.Summary, engine.ErrRejected)
	}
}

// delivered checks a 2xx answer: a batch (or a transaction a server answered loosely) is
// delivered only when every entry succeeded.
func (d *Destination) delivered(r request, resp *http.Response, body []byte, reply engine.Reply) (engine.Reply, error) {
	if r.bundleType != "transaction" && r.bundleType != "batch" {
		if loc := resp.Header.Get("Location"); loc != "" {
			reply.Summary += " " + strings.TrimPrefix(loc, d.base+"/")
		} else if resp.StatusCode == http.StatusOK && r.ifNoneExist != "" {
			reply.Summary += " (already exists)"
		}
		return reply, nil
	}
	entries, err := codec.ParseBundleResponse(body)
	if err != nil {
		// Servers must answer a transaction with a response Bundle; one that answers 2xx
		// with something else has still accepted it, and the body is kept for the record.
		reply.Summary += ": answer is not a response Bundle"
		return reply, nil
	}
	var retryable, refused int
	var texts []string
	for i, e := range entries {
		st := statusCode(e.Status)
		switch {
		case st >= 200 && st < 300:
			continue
		case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500 || st == 0:
			retryable++
		default:
			refused++
		}
		t := "status " + strconv.Quote(e.Status)
		if e.Outcome != nil && len(e.Outcome.Issues) > 0 {
			t = e.Outcome.String()
		}
		texts = append(texts, fmt.Sprintf("entry %d: %s", i+1, t))
	}
	failed := retryable + refused
	reply.Summary += fmt.Sprintf(": %s, %d of %d entries OK", r.bundleType, len(entries)-failed, len(entries))
	if failed == 0 {
		return reply, nil
	}
	reply.Summary += ": " + strings.Join(texts, "; ")
	if retryable > 0 && refused == 0 {
		// Resending the whole batch repeats the entries that succeeded: conditional creates
		// (request.ifNoneExist) in the entries make that safe.
		return reply, &RetryError{Status: resp.StatusCode, Err: fmt.Errorf("fhir: POST %s: %s", r.url, reply.Summary)}
	}
	return reply, fmt.Errorf("fhir: POST %s: %s: %w", r.url, reply.Summary, engine.ErrRejected)
}

// post sends body to r.url with the configured credentials. With OAuth2, a 401 drops the
// cached token and the request is sent once more with a fresh one: the server may have
// revoked the token before its stated expiry.
func (d *Destination) post(ctx context.Context, r request, body []byte) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
		if err != nil {
			return nil, nil, fmt.Errorf("fhir: POST %s: %w", r.url, err)
		}
		req.Header.Set("Content-Type", ContentFHIR+"; charset=utf-8")
		req.Header.Set("Accept", ContentFHIR)
		req.Header.Set("Prefer", "return="+d.cfg.Prefer)
		if r.ifNoneExist != "" {
			req.Header.Set("If-None-Exist", r.ifNoneExist)
		}
		for k, v := range d.cfg.Headers {
			req.Header.Set(k, v)
		}
		access := ""
		switch a := d.cfg.Auth; {
		case d.tokens != nil:
			if access, err = d.tokens.token(ctx); err != nil {
				return nil, nil, err
			}
			req.Header.Set("Authorization", "Bearer "+access)
		case a.Token != "":
			req.Header.Set("Authorization", "Bearer "+a.Token)
		case a.Username != "":
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
		}
		resp, err := d.http.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("fhir: POST %s: %w", r.url, err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("fhir: POST %s: read answer: %w", r.url, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && d.tokens != nil && attempt == 0 {
			d.tokens.invalidate(access)
			d.log.Info("token refused; fetching a new one")
			continue
		}
		return resp, b, nil
	}
}

// withText appends what the server said to a status line: the OperationOutcome's issues,
// or the start of a body that is not one.
func withText(status, text string, isOutcome bool, body []byte) string {
	if !isOutcome {
		text = snippet(body)
	}
	if text == "" {
		return status
	}
	return status + ": " + text
}

func snippet(b []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// statusCode reads the code at the start of a Bundle entry's response.status ("201 Created").
func statusCode(s string) int {
	f, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	n, _ := strconv.Atoi(f)
	return n
}

// maxRetryAfter caps what a server may ask for, so a misconfigured proxy cannot park a
// queue for days.
const maxRetryAfter = time.Hour

// retryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 10.2.3).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		d = time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// Interface guards.
var (
	_ engine.Destination = (*Destination)(nil)
	_ engine.Parallel    = (*Destination)(nil)
	_ error              = (*RetryError)(nil)
)
