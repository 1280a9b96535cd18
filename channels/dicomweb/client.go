package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
)

// Auth is how a client proves itself to a PACS: a bearer token, or HTTP basic with a user
// name and password. The zero value sends no credentials.
type Auth struct {
	Token              string
	Username, Password string
}

func (a Auth) apply(r *http.Request) {
	switch {
	case a.Token != "":
		r.Header.Set("Authorization", "Bearer "+a.Token)
	case a.Username != "":
		r.SetBasicAuth(a.Username, a.Password)
	}
}

// ClientConfig configures a [Client].
type ClientConfig struct {
	Auth    Auth
	Timeout time.Duration // per request; 0 means 60s
	TLS     *ClientTLS
}

// Client speaks DICOMweb to one service root (a PACS's, or another Osprey's).
type Client struct {
	base string
	auth Auth
	http *http.Client
}

// maxMetadata bounds a metadata or search answer read into memory: a study of several
// thousand instances is some tens of megabytes of DICOM JSON.
const maxMetadata = 512 << 20

// StatusError is a DICOMweb answer other than the one asked for.
type StatusError struct {
	Op     string
	Status int
	Body   string // the first bytes of the answer, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dicomweb: %s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// NewClient returns a client for the service root base ("http://pacs/dicom-web").
func NewClient(base string, cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dicomweb: %q is not an http(s) URL", base)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("dicomweb: client tls: %w", err)
		}
		tr.TLSClientConfig = tc
	}
	return &Client{base: strings.TrimRight(base, "/"), auth: cfg.Auth, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// Base returns the service root.
func (c *Client) Base() string { return c.base }

func (c *Client) get(ctx context.Context, op, path, accept string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("dicomweb: %s: %w", op, err)
	}
	req.Header.Set("Accept", accept)
	c.auth.apply(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("dicomweb: %s: %w", op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("dicomweb: %s: read answer: %w", op, err)
	}
	if int64(len(body)) > limit {
		return nil, nil, fmt.Errorf("dicomweb: %s: answer larger than %d bytes", op, limit)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return resp, body, &StatusError{Op: op, Status: resp.StatusCode, Body: snippet(body)}
	}
	return resp, body, nil
}

func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// Metadata returns the WADO-RS metadata of a study: its DICOM JSON array as received.
func (c *Client) Metadata(ctx context.Context, study string) ([]byte, error) {
	_, body, err := c.get(ctx, "metadata of "+study, "/studies/"+url.PathEscape(study)+"/metadata", dicom.ContentJSON, maxMetadata)
	return body, err
}

// SearchStudies runs QIDO-RS GET {base}/studies?query.
func (c *Client) SearchStudies(ctx context.Context, query url.Values) ([]dicom.JSONDataset, error) {
	return c.search(ctx, "/studies", query)
}

// SearchInstances runs QIDO-RS GET {base}/studies/{study}/instances?query (every series).
func (c *Client) SearchInstances(ctx context.Context, study string, query url.Values) ([]dicom.JSONDataset, error) {
	return c.search(ctx, "/studies/"+url.PathEscape(study)+"/instances", query)
}

func (c *Client) search(ctx context.Context, path string, query url.Values) ([]dicom.JSONDataset, error) {
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	resp, body, err := c.get(ctx, "search "+path, path, dicom.ContentJSON, maxMetadata)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return dicom.DecodeJSONArray(body)
}

// Frames retrieves frames (1-based) of an instance as uncompressed pixel bytes, one slice per
// frame asked for.
func (c *Client) Frames(ctx context.Context, study, series, sop string, frames ...int) ([][]byte, error) {
	nums := make([]string, len(frames))
	for i, f := range frames {
		nums[i] = fmt.Sprint(f)
	}
	path := "/studies/" + url.PathEscape(study) + "/series/" + url.PathEscape(series) + "/instances/" + url.PathEscape(sop) + "/frames/" + strings.Join(nums, ",")
	resp, body, err := c.get(ctx, "frames of "+sop, path, `multipart/related; type="application/octet-stream"; transfer-syntax=*`, 1<<31)
	if err != nil {
		return nil, err
	}
	return readParts(resp.Header.Get("Content-Type"), body)
}

// Instance retrieves one instance as Part 10 bytes.
func (c *Client) Instance(ctx context.Context, study, series, sop string) ([]byte, error) {
	path := "/studies/" + url.PathEscape(study) + "/series/" + url.PathEscape(series) + "/instances/" + url.PathEscape(sop)
	resp, body, err := c.get(ctx, "retrieve "+sop, path, `multipart/related; type="application/dicom"; transfer-syntax=*`, 1<<31)
	if err != nil {
		return nil, err
	}
	parts, err := readParts(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	if len(parts) != 1 {
		return nil, fmt.Errorf("dicomweb: retrieve %s: %d parts, want 1", sop, len(parts))
	}
	return parts[0], nil
}

// RetrieveStudy fetches all instances of a study as the multipart/related body the server
// sent, ready to be stored elsewhere unchanged.
func (c *Client) RetrieveStudy(ctx context.Context, study string) (contentType string, body []byte, err error) {
	resp, body, err := c.get(ctx, "retrieve study "+study, "/studies/"+url.PathEscape(study), `multipart/related; type="application/dicom"; transfer-syntax=*`, 1<<32)
	if err != nil {
		return "", nil, err
	}
	return resp.Header.Get("Content-Type"), body, nil
}

func readParts(contentType string, body []byte) ([][]byte, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return nil, fmt.Errorf("dicomweb: answer of type %q is not multipart", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dicomweb: read multipart answer: %w", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, fmt.Errorf("dicomweb: read multipart answer: %w", err)
		}
		out = append(out, b)
	}
}

// StoreResult is the answer to a STOW-RS request.
type StoreResult struct {
	Status      int
	ContentType string
	Body        []byte            // the response dataset as received
	Response    dicom.JSONDataset // decoded, when the body is DICOM JSON
}

// Store POSTs a multipart/related body (see Multipart) to {base}/studies. An error means no
// answer arrived (connection, timeout); every HTTP answer is a result, whatever its status.
func (c *Client) Store(ctx context.Context, contentType string, body []byte) (*StoreResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/studies", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: store: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", dicom.ContentJSON)
	c.auth.apply(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: store to %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: store to %s: read answer: %w", c.base, err)
	}
	res := &StoreResult{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
	if len(bytes.TrimSpace(b)) > 0 && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		var d dicom.JSONDataset
		if err := json.Unmarshal(b, &d); err == nil {
			res.Response = d
		}
	}
	return res, nil
}

// Multipart wraps Part 10 instances as a STOW-RS request body and returns it with its
// Content-Type.
func Multipart(instances ...[]byte) (contentType string, body []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, in := range instances {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/dicom")
		w, _ := mw.CreatePart(h) // writes to a bytes.Buffer cannot fail
		_, _ = w.Write(in)
	}
	_ = mw.Close()
	return `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(), buf.Bytes()
}
