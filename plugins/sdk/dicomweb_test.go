package sdk_test

import (
	"context"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
)

// wadoServer answers WADO-RS for one study with canned parts, and records what it was asked.
type wadoServer struct {
	mu       sync.Mutex
	requests []*http.Request
}

func writeParts(w http.ResponseWriter, typ string, parts ...string) {
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", `multipart/related; type="`+typ+`"; boundary=`+mw.Boundary())
	for _, p := range parts {
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {typ}})
		_, _ = pw.Write([]byte(p))
	}
	_ = mw.Close()
}

func (s *wadoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer good-token" {
		http.Error(w, "token expired", http.StatusUnauthorized)
		return
	}
	const study = "/dicom-web/studies/1.2.3"
	switch r.URL.Path {
	case study + "/metadata":
		w.Header().Set("Content-Type", "application/dicom+json")
		_, _ = w.Write([]byte(`[{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Phantom^Head"}]},
			"00280030": {"vr": "DS", "Value": [0.5, 0.75]}, "7FE00010": {"vr": "OW", "BulkDataURI": "http://x/bulk"}}]`))
	case study + "/series/1.2.3.4/metadata":
		w.Header().Set("Content-Type", "application/dicom+json")
		_, _ = w.Write([]byte(`[{}, {}]`))
	case study + "/series/1.2.3.4/instances/1.2.3.4.5":
		writeParts(w, "application/dicom", "part10 bytes")
	case study + "/series/1.2.3.4":
		writeParts(w, "application/dicom", "first", "second", "third")
	case study + "/series/1.2.3.4/instances/1.2.3.4.5/frames/1,3":
		writeParts(w, "application/octet-stream", "frame one", "frame three")
	case study + "/series/big":
		writeParts(w, "application/dicom", strings.Repeat("x", 600), strings.Repeat("y", 600))
	case study + "/series/json":
		w.Header().Set("Content-Type", "application/dicom+json")
		_, _ = w.Write([]byte(`[]`))
	default:
		http.Error(w, "no such thing", http.StatusNotFound)
	}
}

func TestClient(t *testing.T) {
	ws := &wadoServer{}
	srv := httptest.NewServer(ws)
	defer srv.Close()
	ctx := context.Background()
	c := sdk.NewClient(protocol.DICOMweb{BaseURL: srv.URL + "/dicom-web/", Token: "good-token"}, "1.2.3", nil)

	t.Run("metadata", func(t *testing.T) {
		md, err := c.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(md) != 1 || md[0].String("0020000e") != "1.2.3.4" || md[0].String("00100010") != "Phantom^Head" ||
			!slices.Equal(md[0].Strings("00280030"), []string{"0.5", "0.75"}) || md[0]["7FE00010"].BulkDataURI != "http://x/bulk" {
			t.Errorf("metadata %+v", md)
		}
		if md[0].String("00080060") != "" {
			t.Error("an absent attribute has a value")
		}
		series, err := c.SeriesMetadata(ctx, "1.2.3.4")
		if err != nil || len(series) != 2 {
			t.Errorf("series metadata: %d datasets, %v", len(series), err)
		}
	})
	t.Run("instance", func(t *testing.T) {
		b, err := c.Instance(ctx, "1.2.3.4", "1.2.3.4.5")
		if err != nil || string(b) != "part10 bytes" {
			t.Errorf("instance %q, %v", b, err)
		}
	})
	t.Run("series", func(t *testing.T) {
		parts, err := c.Series(ctx, "1.2.3.4")
		if err != nil || len(parts) != 3 || string(parts[2]) != "third" {
			t.Errorf("series %q, %v", parts, err)
		}
	})
	t.Run("frames", func(t *testing.T) {
		frames, err := c.Frames(ctx, "1.2.3.4", "1.2.3.4.5", 1, 3)
		if err != nil || len(frames) != 2 || string(frames[1]) != "frame three" {
			t.Errorf("frames %q, %v", frames, err)
		}
		ws.mu.Lock()
		last := ws.requests[len(ws.requests)-1]
		ws.mu.Unlock()
		if accept := last.Header.Get("Accept"); accept != `multipart/related; type="application/octet-stream"` {
			t.Errorf("Accept %q", accept)
		}
	})

	errs := []struct {
		name    string
		do      func(c *sdk.Client) error
		client  *sdk.Client
		status  int // of the *HTTPError, 0 for another error
		mention string
	}{
		{"expired token", func(c *sdk.Client) error { _, err := c.Metadata(ctx); return err },
			sdk.NewClient(protocol.DICOMweb{BaseURL: srv.URL + "/dicom-web", Token: "old"}, "1.2.3", nil), http.StatusUnauthorized, "token expired"},
		{"no such instance", func(c *sdk.Client) error { _, err := c.Instance(ctx, "1.2.3.4", "9.9"); return err }, c, http.StatusNotFound, "HTTP 404"},
		{"over the size limit", func(c *sdk.Client) error { _, err := c.Series(ctx, "big"); return err }, limited(srv.URL), 0, "limit of 1000 bytes"},
		{"not multipart", func(c *sdk.Client) error { _, err := c.Series(ctx, "json"); return err }, c, 0, "want multipart/related"},
		{"frame zero", func(c *sdk.Client) error { _, err := c.Frames(ctx, "1.2.3.4", "1.2.3.4.5", 0); return err }, c, 0, "start at 1"},
		{"no base url", func(c *sdk.Client) error { _, err := c.Metadata(ctx); return err },
			sdk.NewClient(protocol.DICOMweb{}, "1.2.3", nil), 0, "no DICOMweb base URL"},
		{"server down", func(c *sdk.Client) error { _, err := c.Metadata(ctx); return err },
			sdk.NewClient(protocol.DICOMweb{BaseURL: "http://127.0.0.1:1"}, "1.2.3", nil), 0, "GET /studies/1.2.3/metadata"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do(tt.client)
			if !errors.Is(err, sdk.ErrFetch) {
				t.Fatalf("err = %v, want ErrFetch", err)
			}
			var he *sdk.HTTPError
			if got := errors.As(err, &he); got != (tt.status != 0) || (got && he.Status != tt.status) {
				t.Errorf("err = %v, want HTTP status %d", err, tt.status)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), "good-token") {
				t.Error("the error shows the token")
			}
		})
	}
}

func limited(base string) *sdk.Client {
	c := sdk.NewClient(protocol.DICOMweb{BaseURL: base + "/dicom-web", Token: "good-token"}, "1.2.3", nil)
	c.MaxObject = 1000
	return c
}
