package rules

import (
	"errors"
	"testing"
	"time"
)

func TestParseHL7Time(t *testing.T) {
	plus1 := time.FixedZone("+0100", 3600)
	minus5 := time.FixedZone("-0500", -5*3600)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2024", time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local)},
		{"202403", time.Date(2024, 3, 1, 0, 0, 0, 0, time.Local)},
		{"20240315", time.Date(2024, 3, 15, 0, 0, 0, 0, time.Local)},
		{"2024031512", time.Date(2024, 3, 15, 12, 0, 0, 0, time.Local)},
		{"202403151230", time.Date(2024, 3, 15, 12, 30, 0, 0, time.Local)},
		{"20240315123045", time.Date(2024, 3, 15, 12, 30, 45, 0, time.Local)},
		{"20240315123045.5", time.Date(2024, 3, 15, 12, 30, 45, 500_000_000, time.Local)},
		{"20240315123045.1234", time.Date(2024, 3, 15, 12, 30, 45, 123_400_000, time.Local)},
		{"20240101120000+0100", time.Date(2024, 1, 1, 11, 0, 0, 0, time.UTC)},
		{"20240101120000-0500", time.Date(2024, 1, 1, 12, 0, 0, 0, minus5)},
		{"202401011200+0100", time.Date(2024, 1, 1, 12, 0, 0, 0, plus1)},
		{"20240101^S", time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local)},
		{"20240229", time.Date(2024, 2, 29, 0, 0, 0, 0, time.Local)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHL7Time(tt.in)
			if err != nil {
				t.Fatalf("ParseHL7Time(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseHL7Time(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseHL7TimeErrors(t *testing.T) {
	for _, in := range []string{
		"24", "20241", "2024-01-01", "20240230", "20231301", "20240101250000", "20240101126000",
		"20240101120061", "202401011200.5", "20240101120000.", "20240101120000.12345",
		"20240101120000+01", "20240101120000+1500", "2024010112000x", "20240101 1200",
	} {
		t.Run(in, func(t *testing.T) {
			if got, err := ParseHL7Time(in); err == nil {
				t.Errorf("ParseHL7Time(%q) = %v, want error", in, got)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		if _, err := ParseHL7Time(" "); !errors.Is(err, ErrNoDate) {
			t.Errorf("ParseHL7Time(\" \") error = %v, want ErrNoDate", err)
		}
	})
}

func TestAge(t *testing.T) {
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		born, now time.Time
		want      int
	}{
		{"day before birthday", d(1980, 1, 15), d(2024, 1, 14), 43},
		{"on birthday", d(1980, 1, 15), d(2024, 1, 15), 44},
		{"newborn", d(2024, 1, 15), d(2024, 6, 1), 0},
		{"leap day, not yet", d(2000, 2, 29), d(2023, 2, 28), 22},
		{"leap day, 1 March", d(2000, 2, 29), d(2023, 3, 1), 23},
		{"leap day in a leap year", d(2000, 2, 29), d(2024, 2, 29), 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Age(tt.born, tt.now); got != tt.want {
				t.Errorf("Age(%v, %v) = %d, want %d", tt.born, tt.now, got, tt.want)
			}
		})
	}
}
