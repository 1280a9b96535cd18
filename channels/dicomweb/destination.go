package dicomweb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"sync"

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
	// Retrieve are the credentials for fetching a study message's instances from the
	// DICOMweb root its summary names (Osprey's own source.dicomweb, usually).
	Retrieve ClientConfig
}

// Destination stores instances in a PACS by STOW-RS. See DestinationSpec for how answers
// map to delivered, retried and rejected.
type Destination struct {
	cfg    DestinationConfig
	client *Client
	log    *slog.Logger

	mu        sync.Mutex
	retrieval map[string]*Client // by service root
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
	return &Destination{cfg: cfg, client: c, log: res.Logger.With("component", "destination.dicomweb"), retrieval: map[string]*Client{}}, nil
}

// Send POSTs the message's instance (or multipart body) to {url}/studies.
func (d *Destination) Send(ctx context.Context, m *engine.Message) (engine.Reply, error) {
	ct, body := m.ContentType, m.Body
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == engine.ContentStudy:
		var err error
		ct, body, err = d.fetchStudy(ctx, m)
		if err != nil {
			return engine.Reply{Summary: "study not retrieved"}, err
		}
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
	case res.Response != nil && stored == 0 && failed == 0 && res.Status < 300:
		// A success status with an empty status report: the server stored nothing it admits
		// to (Orthanc answers so for a part type it does not take).
		reply.Summary += ": nothing stored"
		return reply, fmt.Errorf("dicomweb: store to %s: %s: %w", d.client.Base(), reply.Summary, engine.ErrRejected)
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

// fetchStudy retrieves the instances of a study message from the DICOMweb root its summary
// names, so that a whole study can be forwarded to the PACS.
func (d *Destination) fetchStudy(ctx context.Context, m *engine.Message) (string, []byte, error) {
	var sum dicom.StudySummary
	if err := json.Unmarshal(m.Body, &sum); err != nil || sum.StudyInstanceUID == "" || sum.Retrieve.BaseURL == "" {
		return "", nil, fmt.Errorf("dicomweb: message %s is not a study summary with a retrieve URL: %w", m.ID, engine.ErrRejected)
	}
	d.mu.Lock()
	c := d.retrieval[sum.Retrieve.BaseURL]
	if c == nil {
		var err error
		if c, err = NewClient(sum.Retrieve.BaseURL, d.cfg.Retrieve); err != nil {
			d.mu.Unlock()
			return "", nil, fmt.Errorf("dicomweb: message %s: %v: %w", m.ID, err, engine.ErrRejected)
		}
		d.retrieval[sum.Retrieve.BaseURL] = c
	}
	d.mu.Unlock()
	ct, body, err := c.RetrieveStudy(ctx, sum.StudyInstanceUID)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		// Retention removed it, or it was never there: retrying cannot help.
		return "", nil, fmt.Errorf("%w: %w", err, engine.ErrRejected)
	}
	if err != nil {
		return "", nil, err
	}
	// Rewrap the instances in plain application/dicom parts: some STOW-RS servers (Orthanc's
	// plugin) refuse a part whose type carries the transfer-syntax parameter WADO-RS adds.
	parts, err := readParts(ct, body)
	if err != nil {
		return "", nil, err
	}
	ct, body = Multipart(parts...)
	return ct, body, nil
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
