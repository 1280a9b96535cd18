package dicomweb_test

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"
	"time"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/dicom/synth"
)

// parts splits a multipart/related answer.
func parts(t *testing.T, resp *http.Response, body []byte, wantType string) [][]byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["type"] != wantType {
		t.Fatalf("content type %q, want multipart/related; type=%q", resp.Header.Get("Content-Type"), wantType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

// stored starts a source holding two studies: a 3-slice head CT and a chest DX.
func stored(t *testing.T, cfg dicomweb.SourceConfig) (*dicomweb.Source, *synth.Series, *synth.Series) {
	t.Helper()
	src, _ := runSource(t, newBroker(t), cfg, newSink())
	ct := headCT(t, "wado", 3)
	xr, err := synth.ChestXR(synth.XROptions{StudyOptions: synth.StudyOptions{Seed: "wado-xr"}})
	if err != nil {
		t.Fatal(err)
	}
	token := ""
	if len(cfg.Tokens) > 0 {
		token = cfg.Tokens[0]
	}
	for _, s := range []*synth.Series{ct, xr} {
		typ, body := dicomweb.Multipart(instancesOf(s)...)
		if status, resp := post(t, src.BaseURL()+"/studies", typ, body, token); status != http.StatusOK {
			t.Fatalf("STOW %d: %v", status, resp)
		}
	}
	return src, ct, xr
}

func TestWADORetrieve(t *testing.T) {
	src, ct, _ := stored(t, dicomweb.SourceConfig{})
	m := ct.Manifest
	study, series := m.StudyInstanceUID, m.Series[0].SeriesInstanceUID
	sop := m.Series[0].Instances[1].SOPInstanceUID
	base := src.BaseURL()

	tests := []struct {
		name string
		path string
		want [][]byte
	}{
		{"study", "/studies/" + study, instancesOf(ct)},
		{"series", "/studies/" + study + "/series/" + series, instancesOf(ct)},
		{"instance", "/studies/" + study + "/series/" + series + "/instances/" + sop, [][]byte{ct.Instances[1].Data}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, `multipart/related; type="application/dicom"`, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := parts(t, resp, body, "application/dicom")
			if len(got) != len(tc.want) {
				t.Fatalf("%d parts, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("part %d differs from the instance sent (in instance order)", i)
				}
			}
		})
	}
	t.Run("unknown study", func(t *testing.T) {
		if resp, _ := get(t, base+"/studies/1.2.3.4", "", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("unacceptable type", func(t *testing.T) {
		if resp, _ := get(t, base+"/studies/"+study, "image/jpeg", ""); resp.StatusCode != http.StatusNotAcceptable {
			t.Errorf("status %d, want 406", resp.StatusCode)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		resp, body := get(t, base+"/studies/"+study+"/metadata", dicom.ContentJSON, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != dicom.ContentJSON {
			t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		objs, err := dicom.DecodeJSONArray(body)
		if err != nil || len(objs) != 3 {
			t.Fatalf("%d objects, err %v", len(objs), err)
		}
		if objs[0].String(tag.SOPInstanceUID) != m.Series[0].Instances[0].SOPInstanceUID {
			t.Errorf("first object is %s, want instance 1", objs[0].String(tag.SOPInstanceUID))
		}
		pd := objs[1][dicom.TagKey(tag.PixelData)]
		if pd == nil || pd.BulkDataURI == "" || pd.InlineBinary != "" || len(pd.Value) != 0 {
			t.Fatalf("pixel data attribute %+v, want a BulkDataURI only", pd)
		}
		// The bulk data URI answers the pixel data, which ends the Part 10 file.
		resp, body = get(t, pd.BulkDataURI, "", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("bulk data status %d: %s", resp.StatusCode, body)
		}
		bulk := parts(t, resp, body, "application/octet-stream")
		if len(bulk) != 1 || !bytes.HasSuffix(ct.Instances[1].Data, bulk[0]) || len(bulk[0]) != 64*64*2 {
			t.Errorf("bulk data is %d bytes, not the instance's pixel data", len(bulk[0]))
		}
		// Summaries from the metadata equal summaries from the instances.
		fromMeta, err := dicom.SummarizeMetadata(body0(t, base+"/studies/"+study+"/metadata"))
		if err != nil {
			t.Fatal(err)
		}
		if fromMeta.NumberOfInstances != 3 || fromMeta.AccessionNumber != m.AccessionNumber {
			t.Errorf("summary from metadata: %+v", fromMeta)
		}
	})
	t.Run("series and instance metadata", func(t *testing.T) {
		for path, n := range map[string]int{
			"/studies/" + study + "/series/" + series + "/metadata":                       3,
			"/studies/" + study + "/series/" + series + "/instances/" + sop + "/metadata": 1,
		} {
			objs, err := dicom.DecodeJSONArray(body0(t, base+path))
			if err != nil || len(objs) != n {
				t.Errorf("%s: %d objects, want %d (%v)", path, len(objs), n, err)
			}
		}
	})

	t.Run("frames", func(t *testing.T) {
		ds, err := dcm.Parse(bytes.NewReader(ct.Instances[1].Data), int64(len(ct.Instances[1].Data)), nil, dcm.SkipProcessingPixelDataValue())
		if err != nil {
			t.Fatal(err)
		}
		want, err := dicom.NativeFrame(&ds, 1)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := get(t, base+"/studies/"+study+"/series/"+series+"/instances/"+sop+"/frames/1", `multipart/related; type="application/octet-stream"`, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got := parts(t, resp, body, "application/octet-stream")
		if len(got) != 1 || !bytes.Equal(got[0], want) {
			t.Errorf("frame 1 differs from the instance's pixel data")
		}
		if resp, _ := get(t, base+"/studies/"+study+"/series/"+series+"/instances/"+sop+"/frames/2", "", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("frame 2 of a single-frame image: status %d, want 404", resp.StatusCode)
		}
		if resp, _ := get(t, base+"/studies/"+study+"/series/"+series+"/instances/"+sop+"/frames/x", "", ""); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("frame x: status %d, want 400", resp.StatusCode)
		}
	})
}

func body0(t *testing.T, u string) []byte {
	t.Helper()
	resp, body := get(t, u, dicom.ContentJSON, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return body
}

func TestQIDO(t *testing.T) {
	src, ct, xr := stored(t, dicomweb.SourceConfig{})
	base := src.BaseURL()
	cm, xm := ct.Manifest, xr.Manifest
	tests := []struct {
		name  string
		query url.Values
		want  []string // study UIDs
	}{
		{"all", url.Values{}, []string{cm.StudyInstanceUID, xm.StudyInstanceUID}},
		{"by study uid", url.Values{"StudyInstanceUID": {cm.StudyInstanceUID}}, []string{cm.StudyInstanceUID}},
		{"by uid list", url.Values{"StudyInstanceUID": {cm.StudyInstanceUID + "," + xm.StudyInstanceUID}}, []string{cm.StudyInstanceUID, xm.StudyInstanceUID}},
		{"by accession", url.Values{"AccessionNumber": {xm.AccessionNumber}}, []string{xm.StudyInstanceUID}},
		{"by accession tag", url.Values{"00080050": {cm.AccessionNumber}}, []string{cm.StudyInstanceUID}},
		{"by patient id", url.Values{"PatientID": {cm.Patient.ID}}, []string{cm.StudyInstanceUID}},
		{"by modality", url.Values{"ModalitiesInStudy": {"DX"}}, []string{xm.StudyInstanceUID}},
		{"by date", url.Values{"StudyDate": {cm.StudyDate}}, []string{cm.StudyInstanceUID}},
		{"by date range", url.Values{"StudyDate": {"19000101-" + cm.StudyDate}}, nil},
		{"by open range", url.Values{"StudyDate": {"19000101-"}}, []string{cm.StudyInstanceUID, xm.StudyInstanceUID}},
		{"no match", url.Values{"AccessionNumber": {"NOPE"}}, nil},
		{"limit", url.Values{"limit": {"1"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := dicom.DecodeJSONArray(body0(t, base+"/studies?"+tc.query.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, o := range objs {
				got[o.String(tag.StudyInstanceUID)] = true
			}
			switch tc.name {
			case "limit":
				if len(objs) != 1 {
					t.Errorf("limit 1 gave %d results", len(objs))
				}
				return
			case "by date range":
				// The range ends at the CT's date: the CT matches, the DX only if not later.
				if !got[cm.StudyInstanceUID] || (xm.StudyDate > cm.StudyDate && got[xm.StudyInstanceUID]) {
					t.Errorf("range matched %v", got)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("missing %s in %v", w, got)
				}
			}
		})
	}
	t.Run("study attributes", func(t *testing.T) {
		objs, _ := dicom.DecodeJSONArray(body0(t, base+"/studies?StudyInstanceUID="+cm.StudyInstanceUID))
		if len(objs) != 1 {
			t.Fatalf("%d results", len(objs))
		}
		o := objs[0]
		if o.String(tag.NumberOfStudyRelatedInstances) != "3" || o.String(tag.ModalitiesInStudy) != "CT" || o.String(tag.AccessionNumber) != cm.AccessionNumber {
			t.Errorf("study result %v", o)
		}
	})
	t.Run("series and instances", func(t *testing.T) {
		series, _ := dicom.DecodeJSONArray(body0(t, base+"/studies/"+cm.StudyInstanceUID+"/series"))
		if len(series) != 1 || series[0].String(tag.SeriesInstanceUID) != cm.Series[0].SeriesInstanceUID || series[0].String(tag.Modality) != "CT" || series[0].String(tag.NumberOfSeriesRelatedInstances) != "3" {
			t.Errorf("series %v", series)
		}
		none, _ := dicom.DecodeJSONArray(body0(t, base+"/studies/"+cm.StudyInstanceUID+"/series?Modality=MR"))
		if len(none) != 0 {
			t.Errorf("Modality=MR matched %d series", len(none))
		}
		insts, _ := dicom.DecodeJSONArray(body0(t, base+"/studies/"+cm.StudyInstanceUID+"/series/"+cm.Series[0].SeriesInstanceUID+"/instances"))
		if len(insts) != 3 || insts[2].String(tag.InstanceNumber) != "3" || insts[0].String(tag.SOPClassUID) != synth.CTImageStorage {
			b, _ := json.Marshal(insts)
			t.Errorf("instances %s", b)
		}
		one, _ := dicom.DecodeJSONArray(body0(t, base+"/studies/"+cm.StudyInstanceUID+"/instances?SOPInstanceUID="+cm.Series[0].Instances[0].SOPInstanceUID))
		if len(one) != 1 {
			t.Errorf("instance search by SOPInstanceUID gave %d", len(one))
		}
	})
}

func TestTokens(t *testing.T) {
	const bearer = "s3cret-bearer"
	key := []byte("0123456789abcdef0123456789abcdef")
	src, ct, xr := stored(t, dicomweb.SourceConfig{Tokens: []string{bearer}, TokenKey: key})
	base := src.BaseURL()
	study, other := ct.Manifest.StudyInstanceUID, xr.Manifest.StudyInstanceUID
	scoped := dicomweb.MintToken(key, study, time.Minute)
	expired := dicomweb.MintToken(key, study, -time.Second)
	forged := dicomweb.MintToken([]byte("another key, another osprey....."), study, time.Minute)
	if got := src.MintToken(study, time.Minute); got == "" {
		t.Fatal("Source.MintToken returned nothing")
	}

	tests := []struct {
		name, path, token string
		status            int
	}{
		{"no token", "/studies/" + study + "/metadata", "", http.StatusUnauthorized},
		{"wrong bearer", "/studies/" + study + "/metadata", "nope", http.StatusUnauthorized},
		{"bearer", "/studies/" + other + "/metadata", bearer, http.StatusOK},
		{"scoped, own study", "/studies/" + study + "/metadata", scoped, http.StatusOK},
		{"scoped, own frames", "/studies/" + study + "/series/" + ct.Manifest.Series[0].SeriesInstanceUID + "/instances/" + ct.Manifest.Series[0].Instances[0].SOPInstanceUID + "/frames/1", scoped, http.StatusOK},
		{"scoped, other study", "/studies/" + other + "/metadata", scoped, http.StatusForbidden},
		{"scoped, expired", "/studies/" + study + "/metadata", expired, http.StatusUnauthorized},
		{"scoped, other key", "/studies/" + study + "/metadata", forged, http.StatusUnauthorized},
		{"scoped, search", "/studies", scoped, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, "", tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.name == "scoped, search" {
				objs, _ := dicom.DecodeJSONArray(body)
				if len(objs) != 1 || objs[0].String(tag.StudyInstanceUID) != study {
					t.Errorf("scoped search returned %d studies, want only its own", len(objs))
				}
			}
		})
	}
	t.Run("scoped token cannot STOW a new study", func(t *testing.T) {
		typ, body := dicomweb.Multipart(instancesOf(headCT(t, "scoped-stow", 1))...)
		if status, _ := post(t, base+"/studies", typ, body, scoped); status != http.StatusForbidden {
			t.Errorf("status %d, want 403", status)
		}
	})
}

func TestVerifyToken(t *testing.T) {
	key := []byte("k")
	now := time.Now()
	tok := dicomweb.MintToken(key, "1.2.3", time.Hour)
	if uid, err := dicomweb.VerifyToken(key, tok, now); err != nil || uid != "1.2.3" {
		t.Fatalf("VerifyToken = %q, %v", uid, err)
	}
	tampered := []byte(tok)
	tampered[len("osp1.")] ^= 1
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired", tok, now.Add(2 * time.Hour), dicomweb.ErrTokenExpired},
		{"tampered", string(tampered), now, dicomweb.ErrTokenInvalid},
		{"not a token", "hello", now, dicomweb.ErrTokenInvalid},
		{"empty", "", now, dicomweb.ErrTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dicomweb.VerifyToken(key, tc.token, tc.at); err != tc.want {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
