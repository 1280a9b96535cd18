package speclint_test

import (
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/internal/speclint"
)

func TestLints(t *testing.T) {
	tests := []struct {
		name string
		lint func(any) error
		v    any
		ok   bool
	}{
		{"positive duration", speclint.PositiveDuration, time.Second, true},
		{"zero duration", speclint.PositiveDuration, time.Duration(0), false},
		{"negative duration", speclint.PositiveDuration, -time.Second, false},
		{"zero is not negative", speclint.NonNegativeDuration, time.Duration(0), true},
		{"negative duration refused", speclint.NonNegativeDuration, -time.Second, false},
		{"one byte", speclint.PositiveSize, int64(1), true},
		{"zero bytes", speclint.PositiveSize, int64(0), false},
		{"https URL", speclint.HTTPURL, "https://ehr.example.org/fhir", true},
		{"http URL with port", speclint.HTTPURL, "http://127.0.0.1:8042/dicom-web", true},
		{"URL from the environment", speclint.HTTPURL, "${PACS_URL}", true},
		{"absent URL", speclint.HTTPURL, "", true},
		{"other scheme", speclint.HTTPURL, "ftp://pacs/", false},
		{"no host", speclint.HTTPURL, "https:///fhir", false},
		{"bare host", speclint.HTTPURL, "pacs.example.org", false},
		{"rooted path", speclint.BasePath, "/fhir", true},
		{"relative path", speclint.BasePath, "fhir", false},
		{"empty path", speclint.BasePath, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.lint(tc.v); (err == nil) != tc.ok {
				t.Errorf("lint(%v) = %v, want ok %v", tc.v, err, tc.ok)
			}
		})
	}
}
