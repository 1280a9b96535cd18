package hl7fhir

import (
	"testing"
	"time"
)

func TestDateTime(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		in   string
		tz   *time.Location
		want string
	}{
		{"2026", nil, "2026"},
		{"202604", nil, "2026-04"},
		{"20260401", nil, "2026-04-01"},
		{"2026040108", nil, "2026-04-01T08:00:00Z"},
		{"202604010830", nil, "2026-04-01T08:30:00Z"},
		{"20260401083015", berlin, "2026-04-01T08:30:15+01:00"},
		{"20260401083015.1234", nil, "2026-04-01T08:30:15.1234Z"},
		{"20060529090131-0500", berlin, "2006-05-29T09:01:31-05:00"},
		{"20260401+0200", nil, "2026-04-01"},
		{"20260230", nil, ""},      // no such day
		{"2026040", nil, ""},       // odd length
		{"20261301", nil, ""},      // no such month
		{"yesterday", nil, ""},     // not a DTM
		{`""`, nil, ""},            // HL7 null
		{"2026040108+05", nil, ""}, // malformed offset
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := dateTime(tc.in, tc.tz); got != tc.want {
				t.Errorf("dateTime(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestUUIDForIsStableAndDistinct(t *testing.T) {
	a, b, c := uuidFor("Patient", "s", "1"), uuidFor("Patient", "s", "1"), uuidFor("Patient", "s1", "")
	if a != b || a == c {
		t.Errorf("uuidFor: %s %s %s", a, b, c)
	}
	if len(a) != len("urn:uuid:")+36 || a[len("urn:uuid:")+14] != '5' {
		t.Errorf("%s is not a version-5 layout UUID URN", a)
	}
}
