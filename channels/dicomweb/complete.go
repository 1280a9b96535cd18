package dicomweb

import (
	"context"
	"time"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// Retry backoff for a study message the engine could not take.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = time.Minute
)

type retryState struct {
	next    time.Time
	backoff time.Duration
}

// complete announces studies whose quiet period has passed, until ctx ends. It reads the open
// marks from JetStream at every step rather than from memory, so what it sees is what a
// restarted source would see.
func (s *Source) complete(ctx context.Context, sink engine.Sink) {
	tick := min(max(s.cfg.QuietPeriod/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	retry := map[string]retryState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
			continue // an instance arrived: nothing can have become quiet because of it
		}
		open, err := s.store.open(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("dicomweb: list open studies", "error", err)
			}
			continue
		}
		now := time.Now()
		for study, mark := range open {
			if now.Sub(mark.LastSeen) < s.cfg.QuietPeriod || now.Before(retry[study].next) {
				continue
			}
			if err := s.announce(ctx, sink, study, mark); err != nil {
				r := retry[study]
				r.backoff = min(max(r.backoff*2, minBackoff), maxBackoff)
				r.next = time.Now().Add(r.backoff)
				retry[study] = r
				if ctx.Err() == nil {
					s.log.Warn("dicomweb: study message not taken, will retry", "study_instance_uid", study, "retry_in", r.backoff, "error", err)
				}
				continue
			}
			delete(retry, study)
		}
	}
}

// announce hands one study message to the sink and, once the engine has decided about it,
// closes the study.
func (s *Source) announce(ctx context.Context, sink engine.Sink, study string, mark openMark) error {
	recs, err := s.store.instances(ctx, study, "")
	if err != nil {
		return err
	}
	rec, err := s.store.study(ctx, study)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		// Retention removed the instances before the study went quiet: nothing to announce.
		_, err := s.store.close(ctx, study, mark.Revision, time.Now())
		return err
	}
	metas := make([]dicom.JSONDataset, len(recs))
	for i, r := range recs {
		metas[i] = r.Meta
	}
	sum, err := dicom.SummarizeJSON(metas)
	if err != nil {
		// The instances passed validation one by one, so this cannot heal by waiting.
		s.log.Error("dicomweb: summarise study, dropping its announcement", "study_instance_uid", study, "error", err)
		_, cerr := s.store.close(ctx, study, mark.Revision, time.Now())
		return cerr
	}
	sum.Retrieve = dicom.Retrieve{BaseURL: s.BaseURL(), Source: dicom.SourceSTOW}
	meta := map[string]string{}
	if rec != nil {
		meta["remote_addr"] = rec.RemoteAddr
		if !rec.Notified.IsZero() {
			meta["update"] = "true" // instances arrived after the study was announced once
		}
	}
	m, err := studyMessage(s.res.Channel, sum, meta)
	if err != nil {
		return err
	}
	receipt, err := sink.Accept(ctx, m)
	if err != nil {
		return err
	}
	closed, err := s.store.close(ctx, study, mark.Revision, time.Now())
	if err != nil {
		// The message is in; the study stays open and is announced again, which the
		// engine records as a duplicate or an update. At least once, never lost.
		return err
	}
	s.log.Info("dicomweb: study complete", "study_instance_uid", study, "instances", sum.NumberOfInstances,
		"message_id", receipt.ID, "verdict", receipt.Verdict.String(), "closed", closed)
	return nil
}
