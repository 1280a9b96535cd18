package fhir

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

const (
	studyUID    = "1.2.826.0.1.3680043.8.498.1"
	seriesUID   = "1.2.826.0.1.3680043.8.498.1.1"
	instanceUID = "1.2.826.0.1.3680043.8.498.1.1.1"
	ctImage     = "1.2.840.10008.5.1.4.1.1.2"
)

// ichAnalysis is the ICH example of the design: a non-contrast head CT from the ED, one
// model that found a haemorrhage and ruled out a midline shift, and rules that made it STAT.
func ichAnalysis() *mappings.Analysis {
	model := protocol.Model{Name: "ich-detect", Version: "2.1.0", Manufacturer: "Example AI", DeviceUID: "1.2.826.0.1.3680043.8.498.99"}
	ich := protocol.Finding{
		ID:         "f1",
		Code:       protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
		Present:    true,
		Confidence: 0.93,
		Location: protocol.Location{
			Text:       "parietal lobe",
			Code:       &protocol.Coding{System: protocol.SystemSNOMED, Code: "16630005", Display: "Parietal lobe"},
			Laterality: protocol.LateralityLeft,
		},
		Measurements: []protocol.Measurement{{Name: "Volume", Value: 12.5, Unit: "mL"}},
		References:   []protocol.Reference{{SeriesInstanceUID: seriesUID, SOPInstanceUID: instanceUID}},
	}
	shift := protocol.Finding{
		ID:         "f2",
		Code:       protocol.Coding{System: protocol.SystemRadLex, Code: "RID5005", Display: "Midline shift"},
		Present:    false,
		Confidence: 0.81,
	}
	return &mappings.Analysis{
		ID:       "msg-0001",
		Revision: 1,
		Status:   mappings.StatusPreliminary,
		Channel:  "ed-ct",
		Priority: protocol.PriorityStat,
		Rules:    []string{"ich-stat"},
		Study: dicom.StudySummary{
			StudyInstanceUID:  studyUID,
			AccessionNumber:   "ACC-42",
			StudyDate:         "20261201",
			StudyTime:         "221530.25",
			StudyDescription:  "CT HEAD W/O CONTRAST",
			PatientID:         "MRN123",
			PatientName:       "DOE^JANE",
			Modalities:        []string{"CT"},
			BodyPartExamined:  "HEAD",
			NumberOfInstances: 1,
			Series: []dicom.SeriesSummary{{
				SeriesInstanceUID: seriesUID, Modality: "CT", SeriesNumber: 2, SeriesDescription: "Axial 5mm",
				Instances: []dicom.InstanceSummary{{SOPInstanceUID: instanceUID, SOPClassUID: ctImage, InstanceNumber: 1, Frames: 1}},
			}},
		},
		Order: &mappings.Order{
			Accession: "ACC-42", PlacerOrderNumber: "PO-7", PatientID: "MRN123",
			Priority: "S", ProcedureCode: "CTHEAD", ProcedureText: "CT head without contrast",
		},
		Findings: []mappings.Finding{
			{Finding: ich, Plugin: "ich", JobID: "job-1", Model: model},
			{Finding: shift, Plugin: "ich", JobID: "job-1", Model: model},
		},
		Results: []protocol.Result{{
			Protocol: protocol.Version, JobID: "job-1", Plugin: "ich", Status: protocol.StatusCompleted,
			Model: model, Findings: []protocol.Finding{ich, shift}, Summary: "ICH 0.93",
		}},
		Summary:   "ich: intracranial hemorrhage suspected (0.93)",
		CreatedAt: time.Date(2026, 12, 1, 22, 31, 5, 0, time.UTC),
	}
}

func compact(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
