package hl7v2

import "testing"

func TestEscape(t *testing.T) {
	five := Delimiters{'|', '^', '~', '\\', '&', '#'}
	custom := Delimiters{'#', '!', '@', '%', '*', 0}
	tests := []struct {
		name string
		in   string
		d    Delimiters
		want string
	}{
		{"plain", "plain text", DefaultDelimiters, "plain text"},
		{"delimiters", `a|b^c~d\e&f`, DefaultDelimiters, `a\F\b\S\c\R\d\E\e\T\f`},
		{"line feed", "a\nb", DefaultDelimiters, `a\.br\b`},
		{"carriage return", "a\r\nb", DefaultDelimiters, `a\X0D\\.br\b`},
		{"controls", "\x00\x0b\x1c\x7f\t", DefaultDelimiters, "\\X00\\\\X0B\\\\X1C\\\\X7F\\\t"},
		{"truncation", "a#b", five, `a\P\b`},
		{"hash without truncation", "a#b", DefaultDelimiters, "a#b"},
		{"custom", "a#b!c@d%e*f|g", custom, "a%F%b%S%c%R%d%E%e%T%f|g"},
		{"unicode", "Müller^Zoë", DefaultDelimiters, `Müller\S\Zoë`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Escape(tc.in, tc.d); got != tc.want {
				t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := Unescape(tc.want, tc.d); got != tc.in {
				t.Errorf("Unescape(%q) = %q, want %q", tc.want, got, tc.in)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	five := Delimiters{'|', '^', '~', '\\', '&', '#'}
	tests := []struct {
		name, in string
		d        Delimiters
		want     string
	}{
		{"all", `\F\\S\\T\\R\\E\`, DefaultDelimiters, `|^&~\`},
		{"break", `line1\.br\line2`, DefaultDelimiters, "line1\nline2"},
		{"hex", `\X0D0A\`, DefaultDelimiters, "\r\n"},
		{"hex lower", `\Xc3bc\`, DefaultDelimiters, "ü"},
		{"hex odd", `\X0D0\`, DefaultDelimiters, `\X0D0\`},
		{"hex bad", `\XZZ\`, DefaultDelimiters, `\XZZ\`},
		{"hex empty", `\X\`, DefaultDelimiters, `\X\`},
		{"highlight kept", `\H\bold\N\`, DefaultDelimiters, `\H\bold\N\`},
		{"formatting kept", `\.sp2\\.in+4\\.ce\`, DefaultDelimiters, `\.sp2\\.in+4\\.ce\`},
		{"charset kept", `\C2842\\M2442\`, DefaultDelimiters, `\C2842\\M2442\`},
		{"local kept", `\Zabc\`, DefaultDelimiters, `\Zabc\`},
		{"unknown kept", `\Q\`, DefaultDelimiters, `\Q\`},
		{"empty kept", `\\`, DefaultDelimiters, `\\`},
		{"unterminated", `a\Fb`, DefaultDelimiters, `a\Fb`},
		{"trailing escape", `a\`, DefaultDelimiters, `a\`},
		{"sequence does not span delimiters", `\F^\`, DefaultDelimiters, `\F^\`},
		{"truncation", `a\P\b`, five, "a#b"},
		{"truncation without one", `a\P\b`, DefaultDelimiters, `a\P\b`},
		{"no escape char", `a\F\`, Delimiters{Field: '|'}, `a\F\`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unescape(tc.in, tc.d); got != tc.want {
				t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		in   string
		want Path
		str  string
	}{
		{"PID", Path{Segment: "PID"}, "PID"},
		{"OBX[2]", Path{Segment: "OBX", SegmentRep: 2}, "OBX[2]"},
		{"PID-5", Path{Segment: "PID", Field: 5}, "PID-5"},
		{"PID-5.1", Path{Segment: "PID", Field: 5, Component: 1}, "PID-5.1"},
		{"PID.5.1", Path{Segment: "PID", Field: 5, Component: 1}, "PID-5.1"},
		{"PID-3[2].1", Path{Segment: "PID", Field: 3, FieldRep: 2, Component: 1}, "PID-3[2].1"},
		{"OBX[3]-5", Path{Segment: "OBX", SegmentRep: 3, Field: 5}, "OBX[3]-5"},
		{"MSH-9.2", Path{Segment: "MSH", Field: 9, Component: 2}, "MSH-9.2"},
		{"PID-5.1.2", Path{Segment: "PID", Field: 5, Component: 1, Subcomponent: 2}, "PID-5.1.2"},
		{"OBX[2]-5[1].1", Path{Segment: "OBX", SegmentRep: 2, Field: 5, FieldRep: 1, Component: 1}, "OBX[2]-5[1].1"},
		{" zpi-1 ", Path{Segment: "ZPI", Field: 1}, "ZPI-1"},
		{"Z01-9999", Path{Segment: "Z01", Field: 9999}, "Z01-9999"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePath(tc.in)
			if err != nil {
				t.Fatalf("ParsePath: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParsePath(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.str {
				t.Errorf("String() = %q, want %q", got.String(), tc.str)
			}
		})
	}
	for _, bad := range []string{"", "PI", "1ID-1", "P-D-1", "PID-", "PID-0", "PID-a", "PID-5.", "PID-5.0", "PID-5.1.2.3", "PID[0]", "PID[2", "PID[]-1",
		"PID-10000", "PID-3[2]x", "PID_5", "PID-5..1", "PID-5[1][2]", "PIDX-1", "PID-5.1.0"} {
		t.Run("invalid "+bad, func(t *testing.T) {
			if p, err := ParsePath(bad); err == nil {
				t.Errorf("ParsePath(%q) = %+v, want an error", bad, p)
			}
		})
	}
}
