package dicomweb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"

	"github.com/osprey-health/osprey/engine/dicom"
)

// Failure Reason (0008,1197) codes of the STOW-RS response, PS3.18 Table I.2-2 (Store
// Instances Response Failure Reason Values), which takes them from the C-STORE statuses of
// PS3.4 B.2.3.
const (
	// FailProcessing is 0110H, Processing failure: a general failure, here a storage error.
	FailProcessing = 0x0110
	// FailOutOfResources is A700H, Refused: Out of Resources (the object store is full).
	FailOutOfResources = 0xA700
	// FailSOPClassMismatch is A900H, Error: Data Set does not match SOP Class; here a data set
	// without the SOP Class, SOP Instance, Study or Series Instance UID every instance needs.
	FailSOPClassMismatch = 0xA900
	// FailCannotUnderstand is C000H, Error: Cannot understand: the part is not a Part 10 file,
	// is truncated, or does not parse.
	FailCannotUnderstand = 0xC000
	// FailTransferSyntax is C122H, Referenced Transfer Syntax not supported (deflate).
	FailTransferSyntax = 0xC122
	// FailStudyMismatch is C409H, inside the Cxxx "cannot understand" range that PS3.18
	// leaves to implementations: the instance's StudyInstanceUID differs from the study of the
	// request URL. dcm4chee-arc uses the same value for the same condition.
	FailStudyMismatch = 0xC409
)

// Tags of the STOW-RS response (PS3.18 10.5.3) missing from the tag dictionary.
var tagRetrieveURL = tag.Tag{Group: 0x0008, Element: 0x1190}

// stowOutcome is what happened to one part of a STOW-RS request.
type stowOutcome struct {
	sopClass, sopInstance, study, series string
	failure                              int // 0: stored
	duplicate                            bool
	why                                  string
}

// stow handles POST {base}/studies[/{study}].
func (s *Source) stow(c echo.Context) error {
	req := c.Request()
	urlStudy := c.Param("study")
	mt, params, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || mt != "multipart/related" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, `dicomweb: STOW-RS takes multipart/related; type="application/dicom"`)
	}
	if t := strings.ToLower(params["type"]); t != "" && t != "application/dicom" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("dicomweb: multipart/related type %q is not supported; send application/dicom parts", t))
	}
	if params["boundary"] == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "dicomweb: multipart/related without a boundary")
	}
	if req.ContentLength > s.cfg.MaxRequestSize {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("dicomweb: request of %d bytes exceeds max_request_size %d", req.ContentLength, s.cfg.MaxRequestSize))
	}
	body := http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxRequestSize)
	mr := multipart.NewReader(body, params["boundary"])
	ctx := req.Context()
	remote := remoteAddr(c)
	var outcomes []stowOutcome
	added := map[string][]*instanceRecord{}
	status := 0
	var readErr error
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			status, readErr = readFailure(err), err
			break
		}
		out, rec, err := s.storePart(ctx, part, urlStudy)
		part.Close()
		if err != nil {
			status, readErr = readFailure(err), err
			break
		}
		if rec != nil {
			added[rec.Study] = append(added[rec.Study], rec)
		}
		outcomes = append(outcomes, out)
	}
	now := time.Now()
	for study, recs := range added {
		if err := s.store.touchStudy(ctx, study, recs, remote, now); err != nil {
			// The instances are stored but the study might never be announced: tell the
			// sender to retry (duplicates are accepted), rather than pretend all went well.
			s.log.Error("dicomweb: track study", "study", study, "error", err)
			for i := range outcomes {
				if outcomes[i].study == study && outcomes[i].failure == 0 {
					outcomes[i].failure, outcomes[i].why = FailProcessing, "could not record the study for completion"
				}
			}
		}
	}
	if len(added) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	stored, failed := 0, 0
	for _, o := range outcomes {
		if o.failure == 0 {
			stored++
		} else {
			failed++
			s.log.Warn("dicomweb: instance refused", "sop_instance_uid", o.sopInstance, "reason", fmt.Sprintf("%04X", o.failure), "why", o.why)
		}
	}
	switch {
	case status != 0 && len(outcomes) == 0:
		if status == http.StatusRequestEntityTooLarge {
			return echo.NewHTTPError(status, fmt.Sprintf("dicomweb: request exceeds max_request_size %d", s.cfg.MaxRequestSize))
		}
		return echo.NewHTTPError(status, "dicomweb: malformed multipart body: "+readErr.Error())
	case status != 0:
		// Instances before the fault are stored and listed; the sender may resend the
		// rest, duplicates being accepted.
	case len(outcomes) == 0:
		return echo.NewHTTPError(http.StatusBadRequest, "dicomweb: the request holds no parts")
	case failed == 0:
		status = http.StatusOK
	case stored > 0:
		status = http.StatusAccepted
	default:
		status = http.StatusConflict
	}
	s.log.Info("dicomweb: stow", "stored", stored, "failed", failed, "status", status, "remote_addr", remote)
	resp := stowResponse(s.baseURL(c), urlStudy, outcomes)
	b, err := jsonObject(resp)
	if err != nil {
		return err
	}
	return c.Blob(status, dicom.ContentJSON, b)
}

// readFailure maps an error reading the request to its status: 413 for the size limit, 400
// for a malformed multipart body.
func readFailure(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// storePart validates and stores one part. An error means the request itself could not be
// read further; a refused instance is an outcome with a failure code.
func (s *Source) storePart(ctx context.Context, part *multipart.Part, urlStudy string) (stowOutcome, *instanceRecord, error) {
	if ct := part.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/dicom" {
			// Drain it so the next part can be read, and refuse it.
			if _, err := io.Copy(io.Discard, part); err != nil {
				return stowOutcome{}, nil, err
			}
			return stowOutcome{failure: FailCannotUnderstand, why: fmt.Sprintf("part of type %q is not application/dicom", ct)}, nil, nil
		}
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(part); err != nil {
		return stowOutcome{}, nil, err
	}
	data := buf.Bytes()
	out, rec := validate(data, urlStudy)
	if out.failure != 0 {
		return out, nil, nil
	}
	dup, err := s.store.has(ctx, rec.Study, rec.Series, rec.SOP)
	if err != nil {
		out.failure, out.why = storeFailure(err), err.Error()
		return out, nil, nil
	}
	if dup {
		// Idempotent: the sender retried, or a modality re-sent. Same UID, same instance.
		out.duplicate = true
		s.log.Warn("dicomweb: duplicate instance accepted", "sop_instance_uid", rec.SOP)
		return out, nil, nil
	}
	rec.Stored = time.Now().UTC()
	if err := s.store.put(ctx, rec, data); err != nil {
		out.failure, out.why = storeFailure(err), err.Error()
		return out, nil, nil
	}
	return out, rec, nil
}

func storeFailure(err error) int {
	if errors.Is(err, jetstream.ErrNoHeartbeat) {
		return FailProcessing
	}
	if strings.Contains(err.Error(), "insufficient resources") || strings.Contains(err.Error(), "maximum bytes") {
		return FailOutOfResources
	}
	return FailProcessing
}

// validate checks one Part 10 instance and returns its index record.
func validate(data []byte, urlStudy string) (stowOutcome, *instanceRecord) {
	if len(data) < 132 || string(data[128:132]) != "DICM" {
		return stowOutcome{failure: FailCannotUnderstand, why: "not a DICOM Part 10 file (no DICM preamble)"}, nil
	}
	// Lengths first: the parser trusts them and would allocate what a hostile file declares.
	if err := dicom.CheckLengths(data); err != nil {
		if errors.Is(err, dicom.ErrUnsupportedSyntax) {
			return stowOutcome{failure: FailTransferSyntax, why: err.Error()}, nil
		}
		return stowOutcome{failure: FailCannotUnderstand, why: "truncated or corrupt: " + err.Error()}, nil
	}
	ds, err := parse(data)
	if err != nil {
		return stowOutcome{failure: FailCannotUnderstand, why: "does not parse (truncated or corrupt): " + err.Error()}, nil
	}
	get := func(t tag.Tag) string {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return ""
		}
		if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
			return strings.TrimRight(v[0], " \x00")
		}
		return ""
	}
	out := stowOutcome{
		sopClass:    get(tag.SOPClassUID),
		sopInstance: get(tag.SOPInstanceUID),
		study:       get(tag.StudyInstanceUID),
		series:      get(tag.SeriesInstanceUID),
	}
	for _, u := range []struct{ name, v string }{{"SOPClassUID", out.sopClass}, {"SOPInstanceUID", out.sopInstance}, {"StudyInstanceUID", out.study}, {"SeriesInstanceUID", out.series}} {
		if u.v == "" || dicom.ValidUID(u.v) != nil {
			out.failure, out.why = FailSOPClassMismatch, fmt.Sprintf("%s missing or not a valid UID", u.name)
			return out, nil
		}
	}
	if urlStudy != "" && out.study != urlStudy {
		out.failure, out.why = FailStudyMismatch, "StudyInstanceUID differs from the study of the request"
		return out, nil
	}
	ts := get(tag.TransferSyntaxUID)
	if ts == "" {
		ts = uid.ImplicitVRLittleEndian
	}
	meta := dicom.JSONFromDataset(&ds, func(t tag.Tag) string { return bulkMarker + dicom.TagKey(t) })
	rec := &instanceRecord{
		Study: out.study, Series: out.series, SOP: out.sopInstance, SOPClass: out.sopClass,
		TransferSyntax: ts, Size: len(data), Meta: meta,
	}
	locateFrames(rec, data, &ds)
	return out, rec
}

// locateFrames records where native frames lie in data when pixel data is the last element
// and uncompressed, which is how almost every image is written; other instances are served
// by parsing them again.
func locateFrames(rec *instanceRecord, data []byte, ds *dcm.Dataset) {
	if rec.TransferSyntax != uid.ExplicitVRLittleEndian && rec.TransferSyntax != uid.ImplicitVRLittleEndian {
		return
	}
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return
	}
	info, ok := e.Value.GetValue().(dcm.PixelDataInfo)
	if !ok || info.IsEncapsulated {
		return
	}
	m := rec.Meta
	rows, cols := atoi(m.String(tag.Rows)), atoi(m.String(tag.Columns))
	spp, bits, frames := max(atoi(m.String(tag.SamplesPerPixel)), 1), atoi(m.String(tag.BitsAllocated)), max(atoi(m.String(tag.NumberOfFrames)), 1)
	size := rows * cols * spp * bits / 8
	if size <= 0 || bits%8 != 0 || len(info.UnprocessedValueData) < size*frames {
		return
	}
	off := len(data) - len(info.UnprocessedValueData)
	// The element header just before the value must be (7FE0,0010): 12 bytes back in
	// explicit VR (tag, VR, reserved, 32-bit length), 8 in implicit VR.
	head := 12
	if rec.TransferSyntax == uid.ImplicitVRLittleEndian {
		head = 8
	}
	if off < head || !bytes.Equal(data[off-head:off-head+4], []byte{0xE0, 0x7F, 0x10, 0x00}) ||
		!bytes.Equal(data[off:], info.UnprocessedValueData) {
		return
	}
	rec.PixelOffset, rec.FrameSize, rec.Frames = off, size, frames
}

// parse reads a Part 10 file, pixel data kept as raw bytes. The parser can panic on some
// malformed input; that is one more file it cannot understand, not a failed request.
func parse(data []byte) (ds dcm.Dataset, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("parser failed: %v", r)
		}
	}()
	return dcm.Parse(bytes.NewReader(data), int64(len(data)), nil, dcm.SkipProcessingPixelDataValue())
}

// bulkMarker stands for the instance's own bulk data URL in stored metadata; WADO-RS
// replaces it with an absolute URL when it answers.
const bulkMarker = "bulk:"

// stowResponse builds the Store Instances Response Module (PS3.18 10.5.3.2).
func stowResponse(base, urlStudy string, outcomes []stowOutcome) dicom.JSONDataset {
	resp := dicom.JSONDataset{}
	studies := map[string]bool{}
	var refs, fails []any
	for _, o := range outcomes {
		item := dicom.JSONDataset{}
		if o.sopClass != "" {
			item.Set(tag.ReferencedSOPClassUID, "UI", o.sopClass)
		}
		if o.sopInstance != "" {
			item.Set(tag.ReferencedSOPInstanceUID, "UI", o.sopInstance)
		}
		if o.failure != 0 {
			item.Set(tag.FailureReason, "US", float64(o.failure))
			fails = append(fails, item)
			continue
		}
		studies[o.study] = true
		item.Set(tagRetrieveURL, "UR", base+"/studies/"+o.study+"/series/"+o.series+"/instances/"+o.sopInstance)
		refs = append(refs, item)
	}
	study := urlStudy
	if study == "" && len(studies) == 1 {
		for st := range studies {
			study = st
		}
	}
	if study != "" {
		resp.Set(tagRetrieveURL, "UR", base+"/studies/"+study)
	}
	if len(fails) > 0 {
		resp[dicom.TagKey(tag.FailedSOPSequence)] = &dicom.JSONAttribute{VR: "SQ", Value: fails}
	}
	if len(refs) > 0 {
		resp[dicom.TagKey(tag.ReferencedSOPSequence)] = &dicom.JSONAttribute{VR: "SQ", Value: refs}
	}
	return resp
}
