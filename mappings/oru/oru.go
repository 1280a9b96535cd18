package oru

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/osprey-health/osprey/engine/hl7v2"
	"github.com/osprey-health/osprey/mappings"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// ErrUnmappable is wrapped by the errors of an analysis Map cannot turn into an ORU: one
// that names no order (no accession number, no placer or filler number), or that lacks
// the id, revision or time the message identity derives from.
var ErrUnmappable = errors.New("oru: analysis cannot be mapped")

// MaxRevision is the highest revision whose control ID fits MSH-10 (20 characters).
const MaxRevision = 9999

// Codes of the presence value (OBX-5 of a finding): SNOMED CT qualifier values.
const (
	codePresent = "52101004^Present^SCT"
	codeAbsent  = "2667000^Absent^SCT"
)

// Map returns the ORU^R01 for a: segments separated (and ended) by CR, no MLLP framing.
// The message is a pure function of a and p; docs/mapping-oru.md lists its fields. An
// empty a.Status is taken as preliminary; an empty a.Priority writes no priority. The
// error wraps ErrUnmappable when a cannot be mapped, ErrProfile when p is invalid, and
// hl7v2.ErrCharset when a text does not fit the profile's character set.
func Map(a *mappings.Analysis, p Profile) ([]byte, error) {
	if a == nil {
		return nil, fmt.Errorf("oru: nil analysis: %w", ErrUnmappable)
	}
	p, err := p.resolve()
	if err != nil {
		return nil, err
	}
	if err := check(a); err != nil {
		return nil, err
	}
	m, err := hl7v2.New(hl7v2.DefaultDelimiters)
	if err != nil {
		return nil, fmt.Errorf("oru: %w", err)
	}
	b := &builder{m: m, p: &p, a: a, ts: a.CreatedAt.In(p.TimeZone).Format("20060102150405-0700"),
		ascii: strings.EqualFold(strings.TrimSpace(p.Charset), "ASCII")}
	b.msh()
	b.pid()
	b.pv1()
	b.orc()
	b.obr()
	b.notes()
	b.tq1()
	for i, f := range a.Findings {
		b.finding(i+1, f)
	}
	if b.err != nil {
		return nil, fmt.Errorf("oru: analysis %q revision %d: %w", a.ID, a.Revision, b.err)
	}
	out := m.Encode()
	// Set escapes everything, so this cannot fail unless a value escapes the character set
	// check (non-ASCII text in an "ASCII" message): refuse to send what does not parse.
	if _, err := hl7v2.ParseStrict(out); err != nil {
		return nil, fmt.Errorf("oru: analysis %q revision %d: the message does not parse back strictly (character set %q?): %w", a.ID, a.Revision, p.Charset, err)
	}
	return out, nil
}

// ControlID returns MSH-10 of the message for revision rev of the analysis with id: the
// first 15 characters of the base32 SHA-256 of id, "-", and the revision. It is at most 20
// characters (the length of MSH-10 in both 2.3 and 2.5.1), the same for every resend of one
// revision and different for each revision; the messages of one analysis share the prefix.
func ControlID(id string, rev int) string {
	sum := sha256.Sum256([]byte(id))
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ" // Crockford: no I, L, O, U
	var sb strings.Builder
	sb.Grow(20)
	var acc uint64
	bits := 0
	for i := 0; sb.Len() < 15; {
		if bits < 5 {
			acc = acc<<8 | uint64(sum[i])
			i++
			bits += 8
		}
		bits -= 5
		sb.WriteByte(alphabet[(acc>>bits)&31])
	}
	sb.WriteByte('-')
	sb.WriteString(strconv.Itoa(rev))
	return sb.String()
}

func check(a *mappings.Analysis) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("oru: analysis %q revision %d: %s: %w", a.ID, a.Revision, fmt.Sprintf(format, args...), ErrUnmappable)
	}
	switch {
	case a.ID == "":
		return bad("no id (MSH-10 derives from it)")
	case a.Revision < 1 || a.Revision > MaxRevision:
		return bad("revision %d out of range 1..%d", a.Revision, MaxRevision)
	case a.CreatedAt.IsZero():
		return bad("no created_at (message and observation times derive from it)")
	}
	switch a.Status {
	case "", mappings.StatusPreliminary, mappings.StatusCorrected, mappings.StatusWithdrawn:
	default:
		return bad("status %q: want %s, %s or %s", a.Status, mappings.StatusPreliminary, mappings.StatusCorrected, mappings.StatusWithdrawn)
	}
	if _, ok := priorities[a.Priority]; !ok && a.Priority != "" {
		return bad("priority %q: want %s, %s, %s or empty", a.Priority, protocol.PriorityStat, protocol.PriorityUrgent, protocol.PriorityRoutine)
	}
	placer, filler := orderNumbers(a)
	if a.Accession() == "" && placer == "" && filler == "" {
		return bad("no accession number and no placer or filler order number: the RIS could not match the result to an order")
	}
	for i, f := range a.Findings {
		if strings.TrimSpace(f.Code.Code) == "" {
			return bad("finding %d (%q): no code (OBX-3)", i+1, f.ID)
		}
		if _, ok := lateralities[f.Location.Laterality]; !ok && f.Location.Laterality != "" {
			return bad("finding %d (%q): laterality %q", i+1, f.ID, f.Location.Laterality)
		}
		if !finite(f.Confidence) {
			return bad("finding %d (%q): confidence %v", i+1, f.ID, f.Confidence)
		}
		for _, ms := range f.Measurements {
			if !finite(ms.Value) {
				return bad("finding %d (%q): measurement %q value %v", i+1, f.ID, ms.Name, ms.Value)
			}
		}
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// priorities maps the result rules' priorities to HL7 table 0485 (TQ1-9) codes, which are
// also the TQ component 6 and OBR-5 codes of earlier versions.
var priorities = map[string][2]string{
	protocol.PriorityStat:    {"S", "Stat"},
	protocol.PriorityUrgent:  {"A", "ASAP"},
	protocol.PriorityRoutine: {"R", "Routine"},
}

// lateralities are SNOMED CT qualifier values.
var lateralities = map[string][2]string{
	protocol.LateralityLeft:      {"7771000", "Left"},
	protocol.LateralityRight:     {"24028007", "Right"},
	protocol.LateralityBilateral: {"51440002", "Bilateral"},
}

func orderNumbers(a *mappings.Analysis) (placer, filler string) {
	if a.Order != nil {
		placer, filler = a.Order.PlacerOrderNumber, a.Order.FillerOrderNumber
	}
	return placer, filler
}

// builder writes the message field by field, keeping the first error so the mapping reads
// as a list of fields.
type builder struct {
	m   *hl7v2.Message
	p   *Profile
	a   *mappings.Analysis
	ts  string
	err error
	// ascii is set for a message declared ASCII, which the codec does not police.
	ascii bool
	nte   int // NTE segments written
	obx   int // OBX segments written
}

func (b *builder) set(path, value string) {
	if b.err != nil || value == "" {
		return
	}
	value = clean(value)
	if b.ascii && !isASCII(value) {
		// The codec writes UTF-8 bytes into an ASCII message as they are; the receiver would
		// misread them.
		b.err = fmt.Errorf("set %s: %w: %q is not ASCII", path, hl7v2.ErrCharset, value)
		return
	}
	if err := b.m.Set(path, value); err != nil {
		b.err = err
	}
}

// setParts writes value split at "^" into the components of path, for the values Osprey
// keeps with HL7 component structure (names "DOE^JANE", providers "1234^SMITH^JANE").
func (b *builder) setParts(path, value string) {
	for i, part := range strings.Split(value, "^") {
		b.set(fmt.Sprintf("%s.%d", path, i+1), part)
	}
}

// setCoded writes a coded element: code^text^system.
func (b *builder) setCoded(path, code, text, system string) {
	b.set(path+".1", code)
	b.set(path+".2", text)
	b.set(path+".3", system)
}

// clean replaces invalid UTF-8 (which JSON decoding never yields, but a Go caller might
// pass) so the message stays valid; Set escapes everything else.
func clean(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func (b *builder) msh() {
	p := b.p
	b.set("MSH-3.1", p.SendingApplication)
	b.set("MSH-4.1", p.SendingFacility)
	b.set("MSH-5.1", p.ReceivingApplication)
	b.set("MSH-6.1", p.ReceivingFacility)
	b.set("MSH-7", b.ts)
	b.set("MSH-9.1", "ORU")
	b.set("MSH-9.2", "R01")
	if p.Version != Version23 { // the message structure component arrived in 2.3.1
		b.set("MSH-9.3", "ORU_R01")
	}
	b.set("MSH-10", ControlID(b.a.ID, b.a.Revision))
	b.set("MSH-11", p.ProcessingID)
	b.set("MSH-12", p.Version)
	b.set("MSH-18", p.Charset)
}

func (b *builder) pid() {
	a := b.a
	o := a.Order
	if o == nil {
		o = &mappings.Order{}
	}
	b.set("PID-1", "1")
	if mrn := a.PatientID(); mrn != "" {
		b.set("PID-3.1", mrn)
		b.set("PID-3.4", first(o.PatientIDAuthority, b.p.PatientIDAuthority))
		b.set("PID-3.5", "MR")
	}
	if o.PatientName != "" {
		b.setParts("PID-5", o.PatientName)
	} else if n := a.Study.PatientName; n != "" {
		b.setParts("PID-5", dicomName(n))
	}
	b.set("PID-7", first(o.PatientBirthDate, a.Study.PatientBirthDate))
	b.set("PID-8", sex(first(o.PatientSex, a.Study.PatientSex)))
}

// dicomName turns a DICOM person name (family^given^middle^prefix^suffix, with optional
// "=" ideographic and phonetic groups) into HL7 XPN order (family^given^middle^suffix^prefix).
func dicomName(pn string) string {
	alpha, _, _ := strings.Cut(pn, "=")
	c := strings.Split(alpha, "^")
	for len(c) < 5 {
		c = append(c, "")
	}
	c[3], c[4] = c[4], c[3]
	return strings.TrimRight(strings.Join(c[:5], "^"), "^")
}

// sex maps DICOM (M, F, O) and HL7 table 0001 values to table 0001; anything else is "U".
func sex(s string) string {
	switch s {
	case "":
		return ""
	case "M", "F", "O", "U", "A", "N":
		return s
	}
	return "U"
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (b *builder) pv1() {
	b.set("PV1-1", "1")
	class := b.p.PatientClass
	if o := b.a.Order; o != nil {
		class = first(o.PatientClass, class)
		b.set("PV1-3.1", o.Location)
	}
	b.set("PV1-2", class)
}

// fillerNumber is ORC-3/OBR-3: the RIS's filler order number, else the accession number,
// which most RIS use as theirs.
func (b *builder) fillerNumber() string {
	_, filler := orderNumbers(b.a)
	return first(filler, b.a.Accession())
}

func (b *builder) orc() {
	placer, _ := orderNumbers(b.a)
	b.set("ORC-1", "RE")
	b.set("ORC-2.1", placer)
	b.set("ORC-3.1", b.fillerNumber())
	b.set("ORC-9", b.ts)
	if o := b.a.Order; o != nil && o.OrderingProvider != "" {
		b.setParts("ORC-12", o.OrderingProvider)
	}
}

func (b *builder) obr() {
	a, p := b.a, b.p
	o := a.Order
	if o == nil {
		o = &mappings.Order{}
	}
	placer, _ := orderNumbers(a)
	b.set("OBR-1", "1")
	b.set("OBR-2.1", placer)
	b.set("OBR-3.1", b.fillerNumber())
	if o.ProcedureCode != "" {
		b.setCoded("OBR-4", o.ProcedureCode, first(o.ProcedureText, a.Study.StudyDescription), p.ProcedureCodingSystem)
	} else {
		b.set("OBR-4.2", first(o.ProcedureText, a.Study.StudyDescription))
	}
	if pr, ok := priorities[a.Priority]; ok && p.Priority == PriorityOBR5 {
		b.set("OBR-5", pr[0])
	}
	b.set("OBR-7", b.ts)
	if o.OrderingProvider != "" {
		b.setParts("OBR-16", o.OrderingProvider)
	}
	b.set(p.AccessionField, a.Accession())
	b.set("OBR-22", b.ts)
	b.set("OBR-25", resultStatus(a.Status))
	if pr, ok := priorities[a.Priority]; ok && p.Priority == PriorityOBR27 {
		b.set("OBR-27.6", pr[0])
	}
}

// resultStatus is OBR-25 (HL7 table 0123): a withdrawal is a correction of the order's
// result whose observations are marked W.
func resultStatus(status string) string {
	if status == mappings.StatusCorrected || status == mappings.StatusWithdrawn {
		return "C"
	}
	return "P"
}

// observationStatus is OBX-11 (HL7 table 0085).
func observationStatus(status string) string {
	switch status {
	case mappings.StatusCorrected:
		return "C"
	case mappings.StatusWithdrawn:
		return "W"
	}
	return "P"
}

func (b *builder) tq1() {
	pr, ok := priorities[b.a.Priority]
	if !ok || b.p.Priority != PriorityTQ1 {
		return
	}
	b.set("TQ1-1", "1")
	b.setCoded("TQ1-9", pr[0], pr[1], "HL70485")
}

func (b *builder) note(text string) {
	if strings.TrimSpace(text) == "" {
		return
	}
	b.nte++
	seg := fmt.Sprintf("NTE[%d]", b.nte)
	b.set(seg+"-1", strconv.Itoa(b.nte))
	b.set(seg+"-2", "O") // table 0105: other system is the source of the comment
	b.set(seg+"-3", text)
}

// notes writes the NTEs of the OBR: the disclaimer (always), the models, the summary and
// the matched rules.
func (b *builder) notes() {
	a := b.a
	text := b.p.Disclaimer
	switch a.Status {
	case mappings.StatusCorrected:
		text += " This message corrects the AI result sent earlier for this order."
	case mappings.StatusWithdrawn:
		text += " The AI result sent earlier for this order is withdrawn and must not be used."
	}
	b.note(text)
	if models := modelList(a); len(models) > 0 {
		b.note("AI model: " + strings.Join(models, "; "))
	}
	b.note(strings.TrimSpace(a.Summary))
	if len(a.Rules) > 0 {
		b.note("Result rules matched: " + strings.Join(a.Rules, ", "))
	}
}

// modelList names each distinct model of the completed results, then of the findings, in
// order: "name version (manufacturer)".
func modelList(a *mappings.Analysis) []string {
	var out []string
	seen := map[string]bool{}
	add := func(m protocol.Model) {
		s := strings.TrimSpace(strings.Join([]string{m.Name, m.Version}, " "))
		if s == "" {
			return
		}
		if m.Manufacturer != "" {
			s += " (" + m.Manufacturer + ")"
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, r := range a.Results {
		if r.Status == protocol.StatusCompleted {
			add(r.Model)
		}
	}
	for _, f := range a.Findings {
		add(f.Model)
	}
	return out
}

// observation starts the next OBX of finding group k and returns its segment path prefix.
func (b *builder) observation(k int, valueType string, f mappings.Finding) string {
	b.obx++
	seg := fmt.Sprintf("OBX[%d]", b.obx)
	b.set(seg+"-1", strconv.Itoa(b.obx))
	b.set(seg+"-2", valueType)
	b.set(seg+"-4", strconv.Itoa(k))
	b.set(seg+"-11", observationStatus(b.a.Status))
	b.set(seg+"-14", b.ts)
	if b.p.Version != Version23 { // OBX-18 arrived in 2.5; 2.3 names the model in the NTE only
		b.set(seg+"-18.1", f.Model.Name)
		b.set(seg+"-18.2", f.Model.Version)
	}
	return seg
}

func (b *builder) coded() string {
	if b.p.Version == Version23 {
		return "CE" // CWE arrived in 2.5
	}
	return "CWE"
}

// finding writes the OBX group of finding k: the coded finding with its presence, the
// confidence, the location and laterality when known, and each measurement, all with
// OBX-4 = k.
func (b *builder) finding(k int, f mappings.Finding) {
	p := b.p
	seg := b.observation(k, b.coded(), f)
	b.setCoded(seg+"-3", f.Code.Code, f.Code.Display, p.system(f.Code.System))
	if f.Present {
		b.setParts(seg+"-5", codePresent)
	} else {
		b.setParts(seg+"-5", codeAbsent)
	}

	seg = b.observation(k, "NM", f)
	b.setCoded(seg+"-3", "CONFIDENCE", "AI confidence", p.LocalCodingSystem)
	b.set(seg+"-5", number(math.Round(f.Confidence*1000)/10))
	b.setParts(seg+"-6", "%^percent^UCUM")

	if loc := f.Location; loc.Code != nil || loc.Text != "" {
		seg = b.observation(k, b.coded(), f)
		b.setParts(seg+"-3", "363698007^Finding site^SCT")
		if loc.Code != nil {
			b.setCoded(seg+"-5", loc.Code.Code, first(loc.Code.Display, loc.Text), p.system(loc.Code.System))
		} else {
			b.set(seg+"-5.2", loc.Text)
		}
	}
	if lat, ok := lateralities[f.Location.Laterality]; ok {
		seg = b.observation(k, b.coded(), f)
		b.setParts(seg+"-3", "272741003^Laterality^SCT")
		b.setCoded(seg+"-5", lat[0], lat[1], "SCT")
	}
	for _, ms := range f.Measurements {
		seg = b.observation(k, "NM", f)
		if ms.Code != nil {
			b.setCoded(seg+"-3", ms.Code.Code, first(ms.Code.Display, ms.Name), p.system(ms.Code.System))
		} else {
			b.setCoded(seg+"-3", ms.Name, ms.Name, p.LocalCodingSystem)
		}
		b.set(seg+"-5", number(ms.Value))
		if ms.Unit != "" {
			b.setCoded(seg+"-6", ms.Unit, ms.Unit, "UCUM")
		}
	}
}

// number formats an NM value: plain decimal notation, as short as round-trips.
func number(v float64) string {
	if v == 0 {
		return "0" // not "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
