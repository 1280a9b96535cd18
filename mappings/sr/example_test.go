package sr_test

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/mappings/sr"
	"github.com/osprey-health/osprey/plugins/protocol"
	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// An ICH found by a plugin becomes a TID 1500 report in the study it was found in. The
// bytes are what the DICOMweb destination STOW-RSes; sending them again stores nothing new.
func ExampleMap() {
	study := dicom.StudySummary{
		StudyInstanceUID: "1.2.826.0.1.3680043.10.999.1",
		AccessionNumber:  "ACC0001",
		PatientID:        "MRN123",
		PatientName:      "DOE^JANE",
		Series: []dicom.SeriesSummary{{
			SeriesInstanceUID: "1.2.826.0.1.3680043.10.999.1.2",
			Modality:          "CT",
			Instances: []dicom.InstanceSummary{
				{SOPInstanceUID: "1.2.826.0.1.3680043.10.999.1.2.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", Frames: 1},
			},
		}},
	}
	a := &mappings.Analysis{
		ID: "msg-42", Revision: 1, Status: mappings.StatusPreliminary, Study: study,
		Findings: []mappings.Finding{{
			Finding: protocol.Finding{
				ID:      "ich-1",
				Code:    protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
				Present: true, Confidence: 0.93,
				Measurements: []protocol.Measurement{{Name: "volume", Value: 8.7, Unit: "mL"}},
				References:   []protocol.Reference{{SeriesInstanceUID: "1.2.826.0.1.3680043.10.999.1.2", SOPInstanceUID: "1.2.826.0.1.3680043.10.999.1.2.1"}},
			},
			Plugin: "ich", Model: protocol.Model{Name: "osprey-ich", Version: "1.2.0"},
		}},
		CreatedAt: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
	}
	part10, err := sr.Map(a, sr.Profile{UIDRoot: "1.2.826.0.1.3680043.10.999"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ds, err := dcm.Parse(bytes.NewReader(part10), int64(len(part10)), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range []tag.Tag{tag.StudyInstanceUID, tag.Modality, tag.SeriesDescription, tag.CompletionFlag, tag.VerificationFlag} {
		e, _ := ds.FindElementByTag(t)
		fmt.Println(e.Value)
	}
	again, _ := sr.Map(a, sr.Profile{UIDRoot: "1.2.826.0.1.3680043.10.999"})
	fmt.Println("resend identical:", bytes.Equal(part10, again))

	a.Revision, a.Status = 2, mappings.StatusWithdrawn
	_, err = sr.Map(a, sr.Profile{})
	fmt.Println("withdrawn:", errors.Is(err, sr.ErrWithdrawn))
	// Output:
	// [1.2.826.0.1.3680043.10.999.1]
	// [SR]
	// [AI results]
	// [COMPLETE]
	// [UNVERIFIED]
	// resend identical: true
	// withdrawn: true
}
