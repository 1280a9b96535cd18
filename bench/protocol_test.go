package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// BenchmarkProtocolResult measures what the engine spends on each incoming result before
// storing it: schema validation and decoding (DecodeResult) plus the checks against the job
// (CheckResult), for a small result and a large one (many findings, each with references and
// a polygon), so it can be set against the 20 ms dispatch-overhead budget.
func BenchmarkProtocolResult(b *testing.B) {
	for _, findings := range []int{1, 50} {
		job, data := protocolFixture(findings)
		b.Run(fmt.Sprintf("findings=%d", findings), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				r, err := protocol.DecodeResult(data)
				if err != nil {
					b.Fatal(err)
				}
				if err := protocol.CheckResult(job, r); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/elapsed, "results/s")
			b.ReportMetric(elapsed*1e3/float64(b.N), "ms/result")
		})
	}
}

// protocolFixture builds a 200-instance CT job and a completed result with n findings.
func protocolFixture(n int) (protocol.Job, []byte) {
	const study = "1.2.826.0.1.3680043.8.498.20"
	series := study + ".1"
	job := protocol.Job{
		Protocol: protocol.Version, JobID: "bench-job", Plugin: "ich",
		Study:    protocol.Study{StudyInstanceUID: study, Modality: "CT", BodyPart: "HEAD", Series: []protocol.Series{{SeriesInstanceUID: series}}},
		Patient:  protocol.Patient{PseudoID: "p1"},
		DICOMweb: protocol.DICOMweb{BaseURL: "http://127.0.0.1:8080/dicomweb", Token: "t"},
		Deadline: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Attempt: 1,
	}
	for i := 1; i <= 200; i++ {
		job.Study.Series[0].Instances = append(job.Study.Series[0].Instances,
			protocol.Instance{SOPInstanceUID: fmt.Sprintf("%s.%d", series, i), InstanceNumber: i})
	}
	r := protocol.Result{
		Protocol: protocol.Version, JobID: job.JobID, Plugin: job.Plugin, Status: protocol.StatusCompleted,
		Model: protocol.Model{Name: "bench", Version: "1.0.0"},
	}
	for i := range n {
		f := protocol.Finding{
			ID:           fmt.Sprintf("f%d", i),
			Code:         protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
			Present:      true,
			Confidence:   0.9,
			Location:     protocol.Location{Text: "left parietal", Laterality: protocol.LateralityLeft},
			Measurements: []protocol.Measurement{{Name: "volume", Value: 12.5, Unit: "mL"}},
		}
		for j := range 4 {
			uid := fmt.Sprintf("%s.%d", series, 1+(i*4+j)%200)
			f.References = append(f.References, protocol.Reference{SeriesInstanceUID: series, SOPInstanceUID: uid})
			f.Regions = append(f.Regions, protocol.Region{SOPInstanceUID: uid, Shape: protocol.ShapePolygon,
				Points: []float64{10, 10, 40, 12, 38, 44, 12, 40}})
		}
		r.Findings = append(r.Findings, f)
	}
	data, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return job, data
}
