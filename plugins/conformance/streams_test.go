package conformance

import "testing"

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{"osprey.results.*", "osprey.results.ich", true},
		{"osprey.results.*", "osprey.results.ich.x", false},
		{"osprey.results.*", "osprey.results", false},
		{"osprey.>", "osprey.results.ich", true},
		{"osprey.>", "osprey", false},
		{"osprey.jobs.ich", "osprey.jobs.ich", true},
		{"osprey.jobs.ich", "osprey.jobs.other", false},
		{"*.jobs.*", "osprey.jobs.ich", true},
		{">", "a", true},
	}
	for _, tc := range tests {
		t.Run(tc.filter+" "+tc.subject, func(t *testing.T) {
			if got := subjectMatches(tc.filter, tc.subject); got != tc.want {
				t.Errorf("subjectMatches(%q, %q) = %v, want %v", tc.filter, tc.subject, got, tc.want)
			}
		})
	}
}

func TestValidSemver(t *testing.T) {
	for v, want := range map[string]bool{
		"1.4.0": true, "0.0.1": true, "2.0.0-rc.1": true, "1.0.0+build.5": true,
		"1.0": false, "v1.0.0": false, "01.0.0": false, "": false, "1.0.0-": false,
	} {
		if got := ValidSemver(v); got != want {
			t.Errorf("ValidSemver(%q) = %v, want %v", v, got, want)
		}
	}
}
