package hl7fhir_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	codec "github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/mappings/hl7fhir"
)

// corpusFile reads a file of the HL7 corpus in engine/hl7v2/testdata, skipping when it is absent
// unless CI requires it.
func corpusFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "engine", "hl7v2", "testdata", "corpus", rel))
	if err != nil {
		if os.Getenv("OSPREY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("corpus: %v", err)
		}
		t.Skipf("corpus not available: %v", err)
	}
	return b
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, b []byte) *hl7v2.Message {
	t.Helper()
	m, err := hl7v2.Parse(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

// Minimal typed views of what the mappings produce, for assertions.
type (
	coding  struct{ System, Code, Display string }
	concept struct {
		Coding []coding
		Text   string
	}
	ident struct {
		System, Value string
		Type          *concept
	}
	ref struct {
		Reference, Display string
		Identifier         *ident
	}
	resource struct {
		ResourceType string
		Identifier   []ident
		Name         []struct {
			Family string
			Given  []string
		}
		BirthDate, Gender string
		// Encounter
		Status  string
		Class   coding
		Subject ref
		Period  struct{ Start, End string }
		// ServiceRequest
		Intent, Priority   string
		Code               concept
		Category           []concept
		Requester          ref
		Encounter          ref
		ReasonCode         []concept
		OccurrenceDateTime string
		AuthoredOn         string
		Note               []struct{ Text string }
	}
	bundleEntry struct {
		FullURL  string
		Resource resource
		Raw      json.RawMessage `json:"-"`
		Request  struct{ Method, URL, IfNoneExist string }
	}
	bundle struct {
		ResourceType, Type string
		Entry              []bundleEntry
	}
)

// decode checks that out is a valid R4 transaction Bundle whose every resource is valid on
// its own too, and returns it.
func decode(t *testing.T, out []byte) bundle {
	t.Helper()
	if rt, err := codec.Validate(out); err != nil || rt != "Bundle" {
		t.Fatalf("output is not a valid Bundle (%q): %v", rt, err)
	}
	var raw struct {
		Entry []struct {
			Resource json.RawMessage
		}
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	for i, e := range raw.Entry {
		if _, err := codec.Validate(e.Resource); err != nil {
			t.Errorf("entry %d: %v", i+1, err)
		}
	}
	var b bundle
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	if b.Type != "transaction" {
		t.Errorf("bundle type %q", b.Type)
	}
	return b
}

func (b bundle) all(rt string) []bundleEntry {
	var out []bundleEntry
	for _, e := range b.Entry {
		if e.Resource.ResourceType == rt {
			out = append(out, e)
		}
	}
	return out
}

func (b bundle) one(t *testing.T, rt string) bundleEntry {
	t.Helper()
	es := b.all(rt)
	if len(es) != 1 {
		t.Fatalf("%d %s entries, want 1", len(es), rt)
	}
	return es[0]
}

func identifierOf(r resource, typ string) (ident, bool) {
	for _, id := range r.Identifier {
		if typ == "" || id.Type != nil && len(id.Type.Coding) > 0 && id.Type.Coding[0].Code == typ {
			return id, true
		}
	}
	return ident{}, false
}

func TestADT(t *testing.T) {
	tests := []struct {
		name      string
		msg       func(t *testing.T) []byte
		event     string // set into MSH-9.2 when not empty (A04, A08 from an A01 sample)
		mrn       ident
		family    string
		birthDate string
		gender    string
		class     string
		status    string
		visit     string // PV1-19, when the message has one
		start     string
	}{
		{"basic A01", corpus("rethinkhealth/adt-a01-basic.hl7"), "", ident{System: "urn:osprey:id:mrn", Value: "12345"}, "DOE", "1980-01-01", "male", "IMP", "in-progress", "", ""},
		{"full A01", corpus("rethinkhealth/adt-a01-full.hl7"), "", ident{System: "urn:osprey:id:mrn", Value: "98765"}, "SMITH", "1975-03-15", "female", "IMP", "in-progress", "", "2026-04-01T08:30:00Z"},
		{"wikipedia A01 v2.5", corpus("elixir-hl7/ADT_A01-wikipedia-v2.5.hl7"), "", ident{System: "urn:osprey:id:uareg", Value: "56782445"}, "KLEINSAMPLE", "1962-09-10", "male", "IMP", "in-progress", "", "2006-05-29T09:00:00Z"},
		{"A04 registration", corpus("rethinkhealth/adt-a01-basic.hl7"), "A04", ident{System: "urn:osprey:id:mrn", Value: "12345"}, "DOE", "1980-01-01", "male", "IMP", "arrived", "", ""},
		{"A08 update", corpus("rethinkhealth/adt-a01-full.hl7"), "A08", ident{System: "urn:osprey:id:mrn", Value: "98765"}, "SMITH", "1975-03-15", "female", "IMP", "in-progress", "", "2026-04-01T08:30:00Z"},
		// PV1-45 (discharge) is the HL7 null "": not a value, so the encounter is not finished.
		{"quoted nulls", corpus("python-hl7/ADT_A01-quoted-nulls.hl7"), "", ident{System: "urn:osprey:id:msh-mrn", Value: "2148790"}, "RUFUSS", "1952-11-29", "female", "IMP", "in-progress", "", "2014-02-10T22:53:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := parse(t, tc.msg(t))
			if tc.event != "" {
				if err := m.Set("MSH-9.2", tc.event); err != nil {
					t.Fatal(err)
				}
			}
			out, err := hl7fhir.ADT(m, hl7fhir.Profile{})
			if err != nil {
				t.Fatalf("ADT: %v", err)
			}
			b := decode(t, out)
			pe := b.one(t, "Patient")
			p := pe.Resource
			if tc.mrn.Value != "" {
				if id, _ := identifierOf(p, ""); id.System != tc.mrn.System || id.Value != tc.mrn.Value {
					t.Errorf("first identifier %s|%s, want %s|%s", id.System, id.Value, tc.mrn.System, tc.mrn.Value)
				}
				// ADT updates demographics: a conditional update on the MRN.
				want := "Patient?" + url.Values{"identifier": {tc.mrn.System + "|" + tc.mrn.Value}}.Encode()
				if pe.Request.Method != "PUT" || pe.Request.URL != want {
					t.Errorf("patient request %s %s, want PUT %s", pe.Request.Method, pe.Request.URL, want)
				}
			}
			if tc.family != "" && (len(p.Name) == 0 || p.Name[0].Family != tc.family) {
				t.Errorf("name %+v, want family %s", p.Name, tc.family)
			}
			if p.BirthDate != tc.birthDate || p.Gender != tc.gender {
				t.Errorf("birthDate %q gender %q", p.BirthDate, p.Gender)
			}
			if tc.class == "" {
				return
			}
			e := b.one(t, "Encounter").Resource
			if e.Class.Code != tc.class || e.Status != tc.status || e.Period.Start != tc.start {
				t.Errorf("encounter class %q status %q start %q", e.Class.Code, e.Status, e.Period.Start)
			}
			if e.Subject.Reference != pe.FullURL || !strings.HasPrefix(pe.FullURL, "urn:uuid:") {
				t.Errorf("encounter subject %q, patient fullUrl %q", e.Subject.Reference, pe.FullURL)
			}
		})
	}
}

func corpus(rel string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return corpusFile(t, rel) }
}

func local(name string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte { return testdata(t, name) }
}

func TestADTFullDetails(t *testing.T) {
	m := parse(t, corpusFile(t, "rethinkhealth/adt-a01-full.hl7"))
	b := decode(t, must(t)(hl7fhir.ADT(m, hl7fhir.Profile{Systems: map[string]string{"MRN": "urn:oid:2.16.840.1.113883.19.5"}})))
	p := b.one(t, "Patient").Resource
	if len(p.Identifier) != 2 || p.Identifier[0].System != "urn:oid:2.16.840.1.113883.19.5" || p.Identifier[0].Type.Coding[0].Code != "MR" || p.Identifier[1].Type.Coding[0].Code != "SS" {
		t.Errorf("identifiers %+v: want the profile's MRN system and both PID-3 repetitions with their types", p.Identifier)
	}
	if got := p.Name[0].Given; !slices.Equal(got, []string{"ALICE", "M"}) {
		t.Errorf("given %v", got)
	}
	var raw struct {
		Entry []struct{ Resource json.RawMessage }
	}
	out := must(t)(hl7fhir.ADT(m, hl7fhir.Profile{}))
	if err := json.Unmarshal(out, &raw); err != nil || len(raw.Entry) != 2 {
		t.Fatalf("entries: %v", err)
	}
	enc := string(raw.Entry[1].Resource)
	for _, want := range []string{"ATTENDING", "REFERRING", "Chest pain, unspecified"} {
		if !strings.Contains(enc, want) {
			t.Errorf("encounter lacks %q: %s", want, enc)
		}
	}
}

func must(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name       string
		msg        func(t *testing.T) []byte
		placer     string
		filler     string
		accession  string
		code       coding
		priority   string
		requester  string
		reasons    []string
		imaging    bool
		encounter  bool
		occurrence string
	}{
		{
			name: "rethinkhealth ORM", msg: corpus("rethinkhealth/orm-o01-order.hl7"),
			placer: "ORD20001", code: coding{System: "http://www.ama-assn.org/go/cpt", Code: "80053", Display: "Comprehensive Metabolic Panel"},
			requester: "DOC A REQUESTING MD",
		},
		{
			name: "dotnetcore ORM", msg: corpus("hl7-dotnetcore/Sample-ORM.hl7"),
			placer: "11777-60", code: coding{System: "urn:osprey:code:allinacodes", Code: "4241", Display: "BRAZIL NUT (F18) IGE - 86003"},
			requester: "Michael Smith (M)", occurrence: "2017-03-31",
		},
		{
			name: "CT head ORM", msg: local("orm-o01-ct-head.hl7"),
			placer: "PLC7781", accession: "ACC20261201001",
			code:     coding{System: "urn:osprey:code:l", Code: "CTHEADWO", Display: "CT head without contrast"},
			priority: "stat", requester: "DR GREGORY HOUSE", reasons: []string{"R51.9", "I61.9"}, imaging: true, encounter: true,
			occurrence: "2026-12-01T22:15:00+01:00",
		},
		{
			name: "MR brain OMI", msg: local("omi-o23-mr-brain.hl7"),
			placer: "PLC7790", filler: "FIL5521", accession: "ACC20261202007",
			code:     coding{System: "urn:osprey:code:l", Code: "MRHEAD", Display: "MR brain with contrast"},
			priority: "asap", requester: "DR LISA CUDDY", imaging: true, encounter: true,
			occurrence: "2026-12-02T08:00:00+01:00",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := hl7fhir.Order(parse(t, tc.msg(t)), hl7fhir.Profile{})
			if err != nil {
				t.Fatalf("Order: %v", err)
			}
			b := decode(t, out)
			pe := b.one(t, "Patient")
			if pe.Request.Method != "POST" || pe.Request.IfNoneExist == "" {
				t.Errorf("patient request %+v: an order must create the patient only if absent", pe.Request)
			}
			sre := b.one(t, "ServiceRequest")
			sr := sre.Resource
			if sr.Intent != "order" || sr.Status != "active" || sr.Subject.Reference != pe.FullURL {
				t.Errorf("intent %q status %q subject %q", sr.Intent, sr.Status, sr.Subject.Reference)
			}
			for _, c := range []struct{ typ, want string }{{"PLAC", tc.placer}, {"FILL", tc.filler}, {"ACSN", tc.accession}} {
				id, ok := identifierOf(sr, c.typ)
				if c.want == "" {
					if ok {
						t.Errorf("unexpected %s identifier %+v", c.typ, id)
					}
					continue
				}
				if id.Value != c.want {
					t.Errorf("%s identifier %q, want %q", c.typ, id.Value, c.want)
				}
			}
			if placer, _ := identifierOf(sr, "PLAC"); sre.Request.Method != "PUT" || !strings.Contains(sre.Request.URL, url.QueryEscape(placer.System+"|"+tc.placer)) {
				t.Errorf("service request %s %s: want a conditional update on the placer number", sre.Request.Method, sre.Request.URL)
			}
			if len(sr.Code.Coding) == 0 || sr.Code.Coding[0] != tc.code {
				t.Errorf("code %+v, want %+v", sr.Code.Coding, tc.code)
			}
			if sr.Priority != tc.priority {
				t.Errorf("priority %q, want %q", sr.Priority, tc.priority)
			}
			if sr.Requester.Display != tc.requester {
				t.Errorf("requester %q, want %q", sr.Requester.Display, tc.requester)
			}
			var reasons []string
			for _, rc := range sr.ReasonCode {
				reasons = append(reasons, rc.Coding[0].Code)
			}
			if !slices.Equal(reasons, tc.reasons) {
				t.Errorf("reasons %v, want %v", reasons, tc.reasons)
			}
			if got := len(sr.Category) > 0 && sr.Category[0].Coding[0].Code == "363679005"; got != tc.imaging {
				t.Errorf("imaging category = %v, want %v", got, tc.imaging)
			}
			if encs := b.all("Encounter"); tc.encounter != (len(encs) == 1) || tc.encounter && sr.Encounter.Reference != encs[0].FullURL {
				t.Errorf("%d encounters, service request encounter %q", len(encs), sr.Encounter.Reference)
			}
			if sr.OccurrenceDateTime != tc.occurrence {
				t.Errorf("occurrence %q, want %q", sr.OccurrenceDateTime, tc.occurrence)
			}
		})
	}
}

func TestOrderDetails(t *testing.T) {
	m := parse(t, testdata(t, "orm-o01-ct-head.hl7"))
	b := decode(t, must(t)(hl7fhir.Order(m, hl7fhir.Profile{Systems: map[string]string{"L": "https://genhosp.example/codes/rad", "RIS": "https://genhosp.example/ris/placer"}})))
	sr := b.one(t, "ServiceRequest").Resource
	if sr.Code.Coding[0].System != "https://genhosp.example/codes/rad" || len(sr.Code.Coding) != 2 || sr.Code.Coding[1].System != "http://loinc.org" || sr.Code.Coding[1].Code != "30799-1" {
		t.Errorf("code %+v: want the local code in the profile's system and the LOINC alternate", sr.Code)
	}
	if id, _ := identifierOf(sr, "PLAC"); id.System != "https://genhosp.example/ris/placer" {
		t.Errorf("placer system %q, want the profile's for namespace RIS", id.System)
	}
	if sr.AuthoredOn != "2026-12-01T22:14:00+01:00" {
		t.Errorf("authoredOn %q", sr.AuthoredOn)
	}
	var notes []string
	for _, n := range sr.Note {
		notes = append(notes, n.Text)
	}
	if !slices.Contains(notes, "Patient on anticoagulants") || !slices.Contains(notes, "Relevant clinical information: Sudden severe headache, GCS 13") {
		t.Errorf("notes %q", notes)
	}
	e := b.one(t, "Encounter")
	if e.Resource.Class.Code != "EMER" || e.Request.IfNoneExist == "" {
		t.Errorf("encounter class %q request %+v", e.Resource.Class.Code, e.Request)
	}
}

func TestOrderCancel(t *testing.T) {
	m := parse(t, testdata(t, "orm-o01-ct-head.hl7"))
	if err := m.Set("ORC-1", "CA"); err != nil {
		t.Fatal(err)
	}
	sr := decode(t, must(t)(hl7fhir.Order(m, hl7fhir.Profile{}))).one(t, "ServiceRequest").Resource
	if sr.Status != "revoked" {
		t.Errorf("status %q after ORC-1 CA, want revoked", sr.Status)
	}
}

func TestMappingIsDeterministic(t *testing.T) {
	for _, name := range []string{"orm-o01-ct-head.hl7", "omi-o23-mr-brain.hl7"} {
		t.Run(name, func(t *testing.T) {
			raw := testdata(t, name)
			a := must(t)(hl7fhir.Map(parse(t, raw), hl7fhir.Profile{}))
			b := must(t)(hl7fhir.Map(parse(t, raw), hl7fhir.Profile{}))
			if string(a) != string(b) {
				t.Error("the same message mapped to different bytes")
			}
		})
	}
}

func TestUnsupportedAndUnusable(t *testing.T) {
	tests := []struct {
		name        string
		msg         func(t *testing.T) []byte
		fn          func(*hl7v2.Message, hl7fhir.Profile) ([]byte, error)
		unsupported bool
	}{
		{"ORU to Map", corpus("rethinkhealth/oru-r01-lab.hl7"), hl7fhir.Map, true},
		{"ORM to ADT", local("orm-o01-ct-head.hl7"), hl7fhir.ADT, true},
		{"ADT^O01 (odd event)", corpus("hl7-dotnetcore/Sample-ADT.hl7"), hl7fhir.ADT, true},
		{"ADT^A03", corpus("elixir-hl7/ADT_A03-NIST-syndromic.hl7"), hl7fhir.ADT, true},
		{"ADT to Order", corpus("rethinkhealth/adt-a01-basic.hl7"), hl7fhir.Order, true},
		{"no patient identifier", func(t *testing.T) []byte {
			return []byte("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5.1\rPID|1||||DOE^JOHN\rPV1|1|I\r")
		}, hl7fhir.ADT, false},
		{"order without ORC or OBR", func(t *testing.T) []byte {
			return []byte("MSH|^~\\&|A|B|C|D|20260101||ORM^O01|X2|P|2.5.1\rPID|1||123^^^MRN\r")
		}, hl7fhir.Order, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.fn(parse(t, tc.msg(t)), hl7fhir.Profile{})
			if err == nil {
				t.Fatal("mapped without error")
			}
			if got := errors.Is(err, hl7fhir.ErrUnsupported); got != tc.unsupported {
				t.Errorf("ErrUnsupported = %v, want %v (%v)", got, tc.unsupported, err)
			}
		})
	}
}

func TestOrderSeveralOBRs(t *testing.T) {
	base := "MSH|^~\\&|RIS|H|O|H|20260101||ORM^O01|C9|P|2.5.1\rPID|1||M1^^^H^MR||DOE^J\r" +
		"ORC|NW|P1^RIS\rOBR|1|P1^RIS||CTHEAD^CT head^L\r"
	t.Run("each OBR its own order", func(t *testing.T) {
		b := decode(t, must(t)(hl7fhir.Convert([]byte(base+"OBR|2|P2^RIS||CTCHEST^CT chest^L\r"), hl7fhir.Profile{})))
		srs := b.all("ServiceRequest")
		if len(srs) != 2 {
			t.Fatalf("%d service requests, want 2", len(srs))
		}
		for i, want := range []string{"P1", "P2"} {
			if id, _ := identifierOf(srs[i].Resource, "PLAC"); id.Value != want || srs[i].Resource.Code.Coding[0].Code == "" {
				t.Errorf("order %d: placer %q code %+v", i+1, id.Value, srs[i].Resource.Code)
			}
		}
	})
	t.Run("same placer twice is an error", func(t *testing.T) {
		if _, err := hl7fhir.Convert([]byte(base+"OBR|2|||CTCHEST^CT chest^L\r"), hl7fhir.Profile{}); err == nil {
			t.Error("mapped two orders with one placer number into one transaction")
		}
	})
}
