package dicom_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/dicom/synth"
)

func parseAll(t *testing.T, s *synth.Series) []*dcm.Dataset {
	t.Helper()
	out := make([]*dcm.Dataset, len(s.Instances))
	for i, in := range s.Instances {
		ds, err := dcm.Parse(bytes.NewReader(in.Data), int64(len(in.Data)), nil, dcm.SkipProcessingPixelDataValue())
		if err != nil {
			t.Fatalf("parse instance %d: %v", i, err)
		}
		out[i] = &ds
	}
	return out
}

func TestSummarizeInstances(t *testing.T) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "summary"}, Slices: 4, Size: 32, Contrast: "IOHEXOL"})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest
	ds := parseAll(t, s)
	// Reversed order and a duplicate: the summary sorts by InstanceNumber and counts once.
	in := []*dcm.Dataset{ds[3], ds[2], ds[1], ds[0], ds[0]}
	sum, err := dicom.SummarizeInstances(in)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"study uid", sum.StudyInstanceUID, m.StudyInstanceUID},
		{"accession", sum.AccessionNumber, m.AccessionNumber},
		{"patient id", sum.PatientID, m.Patient.ID},
		{"patient name", sum.PatientName, m.Patient.Name},
		{"sex", sum.PatientSex, m.Patient.Sex},
		{"age", sum.PatientAge, m.Patient.Age},
		{"study date", sum.StudyDate, m.StudyDate},
		{"description", sum.StudyDescription, m.StudyDescription},
		{"contrast agent", sum.ContrastBolusAgent, "IOHEXOL"},
		{"series uid", sum.Series[0].SeriesInstanceUID, m.Series[0].SeriesInstanceUID},
		{"modality", sum.Series[0].Modality, "CT"},
		{"first instance", sum.Series[0].Instances[0].SOPInstanceUID, m.Series[0].Instances[0].SOPInstanceUID},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !sum.Contrast || sum.NumberOfInstances != 4 || len(sum.Series) != 1 || !reflect.DeepEqual(sum.Modalities, []string{"CT"}) {
		t.Errorf("contrast %v, instances %d, series %d, modalities %v", sum.Contrast, sum.NumberOfInstances, len(sum.Series), sum.Modalities)
	}
	if sum.Series[0].Instances[0].Frames != 1 || sum.BodyPartExamined == "" {
		t.Errorf("frames %d, body part %q", sum.Series[0].Instances[0].Frames, sum.BodyPartExamined)
	}
	if len(sum.Warnings) != 0 {
		t.Errorf("warnings %v for a study with accession", sum.Warnings)
	}

	t.Run("from DICOM JSON metadata", func(t *testing.T) {
		objs := make([]dicom.JSONDataset, len(in))
		for i, d := range in {
			objs[i] = dicom.JSONFromDataset(d, func(tag.Tag) string { return "http://x/bulk" })
		}
		body, err := dicom.MarshalJSONArray(objs)
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := dicom.SummarizeMetadata(body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromJSON, sum) {
			a, _ := json.Marshal(fromJSON)
			b, _ := json.Marshal(sum)
			t.Errorf("summary from JSON differs:\n%s\nfrom datasets:\n%s", a, b)
		}
		if pd := objs[0][dicom.TagKey(tag.PixelData)]; pd == nil || pd.BulkDataURI == "" || len(pd.Value) != 0 {
			t.Errorf("pixel data in metadata = %+v, want a BulkDataURI", pd)
		}
	})
}

func TestSummarizeErrors(t *testing.T) {
	a, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "a"}, Slices: 1, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	b, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "b"}, Slices: 1, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	da, db := parseAll(t, a), parseAll(t, b)
	var noAcc dicom.Builder
	noAcc.Add(tag.StudyInstanceUID, "1.2.3")
	noAcc.Add(tag.SeriesInstanceUID, "1.2.3.4")
	noAcc.Add(tag.SOPInstanceUID, "1.2.3.4.5")
	noAcc.Add(tag.SOPClassUID, "1.2.840.10008.5.1.4.1.1.7")
	noAccDS, err := noAcc.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	var noUID dicom.Builder
	noUID.Add(tag.StudyInstanceUID, "1.2.3")
	noUIDDS, _ := noUID.Dataset()

	tests := []struct {
		name string
		in   []*dcm.Dataset
		want error
	}{
		{"none", nil, dicom.ErrNoInstances},
		{"two studies", []*dcm.Dataset{da[0], db[0]}, dicom.ErrMixedStudies},
		{"missing uid", []*dcm.Dataset{noUIDDS}, dicom.ErrMissingUID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dicom.SummarizeInstances(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("no accession is summarised with a warning", func(t *testing.T) {
		s, err := dicom.SummarizeInstances([]*dcm.Dataset{noAccDS})
		if err != nil {
			t.Fatal(err)
		}
		if s.AccessionNumber != "" || !reflect.DeepEqual(s.Warnings, []string{dicom.WarningNoAccession}) || s.Series[0].Instances[0].Frames != 0 {
			t.Errorf("summary %+v", s)
		}
	})
}

func TestNativeFrame(t *testing.T) {
	s, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "frame"}, Slices: 1, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	ds := parseAll(t, s)[0]
	f, err := dicom.NativeFrame(ds, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 16*16*2 {
		t.Errorf("frame is %d bytes, want %d", len(f), 16*16*2)
	}
	if !bytes.HasSuffix(s.Instances[0].Data, f) {
		t.Errorf("frame bytes are not the file's pixel data")
	}
	if _, err := dicom.NativeFrame(ds, 2); !errors.Is(err, dicom.ErrNoFrame) {
		t.Errorf("frame 2: err = %v, want ErrNoFrame", err)
	}
}
