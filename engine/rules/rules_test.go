package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/engine/hl7v2"
)

// hl7 joins segments with the HL7 segment terminator.
func hl7(segments ...string) []byte { return []byte(strings.Join(segments, "\r") + "\r") }

var adtA01 = hl7(
	`MSH|^~\&|ADT1|HOSP|RIS|RAD|20240101120000+0100||ADT^A01^ADT_A01|MSG00001|P|2.5.1`,
	`EVN|A01|20240101120000`,
	`PID|1||12345^^^HOSP^MR~999999999^^^SSA^SS||DOE^JOHN^A||19800115|M|||1 MAIN ST^^TOWN^ST^12345||555-1234|||||ACC123|123-45-6789`,
	`PV1|1|E|ER^101^1^HOSP||||1234^SMITH^JANE|||RAD||||||||E|V0001`,
	`ZPI|custom|data`,
)

// ormO01 is built at test time so that the patient is always ten years old.
func ormO01() []byte {
	born := time.Now().AddDate(-10, 0, -1).Format("20060102")
	return hl7(
		`MSH|^~\&|RIS|HOSP|OSPREY|AI|20240101120500||ORM^O01|MSG00002|P|2.3`,
		`PID|1||67890^^^HOSP^MR||ROE^RICHARD||`+born+`|M`,
		`PV1|1|O|CT1^^^HOSP`,
		`ORC|NW|ACC456`,
		`OBR|1|ACC456||CTHEAD^CT HEAD \T\ NECK^L|||20240101120000`,
		`NTE|1||first note`,
		`NTE|2||second note`,
	)
}

func parse(t testing.TB, data []byte) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse(data)
	if err != nil {
		t.Fatalf("parse test message: %v", err)
	}
	return m
}

func TestFilterMatch(t *testing.T) {
	adt, orm := adtA01, ormO01()
	meta := map[string]string{"remote_addr": "10.1.2.3:40000", "path": "PID-5.1", "bad": "PID-3,1"}
	tests := []struct {
		name string
		src  string
		msg  []byte
		want bool
	}{
		{"type and event on ADT", `msg.Type == "ADT" && msg.Event == "A01"`, adt, true},
		{"type and event on ORM", `msg.Type == "ADT" && msg.Event == "A01"`, orm, false},
		{"order prefix", `msg.Type == "ORM" && msg.Get("OBR-4.1") startsWith "CT"`, orm, true},
		{"order prefix on ADT", `msg.Type == "ORM" && msg.Get("OBR-4.1") startsWith "CT"`, adt, false},
		{"type in list", `msg.Type in ["ORM", "OMI"]`, orm, true},
		{"type not in list", `msg.Type not in ["ORM", "OMI"]`, adt, true},
		{"regex on identifier", `msg.Get("PID-3[1].1") matches "^[0-9]{5}$"`, adt, true},
		{"second repetition", `msg.Get("PID-3[2].4") == "SSA"`, adt, true},
		{"field present", `msg.Has("PV1-3.1")`, adt, true},
		{"field absent", `msg.Has("PV1-50")`, adt, false},
		{"segment absent", `msg.Has("ZZZ-1")`, orm, false},
		{"count segments", `msg.Count("NTE") == 2 && msg.Count("OBX") == 0`, orm, true},
		{"unescaped value", `msg.Get("OBR-4.2") == "CT HEAD & NECK"`, orm, true},
		{"contains", `msg.Get("OBR-4.2") contains "HEAD"`, orm, true},
		{"header fields", `msg.Sender == "ADT1" && msg.Facility == "HOSP" && msg.ControlID == "MSG00001" && msg.Version == "2.5.1"`, adt, true},
		{"channel and meta", `channel == "orders" && meta.remote_addr startsWith "10.1."`, adt, true},
		{"missing meta key is empty", `meta.tls_subject == ""`, adt, true},
		{"date compare", `hl7date(msg.Get("MSH-7")) < hl7date("20240101113000+0000")`, adt, true},
		{"date against now", `hl7date(msg.Get("MSH-7")) < now()`, orm, true},
		{"paediatric", `age(msg.Get("PID-7")) < 18`, orm, true},
		{"adult", `age(msg.Get("PID-7")) >= 18`, adt, true},
		{"builtins", `lower(trim(" ORM ")) == "orm" && len(split("a^b", "^")) == 2 && upper(msg.Event) endsWith "01"`, orm, true},
		{"dynamic path", `msg.Get("PID-3" + "[1].1") == "12345" && msg.Has(meta.path) && msg.Count(upper("pv1")) == 1`, adt, true},
		{"invalid dynamic path reads empty", `msg.Get(meta.bad) == "" && !msg.Has(meta.bad)`, adt, true},
		{"multi-line", "msg.Type == \"ORM\"\n  && msg.Count(\"NTE\") > 1", orm, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.src)
			if err != nil {
				t.Fatalf("CompileFilter(%q): %v", tt.src, err)
			}
			got, err := f.Match(NewEnv(parse(t, tt.msg), "orders", meta))
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int
		msg       []string // substrings of the message
	}{
		{"type error", `msg.Type == 1`, 1, 10, []string{"mismatched types string and int"}},
		{"unknown field", `msg.Typ == "ADT"`, 1, 5, []string{"no field Typ", "did you mean Type?"}},
		{"unknown method", `msg.Gett("PID-3") == ""`, 1, 5, []string{"no method Gett", "did you mean Get?"}},
		{"unknown name", `mgs.Type == "ADT"`, 1, 1, []string{"unknown name mgs", "did you mean msg?"}},
		{"bad path literal", `msg.Type == "ADT" && msg.Get("PID-3,1") != ""`, 1, 30, []string{"msg.Get", `"PID-3,1"`}},
		{"bad path in Has", `msg.Has("PID-x")`, 1, 9, []string{"msg.Has", `"PID-x"`}},
		{"bad path through a variable", `let m = msg; m.Get("P") == ""`, 1, 20, []string{"msg.Get", `"P"`}},
		{"bad segment name", `msg.Count("OB") > 0`, 1, 11, []string{"not a segment name"}},
		{"bad date literal", `hl7date(msg.Get("MSH-7")) > hl7date("2024-01-01")`, 1, 37, []string{"hl7date", "not an HL7 date"}},
		{"bad regex literal", `msg.Get("PID-5.1") matches "(["`, 1, 20, []string{"regexp"}},
		{"non-bool result", `msg.Get("PID-5.1")`, 1, 1, []string{"filter must be a boolean expression", "string"}},
		{"non-bool after spaces", "\n  1 + 2", 2, 3, []string{"boolean", "int"}},
		{"syntax error", `msg.Type ==`, 1, 11, []string{"unexpected token"}},
		{"wrong argument type", `msg.Get(1) == ""`, 1, 9, []string{"cannot use int"}},
		{"empty", "  ", 1, 1, []string{"filter is empty"}},
		{"multi-line unknown field", "msg.Type == \"ORM\" &&\n  msg.Evnt == \"O01\"", 2, 7, []string{"no field Evnt", "did you mean Event?"}},
		{"multi-line bad path", "msg.Type == \"ORM\" &&\n\tmsg.Has(\"OBR-4..1\")", 2, 10, []string{`"OBR-4..1"`}},
		{"columns count characters", `"é" == "é" && msg.Typ == ""`, 1, 19, []string{"no field Typ"}},
		{"first of two errors", `msg.Get("PID-3,1") == "" && msg.Typ == ""`, 1, 9, []string{"msg.Get"}},
		{"mutation is not reachable", `msg.m.Set("PID-5", "x") == nil`, 1, 5, []string{"no field m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFilter(tt.src)
			if err == nil {
				t.Fatalf("CompileFilter(%q) = %v, want error", tt.src, f)
			}
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("error %T %v is not *ExprError", err, err)
			}
			if ee.Line != tt.line || ee.Col != tt.col {
				t.Errorf("position = %d:%d, want %d:%d (%v)", ee.Line, ee.Col, tt.line, tt.col, err)
			}
			for _, s := range tt.msg {
				if !strings.Contains(ee.Msg, s) {
					t.Errorf("message %q does not contain %q", ee.Msg, s)
				}
			}
			want := fmt.Sprintf("line %d, column %d: %s", ee.Line, ee.Col, ee.Msg)
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestFilterRuntimeError(t *testing.T) {
	f, err := CompileFilter(`hl7date(msg.Get("PID-8")) > now()`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Match(NewEnv(parse(t, adtA01), "adt", nil))
	var ee *ExprError
	if !errors.As(err, &ee) {
		t.Fatalf("Match error = %v, want an *ExprError", err)
	}
	if !strings.HasPrefix(err.Error(), "filter: line 1, column") || !strings.Contains(ee.Msg, `"M" is not an HL7 date`) {
		t.Errorf("Match error = %q", err)
	}
}

func TestFilterWithoutMessage(t *testing.T) {
	f, err := CompileFilter(`msg.Type == "" && !msg.Has("PID-3") && msg.Get("PID-3") == "" && msg.Count("PID") == 0`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := f.Match(NewEnv(nil, "c", nil))
	if err != nil || !ok {
		t.Errorf("Match on nil message = %v, %v; want true, nil", ok, err)
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"control id", `msg.ControlID`, "MSG00001"},
		{"patient id", `msg.Get("PID-3[1].1")`, "12345"},
		{"int via string", `string(msg.Count("PID"))`, "1"},
		{"concatenation", `channel + "/" + msg.Facility + "/" + msg.Get("PID-3.1")`, "adt/HOSP/12345"},
		{"meta", `meta.listener`, "main"},
		{"conditional", `msg.Has("PID-3") ? msg.Get("PID-3.1") : msg.ControlID`, "12345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := CompileKey(tt.src)
			if err != nil {
				t.Fatalf("CompileKey(%q): %v", tt.src, err)
			}
			got, err := k.Eval(NewEnv(parse(t, adtA01), "adt", map[string]string{"listener": "main"}))
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got != tt.want {
				t.Errorf("Eval(%q) = %q, want %q", tt.src, got, tt.want)
			}
		})
	}
}

func TestKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		msg  string
	}{
		{"int", `msg.Count("OBX")`, "convert it with string(...)"},
		{"bool", `msg.Type == "ADT"`, "key must be a string expression, but this one yields bool"},
		{"unknown field", `msg.ControlId`, "did you mean ControlID?"},
		{"bad path", `msg.Get("PID-0")`, `"PID-0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileKey(tt.src)
			var ee *ExprError
			if !errors.As(err, &ee) {
				t.Fatalf("CompileKey(%q) error = %v, want *ExprError", tt.src, err)
			}
			if !strings.Contains(ee.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ee.Msg, tt.msg)
			}
		})
	}
}

func TestConcurrentMatch(t *testing.T) {
	f, err := CompileFilter(`msg.Type == "ADT" && msg.Get("PID-5.1") == "DOE"`)
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(parse(t, adtA01), "adt", nil)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 200; j++ {
				ok, err := f.Match(env)
				if err == nil && !ok {
					err = errors.New("filter did not match")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestErrorsNameUserFunctions(t *testing.T) {
	for _, src := range []string{`msg.Get(1) == ""`, `msg.Has(true)`, `msg.Count(2) > 0`, `msg.Get("PID-3", "x") == ""`} {
		t.Run(src, func(t *testing.T) {
			_, err := CompileFilter(src)
			if err == nil {
				t.Fatal("compiled, want error")
			}
			if strings.Contains(err.Error(), "__") {
				t.Errorf("error %q names an internal function", err)
			}
		})
	}
}

// TestDocumentedError pins the error shown in docs/rules.md.
func TestDocumentedError(t *testing.T) {
	_, err := CompileFilter(`msg.Type == "ORM" && msg.Evnt == "O01"`)
	want := "line 1, column 26: type msg has no field Evnt (did you mean Event?)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
