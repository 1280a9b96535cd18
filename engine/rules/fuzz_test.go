package rules

import (
	"errors"
	"testing"
)

// FuzzCompileFilter checks that no input makes the compiler panic and that every failure is
// a positioned *ExprError, which the config loader relies on.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{
		`msg.Type == "ORM"`, `msg.Get("PID-3,1") == ""`, "msg.Type ==\n", `hl7date("2024") > now()`,
		`msg.Count("OBX") > 0 && meta.x startsWith "a"`, `let m = msg; m.Has("PV1-3.1")`, `"é" + msg.Typ`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, err := CompileFilter(src)
		if err == nil {
			return
		}
		var ee *ExprError
		if !errors.As(err, &ee) {
			t.Fatalf("CompileFilter(%q) error %T is not *ExprError: %v", src, err, err)
		}
		if ee.Line < 1 || ee.Col < 1 {
			t.Fatalf("CompileFilter(%q) error at %d:%d", src, ee.Line, ee.Col)
		}
	})
}

// FuzzParseHL7Time checks that the parser never panics and that what it accepts is
// well-formed enough to be printed again as the same instant.
func FuzzParseHL7Time(f *testing.F) {
	for _, s := range []string{"2024", "20240101120000.1234+0100", "20240229", "2024010112^S", "-0500"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseHL7Time(s)
		if err != nil {
			return
		}
		back, err := ParseHL7Time(tm.Format("20060102150405.0000-0700"))
		if err != nil || !back.Equal(tm) {
			t.Fatalf("ParseHL7Time(%q) = %v, which does not round-trip: %v, %v", s, tm, back, err)
		}
	})
}
