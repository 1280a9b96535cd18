package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	studyUID  = "1.2.826.0.1.3680043.8.498.1"
	seriesUID = "1.2.826.0.1.3680043.8.498.1.1"
	inst1UID  = "1.2.826.0.1.3680043.8.498.1.1.1"
	inst2UID  = "1.2.826.0.1.3680043.8.498.1.1.2"
	multiUID  = "1.2.826.0.1.3680043.8.498.1.1.3"
)

func sampleJob() Job {
	age := 67
	return Job{
		Protocol: Version,
		JobID:    "01JDQ4ZP8K3T6V9X2B5N7M1C4R",
		Plugin:   "ich",
		Study: Study{
			StudyInstanceUID: studyUID,
			AccessionNumber:  "ACC0001",
			Modality:         "CT",
			BodyPart:         "HEAD",
			StudyDescription: "CT HEAD WO CONTRAST",
			Series: []Series{{
				SeriesInstanceUID: seriesUID,
				Modality:          "CT",
				SeriesDescription: "Axial 5mm",
				Instances: []Instance{
					{SOPInstanceUID: inst1UID, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 1},
					{SOPInstanceUID: inst2UID, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 2},
					{SOPInstanceUID: multiUID, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2.1", InstanceNumber: 3, Frames: 40},
				},
			}},
		},
		Patient: Patient{PseudoID: "p-7f3a9c", Sex: "F", AgeYears: &age},
		Order: &Order{
			Accession: "ACC0001", Priority: PriorityStat, Location: "ED",
			ProcedureCode: "CTHEADWO", ProcedureText: "CT head without contrast", Reason: "fall, GCS 13",
		},
		DICOMweb: DICOMweb{
			BaseURL:      "https://osprey.example/dicomweb",
			Token:        "eyJhbGciOi.example.token",
			TokenExpires: time.Date(2026, 3, 14, 9, 41, 0, 0, time.UTC),
		},
		Deadline: time.Date(2026, 3, 14, 9, 31, 0, 0, time.UTC),
		Attempt:  1,
	}
}

func sampleResult() Result {
	return Result{
		Protocol: Version,
		JobID:    "01JDQ4ZP8K3T6V9X2B5N7M1C4R",
		Plugin:   "ich",
		Status:   StatusCompleted,
		Model:    Model{Name: "osprey-ich-demo", Version: "0.3.1", Manufacturer: "Osprey", DeviceUID: "1.2.826.0.1.3680043.8.498.99"},
		Findings: []Finding{{
			ID:         "ich-1",
			Code:       Coding{System: SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"},
			Present:    true,
			Confidence: 0.93,
			Location:   Location{Text: "left parietal", Laterality: LateralityLeft},
			Measurements: []Measurement{
				{Name: "volume", Code: &Coding{System: SystemSNOMED, Code: "118565006", Display: "Volume"}, Value: 12.4, Unit: "mL"},
			},
			References: []Reference{
				{SeriesInstanceUID: seriesUID, SOPInstanceUID: inst1UID},
				{SeriesInstanceUID: seriesUID, SOPInstanceUID: multiUID, Frames: []int{12, 13}},
			},
			Regions: []Region{
				{SOPInstanceUID: inst2UID, Shape: ShapeBBox, Points: []float64{100, 120, 140, 160}},
				{SOPInstanceUID: multiUID, Frame: 12, Shape: ShapePolygon, Points: []float64{10, 10, 20, 10, 15, 20}},
			},
		}},
		Summary: "Intracranial haemorrhage, left, about 12 mL.",
		Timings: Timings{
			QueuedMS:    40,
			StartedAt:   time.Date(2026, 3, 14, 9, 26, 54, 0, time.UTC),
			FinishedAt:  time.Date(2026, 3, 14, 9, 27, 1, 500_000_000, time.UTC),
			FetchMS:     2100,
			InferenceMS: 5300,
		},
	}
}

func sampleProgress() Progress {
	return Progress{Protocol: Version, JobID: "01JDQ4ZP8K3T6V9X2B5N7M1C4R", Plugin: "ich", Percent: 40, Message: "fetched 120 of 300 instances", At: time.Date(2026, 3, 14, 9, 26, 58, 0, time.UTC)}
}

// TestRoundTrip marshals each sample, validates it against the schema, decodes it back and
// expects the same value.
func TestRoundTrip(t *testing.T) {
	failed := Result{Protocol: Version, JobID: "job-2", Plugin: "ich", Status: StatusFailed,
		Error: &Error{Code: ErrCodeFetch, Message: "WADO-RS returned 401"}}
	notApplicable := Result{Protocol: Version, JobID: "job-3", Plugin: "ich", Status: StatusNotApplicable,
		Model: Model{Name: "osprey-ich-demo", Version: "0.3.1"}, Summary: "not a head CT"}
	minimalJob := Job{Protocol: Version, JobID: "j", Plugin: "p",
		Study:    Study{StudyInstanceUID: "1.2", Series: []Series{{SeriesInstanceUID: "1.2.3", Instances: []Instance{{SOPInstanceUID: "1.2.3.4"}}}}},
		Patient:  Patient{PseudoID: "x"},
		DICOMweb: DICOMweb{BaseURL: "http://127.0.0.1:8042/dicomweb", Token: "t"},
		Deadline: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Attempt: 2}
	infant := sampleJob()
	zero := 0
	infant.Patient.AgeYears = &zero

	tests := []struct {
		name     string
		value    any
		validate func([]byte) error
		decode   func([]byte) (any, error)
	}{
		{"job", sampleJob(), ValidateJob, func(b []byte) (any, error) { return DecodeJob(b) }},
		{"job minimal", minimalJob, ValidateJob, func(b []byte) (any, error) { return DecodeJob(b) }},
		{"job infant age 0 kept", infant, ValidateJob, func(b []byte) (any, error) { return DecodeJob(b) }},
		{"result completed", sampleResult(), ValidateResult, func(b []byte) (any, error) { return DecodeResult(b) }},
		{"result failed", failed, ValidateResult, func(b []byte) (any, error) { return DecodeResult(b) }},
		{"result not applicable", notApplicable, ValidateResult, func(b []byte) (any, error) { return DecodeResult(b) }},
		{"progress", sampleProgress(), ValidateProgress, func(b []byte) (any, error) { return DecodeProgress(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.validate(data); err != nil {
				t.Fatalf("valid message rejected: %v\n%s", err, data)
			}
			got, err := tt.decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.value) {
				t.Errorf("round trip changed the value:\n got %+v\nwant %+v", got, tt.value)
			}
		})
	}
}

// TestWireNames pins the JSON member names other languages depend on.
func TestWireNames(t *testing.T) {
	data, err := json.Marshal(sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"protocol":"osprey.ai/v1"`, `"job_id"`, `"status":"completed"`, `"device_uid"`,
		`"sop_instance_uid"`, `"series_instance_uid"`, `"laterality":"left"`, `"queued_ms"`, `"inference_ms"`, `"started_at"`} {
		if !strings.Contains(string(data), name) {
			t.Errorf("result JSON lacks %s: %s", name, data)
		}
	}
	// An empty model and zero timings are omitted rather than sent as zero values.
	data, err = json.Marshal(Result{Protocol: Version, JobID: "j", Plugin: "p", Status: StatusFailed, Error: &Error{Code: "internal", Message: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"model"`, `"timings"`, `"findings"`} {
		if strings.Contains(string(data), name) {
			t.Errorf("failed result JSON carries empty %s: %s", name, data)
		}
	}
}

// mutate marshals v to a generic JSON value, applies edit and marshals it again.
func mutate(t *testing.T, v any, edit func(m map[string]any)) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// at walks a slash-separated path of object keys and array indexes.
func at(m map[string]any, path string) any {
	var cur any = m
	for _, tok := range strings.Split(path, "/") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, _ := strconv.Atoi(tok)
			cur = c[i]
		}
	}
	return cur
}

func obj(m map[string]any, path string) map[string]any { return at(m, path).(map[string]any) }

func TestSchemaRules(t *testing.T) {
	tests := []struct {
		name     string
		validate func([]byte) error
		data     func(t *testing.T) []byte
		pointer  string // the violation expected
		reason   string // a substring of its reason
	}{
		{"job missing job_id", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { delete(m, "job_id") })
		}, "/job_id", "is required"},
		{"job wrong protocol", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { m["protocol"] = "osprey.ai/v2" })
		}, "/protocol", "osprey.ai/v1"},
		{"job bad plugin name", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { m["plugin"] = "ICH Triage" })
		}, "/plugin", "does not match pattern"},
		{"job id with a dot", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { m["job_id"] = "a.b" })
		}, "/job_id", "does not match pattern"},
		{"job study uid with letters", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { obj(m, "study")["study_instance_uid"] = "1.2.abc" })
		}, "/study/study_instance_uid", "does not match pattern"},
		{"job sop uid trailing dot", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) {
				obj(m, "study/series/0/instances/1")["sop_instance_uid"] = "1.2.3."
			})
		}, "/study/series/0/instances/1/sop_instance_uid", "does not match pattern"},
		{"job uid longer than 64", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) {
				obj(m, "study/series/0")["series_instance_uid"] = "1." + strings.Repeat("2", 63)
			})
		}, "/study/series/0/series_instance_uid", "maxLength"},
		{"job without series", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { obj(m, "study")["series"] = []any{} })
		}, "/study/series", "minItems"},
		{"job patient name", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { obj(m, "patient")["name"] = "DOE^JANE" })
		}, "/patient", "identifying"},
		{"job bad priority", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { obj(m, "order")["priority"] = "S" })
		}, "/order/priority", "value must be one of"},
		{"job relative base url", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { obj(m, "dicomweb")["base_url"] = "/dicomweb" })
		}, "/dicomweb/base_url", ""},
		{"job deadline not a time", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { m["deadline"] = "tomorrow" })
		}, "/deadline", "date-time"},
		{"job attempt 0", ValidateJob, func(t *testing.T) []byte {
			return mutate(t, sampleJob(), func(m map[string]any) { m["attempt"] = 0 })
		}, "/attempt", "minimum"},
		{"job not JSON", ValidateJob, func(t *testing.T) []byte { return []byte(`{"protocol":`) }, "", "not a JSON document"},

		{"result confidence 1.5", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0")["confidence"] = 1.5 })
		}, "/findings/0/confidence", "maximum"},
		{"result negative confidence", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0")["confidence"] = -0.1 })
		}, "/findings/0/confidence", "minimum"},
		{"result bad status", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { m["status"] = "done" })
		}, "/status", "value must be one of"},
		{"result unknown top-level field", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { m["score"] = 0.9 })
		}, "/score", "not a field"},
		{"result misspelt finding field", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0")["confidance"] = 0.9 })
		}, "/findings/0/confidance", "not a field"},
		{"result missing status", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { delete(m, "status") })
		}, "/status", "is required"},
		{"result failed without error", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { m["status"] = "failed" })
		}, "/error", "is required"},
		{"result completed with error", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { m["error"] = map[string]any{"code": "internal", "message": "x"} })
		}, "/error", "not allowed"},
		{"result completed without model version", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { delete(obj(m, "model"), "version") })
		}, "/model/version", "is required"},
		{"result completed without model", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { delete(m, "model") })
		}, "/model", "is required"},
		{"result failed with findings", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) {
				m["status"] = "failed"
				m["error"] = map[string]any{"code": "internal", "message": "x"}
			})
		}, "/findings", "maxItems"},
		{"result not applicable with findings", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { m["status"] = "not_applicable" })
		}, "/findings", "maxItems"},
		{"result bad error code", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) {
				m["status"] = "failed"
				m["error"] = map[string]any{"code": "Fetch Failed", "message": "x"}
			})
		}, "/error/code", "does not match pattern"},
		{"result bad reference uid", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) {
				obj(m, "findings/0/references/0")["sop_instance_uid"] = "1.2.x"
			})
		}, "/findings/0/references/0/sop_instance_uid", "does not match pattern"},
		{"result frame 0", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) {
				obj(m, "findings/0/references/1")["frames"] = []any{0}
			})
		}, "/findings/0/references/1/frames/0", "minimum"},
		{"result bad laterality", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0/location")["laterality"] = "L" })
		}, "/findings/0/location/laterality", "value must be one of"},
		{"result unit with a space", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0/measurements/0")["unit"] = "m L" })
		}, "/findings/0/measurements/0/unit", "does not match pattern"},
		{"result measurement without unit", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { delete(obj(m, "findings/0/measurements/0"), "unit") })
		}, "/findings/0/measurements/0/unit", "is required"},
		{"result coding without system", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { delete(obj(m, "findings/0/code"), "system") })
		}, "/findings/0/code/system", "is required"},
		{"result present not boolean", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0")["present"] = "yes" })
		}, "/findings/0/present", "want boolean"},
		{"result bad shape", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0/regions/0")["shape"] = "circle" })
		}, "/findings/0/regions/0/shape", "value must be one of"},
		{"result bbox with 3 numbers", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0/regions/0")["points"] = []any{1, 2, 3} })
		}, "/findings/0/regions/0/points", "minItems"},
		{"result negative coordinate", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "findings/0/regions/0")["points"] = []any{-1, 2, 3, 4} })
		}, "/findings/0/regions/0/points/0", "minimum"},
		{"result negative timing", ValidateResult, func(t *testing.T) []byte {
			return mutate(t, sampleResult(), func(m map[string]any) { obj(m, "timings")["fetch_ms"] = -5 })
		}, "/timings/fetch_ms", "minimum"},
		{"result trailing garbage", ValidateResult, func(t *testing.T) []byte {
			data, _ := json.Marshal(sampleResult())
			return append(data, []byte(` {}`)...)
		}, "", "not a JSON document"},

		{"progress percent 101", ValidateProgress, func(t *testing.T) []byte {
			return mutate(t, sampleProgress(), func(m map[string]any) { m["percent"] = 101 })
		}, "/percent", "maximum"},
		{"progress missing at", ValidateProgress, func(t *testing.T) []byte {
			return mutate(t, sampleProgress(), func(m map[string]any) { delete(m, "at") })
		}, "/at", "is required"},
		{"progress unknown field", ValidateProgress, func(t *testing.T) []byte {
			return mutate(t, sampleProgress(), func(m map[string]any) { m["eta"] = "soon" })
		}, "/eta", "not a field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.validate(tt.data(t))
			if err == nil {
				t.Fatal("invalid message accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not match ErrInvalid", err)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			for _, v := range verr.Violations {
				if v.Pointer == tt.pointer && strings.Contains(v.Reason, tt.reason) {
					return
				}
			}
			t.Errorf("no violation at %q with reason containing %q; got %v", tt.pointer, tt.reason, verr.Violations)
		})
	}
}

// TestSchemaJobOpen checks jobs tolerate fields added later in v1, so plugins built against
// an older v1 keep working.
func TestSchemaJobOpen(t *testing.T) {
	data := mutate(t, sampleJob(), func(m map[string]any) {
		m["priority_hint"] = "stat"
		obj(m, "study")["institution_type"] = "trauma centre"
	})
	if err := ValidateJob(data); err != nil {
		t.Fatalf("job with an additive field rejected: %v", err)
	}
	if _, err := DecodeJob(data); err != nil {
		t.Fatalf("decode job with an additive field: %v", err)
	}
}

func TestCheckResult(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(r *Result)
		pointer string // "" means the result must pass
		reason  string
	}{
		{"valid", func(r *Result) {}, "", ""},
		{"valid not applicable without findings", func(r *Result) {
			r.Status, r.Findings = StatusNotApplicable, nil
		}, "", ""},
		{"valid failed without model", func(r *Result) {
			r.Status, r.Model, r.Findings = StatusFailed, Model{}, nil
			r.Error = &Error{Code: ErrCodeTimeout, Message: "deadline passed"}
		}, "", ""},
		{"wrong job id", func(r *Result) { r.JobID = "other" }, "/job_id", "job's id"},
		{"wrong plugin", func(r *Result) { r.Plugin = "other" }, "/plugin", "job's plugin"},
		{"wrong protocol", func(r *Result) { r.Protocol = "osprey.ai/v0" }, "/protocol", "osprey.ai/v1"},
		{"bad status", func(r *Result) { r.Status = "ok" }, "/status", "must be one of"},
		{"failed without error", func(r *Result) { r.Status = StatusFailed }, "/error", "required when status is failed"},
		{"failed with empty error code", func(r *Result) {
			r.Status, r.Error = StatusFailed, &Error{Message: "x"}
		}, "/error/code", "is required"},
		{"failed with findings", func(r *Result) {
			r.Status, r.Error = StatusFailed, &Error{Code: ErrCodeInternal, Message: "x"}
		}, "/findings", "must be empty when status is failed"},
		{"not applicable with findings", func(r *Result) { r.Status = StatusNotApplicable }, "/findings", "must be empty"},
		{"completed with error", func(r *Result) { r.Error = &Error{Code: "internal", Message: "x"} }, "/error", "must be absent"},
		{"completed without model name", func(r *Result) { r.Model.Name = "" }, "/model/name", "required when status is completed"},
		{"completed without model version", func(r *Result) { r.Model.Version = "" }, "/model/version", "required when status is completed"},
		{"bad device uid", func(r *Result) { r.Model.DeviceUID = "abc" }, "/model/device_uid", "not a DICOM UID"},
		{"confidence 1.5", func(r *Result) { r.Findings[0].Confidence = 1.5 }, "/findings/0/confidence", "between 0 and 1"},
		{"confidence negative", func(r *Result) { r.Findings[0].Confidence = -0.01 }, "/findings/0/confidence", "between 0 and 1"},
		{"duplicate finding id", func(r *Result) {
			f := r.Findings[0]
			f.Present = false
			r.Findings = append(r.Findings, f)
		}, "/findings/1/id", "already the id of finding 0"},
		{"empty finding id", func(r *Result) { r.Findings[0].ID = "" }, "/findings/0/id", "is required"},
		{"finding without code", func(r *Result) { r.Findings[0].Code = Coding{} }, "/findings/0/code", "system and a code"},
		{"bad laterality", func(r *Result) { r.Findings[0].Location.Laterality = "L" }, "/findings/0/location/laterality", "must be left"},
		{"measurement without unit", func(r *Result) { r.Findings[0].Measurements[0].Unit = "" }, "/findings/0/measurements/0/unit", "UCUM"},
		{"reference outside the study", func(r *Result) {
			r.Findings[0].References[0].SOPInstanceUID = "1.2.3.4.5"
		}, "/findings/0/references/0/sop_instance_uid", "not an instance of the job's study"},
		{"reference with the wrong series", func(r *Result) {
			r.Findings[0].References[0].SeriesInstanceUID = "1.2.3"
		}, "/findings/0/references/0/series_instance_uid", "the series of instance"},
		{"reference frame beyond the instance", func(r *Result) {
			r.Findings[0].References[1].Frames = []int{12, 41}
		}, "/findings/0/references/1/frames/1", "outside 1..40"},
		{"reference frame 2 of a single-frame instance", func(r *Result) {
			r.Findings[0].References[0].Frames = []int{2}
		}, "/findings/0/references/0/frames/0", "outside 1..1"},
		{"region outside the study", func(r *Result) {
			r.Findings[0].Regions[0].SOPInstanceUID = "9.9.9"
		}, "/findings/0/regions/0/sop_instance_uid", "not an instance of the job's study"},
		{"region without frame on a multi-frame instance", func(r *Result) {
			r.Findings[0].Regions[1].Frame = 0
		}, "/findings/0/regions/1/frame", "multi-frame"},
		{"region odd number of coordinates", func(r *Result) {
			r.Findings[0].Regions[1].Points = []float64{10, 10, 20, 10, 15, 20, 5}
		}, "/findings/0/regions/1/points", "x,y pairs"},
		{"polygon of two points", func(r *Result) {
			r.Findings[0].Regions[1].Points = []float64{10, 10, 20, 10}
		}, "/findings/0/regions/1/points", "at least 3 pairs"},
		{"ellipse of three points", func(r *Result) {
			r.Findings[0].Regions[0].Shape, r.Findings[0].Regions[0].Points = ShapeEllipse, []float64{1, 1, 2, 2, 3, 3}
		}, "/findings/0/regions/0/points", "4 pairs"},
		{"point of two pairs", func(r *Result) {
			r.Findings[0].Regions[0].Shape = ShapePoint
		}, "/findings/0/regions/0/points", "1 pair"},
		{"unknown shape", func(r *Result) { r.Findings[0].Regions[0].Shape = "circle" }, "/findings/0/regions/0/shape", "must be point"},
		{"finished before started", func(r *Result) {
			r.Timings.FinishedAt = r.Timings.StartedAt.Add(-time.Second)
		}, "/timings/finished_at", "before started_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sampleResult()
			tt.edit(&r)
			err := CheckResult(sampleJob(), r)
			if tt.pointer == "" {
				if err != nil {
					t.Fatalf("valid result rejected: %v", err)
				}
				return
			}
			var verr *ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want a *ValidationError matching ErrInvalid, got %v", err)
			}
			for _, v := range verr.Violations {
				if v.Pointer == tt.pointer && strings.Contains(v.Reason, tt.reason) {
					return
				}
			}
			t.Errorf("no violation at %q with reason containing %q; got %v", tt.pointer, tt.reason, verr.Violations)
		})
	}
}

func TestErrorMessage(t *testing.T) {
	data := mutate(t, sampleResult(), func(m map[string]any) {
		obj(m, "findings/0")["confidence"] = 1.5
		delete(m, "job_id")
	})
	err := ValidateResult(data)
	if err == nil {
		t.Fatal("invalid result accepted")
	}
	msg := err.Error()
	for _, want := range []string{"protocol: invalid result: ", "/findings/0/confidence: ", "/job_id: is required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if e := (&Error{Code: ErrCodeFetch, Message: "401"}); e.Error() != "fetch_failed: 401" {
		t.Errorf("Error.Error() = %q", e.Error())
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name  string
		got   string
		want  string
		valid bool
	}{
		{"jobs stream", JobsStream("ich-triage"), "OSPREY_JOBS_ICH-TRIAGE", true},
		{"jobs subject", JobsSubject("ich"), "osprey.jobs.ich", true},
		{"consumer", Consumer("ich"), "plugin-ich", true},
		{"results subject", ResultsSubject("ich"), "osprey.results.ich", true},
		{"progress subject", ProgressSubject("01JDQ4ZP8K"), "osprey.progress.01JDQ4ZP8K", true},
		{"result msg id", ResultMsgID("01JDQ4ZP8K", 2), "01JDQ4ZP8K:2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	// Distinct valid names must give distinct streams (upper-casing must not merge them).
	if JobsStream("a-b") == JobsStream("a_b") {
		t.Error("a-b and a_b share a jobs stream")
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"ich", true}, {"ich-triage_2", true}, {"0abc", true}, {strings.Repeat("a", 64), true},
		{"", false}, {"-ich", false}, {"_ich", false}, {"ICH", false}, {"ich.triage", false},
		{"ich triage", false}, {"ich*", false}, {"ich>", false}, {strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			if got := ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidUIDAndJobID(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"uid ok", ValidUID("1.2.840.10008.5.1.4.1.1.2"), true},
		{"uid single component", ValidUID("1"), true},
		{"uid 64 chars", ValidUID("1." + strings.Repeat("2", 62)), true},
		{"uid 65 chars", ValidUID("1." + strings.Repeat("2", 63)), false},
		{"uid empty", ValidUID(""), false},
		{"uid double dot", ValidUID("1..2"), false},
		{"uid letters", ValidUID("1.2.a"), false},
		{"job id ulid", ValidJobID("01JDQ4ZP8K3T6V9X2B5N7M1C4R"), true},
		{"job id uuid", ValidJobID("0b8f7e0c-3d0e-4f5e-9f7a-5c1d2e3f4a5b"), true},
		{"job id with dot", ValidJobID("a.b"), false},
		{"job id with wildcard", ValidJobID("a*"), false},
		{"job id empty", ValidJobID(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}
