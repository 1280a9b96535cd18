package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/osprey-health/osprey/plugins/protocol"
)

func ExampleValidateResult() {
	err := protocol.ValidateResult([]byte(`{
		"protocol": "osprey.ai/v1", "job_id": "j1", "plugin": "ich", "status": "completed",
		"model": {"name": "m", "version": "1"},
		"findings": [{"id": "f1", "code": {"system": "http://snomed.info/sct", "code": "1386000"},
			"present": true, "confidence": 1.5}]
	}`))
	var verr *protocol.ValidationError
	if errors.As(err, &verr) {
		for _, v := range verr.Violations {
			fmt.Println(v.Pointer, "-", v.Reason)
		}
	}
	// Output: /findings/0/confidence - maximum: got 1.5, want 1
}

func ExampleCheckResult() {
	job := protocol.Job{
		Protocol: protocol.Version, JobID: "j1", Plugin: "ich",
		Study: protocol.Study{StudyInstanceUID: "1.2.3", Series: []protocol.Series{{
			SeriesInstanceUID: "1.2.3.1",
			Instances:         []protocol.Instance{{SOPInstanceUID: "1.2.3.1.1"}},
		}}},
	}
	r := protocol.Result{
		Protocol: protocol.Version, JobID: "j1", Plugin: "ich", Status: protocol.StatusCompleted,
		Model: protocol.Model{Name: "m", Version: "1"},
		Findings: []protocol.Finding{{
			ID: "f1", Code: protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000"}, Present: true, Confidence: 0.9,
			References: []protocol.Reference{{SeriesInstanceUID: "1.2.3.1", SOPInstanceUID: "1.2.3.9.9"}},
		}},
	}
	fmt.Println(protocol.CheckResult(job, r))
	// Output: protocol: invalid result: /findings/0/references/0/sop_instance_uid: "1.2.3.9.9" is not an instance of the job's study
}

func ExampleJobsStream() {
	fmt.Println(protocol.JobsStream("ich"), protocol.JobsSubject("ich"), protocol.Consumer("ich"))
	fmt.Println(protocol.ResultsStream, protocol.ResultsSubject("ich"), protocol.ProgressSubject("j1"))
	// Output:
	// OSPREY_JOBS_ICH osprey.jobs.ich plugin-ich
	// OSPREY_RESULTS osprey.results.ich osprey.progress.j1
}

func ExampleResult_failed() {
	r := protocol.Result{
		Protocol: protocol.Version, JobID: "j1", Plugin: "ich", Status: protocol.StatusFailed,
		Error: &protocol.Error{Code: protocol.ErrCodeFetch, Message: "WADO-RS returned 401"},
	}
	data, _ := json.Marshal(r)
	fmt.Println(string(data))
	fmt.Println(protocol.ValidateResult(data))
	// Output:
	// {"protocol":"osprey.ai/v1","job_id":"j1","plugin":"ich","status":"failed","error":{"code":"fetch_failed","message":"WADO-RS returned 401"}}
	// <nil>
}
