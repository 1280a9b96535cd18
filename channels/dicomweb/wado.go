package dicomweb

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	dcm "github.com/suyashkumar/dicom"

	"github.com/osprey-health/osprey/engine/dicom"
)

// scopedTo reports whether c may see study: always for a configured token, only its own
// study for a scoped one.
func scopedTo(c echo.Context, study string) bool {
	scope, _ := c.Get(scopeKey).(string)
	return scope == "" || scope == study
}

// selected returns the index records a WADO-RS or metadata request names: a study, a
// series, or one instance. 404 when there are none.
func (s *Source) selected(c echo.Context) ([]*instanceRecord, error) {
	ctx := c.Request().Context()
	study, series, sop := c.Param("study"), c.Param("series"), c.Param("instance")
	if sop != "" {
		rec, err := s.store.instance(ctx, study, series, sop)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, echo.NewHTTPError(http.StatusNotFound, "dicomweb: no such instance")
		}
		return []*instanceRecord{rec}, nil
	}
	recs, err := s.store.instances(ctx, study, series)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "dicomweb: no such study or series")
	}
	return recs, nil
}

// retrieve answers WADO-RS instance retrieval: multipart/related of application/dicom parts,
// streamed from the object store one instance at a time.
func (s *Source) retrieve(c echo.Context) error {
	if !acceptable(c.Request().Header.Get(echo.HeaderAccept), "application/dicom") {
		return echo.NewHTTPError(http.StatusNotAcceptable, `dicomweb: instances are served as multipart/related; type="application/dicom"`)
	}
	recs, err := s.selected(c)
	if err != nil {
		return err
	}
	boundary := newBoundary()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, `multipart/related; type="application/dicom"; boundary=`+boundary)
	w.WriteHeader(http.StatusOK)
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	ctx := c.Request().Context()
	for _, rec := range recs {
		r, err := s.store.object(ctx, rec)
		if err != nil {
			// The status is sent; all that is left is to cut the body short, which the
			// client sees as a truncated multipart message rather than a silent gap.
			s.log.Error("dicomweb: retrieve", "sop_instance_uid", rec.SOP, "error", err)
			return nil
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/dicom; transfer-syntax="+rec.TransferSyntax)
		h.Set("Content-Location", s.baseURL(c)+instancePath(rec))
		pw, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(pw, r)
		}
		r.Close()
		if err != nil {
			s.log.Warn("dicomweb: retrieve interrupted", "error", err)
			return nil
		}
	}
	return mw.Close()
}

func instancePath(rec *instanceRecord) string {
	return "/studies/" + rec.Study + "/series/" + rec.Series + "/instances/" + rec.SOP
}

// metadata answers WADO-RS metadata: a DICOM JSON array with one object per instance, bulk
// data (pixel data above all) referred to by BulkDataURI.
func (s *Source) metadata(c echo.Context) error {
	recs, err := s.selected(c)
	if err != nil {
		return err
	}
	base := s.baseURL(c)
	out := make([]dicom.JSONDataset, len(recs))
	for i, rec := range recs {
		out[i] = withBulkURIs(rec, base)
	}
	b, err := dicom.MarshalJSONArray(out)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, dicom.ContentJSON, b)
}

// withBulkURIs returns the stored metadata with bulk markers made absolute: pixel data points
// at the frames resource (PS3.18 allows any URI the server answers), other bulk data at the
// bulkdata resource.
func withBulkURIs(rec *instanceRecord, base string) dicom.JSONDataset {
	out := make(dicom.JSONDataset, len(rec.Meta))
	for k, a := range rec.Meta {
		if a != nil && strings.HasPrefix(a.BulkDataURI, bulkMarker) {
			cp := *a
			cp.BulkDataURI = base + instancePath(rec) + "/bulkdata/" + strings.TrimPrefix(a.BulkDataURI, bulkMarker)
			a = &cp
		}
		out[k] = a
	}
	return out
}

// frames answers WADO-RS frame retrieval for uncompressed pixel data: one
// application/octet-stream part per frame asked for ("1", "1,3,5").
func (s *Source) frames(c echo.Context) error {
	if !acceptable(c.Request().Header.Get(echo.HeaderAccept), "application/octet-stream") {
		return echo.NewHTTPError(http.StatusNotAcceptable, `dicomweb: frames are served as multipart/related; type="application/octet-stream"`)
	}
	var nums []int
	for _, f := range strings.Split(c.Param("frames"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("dicomweb: frame number %q", f))
		}
		nums = append(nums, n)
	}
	if recs, err := s.selected(c); err == nil && recs[0].FrameSize > 0 {
		// The fast path: frames cut out of the stored bytes where STOW-RS located them.
		rec := recs[0]
		data, err := s.store.objectBytes(c.Request().Context(), rec)
		if err != nil {
			return err
		}
		if len(data) >= rec.PixelOffset+rec.FrameSize*rec.Frames {
			parts := make([][]byte, len(nums))
			for i, n := range nums {
				if n > rec.Frames {
					return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("dicomweb: frame %d of %d: %v", n, rec.Frames, dicom.ErrNoFrame))
				}
				parts[i] = data[rec.PixelOffset+(n-1)*rec.FrameSize : rec.PixelOffset+n*rec.FrameSize]
			}
			return writeOctetParts(c, s.baseURL(c)+instancePath(rec)+"/frames/", nums, parts)
		}
	}
	ds, rec, err := s.parsedInstance(c)
	if err != nil {
		return err
	}
	parts := make([][]byte, len(nums))
	for i, n := range nums {
		f, err := dicom.NativeFrame(ds, n)
		switch {
		case errors.Is(err, dicom.ErrNoFrame):
			return echo.NewHTTPError(http.StatusNotFound, err.Error())
		case errors.Is(err, dicom.ErrEncapsulated):
			return echo.NewHTTPError(http.StatusNotAcceptable, "dicomweb: compressed frames are not served; fetch the instance")
		case err != nil:
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		parts[i] = f
	}
	return writeOctetParts(c, s.baseURL(c)+instancePath(rec)+"/frames/", nums, parts)
}

// bulkdata answers a BulkDataURI of the metadata: the element's value as one
// application/octet-stream part (pixel data: all frames as stored).
func (s *Source) bulkdata(c echo.Context) error {
	t, err := dicom.ParseTagKey(strings.ToUpper(c.Param("tag")))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	ds, rec, err := s.parsedInstance(c)
	if err != nil {
		return err
	}
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, "dicomweb: no such bulk data element")
	}
	var value []byte
	switch v := e.Value.GetValue().(type) {
	case []byte:
		value = v
	case dcm.PixelDataInfo:
		value = v.UnprocessedValueData
	default:
		return echo.NewHTTPError(http.StatusNotFound, "dicomweb: element is not bulk data")
	}
	return writeOctetParts(c, s.baseURL(c)+instancePath(rec)+"/bulkdata/", []int{0}, [][]byte{value})
}

// parsedInstance loads and parses the instance a frames or bulkdata request names, keeping
// the pixel data bytes unprocessed.
func (s *Source) parsedInstance(c echo.Context) (*dcm.Dataset, *instanceRecord, error) {
	recs, err := s.selected(c)
	if err != nil {
		return nil, nil, err
	}
	rec := recs[0]
	data, err := s.store.objectBytes(c.Request().Context(), rec)
	if err != nil {
		return nil, nil, err
	}
	ds, err := parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("dicomweb: parse stored %s: %w", rec.SOP, err)
	}
	return &ds, rec, nil
}

func writeOctetParts(c echo.Context, location string, nums []int, parts [][]byte) error {
	boundary := newBoundary()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	for i, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/octet-stream")
		if nums[i] > 0 {
			h.Set("Content-Location", location+strconv.Itoa(nums[i]))
		}
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := pw.Write(p); err != nil {
			return err
		}
	}
	if err := mw.Close(); err != nil {
		return err
	}
	return c.Blob(http.StatusOK, `multipart/related; type="application/octet-stream"; boundary=`+boundary, buf.Bytes())
}

// acceptable reports whether an Accept header admits multipart/related parts of type want.
// An absent header, */*, multipart/related without a type, or a type of want all do.
func acceptable(accept, want string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, r := range strings.Split(accept, ",") {
		fields := strings.Split(r, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		switch mt {
		case "*/*", "multipart/*", want:
			return true
		case "multipart/related":
			typ := ""
			for _, p := range fields[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "type") {
					typ = strings.ToLower(strings.Trim(v, `"`))
				}
			}
			if typ == "" || typ == want || typ == "*/*" {
				return true
			}
		}
	}
	return false
}

func newBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "osprey-" + hex.EncodeToString(b[:])
}

func jsonObject(d dicom.JSONDataset) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("dicomweb: encode response: %w", err)
	}
	return b, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}
