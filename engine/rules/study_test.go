package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/store"
)

var studyNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// headCT is a non-contrast head CT with a dose report (SR) numbered before the images, so
// that the primary modality has to skip it.
func headCT() dicom.StudySummary {
	return dicom.StudySummary{
		StudyInstanceUID: "1.2.3", AccessionNumber: "ACC001", StudyDate: "20261201",
		StudyDescription: "CT HEAD WO CONTRAST", PatientID: "MRN1", PatientSex: "f", PatientAge: "045Y",
		InstitutionName: "General Hospital", StationName: "CT01", ReferringPhysician: "SMITH^JANE",
		Modalities: []string{"CT", "SR"}, BodyPartExamined: "head", NumberOfInstances: 3,
		ContrastBolusAgent: "NONE",
		Series: []dicom.SeriesSummary{
			{SeriesInstanceUID: "1.2.3.0", Modality: "SR", SeriesNumber: 0, SeriesDescription: "Dose Report",
				Instances: []dicom.InstanceSummary{{SOPInstanceUID: "1.2.3.0.1"}}},
			{SeriesInstanceUID: "1.2.3.1", Modality: "CT", SeriesNumber: 1, SeriesDescription: "AXIAL 5MM", BodyPartExamined: "head",
				Instances: []dicom.InstanceSummary{{SOPInstanceUID: "1.2.3.1.1", Frames: 1}, {SOPInstanceUID: "1.2.3.1.2", Frames: 1}}},
		},
	}
}

func TestNewStudyView(t *testing.T) {
	v := NewStudyView(headCT(), studyNow)
	checks := []struct {
		name      string
		got, want any
	}{
		{"Modality skips the SR", v.Modality, "CT"},
		{"BodyPart upper case", v.BodyPart, "HEAD"},
		{"Contrast: agent NONE and WO description", v.Contrast, false},
		{"PatientAge from 045Y", v.PatientAge, 45},
		{"PatientSex upper case", v.PatientSex, "F"},
		{"NumberOfSeries", v.NumberOfSeries, 2},
		{"NumberOfInstances", v.NumberOfInstances, 3},
		{"SeriesDescriptions", strings.Join(v.SeriesDescriptions, "|"), "Dose Report|AXIAL 5MM"},
		{"Series instances", v.Series[1].Instances, 2},
		{"Institution", v.Institution, "General Hospital"},
		{"Station", v.Station, "CT01"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}

	t.Run("only non-image series", func(t *testing.T) {
		s := headCT()
		s.Series = s.Series[:1]
		if v := NewStudyView(s, studyNow); v.Modality != "SR" {
			t.Errorf("Modality = %q, want SR (the first series)", v.Modality)
		}
	})
	t.Run("contrast agent in one series", func(t *testing.T) {
		s := headCT()
		s.ContrastBolusAgent = ""
		s.Series[1].ContrastBolusAgent = "OMNIPAQUE 350"
		if v := NewStudyView(s, studyNow); !v.Contrast || !v.Series[1].Contrast {
			t.Errorf("Contrast = %v, series %v; want true", v.Contrast, v.Series[1].Contrast)
		}
	})
	t.Run("contrast from a series description", func(t *testing.T) {
		s := headCT()
		s.Series[1].SeriesDescription = "POST CONTRAST AXIAL"
		if v := NewStudyView(s, studyNow); !v.Contrast {
			t.Error("Contrast = false, want true from POST CONTRAST")
		}
	})
}

func TestStudyAge(t *testing.T) {
	tests := []struct {
		name             string
		age, birth, date string
		want             int
	}{
		{"years", "045Y", "", "", 45},
		{"months", "018M", "", "", 1},
		{"weeks", "051W", "", "", 0},
		{"days", "400D", "", "", 1},
		{"birth date at the study date", "", "19800615", "20260614", 45},
		{"birth date on the birthday", "", "19800615", "20260615", 46},
		{"birth date without study date uses now", "", "20000101", "", 26},
		{"age wins over birth date", "010Y", "19800615", "20260614", 10},
		{"malformed age falls back to birth date", "45", "19800615", "20260614", 45},
		{"nothing known", "", "", "", 0},
		{"bad birth date", "", "1980-06-15", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := studyAge(tt.age, tt.birth, tt.date, studyNow); got != tt.want {
				t.Errorf("studyAge(%q, %q, %q) = %d, want %d", tt.age, tt.birth, tt.date, got, tt.want)
			}
		})
	}
}

func TestContrastFromDescription(t *testing.T) {
	tests := []struct {
		desc string
		want bool
	}{
		{"CT HEAD W CONTRAST", true},
		{"CT HEAD WITH CONTRAST", true},
		{"ct abdomen with iv contrast", true},
		{"CT CHEST W/ CONTRAST", true},
		{"CT CHEST W/CONTRAST", true},
		{"CTA HEAD C+", true},
		{"MR BRAIN W AND WO CONTRAST", true},
		{"MR BRAIN W&WO", true},
		{"MRI BRAIN W/WO", true},
		{"MR BRAIN WITH AND WITHOUT CONTRAST", true},
		{"AXIAL POST CONTRAST", true},
		{"CT HEAD WO CONTRAST", false},
		{"CT HEAD W/O CONTRAST", false},
		{"CT HEAD WITHOUT CONTRAST", false},
		{"CT HEAD NON CONTRAST", false},
		{"CT HEAD C-", false},
		{"CT HEAD", false},
		{"BRAIN WWW", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := ContrastFromDescription(tt.desc); got != tt.want {
				t.Errorf("ContrastFromDescription(%q) = %v, want %v", tt.desc, got, tt.want)
			}
		})
	}
}

func TestStudyAndOrderFilters(t *testing.T) {
	study := NewStudyView(headCT(), studyNow)
	order := NewOrderView(store.Order{Accession: "ACC001", Priority: "S", Location: "EDX", PatientClass: "E", ProcedureCode: "CTHEAD",
		PatientID: "MRN1", Status: "SC", OrderingProvider: "1234^SMITH^JOHN", Reason: "fall"})
	studyEnv := NewStudyEnv(study, order, "studies", nil)
	noOrderEnv := NewStudyEnv(study, nil, "studies", nil)
	hl7Env := NewEnv(parse(t, ormO01()), "orders", nil)
	tests := []struct {
		name string
		src  string
		env  Env
		want bool
	}{
		{"the ICH rule", `study.Modality == "CT" && study.BodyPart == "HEAD" && !study.Contrast && order.Priority == "S" && order.Location startsWith "ED"`, studyEnv, true},
		{"the ICH rule without an order", `study.Modality == "CT" && order.Priority == "S"`, noOrderEnv, false},
		{"order found", `order.Found && order.Accession == study.AccessionNumber`, studyEnv, true},
		{"no order", `!order.Found && order.Priority == "" && order.Location == ""`, noOrderEnv, true},
		{"routine only", `order.Priority == "R"`, studyEnv, false},
		{"emergency patients", `order.PatientClass == "E"`, studyEnv, true},
		{"inpatients", `order.PatientClass == "I"`, studyEnv, false},
		{"cancelled orders skipped", `order.Status not in ["CA", "DC"]`, studyEnv, true},
		{"modalities list", `"SR" in study.Modalities && len(study.Modalities) == 2`, studyEnv, true},
		{"series predicate", `any(study.Series, .Modality == "CT" && .Instances >= 2)`, studyEnv, true},
		{"series predicate false", `any(study.Series, .Modality == "MR")`, studyEnv, false},
		{"counts and age", `study.NumberOfInstances > 2 && study.NumberOfSeries == 2 && study.PatientAge >= 18`, studyEnv, true},
		{"description", `study.Description contains "HEAD" && any(study.SeriesDescriptions, # matches "(?i)axial")`, studyEnv, true},
		{"study fields on an HL7 message are zero", `study.Modality == "" && !study.Contrast && study.NumberOfInstances == 0 && len(study.Series) == 0`, hl7Env, true},
		{"order on an HL7 message is not found", `!order.Found && order.Priority == ""`, hl7Env, true},
		{"HL7 rule on an HL7 message still works", `msg.Type == "ORM" && study.Modality != "CT"`, hl7Env, true},
		{"msg on a study message is empty", `msg.Type == "" && msg.Get("PID-3") == ""`, studyEnv, true},
		{"zero Env", `study.BodyPart == "" && !order.Found && msg.Type == ""`, Env{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.src)
			if err != nil {
				t.Fatalf("CompileFilter(%q): %v", tt.src, err)
			}
			got, err := f.Match(tt.env)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestStudyCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		msg       []string
	}{
		{"misspelt study field", `study.Modalty == "CT"`, 1, 7, []string{"type study has no field Modalty", "did you mean Modality?"}},
		{"misspelt order field", `order.Priorty == "S"`, 1, 7, []string{"type order has no field Priorty", "did you mean Priority?"}},
		{"misspelt series field", `any(study.Series, .Modalty == "CT")`, 1, 20, []string{"type series has no field Modalty", "did you mean Modality?"}},
		{"unknown study field lists the fields", `study.Colour == "red"`, 1, 7, []string{"study has StudyInstanceUID", "BodyPart"}},
		{"misspelt top name", `studdy.Modality == "CT"`, 1, 1, []string{"unknown name studdy", "did you mean study?"}},
		{"count compared with a string", `study.NumberOfInstances == "3"`, 1, 25, []string{"mismatched types int and string"}},
		{"bool compared with a string", `order.Found == "yes"`, 1, 13, []string{"mismatched types bool and string"}},
		{"study is not a boolean", `study`, 1, 1, []string{"filter must be a boolean expression", "yields study"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileFilter(tt.src)
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("CompileFilter(%q) error %v, want *ExprError", tt.src, err)
			}
			if ee.Line != tt.line || ee.Col != tt.col {
				t.Errorf("position %d:%d, want %d:%d (%v)", ee.Line, ee.Col, tt.line, tt.col, err)
			}
			for _, s := range tt.msg {
				if !strings.Contains(ee.Msg, s) {
					t.Errorf("message %q does not contain %q", ee.Msg, s)
				}
			}
		})
	}
}
