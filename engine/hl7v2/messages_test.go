package hl7v2

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// Messages written for these tests (testdata/messages): the radiology flows Osprey carries.
var messageCases = []struct {
	file   string
	values map[string]string
}{
	{"adt-a01-admit.hl7", map[string]string{
		"MSH-9": "ADT^A01^ADT_A01", "MSH-15": "AL", "PID-3[1].1": "MRN4711", "PID-3[2].1": "987-65-4321", "PID-3[2].5": "SS",
		"PID-5.1": "Müller", "PID-5.2": "Zoë", "PID-5[2].1": "Mueller", "PID-11.1": "Hauptstraße 5", "PID-11.3": "Zürich",
		"PID-13[2].4": "zoe@example.org", "PID-13[2].1": "", "PV1-7.2": "Okafor", "PV1-44": "20260115082500", "AL1-3.2": "Penicillin"}},
	{"adt-a04-register.hl7", map[string]string{
		"MSH-12": "2.4", "PID-5": "O'Brien^Seán", "PID-11.1": "12 Quay St\r\nApt 4", "PID-13": `""`, "PID-14": "", "PID-16": "S"}},
	{"adt-a08-update.hl7", map[string]string{
		"MSH-9.2": "A08", "PID-11": `""`, "PID-18": `""`, "ZPI-2": "VIP&CONFIDENTIAL", "ZPI-3": "Note with | pipe", "PV1-3.2": "0206"}},
	{"orm-o01-ct.hl7", map[string]string{
		"PID-5.1": "MÜLLER", "ORC-1": "NW", "ORC-7.4": "20260118100000", "OBR-4.1": "CTHEAD", "OBR-4.2": "CT Head without contrast",
		"OBR-13": "Headache & dizziness, r/o bleed", "OBR-18": "ACC10001", "OBR-24": "CT", "NTE-3": "Patient is claustrophobic.\nPrefers sedation."}},
	{"omi-o23-mr.hl7", map[string]string{
		"MSH-9.3": "OMI_O23", "MSH-16": "AL", "TQ1-7": "20260119080000", "IPC-1": "1.2.840.113619.2.55.3.1234", "IPC-5": "SPS001"}},
	{"oru-r01-radiology.hl7", map[string]string{
		"OBX-2": "FT", "OBX-5": "FINDINGS:\nNo acute intracranial haemorrhage.\nVentricles & sulci normal.\n\nIMPRESSION:\nNormal CT head.",
		"OBX[2]-5.2": "Normal", "OBX[3]-5[2].1": "G44.2", "OBX[3]-5[2].2": "Tension-type headache", "OBR-32.1.2": "Radiologist", "OBR-25": "F"}},
	{"siu-s12-booking.hl7", map[string]string{
		"SCH-11.4": "20260125093000", "AIS-3.2": "CT Head without contrast", "AIL-3.1": "CT1", "RGS-1": "1"}},
	{"adt-a01-latin1.hl7", map[string]string{
		"MSH-18": "8859/1", "PID-5": "Lefèvre^Hélène^Françoise", "PID-11.3": "Besançon"}},
	{"oru-r01-lf-5char.hl7", map[string]string{
		"MSH-2": "^~\\&#", "PID-5.1": "Smith#Jones", "OBX-5": "Value with hash # kept"}},
}

func TestMessages(t *testing.T) {
	for _, tc := range messageCases {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/messages/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseStrict(data)
			if err != nil {
				t.Fatalf("ParseStrict: %v", err)
			}
			if got := m.Encode(); !bytes.Equal(got, data) {
				t.Errorf("round trip differs:\n got %q\nwant %q", got, data)
			}
			for path, want := range tc.values {
				if got := m.Get(path); got != want {
					t.Errorf("Get(%q) = %q, want %q", path, got, want)
				}
			}
			checkReparse(t, m)
		})
	}
}

func mustParse(t testing.TB, s string) *Message {
	t.Helper()
	m, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

const adt = "MSH|^~\\&|SEND|SFAC|RECV|RFAC|20260101120000||ADT^A01^ADT_A01|CTRL1|P|2.5.1\r" +
	"EVN|A01|20260101120000\r" +
	"PID|1||123^^^MRN~456^^^SSN||DOE^JOHN^Q||19800101|M|||1 MAIN ST^^TOWN^ST^12345||\"\"\r" +
	"OBX|1|ST|A||first\r" +
	"OBX|2|ST|B||second\r"

func TestValue(t *testing.T) {
	m := mustParse(t, adt)
	tests := []struct {
		path    string
		want    string
		present bool
	}{
		{"MSH-1", "|", true},
		{"MSH-2", "^~\\&", true},
		{"MSH-2.1", "^~\\&", true},
		{"MSH-2.2", "", false},
		{"MSH-3", "SEND", true},
		{"MSH-9", "ADT^A01^ADT_A01", true},
		{"MSH-9.2", "A01", true},
		{"MSH-12", "2.5.1", true},
		{"MSH-13", "", false},
		{"PID", "PID|1||123^^^MRN~456^^^SSN||DOE^JOHN^Q||19800101|M|||1 MAIN ST^^TOWN^ST^12345||\"\"", true},
		{"PID-1", "1", true},
		{"PID-2", "", true},
		{"PID-3", "123^^^MRN~456^^^SSN", true},
		{"PID-3.1", "123", true},
		{"PID-3[1].1", "123", true},
		{"PID-3[2]", "456^^^SSN", true},
		{"PID-3[2].1", "456", true},
		{"PID-3[2].4", "SSN", true},
		{"PID-3[2].5", "", false},
		{"PID-3[3]", "", false},
		{"PID-3.2", "", true},
		{"PID-5.1", "DOE", true},
		{"PID-5.1.1", "DOE", true},
		{"PID-5.1.2", "", false},
		{"PID.5.2", "JOHN", true},
		{"pid-5.3", "Q", true},
		{"PID-13", `""`, true},
		{"PID-14", "", false},
		{"PID-99", "", false},
		{"OBX-5", "first", true},
		{"OBX[2]-5", "second", true},
		{"OBX[2]-5[1].1", "second", true},
		{"OBX[3]-5", "", false},
		{"ZZZ-1", "", false},
		{"ZZZ", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, present, err := m.Value(tc.path)
			if err != nil {
				t.Fatalf("Value: %v", err)
			}
			if got != tc.want || present != tc.present {
				t.Errorf("Value(%q) = %q, %v; want %q, %v", tc.path, got, present, tc.want, tc.present)
			}
			if g := m.Get(tc.path); g != tc.want {
				t.Errorf("Get(%q) = %q, want %q", tc.path, g, tc.want)
			}
		})
	}
	if _, _, err := m.Value("PID-"); err == nil {
		t.Error("Value(\"PID-\") has no error")
	}
	if got := m.Get("P"); got != "" {
		t.Errorf("Get of an invalid path = %q", got)
	}
	if m.Type() != "ADT" || m.Event() != "A01" || m.ControlID() != "CTRL1" || m.Version() != "2.5.1" {
		t.Errorf("Type/Event/ControlID/Version = %q %q %q %q", m.Type(), m.Event(), m.ControlID(), m.Version())
	}
	if m.Count("OBX") != 2 || m.Count("PID") != 1 || m.Count("ZZZ") != 0 || m.Count("OB") != 0 {
		t.Errorf("Count = %d %d %d %d", m.Count("OBX"), m.Count("PID"), m.Count("ZZZ"), m.Count("OB"))
	}
	if m.Delimiters() != DefaultDelimiters {
		t.Errorf("Delimiters = %+v", m.Delimiters())
	}
}

func TestRawAndGetOfComposites(t *testing.T) {
	m := mustParse(t, "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1||||O\\T\\BRIEN^PAT\\S\\X^\\.br\\\r")
	if got := m.Get("PID-5"); got != "O&BRIEN^PAT^X^\n" {
		t.Errorf("Get(PID-5) = %q", got)
	}
	if got := m.Raw("PID-5"); got != "O\\T\\BRIEN^PAT\\S\\X^\\.br\\" {
		t.Errorf("Raw(PID-5) = %q", got)
	}
	if got := m.Get("PID-5.2"); got != "PAT^X" {
		t.Errorf("Get(PID-5.2) = %q", got)
	}
	if got := m.Raw("PID-99"); got != "" {
		t.Errorf("Raw of absent = %q", got)
	}
}

func TestSegments(t *testing.T) {
	m := mustParse(t, adt)
	segs := m.Segments()
	var names []string
	for _, s := range segs {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, " "); got != "MSH EVN PID OBX OBX" {
		t.Fatalf("segments %s", got)
	}
	pid := segs[2]
	if pid.Index() != 3 || pid.Offset() != strings.Index(adt, "PID") {
		t.Errorf("Index/Offset = %d/%d", pid.Index(), pid.Offset())
	}
	if pid.NumFields() != 13 || segs[0].NumFields() != 12 {
		t.Errorf("NumFields = %d, MSH %d", pid.NumFields(), segs[0].NumFields())
	}
	if pid.Field(0) != "PID" || pid.Field(5) != "DOE^JOHN^Q" || segs[0].Field(1) != "|" || segs[0].Field(2) != "^~\\&" {
		t.Errorf("Field = %q %q %q", pid.Field(5), segs[0].Field(1), segs[0].Field(2))
	}
	if pid.Repetitions(3) != 2 || pid.Components(3, 2) != 4 || pid.Subcomponents(5, 1, 1) != 1 || pid.Repetitions(40) != 0 {
		t.Errorf("Repetitions/Components/Subcomponents = %d %d %d %d", pid.Repetitions(3), pid.Components(3, 2), pid.Subcomponents(5, 1, 1), pid.Repetitions(40))
	}
	if v, ok := pid.Value(3, 2, 4, 0); v != "SSN" || !ok {
		t.Errorf("Value(3,2,4) = %q %v", v, ok)
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name, in, path, value string
		want                  string // the segment set, as encoded
		seg                   string // which segment to look at
	}{
		{"field", "PID|1||123", "PID-3", "999", "PID|1||999", "PID"},
		{"new field", "PID|1", "PID-5", "DOE", "PID|1||||DOE", "PID"},
		{"component", "PID|1||||DOE^JOHN", "PID-5.2", "JANE", "PID|1||||DOE^JANE", "PID"},
		{"new component", "PID|1||||DOE", "PID-5.3", "Q", "PID|1||||DOE^^Q", "PID"},
		{"subcomponent", "PID|1||||A^B&C", "PID-5.2.2", "X", "PID|1||||A^B&X", "PID"},
		{"new subcomponent", "PID|1", "PID-5.2.3", "X", "PID|1||||^&&X", "PID"},
		{"repetition", "PID|1||A~B", "PID-3[2]", "Z", "PID|1||A~Z", "PID"},
		{"new repetition", "PID|1||A", "PID-3[3].2", "Z", "PID|1||A~~^Z", "PID"},
		{"whole field replaces repetitions", "PID|1||A~B", "PID-3", "C", "PID|1||C", "PID"},
		{"escapes delimiters", "PID|1", "PID-5", "A|B^C~D&E\\F", "PID|1||||A\\F\\B\\S\\C\\R\\D\\T\\E\\E\\F", "PID"},
		{"escapes line breaks", "OBX|1", "OBX-5", "a\nb\rc", "OBX|1||||a\\.br\\b\\X0D\\c", "OBX"},
		{"utf-8", "PID|1", "PID-5.1", "Müller", "PID|1||||Müller", "PID"},
		{"new segment", "PID|1", "ZPI-2", "x", "ZPI||x", "ZPI"},
		{"second segment", "OBX|1|A\rNTE|1", "OBX[2]-1", "2", "OBX|2", "OBX[2]"},
		{"empty trims", "PID|1||A^B^C", "PID-3.3", "", "PID|1||A^B", "PID"},
		{"empty trims fields", "PID|1||A", "PID-3", "", "PID|1", "PID"},
		{"empty on absent is a no-op", "PID|1", "PID-9", "", "PID|1", "PID"},
		{"msh field", "PID|1", "MSH-10", "NEW", "MSH|^~\\&|||||||ADT^A01|NEW|P|2.5", "MSH"},
		{"msh component", "PID|1", "MSH-9.2", "A04", "MSH|^~\\&|||||||ADT^A04|C1|P|2.5", "MSH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, "MSH|^~\\&|||||||ADT^A01|C1|P|2.5\r"+tc.in+"\r")
			if err := m.Set(tc.path, tc.value); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got := m.Get(tc.seg); got != tc.want {
				t.Errorf("after Set(%q, %q): %s = %q, want %q", tc.path, tc.value, tc.seg, got, tc.want)
			}
			if got := m.Get(tc.path); got != tc.value {
				t.Errorf("Get after Set = %q, want %q", got, tc.value)
			}
			parse := ParseStrict
			if !isASCII([]byte(tc.value)) {
				parse = Parse // the base message declares no MSH-18: non-ASCII is an issue
			}
			m2, err := parse(m.Encode())
			if err != nil {
				t.Fatalf("the edited message does not parse strictly: %v\n%q", err, m.Encode())
			}
			if got := m2.Get(tc.path); got != tc.value {
				t.Errorf("Get after Encode and Parse = %q, want %q", got, tc.value)
			}
		})
	}
}

func TestSetPlacesNewSegments(t *testing.T) {
	m := mustParse(t, "MSH|^~\\&|||||||ORU^R01|1|P|2.5\rOBR|1\rOBX|1\rNTE|1\n")
	if err := m.Set("OBX[3]-1", "3"); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("ZDS-1", "x"); err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|||||||ORU^R01|1|P|2.5\rOBR|1\rOBX|1\rOBX\rOBX|3\rNTE|1\nZDS|x\r"
	if got := string(m.Encode()); got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	// A message without a final terminator keeps that style.
	m = mustParse(t, "MSH|^~\\&|||||||ORU^R01|1|P|2.5\nPID|1")
	if err := m.Set("ZDS-1", "x"); err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.Encode()), "MSH|^~\\&|||||||ORU^R01|1|P|2.5\nPID|1\nZDS|x"; got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
}

func TestSetErrors(t *testing.T) {
	m := mustParse(t, adt)
	for _, path := range []string{"MSH-1", "MSH-2", "PID", "MSH[2]-3", "X", "PID-0", "PID-3[0]", "PID-10000"} {
		if err := m.Set(path, "x"); err == nil {
			t.Errorf("Set(%q) succeeded", path)
		}
	}
	if err := m.Set("PID-5", "bad \xff utf-8"); err == nil {
		t.Error("Set of invalid UTF-8 succeeded")
	}
	if got := string(m.Encode()); got != adt {
		t.Errorf("failed Sets changed the message: %q", got)
	}
	var zero Message
	if err := zero.Set("PID-1", "x"); err == nil {
		t.Error("Set on a zero Message succeeded")
	}
	if zero.Get("PID-1") != "" || len(zero.Encode()) != 0 {
		t.Error("zero Message is not empty")
	}
}

func TestSetRaw(t *testing.T) {
	m := mustParse(t, adt)
	if err := m.SetRaw("PID-5", "ROE^JANE^\\T\\"); err != nil {
		t.Fatal(err)
	}
	if got := m.Get("PID-5.3"); got != "&" {
		t.Errorf("PID-5.3 = %q", got)
	}
	for path, v := range map[string]string{"PID-5": "A|B", "PID-5.1": "A^B", "PID-3[1]": "A~B", "PID-5.1.1": "A&B", "OBX-5": "a\rb"} {
		if err := m.SetRaw(path, v); err == nil {
			t.Errorf("SetRaw(%q, %q) succeeded", path, v)
		}
	}
}

func TestDelete(t *testing.T) {
	m := mustParse(t, adt+"ZPI|1\r")
	for _, p := range []string{"PID-5.2", "OBX[1]", "ZPI", "ZZZ", "PID-40"} {
		if err := m.Delete(p); err != nil {
			t.Fatalf("Delete(%q): %v", p, err)
		}
	}
	if m.Get("PID-5") != "DOE^^Q" || m.Count("OBX") != 1 || m.Get("OBX-5") != "second" || m.Count("ZPI") != 0 {
		t.Errorf("after Delete: PID-5 %q, OBX %d %q, ZPI %d", m.Get("PID-5"), m.Count("OBX"), m.Get("OBX-5"), m.Count("ZPI"))
	}
	for _, p := range []string{"MSH", "MSH-1", "MSH-2", "P-1"} {
		if err := m.Delete(p); err == nil {
			t.Errorf("Delete(%q) succeeded", p)
		}
	}
	m = mustParse(t, "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1\rZPI|1")
	if err := m.Delete("ZPI"); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Encode()); got != "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1" {
		t.Errorf("Encode = %q", got)
	}
}

func TestNew(t *testing.T) {
	m, err := New(DefaultDelimiters)
	if err != nil {
		t.Fatal(err)
	}
	for _, pv := range [][2]string{{"MSH-9.1", "ORU"}, {"MSH-9.2", "R01"}, {"MSH-10", "X1"}, {"MSH-12", "2.5.1"}, {"PID-5.1", "Zoë"}, {"OBX-5", "a|b"}} {
		if err := m.Set(pv[0], pv[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := "MSH|^~\\&|||||||ORU^R01|X1||2.5.1\rPID|||||Zoë\rOBX|||||a\\F\\b\r"
	if got := string(m.Encode()); got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	if _, err := New(Delimiters{'|', '^', '^', '\\', '&', 0}); err == nil {
		t.Error("New accepted duplicate delimiters")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		field          int
	}{
		{"empty", "", "no MSH segment", 0},
		{"no msh", "PID|1\r", "no MSH segment", 0},
		{"short", "MSH|^~\r", "MSH too short", 1},
		{"three encoding characters", "MSH|^~\\|A\r", "MSH-2 must hold 4 encoding characters", 2},
		{"six encoding characters", "MSH|^~\\&#!|A\r", "MSH-2 must hold 4 encoding characters", 2},
		{"duplicate", "MSH|^^\\&|A\r", "used twice", 2},
		{"alphanumeric separator", "MSHA^~\\&A\r", "printable non-alphanumeric", 1},
		{"field separator repeated", "MSH|^~|&|A\r", "MSH-2 must hold", 2},
		{"batch", "BHS|^~\\&\rMSH|^~\\&\r", "split it into messages", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			checkParseErr(t, "Parse", err, tc.want, 1)
			if pe, _ := err.(*ParseError); pe != nil && tc.field != 0 && pe.Field != tc.field {
				t.Errorf("field %d, want %d", pe.Field, tc.field)
			}
		})
	}
}

func TestIssues(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // substrings of the issues, in order
	}{
		{"clean", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1\r", nil},
		{"lf", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\nPID|1\n", nil},
		{"crlf", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\r\nPID|1\r\n", nil},
		{"bom", "\xEF\xBB\xBFMSH|^~\\&|||||||ADT^A01|1|P|2.5\r", []string{"byte order mark"}},
		{"leading blank", "\r\n\x0bMSH|^~\\&|||||||ADT^A01|1|P|2.5\r", []string{"before MSH"}},
		{"blank lines", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\r\rPID|1\r  \r", []string{"blank line", "blank line"}},
		{"mixed", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1\n", []string{"mixed segment terminators"}},
		{"no final terminator", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1", []string{"last segment has no terminator"}},
		{"trailing", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1||\r", []string{"trailing field separators"}},
		{"segment name", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rpid|1\r1AB|2\r", []string{`invalid segment name "pid"`, `invalid segment name "1AB"`}},
		{"second msh", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rMSH|^~\\&|||||||ADT^A01|2|P|2.5\r", []string{"second MSH"}},
		{"unterminated escape", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1|a\\Fb|c\r", []string{"unterminated escape"}},
		{"unknown escape", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1|C:\\temp\\x\r", []string{"unknown escape sequence"}},
		{"known escapes", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rNTE|1|\\H\\\\N\\\\.sp2\\\\.in+4\\\\X41\\\\C2842\\\\Zlocal\\\r", nil},
		{"truncation escape without truncation", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rNTE|1|\\P\\\r", []string{"unknown escape"}},
		{"missing header fields", "MSH|^~\\&\r", []string{"MSH-9", "MSH-10", "MSH-12"}},
		{"version", "MSH|^~\\&|||||||ADT^A01|1|P|3.0\r", []string{`MSH-12 "3.0"`}},
		{"charset unknown", "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||KLINGON\r", []string{"unsupported character set"}},
		{"charset alias", "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||UTF-8\r", []string{"not an HL7 character set name"}},
		{"ascii with latin1", "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|M\xfcller\r", []string{"read as 8859/1"}},
		{"utf8 invalid", "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|M\xfcller\r", []string{"not valid UTF-8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.in)
			is := m.Issues()
			if len(is) != len(tc.want) {
				t.Fatalf("issues %v, want %d matching %q", is, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(is[i].Msg, w) {
					t.Errorf("issue %d %q does not contain %q", i, is[i].Msg, w)
				}
			}
			_, err := ParseStrict([]byte(tc.in))
			if (err == nil) != (len(tc.want) == 0) {
				t.Errorf("ParseStrict error %v with issues %v", err, is)
			}
		})
	}
}

func TestIssuePositions(t *testing.T) {
	in := "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rEVN|A01\rPID|1||||a\\Fb|x\r"
	_, err := ParseStrict([]byte(in))
	pe, ok := err.(*ParseError)
	if !ok {
		t.Fatalf("error %v", err)
	}
	want := ParseError{Segment: 3, SegmentName: "PID", Field: 5, Offset: strings.Index(in, "\\Fb"), Msg: "unterminated escape sequence"}
	if *pe != want {
		t.Errorf("got %+v, want %+v", *pe, want)
	}
	if got := pe.Error(); got != "hl7v2: segment 3 (PID) field 5 at byte 49: unterminated escape sequence" {
		t.Errorf("Error() = %q", got)
	}
	// A charset issue points at the first byte that does not fit.
	for _, in := range []string{
		"MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|Müller\r",
		"MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|M\xfcller\r",
	} {
		is := mustParse(t, in).Issues()
		if want := strings.Index(in, "PID|M") + 5; len(is) != 1 || is[0].Offset != want {
			t.Errorf("issues %v for %q", is, in)
		}
	}
}

func TestCharsets(t *testing.T) {
	latin := "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||8859/1\rPID|1||||M\xfcller^Zo\xeb\r"
	m := mustParse(t, latin)
	if len(m.Issues()) != 0 || m.Get("PID-5") != "Müller^Zoë" || m.Charset() != "8859/1" {
		t.Fatalf("issues %v, PID-5 %q, charset %q", m.Issues(), m.Get("PID-5"), m.Charset())
	}
	if err := m.Set("PID-5.2", "Zoé"); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Encode()); got != strings.Replace(latin, "Zo\xeb", "Zo\xe9", 1) {
		t.Errorf("Encode = %q", got)
	}
	if err := m.Set("PID-5.2", "€uro"); err == nil {
		t.Error("Set of € in 8859/1 succeeded")
	}
	// Switching MSH-18 converts the message.
	if err := m.Set("MSH-18", "UNICODE UTF-8"); err != nil {
		t.Fatal(err)
	}
	want := "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|1||||Müller^Zoé\r"
	if got := string(m.Encode()); got != want {
		t.Errorf("after MSH-18 change: %q, want %q", got, want)
	}
	if err := m.Set("PID-5.2", "€uro"); err != nil || m.Get("PID-5.2") != "€uro" {
		t.Errorf("Set of € in UTF-8: %v, %q", err, m.Get("PID-5.2"))
	}
	if err := m.Set("MSH-18", "8859/1"); err == nil {
		t.Error("switching to 8859/1 with € in the message succeeded")
	}
	if m.Charset() != "UNICODE UTF-8" {
		t.Errorf("failed switch changed the charset to %q", m.Charset())
	}
	// 8859/15 has € where 8859/1 has ¤.
	m = mustParse(t, "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||8859/15\rNTE|1||5 \xa4\r")
	if got := m.Get("NTE-3"); got != "5 €" {
		t.Errorf("8859/15 NTE-3 = %q", got)
	}
	// \X..\ hex data is bytes of the message's character set.
	m = mustParse(t, "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||8859/1\rNTE|1||\\XFC\\\r")
	if got := m.Get("NTE-3"); got != "ü" {
		t.Errorf("hex in 8859/1 = %q", got)
	}
}

func TestLargeMessage(t *testing.T) {
	// An ORU carrying a 5 MB base64 PDF in OBX-5, as a radiology report system sends it.
	pdf := bytes.Repeat([]byte("JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+"), 5<<20/80)
	var b bytes.Buffer
	b.WriteString("MSH|^~\\&|PACS|F|EHR|F|20260101||ORU^R01^ORU_R01|BIG1|P|2.5.1||||||UNICODE UTF-8\rPID|1||1^^^MRN||Müller^Zoë\rOBR|1\r")
	b.WriteString("OBX|1|ED|PDF^Report||^application^pdf^Base64^")
	b.Write(pdf)
	b.WriteString("||||||F\r")
	for i := 0; i < 2000; i++ {
		b.WriteString("NTE|1||line\r")
	}
	data := b.Bytes()
	m, err := ParseStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("OBX-5.5"); got != string(pdf) {
		t.Errorf("OBX-5.5 has %d bytes, want %d", len(got), len(pdf))
	}
	if m.Get("OBX-11") != "F" || m.Count("NTE") != 2000 || m.Get("PID-5.2") != "Zoë" {
		t.Errorf("OBX-11 %q, %d NTE", m.Get("OBX-11"), m.Count("NTE"))
	}
	if !bytes.Equal(m.Encode(), data) {
		t.Error("round trip of the large message differs")
	}
	if err := m.Set("OBX-5.5", "short"); err != nil {
		t.Fatal(err)
	}
	if m.Get("OBX-5.5") != "short" || m.Get("OBX-11") != "F" {
		t.Error("Set in the large message lost data")
	}
}

func TestIssuesAreBounded(t *testing.T) {
	in := "MSH|^~\\&|||||||ADT^A01|1|P|2.5\rNTE|1||" + strings.Repeat("\\Q\\", 100000) + "\r"
	m := mustParse(t, in)
	if n := len(m.Issues()); n != maxIssues+1 || m.Issues()[maxIssues].Msg != "more issues not listed" {
		t.Errorf("%d issues, last %v", n, m.Issues()[n-1])
	}
	if _, err := ParseStrict([]byte(in)); err == nil {
		t.Error("ParseStrict accepted it")
	}
}

// TestConcurrentReads backs the promise that readers may share a Message (run with -race).
func TestConcurrentReads(t *testing.T) {
	m := mustParse(t, adt)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if m.Get("PID-5.1") != "DOE" || m.Count("OBX") != 2 || len(m.Encode()) != len(adt) {
					errs <- "concurrent read returned a wrong value"
					return
				}
				_, _ = m.MarshalJSON()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
