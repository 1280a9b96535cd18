package dicomweb

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom"
)

// ContentDICOM is the content type of a message whose body is one Part 10 instance.
const ContentDICOM = "application/dicom"

// FailDuplicate is Failure Reason 0111H, Duplicate SOP Instance (the C-STORE status of PS3.7
// C.4.2), with which some PACSes refuse an instance they already hold. For a destination
// that is delivery: the PACS has the instance.
const FailDuplicate = 0x0111

// DestinationConfig configures a [Destination].
type DestinationConfig struct {
	URL    string // service root of the PACS
	Client ClientConfig
}

// Destination stores instances in a PACS by STOW-RS. See DestinationSpec for how answers
// map to delivered, retried and rejected.
type Destination struct {
	client *Client
	log    *slog.Logger
}

// NewDestination returns a destination; it connects nowhere until Send.
func NewDestination(cfg DestinationConfig, res engine.Resources) (*Destination, error) {
	c, err := NewClient(cfg.URL, cfg.Client)
	if err != nil {
		return nil, err
	}
	if res.Logger == nil {
		res.Logger = slog.New(slog.DiscardHandler)
	}
	return &Destination{client: c, log: res.Logger.With("component", "destination.dicomweb")}, nil
}

// Send POSTs the message's instance (or multipart body) to {url}/studies.
func (d *Destination) Send(ctx context.Context, m *engine.Message) (engine.Reply, error) {
	ct, body := m.ContentType, m.Body
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "multipart/related":
	case mt == ContentDICOM || mt == "" || mt == "application/octet-stream":
		if len(body) < 132 || string(body[128:132]) != "DICM" {
			return engine.Reply{Summary: "not a Part 10 instance"}, fmt.Errorf("dicomweb: message %s is not a DICOM Part 10 instance: %w", m.ID, engine.ErrRejected)
		}
		ct, body = Multipart(body)
	default:
		return engine.Reply{Summary: "unsupported content type"}, fmt.Errorf("dicomweb: message %s has content type %q, want application/dicom or multipart/related: %w", m.ID, m.ContentType, engine.ErrRejected)
	}
	res, err := d.client.Store(ctx, ct, body)
	if err != nil {
		return engine.Reply{Summary: "no answer"}, err // transport: the engine retries
	}
	reply := engine.Reply{ContentType: res.ContentType, Body: res.Body, Summary: fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status))}
	stored, failed, dups := tally(res.Response)
	if failed > 0 {
		reply.Summary += fmt.Sprintf(": %d stored, %d failed", stored, failed)
	}
	switch {
	case res.Status == http.StatusOK && failed == 0:
		return reply, nil
	case (res.Status == http.StatusOK || res.Status == http.StatusAccepted || res.Status == http.StatusConflict) && failed > 0 && failed == dups:
		reply.Summary += " (already stored)"
		return reply, nil
	case res.Status == http.StatusAccepted && failed == 0:
		return reply, nil // stored with warnings
	case res.Status >= 500 || res.Status == http.StatusTooManyRequests || res.Status == http.StatusRequestTimeout:
		return reply, fmt.Errorf("dicomweb: store to %s: HTTP %d", d.client.Base(), res.Status)
	}
	return reply, fmt.Errorf("dicomweb: store to %s: %s: %w", d.client.Base(), reply.Summary, engine.ErrRejected)
}

// tally counts the referenced and failed instances of a STOW-RS response, and the failures
// that say the instance is already there.
func tally(resp dicom.JSONDataset) (stored, failed, dups int) {
	if resp == nil {
		return 0, 0, 0
	}
	if a := resp[dicom.TagKey(tag.ReferencedSOPSequence)]; a != nil {
		stored = len(a.Value)
	}
	if a := resp[dicom.TagKey(tag.FailedSOPSequence)]; a != nil {
		for _, item := range a.Value {
			failed++
			if d, ok := item.(dicom.JSONDataset); ok && atoi(d.String(tag.FailureReason)) == FailDuplicate {
				dups++
			}
		}
	}
	return stored, failed, dups
}

var _ engine.Destination = (*Destination)(nil)
