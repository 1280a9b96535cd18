package sr_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
	dcm "github.com/suyashkumar/dicom"
)

// source is the synthetic head CT every test reports on: a small series with a left-sided
// bleed, summarised the way the DICOMweb sources summarise a stored study.
type source struct {
	series  *synth.Series
	summary dicom.StudySummary
}

var loadSource = sync.OnceValues(func() (*source, error) {
	s, err := synth.HeadCT(synth.CTOptions{
		StudyOptions: synth.StudyOptions{
			Seed:            "mappings-sr",
			AccessionNumber: "ACC0001",
			Patient:         synth.Patient{Name: "SYNTHETIC^JANE", ID: "SYN0000001", Sex: "F"},
		},
		Slices: 8,
		Size:   64,
		Bleed:  &synth.Bleed{Side: "left"},
	})
	if err != nil {
		return nil, err
	}
	var datasets []*dcm.Dataset
	for _, in := range s.Instances {
		ds, err := dcm.Parse(bytes.NewReader(in.Data), int64(len(in.Data)), nil, dcm.SkipPixelData())
		if err != nil {
			return nil, err
		}
		datasets = append(datasets, &ds)
	}
	sum, err := dicom.SummarizeInstances(datasets)
	if err != nil {
		return nil, err
	}
	sum.Retrieve = dicom.Retrieve{BaseURL: "http://127.0.0.1/dicomweb", Source: dicom.SourceSTOW}
	return &source{series: s, summary: sum}, nil
})

func testSource(t testing.TB) *source {
	t.Helper()
	s, err := loadSource()
	if err != nil {
		t.Fatalf("synthetic source study: %v", err)
	}
	return s
}

var (
	ichCode      = protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"}
	brainCode    = protocol.Coding{System: protocol.SystemSNOMED, Code: "12738006", Display: "Brain"}
	fractureCode = protocol.Coding{System: protocol.SystemSNOMED, Code: "21177008", Display: "Fracture of skull"}
	ichModel     = protocol.Model{Name: "osprey-ich", Version: "1.2.0", Manufacturer: "Osprey Health", DeviceUID: "2.25.1234567890123456789"}
	boneModel    = protocol.Model{Name: "bone-window", Version: "0.9", Manufacturer: "Example AI"}
	createdAt    = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
)

func order(src *source) *mappings.Order {
	return &mappings.Order{
		Accession:         src.summary.AccessionNumber,
		PlacerOrderNumber: "PLC123",
		FillerOrderNumber: "FIL456",
		PatientID:         src.summary.PatientID,
		PatientName:       src.summary.PatientName,
		Priority:          "S",
		ProcedureCode:     "CTHEADWO",
		ProcedureText:     "CT HEAD WITHOUT CONTRAST",
		Reason:            "headache",
	}
}

// instance returns the series and SOP instance UID of the n-th (1-based) source slice.
func instance(src *source, n int) (series, sop string) {
	se := src.summary.Series[0]
	return se.SeriesInstanceUID, se.Instances[n-1].SOPInstanceUID
}

// positive is an ICH finding with a volume, a midline shift, references and two regions.
func positive(src *source) *mappings.Analysis {
	ser, s4 := instance(src, 4)
	_, s5 := instance(src, 5)
	return &mappings.Analysis{
		ID:       "msg-positive",
		Revision: 1,
		Status:   mappings.StatusPreliminary,
		Channel:  "ed-head-ct",
		Priority: protocol.PriorityStat,
		Study:    src.summary,
		Order:    order(src),
		Findings: []mappings.Finding{{
			Finding: protocol.Finding{
				ID:         "ich-1",
				Code:       ichCode,
				Present:    true,
				Confidence: 0.93,
				Location:   protocol.Location{Code: &brainCode, Laterality: protocol.LateralityLeft},
				Measurements: []protocol.Measurement{
					{Name: "volume", Value: 8.7, Unit: "mL"},
					{Name: "midline shift", Value: 3.5, Unit: "mm"},
				},
				References: []protocol.Reference{
					{SeriesInstanceUID: ser, SOPInstanceUID: s4},
					{SeriesInstanceUID: ser, SOPInstanceUID: s5},
				},
				Regions: []protocol.Region{
					{SOPInstanceUID: s4, Shape: protocol.ShapePolygon, Points: []float64{20, 20, 30, 20, 30, 30, 20, 30}},
					{SOPInstanceUID: s5, Shape: protocol.ShapeEllipse, Points: []float64{20, 25, 30, 25, 25, 21, 25, 29}},
				},
			},
			Plugin: "ich", JobID: "job-1", Model: ichModel,
		}},
		Results:   []protocol.Result{{Protocol: protocol.Version, JobID: "job-1", Plugin: "ich", Status: protocol.StatusCompleted, Model: ichModel}},
		Summary:   "ich: intracranial hemorrhage, 8.7 mL",
		CreatedAt: createdAt,
	}
}

// negative is an ICH ruled out, seen on no particular image.
func negative(src *source) *mappings.Analysis {
	a := positive(src)
	a.ID = "msg-negative"
	a.Priority = ""
	a.Findings = []mappings.Finding{{
		Finding: protocol.Finding{ID: "ich", Code: ichCode, Present: false, Confidence: 0.98},
		Plugin:  "ich", JobID: "job-2", Model: ichModel,
	}}
	a.Summary = "ich: no intracranial hemorrhage"
	return a
}

// twoPlugins holds three findings from two plugins: a bleed outlined on one slice, a bleed
// volume without regions, and a fracture box from a second model without a device UID.
func twoPlugins(src *source) *mappings.Analysis {
	a := positive(src)
	a.ID = "msg-two-plugins"
	ser, s3 := instance(src, 3)
	_, s6 := instance(src, 6)
	a.Findings = []mappings.Finding{
		{
			Finding: protocol.Finding{
				ID: "ich-1", Code: ichCode, Present: true, Confidence: 0.81,
				Regions: []protocol.Region{{SOPInstanceUID: s3, Shape: protocol.ShapeBBox, Points: []float64{10, 10, 22.5, 19.25}}},
			},
			Plugin: "ich", JobID: "job-3", Model: ichModel,
		},
		{
			Finding: protocol.Finding{
				ID: "ich-2", Code: ichCode, Present: true, Confidence: 0.64,
				Measurements: []protocol.Measurement{{Name: "Volume", Value: 1.25, Unit: "mL"}},
				References:   []protocol.Reference{{SeriesInstanceUID: ser, SOPInstanceUID: s6}},
			},
			Plugin: "ich", JobID: "job-3", Model: ichModel,
		},
		{
			Finding: protocol.Finding{
				ID: "fx-1", Code: fractureCode, Present: true, Confidence: 0.5,
				Location: protocol.Location{Laterality: protocol.LateralityRight},
				Regions: []protocol.Region{
					{SOPInstanceUID: s6, Shape: protocol.ShapePoint, Points: []float64{40.5, 12.5}},
					{SOPInstanceUID: s3, Shape: protocol.ShapePolyline, Points: []float64{40, 10, 44, 14, 48, 12}},
				},
				Measurements: []protocol.Measurement{{Name: "length", Value: 12, Unit: "mm", Code: &protocol.Coding{System: "SCT", Code: "410668003", Display: "Length"}}},
			},
			Plugin: "bone", JobID: "job-4", Model: boneModel,
		},
	}
	a.Results = append(a.Results, protocol.Result{Protocol: protocol.Version, JobID: "job-4", Plugin: "bone", Status: protocol.StatusCompleted, Model: boneModel})
	return a
}

// noOrder is the positive analysis of a study that arrived without order context and
// without an accession number.
func noOrder(src *source) *mappings.Analysis {
	a := positive(src)
	a.ID = "msg-no-order"
	a.Order = nil
	a.Study.AccessionNumber = ""
	return a
}

type testCase struct {
	name     string
	analysis func(*source) *mappings.Analysis
}

var cases = []testCase{
	{"positive", positive},
	{"negative", negative},
	{"two-plugins", twoPlugins},
	{"no-order", noOrder},
}
