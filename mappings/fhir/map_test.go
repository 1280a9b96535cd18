package fhir

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	efhir "github.com/osprey-health/osprey/engine/fhir"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// bundle is the part of a transaction Bundle the tests read.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method      string `json:"method"`
			URL         string `json:"url"`
			IfNoneExist string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

func parseBundle(t *testing.T, data []byte) bundle {
	t.Helper()
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatalf("bundle JSON: %v", err)
	}
	if b.ResourceType != "Bundle" || b.Type != "transaction" {
		t.Fatalf("not a transaction Bundle: %s %s", b.ResourceType, b.Type)
	}
	return b
}

// generic is a resource as nested maps, for reading a path.
type generic map[string]any

func decode(t *testing.T, data []byte) generic {
	t.Helper()
	var g generic
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// get walks a dotted path of member names and array indexes ("code.coding.0.code").
func (g generic) get(path string) any {
	var cur any = map[string]any(g)
	for _, part := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[part]
		case []any:
			i := 0
			for _, r := range part {
				i = i*10 + int(r-'0')
			}
			if i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

func (g generic) str(path string) string {
	s, _ := g.get(path).(string)
	return s
}

// byType returns the resources of a bundle of one type, in order.
func byType(t *testing.T, b bundle, typ string) []generic {
	t.Helper()
	var out []generic
	for _, e := range b.Entry {
		g := decode(t, e.Resource)
		if g.str("resourceType") == typ {
			out = append(out, g)
		}
	}
	return out
}

// checkBundle asserts what every bundle must satisfy: valid R4 by google/fhir/go and by the
// JSON schema, as a whole and entry by entry; unique fullUrls; a conditional create or update
// for each entry; references that resolve within the bundle or are conditional or logical.
func checkBundle(t *testing.T, data []byte) bundle {
	t.Helper()
	if rt, err := efhir.Validate(data); err != nil || rt != "Bundle" {
		t.Fatalf("google/fhir/go rejects the bundle (%s): %v", rt, err)
	}
	schemaValid(t, "bundle", data)
	b := parseBundle(t, data)
	if len(b.Entry) == 0 {
		t.Fatal("empty bundle")
	}
	full := map[string]bool{}
	for _, e := range b.Entry {
		if !strings.HasPrefix(e.FullURL, "urn:uuid:") || full[e.FullURL] {
			t.Errorf("fullUrl %q is not a fresh urn:uuid", e.FullURL)
		}
		full[e.FullURL] = true
	}
	for i, e := range b.Entry {
		rt, err := efhir.Validate(e.Resource)
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		schemaValid(t, "entry "+rt, e.Resource)
		switch e.Request.Method {
		case "POST":
			if e.Request.URL != rt {
				t.Errorf("entry %d: POST to %q, want %q", i, e.Request.URL, rt)
			}
			if !strings.HasPrefix(e.Request.IfNoneExist, "identifier=") {
				t.Errorf("entry %d (%s): create without ifNoneExist on an identifier: %q", i, rt, e.Request.IfNoneExist)
			}
			assertIdentifierQuery(t, e.Resource, e.Request.IfNoneExist)
		case "PUT":
			q, ok := strings.CutPrefix(e.Request.URL, rt+"?")
			if !ok || !strings.HasPrefix(q, "identifier=") {
				t.Errorf("entry %d: PUT %q is not a conditional update by identifier", i, e.Request.URL)
			}
			assertIdentifierQuery(t, e.Resource, q)
			if e.Request.IfNoneExist != "" {
				t.Errorf("entry %d: ifNoneExist on an update", i)
			}
		default:
			t.Errorf("entry %d: method %q", i, e.Request.Method)
		}
		refs, err := efhir.References(e.Resource)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			switch {
			case full[r]:
			case strings.HasPrefix(r, "urn:uuid:"):
				t.Errorf("entry %d (%s): reference %s is not a fullUrl of the bundle", i, rt, r)
			case strings.Contains(r, "?identifier="):
			case rt == "Communication" && recipientRE.MatchString(r):
			default:
				t.Errorf("entry %d (%s): reference %q neither resolves in the bundle nor is conditional", i, rt, r)
			}
		}
	}
	return b
}

// assertIdentifierQuery checks that the conditional query names one of the resource's own
// identifiers, so the condition finds exactly this resource again.
func assertIdentifierQuery(t *testing.T, res []byte, q string) {
	t.Helper()
	g := decode(t, res)
	ids, _ := g.get("identifier").([]any)
	for _, id := range ids {
		m := id.(map[string]any)
		sys, _ := m["system"].(string)
		val, _ := m["value"].(string)
		if tokenQuery(sys, val) == q {
			return
		}
	}
	t.Errorf("%s: query %q names none of its identifiers %v", g.str("resourceType"), q, ids)
}

var viewer = "https://viewer.example/study/{StudyInstanceUID}?acc={AccessionNumber}"

func TestICHBundle(t *testing.T) {
	a := ichAnalysis()
	data, err := Map(a, Profile{ViewerURL: viewer, Recipients: []string{"PractitionerRole/ed-team", "Group/stroke"}, TimeZone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	b := checkBundle(t, data)

	var types []string
	for _, e := range b.Entry {
		types = append(types, decode(t, e.Resource).str("resourceType"))
	}
	if want := []string{"Device", "ImagingStudy", "Observation", "Observation", "DiagnosticReport", "Communication"}; !slices.Equal(types, want) {
		t.Fatalf("entries %v, want %v", types, want)
	}
	fullOf := func(typ string) string {
		for _, e := range b.Entry {
			if decode(t, e.Resource).str("resourceType") == typ {
				return e.FullURL
			}
		}
		return ""
	}

	dev := byType(t, b, "Device")[0]
	for path, want := range map[string]string{
		"identifier.0.system": "urn:dicom:uid",
		"identifier.0.value":  "urn:oid:1.2.826.0.1.3680043.8.498.99",
		"deviceName.0.name":   "ich-detect",
		"deviceName.0.type":   "model-name",
		"version.0.value":     "2.1.0",
		"manufacturer":        "Example AI",
	} {
		if got := dev.str(path); got != want {
			t.Errorf("Device.%s = %q, want %q", path, got, want)
		}
	}

	st := byType(t, b, "ImagingStudy")[0]
	for path, want := range map[string]string{
		"identifier.0.value":                "urn:oid:" + studyUID,
		"identifier.1.value":                "ACC-42",
		"identifier.1.type.coding.0.code":   "ACSN",
		"subject.reference":                 "Patient?identifier=urn:osprey:mrn|MRN123",
		"series.0.uid":                      seriesUID,
		"series.0.instance.0.uid":           instanceUID,
		"series.0.instance.0.sopClass.code": "urn:oid:" + ctImage,
		"started":                           "2026-12-01T22:15:30+01:00",
	} {
		if got := st.str(path); got != want {
			t.Errorf("ImagingStudy.%s = %q, want %q", path, got, want)
		}
	}

	obs := byType(t, b, "Observation")
	ich := obs[0]
	for path, want := range map[string]any{
		"status":                          "preliminary",
		"category.0.coding.0.code":        "imaging",
		"code.coding.0.system":            protocol.SystemSNOMED,
		"code.coding.0.code":              "1386000",
		"valueBoolean":                    true,
		"interpretation.0.coding.0.code":  "POS",
		"component.0.code.coding.0.code":  ConfidenceCode,
		"component.0.valueQuantity.value": 0.93,
		"component.1.code.text":           "Volume",
		"component.1.valueQuantity.value": 12.5,
		"component.1.valueQuantity.code":  "mL",
		"bodySite.coding.0.code":          "16630005",
		"bodySite.text":                   "left parietal lobe",
		"device.reference":                fullOf("Device"),
		"derivedFrom.0.reference":         fullOf("ImagingStudy"),
		"subject.identifier.value":        "MRN123",
		"identifier.0.value":              "msg-0001/ich/f1",
		"effectiveDateTime":               "2026-12-01T22:15:30+01:00",
		"issued":                          "2026-12-01T22:31:05Z",
	} {
		if got := ich.get(path); got != want {
			t.Errorf("Observation[ICH].%s = %v, want %v", path, got, want)
		}
	}
	if got := obs[1].get("valueBoolean"); got != false {
		t.Errorf("ruled-out finding valueBoolean = %v, want false", got)
	}
	if got := obs[1].str("interpretation.0.coding.0.code"); got != "NEG" {
		t.Errorf("ruled-out finding interpretation = %q", got)
	}

	dr := byType(t, b, "DiagnosticReport")[0]
	for path, want := range map[string]any{
		"status":                         "preliminary",
		"category.0.coding.0.system":     SystemDiagnosticServiceSection,
		"category.0.coding.0.code":       "RAD",
		"code.coding.0.system":           protocol.SystemLOINC,
		"code.coding.0.code":             ReportCode,
		"subject.reference":              "Patient?identifier=urn:osprey:mrn|MRN123",
		"imagingStudy.0.reference":       fullOf("ImagingStudy"),
		"result.0.reference":             b.Entry[2].FullURL,
		"result.1.reference":             b.Entry[3].FullURL,
		"conclusion":                     a.Summary,
		"conclusionCode.0.coding.0.code": "1386000",
		"identifier.0.system":            DefaultReportSystem,
		"identifier.0.value":             "msg-0001",
		"basedOn.0.identifier.value":     "PO-7",
	} {
		if got := dr.get(path); got != want {
			t.Errorf("DiagnosticReport.%s = %v, want %v", path, got, want)
		}
	}
	if n := len(dr.get("conclusionCode").([]any)); n != 1 {
		t.Errorf("conclusionCode has %d codes, want only the present finding's", n)
	}

	cm := byType(t, b, "Communication")[0]
	for path, want := range map[string]any{
		"status":                          "completed",
		"category.0.coding.0.system":      SystemCommunicationCategory,
		"category.0.coding.0.code":        "alert",
		"priority":                        "stat",
		"subject.reference":               "Patient?identifier=urn:osprey:mrn|MRN123",
		"about.0.reference":               fullOf("DiagnosticReport"),
		"about.1.reference":               fullOf("ImagingStudy"),
		"recipient.0.reference":           "PractitionerRole/ed-team",
		"recipient.1.reference":           "Group/stroke",
		"sender.reference":                fullOf("Device"),
		"sent":                            "2026-12-01T22:31:05Z",
		"payload.1.contentAttachment.url": "https://viewer.example/study/" + studyUID + "?acc=ACC-42",
	} {
		if got := cm.get(path); got != want {
			t.Errorf("Communication.%s = %v, want %v", path, got, want)
		}
	}
	if text := cm.str("payload.0.contentString"); !strings.Contains(text, "Intracranial hemorrhage") || !strings.Contains(text, "STAT") {
		t.Errorf("alert text %q does not say what and how urgent", text)
	}
}

func TestDeterministic(t *testing.T) {
	p := Profile{ViewerURL: viewer, Recipients: []string{"PractitionerRole/ed-team"}}
	first, err := Map(ichAnalysis(), p)
	if err != nil {
		t.Fatal(err)
	}
	// A redelivery is the analysis decoded again from its JSON.
	raw, err := json.Marshal(ichAnalysis())
	if err != nil {
		t.Fatal(err)
	}
	var again mappings.Analysis
	if err := json.Unmarshal(raw, &again); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		second, err := Map(&again, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != string(second) {
			t.Fatalf("a redelivery gave different bytes:\n%s\n%s", first, second)
		}
	}

	// Another revision gets other fullUrls but keeps the report's business identifier.
	rev2 := ichAnalysis()
	rev2.Revision, rev2.Status = 2, mappings.StatusCorrected
	other, err := Map(rev2, p)
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := parseBundle(t, first), parseBundle(t, other)
	for i := range b1.Entry {
		if b1.Entry[i].FullURL == b2.Entry[i].FullURL && decode(t, b1.Entry[i].Resource).str("resourceType") != "Device" {
			t.Errorf("entry %d keeps fullUrl %s across revisions", i, b1.Entry[i].FullURL)
		}
	}
	dr1, dr2 := byType(t, b1, "DiagnosticReport")[0], byType(t, b2, "DiagnosticReport")[0]
	if !reflect.DeepEqual(dr1.get("identifier"), dr2.get("identifier")) {
		t.Errorf("report identifier changed across revisions: %v vs %v", dr1.get("identifier"), dr2.get("identifier"))
	}
	// Different analyses never share a fullUrl.
	otherStudy := ichAnalysis()
	otherStudy.ID = "msg-0002"
	third, err := Map(otherStudy, p)
	if err != nil {
		t.Fatal(err)
	}
	if parseBundle(t, third).Entry[4].FullURL == b1.Entry[4].FullURL {
		t.Error("two analyses share the report's fullUrl")
	}
}

func TestStatuses(t *testing.T) {
	tests := []struct {
		status   string
		revision int
		report   string
		obs      string
		method   string
		alert    bool
	}{
		{mappings.StatusPreliminary, 1, "preliminary", "preliminary", "POST", true},
		{mappings.StatusCorrected, 2, "amended", "amended", "PUT", true},
		{mappings.StatusWithdrawn, 3, "entered-in-error", "entered-in-error", "PUT", false},
		{mappings.StatusPreliminary, 2, "preliminary", "preliminary", "PUT", true},
	}
	for _, tt := range tests {
		t.Run(tt.status+"-"+string(rune('0'+tt.revision)), func(t *testing.T) {
			a := ichAnalysis()
			a.Status, a.Revision = tt.status, tt.revision
			data, err := Map(a, Profile{})
			if err != nil {
				t.Fatal(err)
			}
			b := checkBundle(t, data)
			dr := byType(t, b, "DiagnosticReport")[0]
			if got := dr.str("status"); got != tt.report {
				t.Errorf("report status %q, want %q", got, tt.report)
			}
			if got := dr.str("identifier.0.value"); got != a.ID {
				t.Errorf("report identifier %q, want the analysis id %q", got, a.ID)
			}
			for _, o := range byType(t, b, "Observation") {
				if got := o.str("status"); got != tt.obs {
					t.Errorf("observation status %q, want %q", got, tt.obs)
				}
			}
			for _, e := range b.Entry {
				rt := decode(t, e.Resource).str("resourceType")
				want := "POST"
				if rt == "DiagnosticReport" || rt == "Observation" {
					want = tt.method
				}
				if e.Request.Method != want {
					t.Errorf("%s sent with %s, want %s", rt, e.Request.Method, want)
				}
			}
			if got := len(byType(t, b, "Communication")) > 0; got != tt.alert {
				t.Errorf("Communication made = %v, want %v", got, tt.alert)
			}
			if tt.status == mappings.StatusWithdrawn && dr.get("conclusionCode") != nil {
				t.Error("a withdrawn report still carries conclusion codes")
			}
		})
	}
}

func TestAlertPolicy(t *testing.T) {
	tests := []struct {
		name     string
		alert    string
		priority string
		positive bool
		want     string // Communication priority; "" = no Communication; "-" = one without priority
	}{
		{"priority stat", AlertPriority, protocol.PriorityStat, true, "stat"},
		{"priority urgent", AlertPriority, protocol.PriorityUrgent, true, "urgent"},
		{"priority routine", AlertPriority, protocol.PriorityRoutine, true, ""},
		{"priority none", AlertPriority, "", true, ""},
		{"default is priority", "", protocol.PriorityStat, false, "stat"},
		{"positive routine", AlertPositive, protocol.PriorityRoutine, true, "routine"},
		{"positive no priority", AlertPositive, "", true, "-"},
		{"positive but negative", AlertPositive, protocol.PriorityStat, false, ""},
		{"never", AlertNever, protocol.PriorityStat, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ichAnalysis()
			a.Priority = tt.priority
			if !tt.positive {
				for i := range a.Findings {
					a.Findings[i].Present = false
				}
			}
			data, err := Map(a, Profile{Alert: tt.alert})
			if err != nil {
				t.Fatal(err)
			}
			cms := byType(t, checkBundle(t, data), "Communication")
			switch {
			case tt.want == "" && len(cms) != 0:
				t.Fatalf("Communication made, want none")
			case tt.want == "":
			case len(cms) != 1:
				t.Fatalf("%d Communications, want 1", len(cms))
			case tt.want == "-" && cms[0].get("priority") != nil:
				t.Errorf("priority %v, want none", cms[0].get("priority"))
			case tt.want != "-" && cms[0].str("priority") != tt.want:
				t.Errorf("priority %q, want %q", cms[0].str("priority"), tt.want)
			}
			if len(cms) == 1 && cms[0].get("payload.1") != nil {
				t.Error("an attachment without a viewer_url")
			}
		})
	}
}

func TestViewerURL(t *testing.T) {
	a := ichAnalysis()
	a.Study.AccessionNumber = "A&B=1 /x"
	a.Order.Accession = a.Study.AccessionNumber
	data, err := Map(a, Profile{ViewerURL: "https://pacs.example/viewer?study={StudyInstanceUID}&acc={AccessionNumber}&id={AnalysisID}"})
	if err != nil {
		t.Fatal(err)
	}
	cm := byType(t, checkBundle(t, data), "Communication")[0]
	want := "https://pacs.example/viewer?study=" + studyUID + "&acc=A%26B%3D1%20%2Fx&id=msg-0001"
	if got := cm.str("payload.1.contentAttachment.url"); got != want {
		t.Errorf("viewer link %q, want %q", got, want)
	}
	if got := cm.str("payload.1.contentAttachment.contentType"); got != "text/html" {
		t.Errorf("attachment content type %q", got)
	}
}

func TestProfileErrors(t *testing.T) {
	tests := []struct {
		name string
		p    Profile
		want string
	}{
		{"alert", Profile{Alert: "loud"}, "alert must be"},
		{"mode", Profile{Mode: "batch"}, "mode must be"},
		{"imaging study", Profile{ImagingStudy: "maybe"}, "imaging_study must be"},
		{"recipient type", Profile{Recipients: []string{"Encounter/1"}}, "recipients[0]"},
		{"recipient shape", Profile{Recipients: []string{"ed team"}}, "recipients[0]"},
		{"placeholder", Profile{ViewerURL: "https://v.example/{StudyUID}"}, "unknown placeholder {StudyUID}"},
		{"brace", Profile{ViewerURL: "https://v.example/{StudyInstanceUID"}, "unbalanced brace"},
		{"relative", Profile{ViewerURL: "/study/{StudyInstanceUID}"}, "absolute http(s)"},
		{"scheme", Profile{ViewerURL: "ftp://v.example/{StudyInstanceUID}"}, "absolute http(s)"},
		{"time zone", Profile{TimeZone: "Mars/Olympus"}, "time_zone"},
		{"system", Profile{Identifiers: Identifiers{Patient: "not a uri"}}, "identifiers.patient"},
		{"single without recipients", Profile{Mode: ModeSingle}, "needs recipients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
			if _, err := Map(ichAnalysis(), tt.p); err == nil {
				t.Error("Map accepted the profile")
			}
		})
	}
	for name, p := range map[string]Profile{
		"zero":              {},
		"single never":      {Mode: ModeSingle, Alert: AlertNever},
		"single recipients": {Mode: ModeSingle, Recipients: []string{"CareTeam?identifier=urn:x|ed"}},
		"placeholders":      {ViewerURL: "http://v.example/{PatientID}/{AccessionNumber}/{StudyInstanceUID}/{AnalysisID}"},
	} {
		if _, err := New(p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	m, err := New(Profile{})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Profile(); got.Alert != AlertPriority || got.Mode != ModeBundle || got.ImagingStudy != StudyCreate || got.Identifiers.Patient != DefaultPatientSystem {
		t.Errorf("defaults not filled in: %+v", got)
	}
}

func TestAnalysisErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(a *mappings.Analysis)
		want   string
	}{
		{"no id", func(a *mappings.Analysis) { a.ID = "" }, "no id"},
		{"revision", func(a *mappings.Analysis) { a.Revision = 0 }, "revision 0"},
		{"status", func(a *mappings.Analysis) { a.Status = "final" }, `status "final"`},
		{"study", func(a *mappings.Analysis) { a.Study.StudyInstanceUID = "" }, "Study Instance UID"},
		{"mrn", func(a *mappings.Analysis) { a.Study.PatientID, a.Order = "", nil }, "no MRN"},
		{"time", func(a *mappings.Analysis) { a.CreatedAt = time.Time{} }, "created_at"},
		{"duplicate finding", func(a *mappings.Analysis) { a.Findings[1].ID = a.Findings[0].ID }, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ichAnalysis()
			tt.change(a)
			if _, err := Map(a, Profile{}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Map: %v, want an error containing %q", err, tt.want)
			}
			if _, err := MapResources(a, Profile{}); err == nil {
				t.Error("MapResources accepted it")
			}
		})
	}
	if _, err := Map(nil, Profile{}); err == nil {
		t.Error("Map(nil) accepted")
	}
}
