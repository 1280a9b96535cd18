package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// ErrFetch is wrapped by every error of [Client]: a handler returning one gets a failed
// result with code fetch_failed.
var ErrFetch = errors.New("sdk: wado-rs fetch failed")

// HTTPError is a WADO-RS answer with a status other than 200 (401: the token expired or is
// for another study; 404: no such instance). It wraps [ErrFetch].
type HTTPError struct {
	Path   string // the request path below the base URL, e.g. "/studies/1.2.3/metadata"
	Status int
	Body   string // the first bytes of the answer
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("sdk: wado-rs GET %s: HTTP %d: %s", e.Path, e.Status, e.Body)
}

// Unwrap lets errors.Is(err, ErrFetch) hold.
func (e *HTTPError) Unwrap() error { return ErrFetch }

// Limits of a [Client]'s answers, so that a wrong request cannot exhaust the plugin's memory.
const (
	DefaultMaxMetadata = 256 << 20 // one metadata answer
	DefaultMaxObject   = 1 << 30   // one instance, or all frames of one request
)

// Client fetches one study from Osprey's DICOMweb endpoint (WADO-RS) with the job's scoped
// bearer token. Its methods may be called concurrently.
type Client struct {
	base, study, token string
	http               *http.Client
	// MaxMetadata and MaxObject bound what one answer may hold; see the defaults.
	MaxMetadata, MaxObject int64
}

// NewClient returns a client for study on the DICOMweb root dw.BaseURL, authenticating with
// dw.Token. hc nil means a client with a five-minute timeout per request.
func NewClient(dw protocol.DICOMweb, study string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Client{
		base:        strings.TrimRight(dw.BaseURL, "/"),
		study:       study,
		token:       dw.Token,
		http:        hc,
		MaxMetadata: DefaultMaxMetadata,
		MaxObject:   DefaultMaxObject,
	}
}

// Dataset is one instance in DICOM JSON (PS3.18 F.2): attributes by 8-hex-digit tag.
type Dataset map[string]Attribute

// Attribute is one DICOM JSON attribute.
type Attribute struct {
	VR          string            `json:"vr"`
	Value       []json.RawMessage `json:"Value,omitempty"`
	BulkDataURI string            `json:"BulkDataURI,omitempty"`
}

// Strings returns the values of the attribute tag ("0020000E") as text: strings as they
// are, numbers as written, person names by their alphabetic form.
func (d Dataset) Strings(tag string) []string {
	a, ok := d[strings.ToUpper(tag)]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(a.Value))
	for _, raw := range a.Value {
		var s string
		var pn struct{ Alphabetic string }
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case a.VR == "PN" && json.Unmarshal(raw, &pn) == nil:
			s = pn.Alphabetic
		default:
			s = string(raw) // a number, kept as written
		}
		out = append(out, s)
	}
	return out
}

// String returns the first value of the attribute tag, or "".
func (d Dataset) String(tag string) string {
	if v := d.Strings(tag); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Metadata returns the DICOM JSON of every instance of the study, bulk data (pixel data)
// left out.
func (c *Client) Metadata(ctx context.Context) ([]Dataset, error) {
	return c.metadata(ctx, "/studies/"+c.study+"/metadata")
}

// SeriesMetadata returns the DICOM JSON of every instance of one series of the study.
func (c *Client) SeriesMetadata(ctx context.Context, series string) ([]Dataset, error) {
	return c.metadata(ctx, "/studies/"+c.study+"/series/"+series+"/metadata")
}

// Instance returns one instance as a Part 10 file.
func (c *Client) Instance(ctx context.Context, series, sop string) ([]byte, error) {
	parts, err := c.multipart(ctx, c.instancePath(series, sop), "application/dicom", 1)
	if err != nil {
		return nil, err
	}
	if len(parts) != 1 {
		return nil, fmt.Errorf("%w: instance %s: %d parts in the answer, want 1", ErrFetch, sop, len(parts))
	}
	return parts[0], nil
}

// Series returns every instance of one series as Part 10 files, in the order the server
// sends them, in one request.
func (c *Client) Series(ctx context.Context, series string) ([][]byte, error) {
	return c.multipart(ctx, "/studies/"+c.study+"/series/"+series, "application/dicom", 0)
}

// Frames returns frames (1-based) of one instance, uncompressed, one byte slice per frame in
// the order asked: the pixel data as stored, without the attributes to read it by (fetch
// the instance, or its metadata, for those).
func (c *Client) Frames(ctx context.Context, series, sop string, frames ...int) ([][]byte, error) {
	if len(frames) == 0 {
		return nil, fmt.Errorf("%w: frames of %s: no frame numbers", ErrFetch, sop)
	}
	nums := make([]string, len(frames))
	for i, f := range frames {
		if f < 1 {
			return nil, fmt.Errorf("%w: frames of %s: frame number %d (they start at 1)", ErrFetch, sop, f)
		}
		nums[i] = strconv.Itoa(f)
	}
	parts, err := c.multipart(ctx, c.instancePath(series, sop)+"/frames/"+strings.Join(nums, ","), "application/octet-stream", len(frames))
	if err != nil {
		return nil, err
	}
	if len(parts) != len(frames) {
		return nil, fmt.Errorf("%w: frames of %s: %d parts for %d frames", ErrFetch, sop, len(parts), len(frames))
	}
	return parts, nil
}

func (c *Client) instancePath(series, sop string) string {
	return "/studies/" + c.study + "/series/" + series + "/instances/" + sop
}

// get sends one GET and returns the answer when its status is 200.
func (c *Client) get(ctx context.Context, path, accept string) (*http.Response, error) {
	if c.base == "" {
		return nil, fmt.Errorf("%w: GET %s: the job has no DICOMweb base URL", ErrFetch, path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrFetch, path, err)
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrFetch, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &HTTPError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

func (c *Client) metadata(ctx context.Context, path string) ([]Dataset, error) {
	resp, err := c.get(ctx, path, "application/dicom+json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, c.MaxMetadata)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w: GET %s: the answer is larger than the limit of %d bytes", ErrFetch, path, c.MaxMetadata)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrFetch, path, err)
	}
	var out []Dataset
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%w: GET %s: not DICOM JSON: %w", ErrFetch, path, err)
	}
	return out, nil
}

// multipart fetches a multipart/related answer of parts of type typ; want > 0 stops reading
// after that many parts. The parts together may hold at most MaxObject bytes.
func (c *Client) multipart(ctx context.Context, path, typ string, want int) ([][]byte, error) {
	resp, err := c.get(ctx, path, `multipart/related; type="`+typ+`"`)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["boundary"] == "" {
		return nil, fmt.Errorf("%w: GET %s: answer of type %q, want multipart/related", ErrFetch, path, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	budget := c.MaxObject
	var parts [][]byte
	for want <= 0 || len(parts) < want {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: GET %s: part %d: %w", ErrFetch, path, len(parts)+1, err)
		}
		b, err := readLimited(p, budget)
		if errors.Is(err, errTooLarge) {
			return nil, fmt.Errorf("%w: GET %s: the answer is larger than the limit of %d bytes", ErrFetch, path, c.MaxObject)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: GET %s: part %d: %w", ErrFetch, path, len(parts)+1, err)
		}
		budget -= int64(len(b))
		parts = append(parts, b)
	}
	return parts, nil
}

var errTooLarge = errors.New("answer too large")

// readLimited reads r to the end, failing with errTooLarge rather than truncating past
// limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}
