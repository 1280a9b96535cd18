package rules

import (
	"errors"
	"strings"
	"testing"
)

func TestResultFilter(t *testing.T) {
	ich := FindingView{Present: true, Confidence: 0.91, Code: "1386000", Display: "Intracranial hemorrhage",
		Plugin: "ich", Model: "demo", Version: "1", Measurements: map[string]float64{"volume": 12.5}}
	weak := ich
	weak.Confidence = 0.4
	negative := FindingView{Present: false, Confidence: 0.97, Code: "1386000", Plugin: "ich"}
	study := &StudyView{Modality: "CT", BodyPart: "HEAD"}
	tests := []struct {
		name     string
		src      string
		findings []FindingView
		plugins  map[string]string
		want     bool
	}{
		{"by plugin name", `finding("ICH").Confidence >= 0.85`, []FindingView{ich}, nil, true},
		{"by code", `finding("1386000").Present`, []FindingView{ich}, nil, true},
		{"by display any case", `finding("intracranial HEMORRHAGE").Present`, []FindingView{ich}, nil, true},
		{"below threshold", `finding("ICH").Confidence >= 0.85`, []FindingView{weak}, nil, false},
		{"most confident present wins", `finding("ich").Confidence` + " > 0.9", []FindingView{weak, ich, negative}, nil, true},
		{"present beats confident negative", `finding("ich").Present`, []FindingView{negative, weak}, nil, true},
		{"no match is not found", `!finding("PE").Found && finding("PE").Confidence == 0`, []FindingView{ich}, nil, true},
		{"measurement", `finding("ICH").Measurements["volume"] > 10`, []FindingView{ich}, nil, true},
		{"missing measurement is zero", `finding("PE").Measurements["volume"] == 0`, nil, nil, true},
		{"positive", `positive`, []FindingView{negative}, nil, false},
		{"study and order", `study.BodyPart == "HEAD" && !order.Found`, nil, nil, true},
		{"plugins", `plugins["ich"] == "timeout"`, nil, map[string]string{"ich": "timeout"}, true},
		{"findings list", `len(filter(findings, .Present)) == 1`, []FindingView{ich, negative}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileResultFilter(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Match(NewResultEnv("studies", study, nil, tt.findings, tt.plugins))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestResultFilterErrors(t *testing.T) {
	for _, src := range []string{
		`finding("ICH").Confidance > 0.5`, // misspelt field
		`finding("ICH").Confidence > "high"`,
		`finding(1).Present`,
		`finding("ICH")`, // not a boolean
		`msg.Type == "ORU"`,
	} {
		_, err := CompileResultFilter(src)
		var ee *ExprError
		if !errors.As(err, &ee) {
			t.Errorf("%s: err = %v, want an *ExprError", src, err)
			continue
		}
		if strings.Contains(ee.Msg, "known names") && !strings.Contains(ee.Msg, "findings") {
			t.Errorf("%s: %v lists the names of filters, not of result rules", src, err)
		}
		t.Logf("%s: %v", src, err)
	}
}
