package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/store"
	"github.com/osprey-health/osprey/mappings"
)

// Withdraw retracts an analysis that was sent: a new revision with status withdrawn goes to
// every destination the analysis went to, where the mappings turn it into what each receiver
// understands as a retraction (ORU OBX-11 W, FHIR entered-in-error; an SR cannot retract
// another, so the PACS is told nothing and the history says so). The reason is recorded in
// the message history. A withdrawn analysis cannot be withdrawn again.
func (e *Engine) Withdraw(ctx context.Context, messageID, reason string) (revision int, err error) {
	st := e.opts.Store
	rec, err := st.Analysis(ctx, messageID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("withdraw %s: %w: no analysis of this message", messageID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("withdraw %s: %w", messageID, err)
	}
	if rec.Status != store.AnalysisComplete || len(rec.Body) == 0 {
		return 0, fmt.Errorf("withdraw %s: %w: the analysis is not complete yet", messageID, ErrBadRequest)
	}
	var a mappings.Analysis
	if err := json.Unmarshal(rec.Body, &a); err != nil {
		return 0, fmt.Errorf("withdraw %s: stored analysis: %w", messageID, err)
	}
	if a.Status == mappings.StatusWithdrawn {
		return 0, fmt.Errorf("withdraw %s: %w: already withdrawn (revision %d)", messageID, ErrBadRequest, a.Revision)
	}
	a.Revision++
	a.Status = mappings.StatusWithdrawn
	a.CreatedAt = time.Now().UTC()
	body, err := json.Marshal(a)
	if err != nil {
		return 0, err
	}
	d, err := st.Get(ctx, messageID)
	if err != nil {
		return 0, fmt.Errorf("withdraw %s: %w", messageID, err)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "no reason given"
	}
	note := fmt.Sprintf("analysis withdrawn (revision %d): %s", a.Revision, reason)
	if len(rec.Destinations) > 0 {
		note += "; to " + strings.Join(rec.Destinations, ", ")
	}
	if err := st.AddStages(ctx, messageID, []store.Stage{{Seq: len(d.Stages) + 1, Name: note, At: a.CreatedAt, Output: body}}); err != nil {
		return 0, err
	}
	// The new revision is stored before it is queued: a crash in between leaves a
	// withdrawn analysis whose retraction an analyst can requeue, never one sent and not
	// recorded.
	rec.Body = body
	if err := st.PutAnalysis(ctx, rec); err != nil {
		return 0, err
	}
	if len(rec.Destinations) == 0 {
		return a.Revision, nil
	}
	ch, err := e.channel(d.Message.Channel)
	if err != nil {
		return 0, fmt.Errorf("withdraw %s: %w", messageID, err)
	}
	// Queued before anything is published: a delivery that finishes at once must find the
	// message queued, so that its attempt is what makes it sent again.
	if err := st.SetStatus(ctx, messageID, store.StatusQueued, ""); err != nil {
		return 0, err
	}
	hdr := map[string]string{hdrReceived: d.Message.ReceivedAt.UTC().Format(time.RFC3339Nano), hdrContentType: mappings.ContentType}
	for _, name := range rec.Destinations {
		dest := ch.destination(name)
		if dest == nil {
			return 0, fmt.Errorf("withdraw %s: destination %q is no longer configured: %w", messageID, name, ErrBadRequest)
		}
		dl, err := st.Delivery(ctx, messageID, name)
		if err != nil {
			return 0, err
		}
		// Attempts keep counting from the revision before; the queue gets the new payload.
		dl.Status, dl.LastError, dl.UpdatedAt, dl.Payload = store.DeliveryQueued, "", time.Now().UTC(), body
		if err := st.PutDeliveries(ctx, []store.Delivery{dl}); err != nil {
			return 0, err
		}
		id := fmt.Sprintf("analysis:%s:r%d:%s", messageID, a.Revision, name)
		if err := dest.publish(ctx, id, []broker.Entry{{ID: messageID, Headers: hdr, Body: body}}); err != nil {
			return 0, err
		}
	}
	return a.Revision, nil
}
