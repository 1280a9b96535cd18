package dicomweb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/channels/internal/bearer"
	"github.com/osprey-health/osprey/channels/internal/listen"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// EventStudyStable is the event of a notification: the PACS considers the study complete.
const EventStudyStable = "study.stable"

// Notification is the JSON body source.dicomweb_notify takes.
type Notification struct {
	Event            string `json:"event"`              // EventStudyStable
	StudyInstanceUID string `json:"study_instance_uid"` // required
	AccessionNumber  string `json:"accession_number,omitempty"`
	// DICOMweb is the service root to read the study from; empty means the configured url.
	DICOMweb string `json:"dicomweb,omitempty"`
}

// NotifyConfig configures a [NotifySource].
type NotifyConfig struct {
	Address     string
	Path        string
	Tokens      []string // bearer tokens the PACS must send; empty: none needed
	TLS         *ServerTLS
	URL         string   // default DICOMweb root of the PACS
	AllowedURLs []string // other roots a notification may name
	Client      ClientConfig
	Bucket      string // KV bucket of queued notifications; "" means "osprey-<channel>-notify"
}

// NotifySource takes "study stable" webhooks, reads each study's metadata from the PACS by
// WADO-RS and hands the channel a study message.
//
// A notification is answered 202 as soon as it is queued durably (a JetStream key-value
// bucket), and read from the PACS afterwards. It cannot be answered after the read: Orthanc
// runs its Lua callbacks under a lock that its own DICOMweb requests need, so a webhook that
// calls back into Orthanc before answering deadlocks until the HTTP timeout. Queued
// notifications survive a restart; one whose study cannot be read is retried with backoff
// for a day, then dropped with an error in the log.
type NotifySource struct {
	cfg     NotifyConfig
	res     engine.Resources
	log     *slog.Logger
	clients map[string]*Client // by normalised service root

	lis  *listen.Point
	wake chan struct{}
}

// queued is a notification waiting to be read from its PACS.
type queued struct {
	Notification
	Base       string    `json:"base"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	Received   time.Time `json:"received"`
}

// giveUp is how long a queued notification is retried.
const giveUp = 24 * time.Hour

func normURL(u string) string { return strings.TrimRight(strings.TrimSpace(u), "/") }

// NewNotifySource checks cfg and returns a source; it listens only in Run.
func NewNotifySource(cfg NotifyConfig, res engine.Resources) (*NotifySource, error) {
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:8082"
	}
	if cfg.Path == "" {
		cfg.Path = "/notify"
	}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "osprey-" + res.Channel + "-notify"
		if res.Channel == "" {
			cfg.Bucket = "osprey-notify"
		}
	}
	s := &NotifySource{cfg: cfg, res: res, log: res.Logger.With("component", "source.dicomweb_notify"), clients: map[string]*Client{}, lis: listen.New(cfg.Address, cfg.TLS), wake: make(chan struct{}, 1)}
	for _, u := range append([]string{cfg.URL}, cfg.AllowedURLs...) {
		c, err := NewClient(normURL(u), cfg.Client)
		if err != nil {
			return nil, err
		}
		s.clients[normURL(u)] = c
	}
	return s, nil
}

// Listen binds the address; Run calls it when it has not been called.
func (s *NotifySource) Listen() error {
	if _, err := s.lis.Listen(); err != nil {
		return fmt.Errorf("dicomweb: %w", err)
	}
	return nil
}

// Addr is the bound address, nil before Listen.
func (s *NotifySource) Addr() net.Addr { return s.lis.Addr() }

// Ready is closed once the source serves requests.
func (s *NotifySource) Ready() <-chan struct{} { return s.lis.Ready() }

// Run serves webhooks and reads the studies they announce until ctx ends.
func (s *NotifySource) Run(ctx context.Context, sink engine.Sink) error {
	if s.res.Broker == nil {
		return errors.New("dicomweb: source.dicomweb_notify needs the engine's broker to queue notifications")
	}
	kv, err := s.res.Broker.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.cfg.Bucket,
		Description: "study notifications waiting to be read from their PACS",
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("dicomweb: notification queue %s: %w", s.cfg.Bucket, err)
	}
	if err := s.Listen(); err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpError
	e.POST(s.cfg.Path, func(c echo.Context) error { return s.notify(c, kv) })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.work(ctx, kv, sink)
	}()
	defer wg.Wait()
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if err := s.lis.Serve(ctx, srv); err != nil {
		return fmt.Errorf("dicomweb: notifications: %w", err)
	}
	return nil
}

// maxNotification bounds a webhook body: the JSON is a few hundred bytes.
const maxNotification = 64 << 10

func (s *NotifySource) notify(c echo.Context, kv jetstream.KeyValue) error {
	if len(s.cfg.Tokens) > 0 {
		if !bearer.Accepts(c.Request().Header.Get(echo.HeaderAuthorization), s.cfg.Tokens) {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="osprey-notify"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "dicomweb: a valid bearer token is required")
		}
	}
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, maxNotification+1))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "dicomweb: read notification: "+err.Error())
	}
	if len(raw) > maxNotification {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "dicomweb: notification larger than 64KiB")
	}
	var n Notification
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&n); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "dicomweb: notification is not JSON: "+err.Error())
	}
	if n.Event != EventStudyStable {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("dicomweb: event %q is not %q", n.Event, EventStudyStable))
	}
	if dicom.ValidUID(n.StudyInstanceUID) != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "dicomweb: study_instance_uid missing or not a UID")
	}
	base := normURL(n.DICOMweb)
	if base == "" {
		base = normURL(s.cfg.URL)
	}
	client := s.clients[base]
	if client == nil {
		return echo.NewHTTPError(http.StatusForbidden, "dicomweb: dicomweb "+base+" is not the configured url nor in allowed_urls")
	}
	q := queued{Notification: n, Base: client.Base(), RemoteAddr: remoteAddr(c), Received: time.Now().UTC()}
	b, err := json.Marshal(q)
	if err != nil {
		return err
	}
	if _, err := kv.Put(c.Request().Context(), keyUID(n.StudyInstanceUID), b); err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "dicomweb: could not queue the notification, retry: "+err.Error())
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.log.Info("dicomweb: study notification queued", "study_instance_uid", n.StudyInstanceUID, "remote_addr", q.RemoteAddr)
	return c.JSON(http.StatusAccepted, map[string]string{"status": "queued", "study_instance_uid": n.StudyInstanceUID})
}

// work reads queued studies from their PACS and hands them to the sink, until ctx ends.
func (s *NotifySource) work(ctx context.Context, kv jetstream.KeyValue, sink engine.Sink) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	retry := map[string]retryState{}
	for {
		keys, err := kv.ListKeys(ctx)
		if err == nil {
			for k := range keys.Keys() {
				if time.Now().Before(retry[k].next) {
					continue
				}
				if err := s.process(ctx, kv, sink, k); err != nil {
					r := retry[k]
					r.backoff = min(max(r.backoff*2, time.Second), maxBackoff)
					r.next = time.Now().Add(r.backoff)
					retry[k] = r
					if ctx.Err() == nil {
						s.log.Warn("dicomweb: read notified study, will retry", "study_instance_uid", uidOfKey(k), "retry_in", r.backoff, "error", err)
					}
					continue
				}
				delete(retry, k)
			}
		} else if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			s.log.Error("dicomweb: list queued notifications", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// process handles one queued notification; the queue entry is removed once the engine has
// the study (or the notification is too old to retry).
func (s *NotifySource) process(ctx context.Context, kv jetstream.KeyValue, sink engine.Sink, key string) error {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var q queued
	if err := json.Unmarshal(e.Value(), &q); err != nil {
		s.log.Error("dicomweb: drop unreadable queued notification", "key", key, "error", err)
		return kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	}
	client := s.clients[q.Base]
	if client == nil {
		s.log.Error("dicomweb: drop queued notification for a PACS no longer configured", "study_instance_uid", q.StudyInstanceUID, "dicomweb", q.Base)
		return kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	}
	sum, err := fetchSummary(ctx, client, q.StudyInstanceUID, dicom.SourceNotify)
	if err != nil {
		if time.Since(q.Received) > giveUp {
			s.log.Error("dicomweb: giving up on notified study", "study_instance_uid", q.StudyInstanceUID, "since", q.Received, "error", err)
			return kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		}
		return err
	}
	m, err := studyMessage(s.res.Channel, sum, map[string]string{"remote_addr": q.RemoteAddr})
	if err != nil {
		return err
	}
	receipt, err := sink.Accept(ctx, m)
	if err != nil {
		return fmt.Errorf("dicomweb: hand study %s to the channel: %w", q.StudyInstanceUID, err)
	}
	s.log.Info("dicomweb: notified study", "study_instance_uid", sum.StudyInstanceUID, "instances", sum.NumberOfInstances, "message_id", receipt.ID, "verdict", receipt.Verdict.String())
	// A notification that arrived meanwhile (a changed revision) stays queued and is read
	// again: the study may have grown.
	if err := kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	return nil
}

// fetchSummary reads a study's metadata from a DICOMweb server and summarises it.
func fetchSummary(ctx context.Context, c *Client, study, source string) (dicom.StudySummary, error) {
	meta, err := c.Metadata(ctx, study)
	if err != nil {
		return dicom.StudySummary{}, err
	}
	sum, err := dicom.SummarizeMetadata(meta)
	if err != nil {
		return dicom.StudySummary{}, fmt.Errorf("dicomweb: metadata of %s from %s: %w", study, c.Base(), err)
	}
	if sum.StudyInstanceUID != study {
		return dicom.StudySummary{}, fmt.Errorf("dicomweb: metadata of %s from %s describes study %s", study, c.Base(), sum.StudyInstanceUID)
	}
	sum.Retrieve = dicom.Retrieve{BaseURL: c.Base(), Source: source}
	return sum, nil
}

// studyMessage wraps a summary as the engine message of a study.
func studyMessage(channel string, sum dicom.StudySummary, meta map[string]string) (*engine.Message, error) {
	body, err := json.Marshal(sum)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: encode study %s: %w", sum.StudyInstanceUID, err)
	}
	m := &engine.Message{
		Channel:     channel,
		ContentType: engine.ContentStudy,
		Body:        body,
		ReceivedAt:  time.Now().UTC(),
		Meta:        map[string]string{"base_url": sum.Retrieve.BaseURL, "study_instance_uid": sum.StudyInstanceUID, "instances": fmt.Sprint(sum.NumberOfInstances)},
	}
	for k, v := range meta {
		if v != "" {
			m.Meta[k] = v
		}
	}
	return m, nil
}

var _ engine.Source = (*NotifySource)(nil)
