package hl7v2

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusCase says what a corpus file must do. Every file under testdata/corpus has one.
type corpusCase struct {
	// parseErr, when set, is a substring of the error Parse must return (as a *ParseError).
	parseErr string
	errSeg   int // the ParseError's segment, for parseErr or splitErr
	// strictErr is a substring of ParseStrict's error; "" means ParseStrict must succeed.
	strictErr string
	// roundTrip: Encode must reproduce the file byte for byte.
	roundTrip bool
	// split: the number of messages Split must find (0 = do not check); splitErr a
	// substring of its error.
	split    int
	splitErr string
	// values: Get of each path (on the first message after Split for batch files).
	values map[string]string
}

var corpus = map[string]corpusCase{
	"derived/edge-non-ascii-MSH18-8859-1.latin1.hl7": {roundTrip: true, values: map[string]string{
		"MSH-18": "8859/1", "PID-5.1": "MÜLLER", "PID-5.2": "JOSÉ", "PID-5.3": "Ñ", "PID-11.1": "Straße der Einheit 42",
		"PID-11.3": "München", "NK1-2": "GARCÍA^FRANÇOISE"}},
	"derived/edge-non-ascii-MSH18-UTF8.hl7": {roundTrip: true, values: map[string]string{
		"MSH-18": "UNICODE UTF-8", "PID-5.1": "MÜLLER", "PID-5.2": "JOSÉ", "PID-11.3": "München", "NK1-2.1": "GARCÍA"}},
	"elixir-hl7/ADT_A01-wikipedia-v2.5.hl7": {roundTrip: true, strictErr: "MSH-18 declares ASCII but the message holds non-ASCII bytes",
		values: map[string]string{"MSH-3": "MegaReg", "MSH-9": "ADT^A01^ADT_A01", "PID-3.1": "56782445", "PID-5.1": "KLEINSAMPLE",
			"PID-11[2].1": "NICKELL’S PICKLES", "OBX[2]-5": "79", "OBX-3.2": "Body Height", "DG1-3.2": "CHEST PAIN, UNSPECIFIED"}},
	"elixir-hl7/ADT_A03-NIST-syndromic.hl7": {roundTrip: true, values: map[string]string{
		"MSH-4.1": "LakeMichMC", "MSH-4.2": "9879874000", "PID-5[2].7": "S", "DG1[3]-3.2": "Diarrhea", "OBX[3]-5.9": "Diarrhea, stomach pain, dehydration"}},
	"elixir-hl7/ORU_R01-ELR-MSH2-5chars.hl7": {roundTrip: true, strictErr: "trailing field separators",
		values: map[string]string{"MSH-2": "^~\\&#", "MSH-9.3": "ORU_R01", "MSH-12": "2.5.1", "PID-3[2].1": "A09956149510",
			"PID-3[1].4.2": "1.11.111.1.1111111.4.3.2.2.1.321.111", "SFT-1.6.2": "1.3.6.1.4.1.24310", "MSH-21.1": "PHLabReport-NoAck"}},
	"elixir-hl7/VXU_V04-NIST.hl7": {roundTrip: true, values: map[string]string{
		"PID-5.1": "Curry", "RXA-5.2": "Influenza", "RXA[2]-5.2": "PCV 13", "OBX[4]-5": "20120814"}},
	"hl7-dotnetcore/Sample-ADT.hl7": {strictErr: "trailing field separators", values: map[string]string{
		"MSH-9.2": "O01", "PID-2.1": "0493575", "PID-3": "454721", "PID-5.1": "DOE", "NK1[2]-2.2": "JHON", "PV1-19": "2688684", "PID-19": ""}},
	"hl7-dotnetcore/Sample-ORM.hl7": {roundTrip: true, strictErr: "last segment has no terminator", values: map[string]string{
		"NTE-3":    "some text\nsome text after \\H\\new line\\N\\\nissue Efferent-Health#82",
		"NTE[2]-3": "some text\r\nsome text after new line\r\nissue Efferent-Health#81", "OBR-4.2": "BRAZIL NUT (F18) IGE - 86003"}},
	"lenaten-hl7/epic-oru-r01.hl7": {roundTrip: true, strictErr: "trailing field separators", values: map[string]string{
		"MSH-10": "103392-166096531111", "MSH-12": "2.3 PID", "OBR-4.2": "HEMOGRAM WITH"}},
	"lenaten-hl7/msg.hl7":  {strictErr: "trailing field separators", values: map[string]string{"PID-11[2].1": "520 51st Street", "OBR-4.2": "Urinalysis"}},
	"lenaten-hl7/msg2.hl7": {strictErr: "trailing field separators", values: map[string]string{"MSH-3": "CERNER", "OBX-5": "mg/dL", "OBX-6.2": "65"}},
	"lenaten-hl7/msg3.hl7": {strictErr: "trailing field separators", values: map[string]string{"PID[2]-3.4": "Priority Health", "OBX[4]-3.2": "TRIGLYCERIDES"}},
	"lenaten-hl7/msg4.hl7": {strictErr: "trailing field separators", values: map[string]string{"OBR-3[2].2": "ACC_NUM", "OBX-8": `""`, "OBX-9": "", "OBX-10": `""`, "OBX-17.4": `""`}},
	"python-hl7/ADT_A01-quoted-nulls.hl7": {roundTrip: true, strictErr: "trailing field separators", values: map[string]string{
		"PID-3[2].4": "MSH_EMPI", "PID-4[2].5": "DONOR ", "PV1-9": `""`, "IN1-7": `""`, "IN1[2]-4": "MEDICAID", "IN1[3]-4": "SELF-PAY"}},
	"python-hl7/ORU_R01-glucose.hl7": {roundTrip: true, values: map[string]string{
		"PID-5.2": "EVE", "OBX-5.2": "182", "OBX[2]-3.3": "POST 12H CFST:MCNC:PT:SER/PLAS:QN", "OBR-15.9": "LEVEL SEVEN HEALTHCARE, INC."}},
	"python-hl7/batch-BHS-1msg.hl7":            {parseErr: "batch header", errSeg: 1, split: 1, values: map[string]string{"MSH-10": "12334456778890", "PID-3.4": "100"}},
	"python-hl7/batch-BHS-2msg.hl7":            {parseErr: "batch header", errSeg: 1, split: 2, values: map[string]string{"MSH-18": "ASCII"}},
	"python-hl7/batch-noBHS-2msg.hl7":          {roundTrip: true, strictErr: "second MSH", split: 2, values: map[string]string{"MSH-10": "12334456778890"}},
	"python-hl7/file-FHS-2batches.hl7":         {parseErr: "batch header", errSeg: 1, split: 3, values: map[string]string{"MSH-9.3": "ADT_A01"}},
	"python-hl7/file-FHS-BHS-1msg.hl7":         {parseErr: "batch header", errSeg: 1, split: 1, values: map[string]string{"EVN-1": "A04"}},
	"python-hl7/invalid-batch-missing-MSH.hl7": {parseErr: "batch header", errSeg: 2, splitErr: "segment 2 (EVN) at byte 65: segment outside a message"},
	"python-hl7/invalid-file-nested-BHS.hl7":   {parseErr: "batch header", errSeg: 5, splitErr: "nested BHS"},
	"python-hl7/repetition-subcomponent.hl7": {roundTrip: true, values: map[string]string{
		"PID-1": "Field1", "PID-2.2": "Component2", "PID-3.2": "Sub-Component1&Sub-Component2", "PID-3.2.2": "Sub-Component2",
		"PID-4": "Repeat1~Repeat2", "PID-4[2]": "Repeat2", "PID-4[3]": ""}},
	"rethinkhealth/adt-a01-basic.hl7": {roundTrip: true, values: map[string]string{
		"MSH-1": "|", "MSH-2": "^~\\&", "MSH-3": "ADT_APP", "MSH-9": "ADT^A01^ADT_A01", "PID-3.1": "12345", "PID-5.2": "JOHN", "PV1-3.2": "101"}},
	"rethinkhealth/adt-a01-full.hl7": {roundTrip: true, values: map[string]string{
		"PID-3[2].1": "555-12-3456", "PID-3[2].5": "SS", "PID-13[2].1": "217-555-4321", "IN1-4.3": "SPRINGFIELD", "PV2-3.2": "Chest pain, unspecified"}},
	"rethinkhealth/dft-p03-charge.hl7":         {roundTrip: true, values: map[string]string{"FT1-7.1": "99213", "FT1-12": "150.00"}},
	"rethinkhealth/edge-crlf-line-endings.hl7": {roundTrip: true, values: map[string]string{"PID-5": "DOE^JOHN", "PV1-3.3": "A"}},
	"rethinkhealth/edge-custom-delimiters.hl7": {roundTrip: true, values: map[string]string{
		"MSH-1": "#", "MSH-2": "!@%*", "MSH-9.2": "A01", "PID-3.1": "12345", "PID-3.4": "MRN", "PID-5": "DOE!JOHN!A", "PID-5.3": "A"}},
	"rethinkhealth/edge-empty-segments.hl7": {roundTrip: true, strictErr: "trailing field separators", values: map[string]string{"PID-1": "1", "PID-2": "", "OBX-13": "F"}},
	"rethinkhealth/edge-escaped-delimiters.hl7": {roundTrip: true, values: map[string]string{
		"PID-5.1": "DOE&SMITH", "PID-5.2": "JOHN^JANE",
		"OBX-5": "Result contains pipe | and ampersand & and caret ^ and tilde ~ and backslash \\ chars"}},
	"rethinkhealth/edge-field-repetitions.hl7": {roundTrip: true, values: map[string]string{"PID-13[1]": "555-0001", "PID-13[12]": "555-0012", "PID-13[13]": ""}},
	"rethinkhealth/edge-non-ascii.hl7": {roundTrip: true, strictErr: "MSH-18 declares ASCII", values: map[string]string{
		"PID-5.1": "MÜLLER", "PID-11.1": "Straße der Einheit 42", "NK1-2.2": "FRANÇOISE"}},
	"rethinkhealth/edge-z-segments.hl7":               {roundTrip: true, values: map[string]string{"ZVN-3.2": "VALUE2", "ZPD-5": "EXTENDED_FIELD_4"}},
	"rethinkhealth/invalid-missing-msh.hl7":           {parseErr: "no MSH segment", errSeg: 1, splitErr: "segment 1 (PID) at byte 0: segment outside a message"},
	"rethinkhealth/invalid-segment-header-length.hl7": {roundTrip: true, strictErr: `segment 2 (PIDX) at byte 66: invalid segment name "PIDX"`, values: map[string]string{"PIDX-1": "", "PID-1": ""}},
	"rethinkhealth/invalid-trailing-empty-fields.hl7": {roundTrip: true, strictErr: "segment 2 (EVN) field 5 at byte 90: trailing field separators", values: map[string]string{"EVN-2": "20260301120000"}},
	"rethinkhealth/invalid-wrong-version.hl7":         {roundTrip: true, strictErr: `segment 1 (MSH) field 12 at byte 62: MSH-12 "1.0" is not an HL7 version 2 version`, values: map[string]string{"MSH-12": "1.0"}},
	"rethinkhealth/mdm-t02-document.hl7":              {roundTrip: true, values: map[string]string{"TXA-2.2": "History and Physical", "OBX-5": "Patient presents with complaints of persistent headaches for the past 2 weeks."}},
	"rethinkhealth/orm-o01-order.hl7":                 {roundTrip: true, values: map[string]string{"ORC-1": "NW", "OBR-4.2": "Comprehensive Metabolic Panel", "OBR-16.2": "REQUESTING"}},
	"rethinkhealth/oru-r01-lab.hl7":                   {roundTrip: true, values: map[string]string{"OBX[3]-3.2": "Hemoglobin", "OBX[5]-5": "250", "OBX[6]-5": "", "OBR-25": "HM", "OBR-26": "F"}},
	"rethinkhealth/siu-s12-schedule.hl7":              {roundTrip: true, values: map[string]string{"SCH-11.4": "20260325140000", "AIG-3.2": "CARDIOLOGIST"}},
}

func corpusFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*/*.hl7")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	sort.Strings(files)
	return files
}

func TestCorpus(t *testing.T) {
	for _, f := range corpusFiles(t) {
		name := strings.TrimPrefix(filepath.ToSlash(f), "testdata/corpus/")
		t.Run(name, func(t *testing.T) {
			tc, ok := corpus[name]
			if !ok {
				t.Fatalf("corpus file %s has no test case", name)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs := [][]byte{data}
			if tc.split > 0 || tc.splitErr != "" {
				parts, err := Split(data)
				if tc.splitErr != "" {
					checkParseErr(t, "Split", err, tc.splitErr, tc.errSeg)
				} else if err != nil {
					t.Fatalf("Split: %v", err)
				} else if len(parts) != tc.split {
					t.Fatalf("Split found %d messages, want %d", len(parts), tc.split)
				}
				msgs = parts
			}
			m, err := Parse(data)
			if tc.parseErr != "" {
				if tc.splitErr == "" {
					checkParseErr(t, "Parse", err, tc.parseErr, 1)
				} else if err == nil {
					t.Fatalf("Parse succeeded, want an error")
				}
				if _, err := ParseStrict(data); err == nil {
					t.Fatalf("ParseStrict succeeded where Parse fails")
				}
				if len(msgs) == 0 || tc.splitErr != "" {
					return
				}
				if m, err = Parse(msgs[0]); err != nil {
					t.Fatalf("Parse of the first message from Split: %v", err)
				}
				for i, b := range msgs {
					if _, err := ParseStrict(b); err != nil {
						t.Errorf("message %d from Split: ParseStrict: %v", i+1, err)
					}
				}
			} else if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.parseErr == "" {
				_, serr := ParseStrict(data)
				switch {
				case tc.strictErr == "" && serr != nil:
					t.Errorf("ParseStrict: %v (issues %v)", serr, m.Issues())
				case tc.strictErr != "":
					checkParseErr(t, "ParseStrict", serr, tc.strictErr, -1)
				}
				if tc.strictErr == "" && len(m.Issues()) > 0 {
					t.Errorf("Parse reported issues for a well-formed file: %v", m.Issues())
				}
				if got := m.Encode(); tc.roundTrip && !bytes.Equal(got, data) {
					t.Errorf("round trip differs:\n got %q\nwant %q", got, data)
				}
				checkReparse(t, m)
			}
			for path, want := range tc.values {
				if got := m.Get(path); got != want {
					t.Errorf("Get(%q) = %q, want %q", path, got, want)
				}
			}
		})
	}
}

// checkParseErr asserts err is a *ParseError containing want (and at segment seg if seg >= 0).
func checkParseErr(t *testing.T, what string, err error, want string, seg int) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %v is not a *ParseError", what, err)
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("%s: error does not match ErrMalformed", what)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not contain %q", what, err, want)
	}
	if seg >= 0 && pe.Segment != seg {
		t.Errorf("%s: error at segment %d, want %d (%v)", what, pe.Segment, seg, err)
	}
}

// checkReparse asserts that what Encode writes parses back to the same segments.
func checkReparse(t *testing.T, m *Message) {
	t.Helper()
	enc := m.Encode()
	m2, err := Parse(enc)
	if err != nil {
		t.Fatalf("re-parse of Encode: %v", err)
	}
	if !bytes.Equal(m2.Encode(), enc) {
		t.Errorf("Encode is not stable: %q then %q", enc, m2.Encode())
	}
	a, b := m.Segments(), m2.Segments()
	if len(a) != len(b) {
		t.Fatalf("re-parse has %d segments, want %d", len(b), len(a))
	}
	for i := range a {
		if a[i].Raw() != b[i].Raw() {
			t.Errorf("segment %d: %q after re-parse, want %q", i+1, b[i].Raw(), a[i].Raw())
		}
	}
}

// TestCorpusSources checks every corpus file against its row in SOURCES.md (sha256), so a
// file edited by accident fails here instead of silently testing something else.
func TestCorpusSources(t *testing.T) {
	f, err := os.Open("testdata/corpus/SOURCES.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) > 7 && strings.HasSuffix(strings.TrimSpace(cols[1]), ".hl7") {
			sums[strings.TrimSpace(cols[1])] = strings.TrimSpace(cols[6])
		}
	}
	for _, file := range corpusFiles(t) {
		name := strings.TrimPrefix(filepath.ToSlash(file), "testdata/corpus/")
		t.Run(name, func(t *testing.T) {
			want, ok := sums[name]
			if !ok {
				t.Fatalf("%s has no row in SOURCES.md", name)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != want {
				t.Errorf("sha256 %s, SOURCES.md says %s", got, want)
			}
		})
	}
}
