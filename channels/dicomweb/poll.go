package dicomweb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// PollConfig configures a [Poller].
type PollConfig struct {
	URL        string
	Interval   time.Duration // 0 means one minute
	Lookback   time.Duration // StudyDate window; 0 searches without a date
	WaitStable bool          // announce only when the instance count held still for one interval
	Bucket     string        // KV bucket of announced studies; "" means "osprey-<channel>-qido-seen"
	Client     ClientConfig
}

// Poller finds new studies on a PACS by QIDO-RS, reads their metadata by WADO-RS and hands
// the channel a study message for each. The studies it announced are kept in a JetStream
// key-value bucket, so a restart announces none twice.
type Poller struct {
	cfg    PollConfig
	res    engine.Resources
	log    *slog.Logger
	client *Client
	// counts are the instance counts seen at the last poll, for WaitStable. Losing them on a
	// restart only delays an announcement by one interval.
	counts map[string]int
	polled chan struct{}
}

// NewPoller checks cfg and returns a poller; it polls only in Run.
func NewPoller(cfg PollConfig, res engine.Resources) (*Poller, error) {
	c, err := NewClient(cfg.URL, cfg.Client)
	if err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "osprey-" + res.Channel + "-qido-seen"
		if res.Channel == "" {
			cfg.Bucket = "osprey-qido-seen"
		}
	}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{cfg: cfg, res: res, log: res.Logger.With("component", "source.qido_poll"), client: c, counts: map[string]int{}, polled: make(chan struct{}, 1)}, nil
}

// Polled receives a value after each completed poll, for tests and tools.
func (p *Poller) Polled() <-chan struct{} { return p.polled }

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context, sink engine.Sink) error {
	if p.res.Broker == nil {
		return errors.New("dicomweb: source.qido_poll needs the engine's broker to remember the studies it announced")
	}
	kv, err := p.res.Broker.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      p.cfg.Bucket,
		Description: "studies announced by source.qido_poll",
		TTL:         p.cfg.Lookback + 24*time.Hour,
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return fmt.Errorf("dicomweb: seen bucket %s: %w", p.cfg.Bucket, err)
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.poll(ctx, kv, sink); err != nil && ctx.Err() == nil {
			p.log.Warn("dicomweb: poll", "url", p.client.Base(), "error", err)
		}
		select {
		case p.polled <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Poller) poll(ctx context.Context, kv jetstream.KeyValue, sink engine.Sink) error {
	q := url.Values{}
	// One includefield per attribute: some servers (Orthanc's plugin) do not split a list.
	q["includefield"] = []string{"StudyInstanceUID", "AccessionNumber", "StudyDate", "NumberOfStudyRelatedInstances"}
	if p.cfg.Lookback > 0 {
		now := time.Now()
		q.Set("StudyDate", dicom.FormatDate(now.Add(-p.cfg.Lookback))+"-"+dicom.FormatDate(now))
	}
	studies, err := p.client.SearchStudies(ctx, q)
	if err != nil {
		return err
	}
	seenNow := map[string]int{}
	var errs []error
	for _, st := range studies {
		uid := st.String(tag.StudyInstanceUID)
		if dicom.ValidUID(uid) != nil {
			continue
		}
		if _, err := kv.Get(ctx, keyUID(uid)); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("dicomweb: seen %s: %w", uid, err)
		}
		n := atoi(st.String(tag.NumberOfStudyRelatedInstances))
		seenNow[uid] = n
		if prev, ok := p.counts[uid]; p.cfg.WaitStable && (!ok || prev != n) {
			continue // first sight, or still growing: wait one interval
		}
		if err := p.announce(ctx, kv, sink, uid); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(seenNow, uid)
	}
	p.counts = seenNow
	return errors.Join(errs...)
}

func (p *Poller) announce(ctx context.Context, kv jetstream.KeyValue, sink engine.Sink, uid string) error {
	sum, err := fetchSummary(ctx, p.client, uid, dicom.SourcePoll)
	if err != nil {
		return err
	}
	m, err := studyMessage(p.res.Channel, sum, nil)
	if err != nil {
		return err
	}
	receipt, err := sink.Accept(ctx, m)
	if err != nil {
		return fmt.Errorf("dicomweb: hand study %s to the channel: %w", uid, err)
	}
	// Only now is the study remembered: a crash between Accept and this Put announces it once
	// more after the restart, which the engine records, rather than never.
	if _, err := kv.Put(ctx, keyUID(uid), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("dicomweb: remember study %s: %w", uid, err)
	}
	p.log.Info("dicomweb: polled study", "study_instance_uid", uid, "instances", sum.NumberOfInstances, "message_id", receipt.ID, "verdict", receipt.Verdict.String())
	return nil
}

var _ engine.Source = (*Poller)(nil)
