package dicomweb

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine/dicom"
)

// query is a parsed QIDO-RS query: attribute matches, limit and offset (PS3.18 8.3.4).
type query struct {
	match         map[tag.Tag]string
	limit, offset int
}

// parseQuery reads the query parameters. Attributes may be named by keyword
// (AccessionNumber) or tag (00080050); unknown keys other than the QIDO-RS controls are
// ignored, as a search a server cannot refine returns more, never fewer, results.
func parseQuery(v url.Values) (query, error) {
	q := query{match: map[tag.Tag]string{}}
	for k, vals := range v {
		if len(vals) == 0 {
			continue
		}
		val := vals[0]
		switch strings.ToLower(k) {
		case "limit", "offset":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return q, echo.NewHTTPError(http.StatusBadRequest, "dicomweb: "+k+" must be a non-negative integer")
			}
			if strings.ToLower(k) == "limit" {
				q.limit = n
			} else {
				q.offset = n
			}
			continue
		case "includefield", "fuzzymatching":
			continue
		}
		t, err := dicom.ParseTagKey(k)
		if err != nil {
			info, err := tag.FindByName(k)
			if err != nil {
				continue
			}
			t = info.Tag
		}
		if val != "" {
			q.match[t] = val
		}
	}
	return q, nil
}

// matches applies the query's attributes to one result dataset. Attributes the dataset
// does not carry do not match (except ModalitiesInStudy, held as a list).
func (q query) matches(d dicom.JSONDataset) bool {
	for t, want := range q.match {
		if t == tag.ModalitiesInStudy {
			mods := d.Strings(tag.ModalitiesInStudy)
			ok := false
			for _, m := range splitList(want) {
				ok = ok || slices.Contains(mods, m)
			}
			if !ok {
				return false
			}
			continue
		}
		if _, ok := d[dicom.TagKey(t)]; !ok {
			continue // not an attribute of this level: a server may ignore it (PS3.18 8.3.4.1)
		}
		got := d.String(t)
		if !matchValue(t, want, got) {
			return false
		}
	}
	return true
}

// matchValue implements the matching kinds of PS3.4 C.2.2.2: UID list, range (dates and
// times), wild card (* and ?), single value.
func matchValue(t tag.Tag, want, got string) bool {
	info, _ := tag.Find(t)
	vr := strings.SplitN(info.VR, " ", 2)[0]
	switch vr {
	case "UI":
		return slices.Contains(splitList(want), got)
	case "DA", "TM", "DT":
		if lo, hi, ok := strings.Cut(want, "-"); ok {
			return (lo == "" || got >= lo) && (hi == "" || got[:min(len(got), len(hi))] <= hi)
		}
		return got == want
	case "PN":
		return wildcard(strings.ToUpper(want), strings.ToUpper(got))
	}
	if strings.ContainsAny(want, "*?") {
		return wildcard(want, got)
	}
	return got == want
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\\' })
}

func wildcard(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\\/"), s)
	return err == nil && ok
}

func (q query) page(results []dicom.JSONDataset) []dicom.JSONDataset {
	if q.offset >= len(results) {
		return []dicom.JSONDataset{}
	}
	results = results[q.offset:]
	if q.limit > 0 && q.limit < len(results) {
		results = results[:q.limit]
	}
	return results
}

func answer(c echo.Context, results []dicom.JSONDataset) error {
	b, err := dicom.MarshalJSONArray(results)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, dicom.ContentJSON, b)
}

// searchStudies answers QIDO-RS GET {base}/studies.
func (s *Source) searchStudies(c echo.Context) error {
	q, err := parseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	recs, err := s.store.studies(c.Request().Context())
	if err != nil {
		return err
	}
	base := s.baseURL(c)
	var out []dicom.JSONDataset
	for _, r := range recs {
		if !scopedTo(c, r.Study) {
			continue
		}
		d := dicom.JSONDataset{}
		for k, a := range r.Attrs {
			d[k] = a
		}
		d.Set(tag.StudyInstanceUID, "UI", r.Study)
		mods := make([]any, len(r.Modalities))
		for i, m := range r.Modalities {
			mods[i] = m
		}
		d.Set(tag.ModalitiesInStudy, "CS", mods...)
		d.Set(tag.NumberOfStudyRelatedSeries, "IS", float64(len(r.Series)))
		d.Set(tag.NumberOfStudyRelatedInstances, "IS", float64(r.Instances))
		d.Set(tagRetrieveURL, "UR", base+"/studies/"+r.Study)
		if q.matches(d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b dicom.JSONDataset) int {
		if c := strings.Compare(b.String(tag.StudyDate)+b.String(tag.StudyTime), a.String(tag.StudyDate)+a.String(tag.StudyTime)); c != 0 {
			return c // newest first
		}
		return strings.Compare(a.String(tag.StudyInstanceUID), b.String(tag.StudyInstanceUID))
	})
	return answer(c, q.page(out))
}

// searchSeries answers QIDO-RS GET {base}/studies/{study}/series.
func (s *Source) searchSeries(c echo.Context) error {
	q, err := parseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	study := c.Param("study")
	recs, err := s.store.instances(c.Request().Context(), study, "")
	if err != nil {
		return err
	}
	base := s.baseURL(c)
	var out []dicom.JSONDataset
	bySeries := map[string]dicom.JSONDataset{}
	counts := map[string]int{}
	for _, r := range recs {
		counts[r.Series]++
		if bySeries[r.Series] != nil {
			continue
		}
		d := dicom.JSONDataset{}
		for _, t := range []tag.Tag{tag.Modality, tag.SeriesNumber, tag.SeriesDescription, tag.BodyPartExamined, tag.SeriesDate, tag.SeriesTime} {
			if a := r.Meta[dicom.TagKey(t)]; a != nil {
				d[dicom.TagKey(t)] = a
			}
		}
		d.Set(tag.StudyInstanceUID, "UI", r.Study)
		d.Set(tag.SeriesInstanceUID, "UI", r.Series)
		d.Set(tagRetrieveURL, "UR", base+"/studies/"+r.Study+"/series/"+r.Series)
		bySeries[r.Series] = d
		out = append(out, d)
	}
	var matched []dicom.JSONDataset
	for _, d := range out {
		d.Set(tag.NumberOfSeriesRelatedInstances, "IS", float64(counts[d.String(tag.SeriesInstanceUID)]))
		if q.matches(d) {
			matched = append(matched, d)
		}
	}
	return answer(c, q.page(matched))
}

// searchInstances answers QIDO-RS GET {base}/studies/{study}[/series/{series}]/instances.
func (s *Source) searchInstances(c echo.Context) error {
	q, err := parseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	recs, err := s.store.instances(c.Request().Context(), c.Param("study"), c.Param("series"))
	if err != nil {
		return err
	}
	base := s.baseURL(c)
	var out []dicom.JSONDataset
	for _, r := range recs {
		d := dicom.JSONDataset{}
		for _, t := range []tag.Tag{tag.SOPClassUID, tag.InstanceNumber, tag.Rows, tag.Columns, tag.BitsAllocated, tag.NumberOfFrames, tag.Modality} {
			if a := r.Meta[dicom.TagKey(t)]; a != nil {
				d[dicom.TagKey(t)] = a
			}
		}
		d.Set(tag.StudyInstanceUID, "UI", r.Study)
		d.Set(tag.SeriesInstanceUID, "UI", r.Series)
		d.Set(tag.SOPInstanceUID, "UI", r.SOP)
		d.Set(tagRetrieveURL, "UR", base+instancePath(r))
		if q.matches(d) {
			out = append(out, d)
		}
	}
	return answer(c, q.page(out))
}
