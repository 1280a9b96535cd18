package hl7v2

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

var ackNow = time.Date(2026, 3, 1, 12, 30, 45, 0, time.FixedZone("", 3600))

func TestNewAckOriginalMode(t *testing.T) {
	orig := mustParse(t, "MSH|^~\\&|RIS^1.2.3^ISO|RADFAC|OSPREY|HOSP|20260301||ORM^O01^ORM_O01|MSG42|T|2.5.1\rPID|1\r")
	ack := NewAck(orig, ApplicationAccept, AckOptions{ControlID: "ACK1", Now: ackNow, Text: "ok"})
	want := "MSH|^~\\&|OSPREY|HOSP|RIS^1.2.3^ISO|RADFAC|20260301123045+0100||ACK^O01^ACK|ACK1|T|2.5.1\rMSA|AA|MSG42|ok\r"
	if got := string(ack.Encode()); got != want {
		t.Errorf("ACK\n got %q\nwant %q", got, want)
	}
	if len(ack.Issues()) != 0 {
		t.Errorf("ACK has issues %v", ack.Issues())
	}
	if EnhancedMode(orig) {
		t.Error("EnhancedMode of a message without MSH-15/16")
	}
}

func TestNewAckEnhancedMode(t *testing.T) {
	orig := mustParse(t, "MSH|^~\\&|RIS|RADFAC|OSPREY|HOSP|20260301||ORU^R01^ORU_R01|MSG43|P|2.5.1|||AL|NE||UNICODE UTF-8\r")
	if !EnhancedMode(orig) {
		t.Fatal("EnhancedMode false with MSH-15 AL")
	}
	ack := NewAck(orig, CommitAccept, AckOptions{Now: ackNow, SendingApp: "OSPREY^X", SendingFacility: "RAD"})
	if got := ack.Get("MSH-3"); got != "OSPREY^X" || ack.Raw("MSH-3") != "OSPREY\\S\\X" {
		t.Errorf("MSH-3 %q raw %q: the override must be one escaped value", got, ack.Raw("MSH-3"))
	}
	checks := map[string]string{"MSH-4": "RAD", "MSH-5": "RIS", "MSH-6": "RADFAC", "MSH-9": "ACK^R01^ACK", "MSH-11": "P", "MSH-12": "2.5.1",
		"MSH-15": "", "MSH-18": "UNICODE UTF-8", "MSA-1": "CA", "MSA-2": "MSG43", "MSA-3": ""}
	for p, want := range checks {
		if got := ack.Get(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if id := ack.ControlID(); len(id) != 20 || id == NewAck(orig, CommitAccept, AckOptions{}).ControlID() {
		t.Errorf("generated control IDs %q are not 20 characters and unique", id)
	}
}

func TestNewAckErrors(t *testing.T) {
	orig := mustParse(t, "MSH|^~\\&|RIS|RADFAC|OSPREY|HOSP|20260301||ADT^A08|MSG44|P|2.5\r")
	ack := NewAck(orig, ApplicationError, AckOptions{ControlID: "A2", Now: ackNow, Text: "rejected | see ERR", Errors: []AckError{
		{Code: 101, Location: "PID-3", Text: "PID-3 must hold an MRN^with & delimiters"},
		{Code: 207, Severity: "W", Location: "OBX[2]-5[1].2", Text: "Zoë's\nreport"},
		{Code: 204},
	}})
	wantErr := []string{
		"ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 must hold an MRN\\S\\with \\T\\ delimiters",
		"ERR||OBX^2^5^1^2|207^Application internal error^HL70357|W||||Zoë's\\.br\\report",
		"ERR|||204^Unknown key identifier^HL70357|E",
	}
	segs := ack.Segments()
	if len(segs) != 5 {
		t.Fatalf("ACK has %d segments: %q", len(segs), ack.Encode())
	}
	if got := segs[1].Raw(); got != "MSA|AE|MSG44|rejected \\F\\ see ERR" {
		t.Errorf("MSA = %q", got)
	}
	for i, w := range wantErr {
		if got := segs[i+2].Raw(); got != w {
			t.Errorf("ERR %d\n got %q\nwant %q", i+1, got, w)
		}
	}
	a, err := ReadAck(ack)
	if err != nil {
		t.Fatal(err)
	}
	want := Ack{Code: ApplicationError, ControlID: "MSG44", Text: "rejected | see ERR", Errors: []AckError{
		{Code: 101, Severity: "E", Location: "PID-3", Text: "PID-3 must hold an MRN^with & delimiters"},
		{Code: 207, Severity: "W", Location: "OBX[2]-5[1].2", Text: "Zoë's\nreport"},
		{Code: 204, Severity: "E", Text: "Unknown key identifier"},
	}}
	if !equalAck(a, want) {
		t.Errorf("ReadAck = %+v\nwant %+v", a, want)
	}
}

func equalAck(a, b Ack) bool {
	if a.Code != b.Code || a.ControlID != b.ControlID || a.Text != b.Text || len(a.Errors) != len(b.Errors) {
		return false
	}
	for i := range a.Errors {
		if a.Errors[i] != b.Errors[i] {
			return false
		}
	}
	return true
}

func TestNewAckOldVersionFillsERR1(t *testing.T) {
	orig := mustParse(t, "MSH|^~\\&|A|B|C|D|20260301||ADT^A01|M1|P|2.3\r")
	ack := NewAck(orig, ApplicationReject, AckOptions{ControlID: "A3", Now: ackNow, Errors: []AckError{{Code: 203, Location: "MSH-12", Text: "v2.3 not supported"}}})
	if got := ack.Get("ERR-1"); got != "MSH^1^12^203&Unsupported version id&HL70357" {
		t.Errorf("ERR-1 = %q", got)
	}
	// A v2.3 receiver reads only ERR-1; so does ReadAck when ERR-3 is empty.
	old := mustParse(t, "MSH|^~\\&|C|D|A|B|20260301||ACK^A01|X|P|2.3\rMSA|AR|M1|bad\rERR|MSH^1^12^203&Unsupported version id&HL70357~PID^1^3^101&Required field missing\r")
	a, err := ReadAck(old)
	if err != nil {
		t.Fatal(err)
	}
	want := Ack{Code: ApplicationReject, ControlID: "M1", Text: "bad", Errors: []AckError{
		{Code: 203, Location: "MSH-12", Text: "Unsupported version id"},
		{Code: 101, Location: "PID-3", Text: "Required field missing"},
	}}
	if !equalAck(a, want) {
		t.Errorf("ReadAck = %+v\nwant %+v", a, want)
	}
}

func TestNewAckKeepsDelimitersAndCharset(t *testing.T) {
	orig := mustParse(t, "MSH#!@%*#SEND#FAC#RECV#FAC#20260301##ADT!A01#M7#P#2.5######8859/1\r")
	ack := NewAck(orig, ApplicationError, AckOptions{ControlID: "C!1", Now: ackNow, Text: "Müller! €"})
	want := "MSH#!@%*#RECV#FAC#SEND#FAC#20260301123045+0100##ACK!A01!ACK#C%S%1#P#2.5######8859/1\rMSA#AE#M7#M\xfcller%S% ?\r"
	if got := string(ack.Encode()); got != want {
		t.Errorf("ACK\n got %q\nwant %q", got, want)
	}
	if got := ack.Get("MSA-3"); got != "Müller! ?" {
		t.Errorf("MSA-3 = %q", got)
	}
}

func TestNewAckNil(t *testing.T) {
	ack := NewAck(nil, ApplicationReject, AckOptions{ControlID: "Z", Now: ackNow})
	want := "MSH|^~\\&|||||20260301123045+0100||ACK|Z|P|2.5\rMSA|AR\r"
	if got := string(ack.Encode()); got != want {
		t.Errorf("ACK %q, want %q", got, want)
	}
}

func TestAckBytes(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		values map[string]string
	}{
		{"parses", "MSH|^~\\&|A|B|C|D|20260301||ADT^A01|M1|P|2.4\rPID|1\r", map[string]string{"MSH-3": "C", "MSH-5": "A", "MSA-2": "M1", "MSH-12": "2.4", "MSH-9": "ACK^A01^ACK"}},
		{"garbage", "\x00\x01 not hl7 at all \xff", map[string]string{"MSH-3": "", "MSA-2": "", "MSH-12": "2.5", "MSH-11": "P"}},
		{"empty", "", map[string]string{"MSA-1": "AR", "MSA-2": ""}},
		{"bad MSH-2", "MSH|^~|A|B|C|D|20260301||ADT^A01|M2|P|2.3\rPID|1\r", map[string]string{"MSH-3": "C", "MSH-4": "D", "MSH-5": "A", "MSA-2": "M2", "MSH-12": "2.3"}},
		{"junk before MSH", "xx\x0bMSH|^~\\&|A|B|C|D|20260301||ORU^R01|M3|T|2.5.1\r", map[string]string{"MSH-5": "A", "MSA-2": "M3", "MSH-11": "T", "MSH-9": "ACK^R01^ACK"}},
		{"truncated MSH", "MSH|^~\\&|A|B|C", map[string]string{"MSH-3": "C", "MSH-5": "A", "MSA-2": ""}},
		{"bad field separator", "MSHA^~\\&A", map[string]string{"MSH-1": "|", "MSA-2": ""}},
		{"control bytes in salvaged fields", "MSH|^^^^|A\x01B|||||||M\x1c4|P|2.5\r", map[string]string{"MSH-5": "AB", "MSA-2": "M4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := AckBytes([]byte(tc.in), ApplicationReject, AckOptions{Now: ackNow, Errors: []AckError{{Code: 100, Text: "cannot parse"}}})
			m, err := ParseStrict(out)
			if err != nil {
				t.Fatalf("AckBytes output does not parse strictly: %v\n%q", err, out)
			}
			a, err := ReadAck(m)
			if err != nil || a.Code != ApplicationReject || len(a.Errors) != 1 || a.Errors[0].Code != 100 {
				t.Errorf("ReadAck = %+v, %v", a, err)
			}
			for p, want := range tc.values {
				if got := m.Get(p); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
		})
	}
}

func TestReadAckWithoutMSA(t *testing.T) {
	if _, err := ReadAck(mustParse(t, adt)); err != ErrNoMSA {
		t.Errorf("ReadAck error %v, want ErrNoMSA", err)
	}
	if _, err := ReadAck(nil); err != ErrNoMSA {
		t.Errorf("ReadAck(nil) error %v", err)
	}
}

func TestAckCode(t *testing.T) {
	for _, c := range []AckCode{"AA", "AE", "AR", "CA", "CE", "CR"} {
		if !c.Valid() {
			t.Errorf("%s not valid", c)
		}
		if c.Accepted() != (c == "AA" || c == "CA") {
			t.Errorf("%s Accepted = %v", c, c.Accepted())
		}
	}
	if AckCode("AX").Valid() || ErrorText(101) != "Required field missing" || ErrorText(999) != "" {
		t.Error("AckCode/ErrorText")
	}
}

func TestSplit(t *testing.T) {
	msh := func(id string) string { return "MSH|^~\\&|A|B|C|D|20260301||ADT^A01|" + id + "|P|2.5\r" }
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"one", msh("1") + "PID|1\r", []string{msh("1") + "PID|1\r"}, ""},
		{"two in a row", msh("1") + "PID|1\r" + msh("2"), []string{msh("1") + "PID|1\r", msh("2")}, ""},
		{"blank lines and LF", "\n\n" + strings.ReplaceAll(msh("1"), "\r", "\n") + "\n\r\n" + msh("2") + "\n", []string{strings.ReplaceAll(msh("1"), "\r", "\n"), msh("2") + "\n"}, ""},
		{"mllp framing", "\x0b" + msh("1") + "\x1c\r\x0b" + msh("2") + "PID|1\x1c\r", []string{msh("1"), msh("2") + "PID|1"}, ""},
		{"bom", "\xEF\xBB\xBF" + msh("1"), []string{msh("1")}, ""},
		{"batch", "FHS|^~\\&\rBHS|^~\\&\r" + msh("1") + msh("2") + "BTS|2\rBHS|^~\\&\r" + msh("3") + "BTS|1\rFTS|2\r", []string{msh("1"), msh("2"), msh("3")}, ""},
		{"missing trailers", "BHS|^~\\&\r" + msh("1"), []string{msh("1")}, ""},
		{"empty", "", nil, ""},
		{"nested BHS", "BHS|^~\\&\r" + msh("1") + "BHS|^~\\&\r", nil, "segment 3 (BHS) at byte"},
		{"nested FHS", "FHS|^~\\&\rFHS|^~\\&\r", nil, "nested FHS"},
		{"FHS in batch", "BHS|^~\\&\rFHS|^~\\&\r", nil, "FHS inside the batch"},
		{"BTS alone", msh("1") + "BTS|1\r", nil, "BTS without BHS"},
		{"FTS alone", "FTS|1\r", nil, "FTS without FHS"},
		{"FTS in batch", "FHS|^~\\&\rBHS|^~\\&\rFTS|1\r", nil, "FTS before BTS"},
		{"no MSH", "PID|1\r", nil, "segment 1 (PID) at byte 0: segment outside a message"},
		{"junk", "garbage here\r", nil, `"garbage here" outside a message`},
		{"segment after BTS", "BHS|^~\\&\r" + msh("1") + "BTS|1\rPID|1\r", nil, "outside a message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split([]byte(tc.in))
			if tc.wantErr != "" {
				checkParseErr(t, "Split", err, tc.wantErr, -1)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Split found %d messages %q, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("message %d = %q, want %q", i+1, got[i], tc.want[i])
				}
				if cap(got[i]) != len(got[i]) {
					t.Errorf("message %d can grow into the next one", i+1)
				}
			}
		})
	}
	parts, _ := Split([]byte(msh("1") + msh("2")))
	_ = append(parts[0], 'X')
	if !bytes.HasPrefix(parts[1], []byte("MSH")) {
		t.Error("appending to one message changed the next")
	}
}

// AckFor is the fast path of NewAck(...).Encode(); they must never differ.
func TestAckForEqualsNewAckEncode(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, raw := range []string{
		"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261201120000||ORM^O01|C1|P|2.3.1\rPID|1||P1\r",
		"MSH|^~\\&|A|B|C|D|20261201120000||ADT^A08^ADT_A01|C2|T|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1||Müller\r",
		"MSH#$%*@|A|B\r",
	} {
		m, err := Parse([]byte(raw))
		if err != nil {
			continue
		}
		for _, opts := range []AckOptions{
			{ControlID: "ACK1", Now: now},
			{ControlID: "ACK2", Now: now, Text: "bad | text", Errors: []AckError{{Code: 207, Location: "PID-3", Text: "no patient"}}},
		} {
			want := NewAck(m, ApplicationError, opts).Encode()
			if got := AckFor(m, ApplicationError, opts); !bytes.Equal(got, want) {
				t.Errorf("AckFor(%q)\n got %q\nwant %q", raw, got, want)
			}
		}
	}
}
