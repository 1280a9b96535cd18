package rules

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/osprey-health/osprey/engine/store"
)

// StudyView is the read-only face of an imaging study inside expressions, as `study`. It is
// made once per study message from its dicom.StudySummary. On a message that is not a
// study (HL7) every field is its zero value: "" , 0, false, an empty list.
type StudyView struct {
	StudyInstanceUID string
	AccessionNumber  string
	PatientID        string
	StudyDate        string // YYYYMMDD as DICOM holds it
	// Modality is the study's primary modality: that of the first series (in SeriesNumber
	// order) that holds images, skipping the modalities of non-image objects (SR, PR, KO,
	// DOC, REG, SEG, RT objects); the first series' modality when every series is such.
	Modality   string
	Modalities []string // every distinct series modality, sorted
	// BodyPart is BodyPartExamined in upper case: the primary series' when it has one,
	// else the first one any series names.
	BodyPart           string
	Description        string   // StudyDescription
	SeriesDescriptions []string // SeriesDescription of each series that has one, in series order
	// Contrast is true when any instance names a contrast agent (ContrastBolusAgent other
	// than a "none" word), or when the study or a series description says contrast was
	// given (see ContrastFromDescription).
	Contrast           bool
	NumberOfInstances  int
	NumberOfSeries     int
	PatientSex         string // M, F, O or ""
	PatientAge         int    // whole years from PatientAge ("045Y") or the birth date; 0 when unknown
	Institution        string // InstitutionName
	Station            string // StationName
	ReferringPhysician string // ReferringPhysicianName as DICOM holds it, "SMITH^JANE"
	Series             []SeriesView
}

// SeriesView is one series of a study, as an element of study.Series.
type SeriesView struct {
	SeriesInstanceUID string
	Number            int // SeriesNumber
	Modality          string
	Description       string
	BodyPart          string // upper case
	Contrast          bool   // the series names a contrast agent
	Instances         int
}

// OrderView is the order a study joined, inside expressions, as `order`. Found is false
// when there is none (no order with the study's accession, or the message is not a
// study); every other field is then "".
type OrderView struct {
	Found             bool
	Accession         string
	PlacerOrderNumber string
	FillerOrderNumber string
	PatientID         string
	Priority          string // S, A, R... upper case
	Location          string // PV1-3.1, the point of care
	PatientClass      string // PV1-2, HL7 table 0004: E (emergency), I, O...
	ProcedureCode     string
	ProcedureText     string
	OrderingProvider  string
	Reason            string
	Status            string // HL7 table 0038: CA (cancelled), DC, CM, IP, SC...
}

// NewOrderView makes the view of a stored order; Found is true.
func NewOrderView(o store.Order) *OrderView {
	return &OrderView{Found: true, Accession: o.Accession, PlacerOrderNumber: o.PlacerOrderNumber,
		FillerOrderNumber: o.FillerOrderNumber, PatientID: o.PatientID, Priority: o.Priority,
		Location: o.Location, PatientClass: o.PatientClass, ProcedureCode: o.ProcedureCode, ProcedureText: o.ProcedureText,
		OrderingProvider: o.OrderingProvider, Reason: o.Reason, Status: o.Status}
}

// NewStudyEnv builds the environment for a study message: `study` and `order` (nil for
// no order) are set, and `msg` is an empty message view, as for a message that is not HL7.
func NewStudyEnv(s *StudyView, o *OrderView, channel string, meta map[string]string) Env {
	env := NewEnv(nil, channel, meta)
	env.Study, env.Order = s, o
	return env
}

// Zero views shared by every environment that lacks one; expressions cannot change them.
var (
	noStudy = &StudyView{Modalities: []string{}, SeriesDescriptions: []string{}, Series: []SeriesView{}}
	noOrder = &OrderView{}
)

// fill gives env the zero views it lacks, so `study.Modality` on an HL7 message is "" and
// `order.Found` false rather than a nil dereference.
func (env *Env) fill() {
	if env.Study == nil {
		env.Study = noStudy
	}
	if env.Order == nil {
		env.Order = noOrder
	}
	if env.Msg == nil {
		env.Msg = &MsgView{}
	}
}

// NonImageModality reports whether a series of modality m holds no acquired images (a
// structured report, presentation state, key object selection, segmentation...).
func NonImageModality(m string) bool { return nonImage[m] }

// nonImage are modalities of series that hold no acquired images.
var nonImage = map[string]bool{"SR": true, "PR": true, "KO": true, "DOC": true, "REG": true, "SEG": true,
	"RTSTRUCT": true, "RTPLAN": true, "RTRECORD": true, "RTDOSE": true, "FID": true, "PLAN": true}

// NewStudyView makes the view of a study summary. now is the reference for an age computed
// from the birth date when the study has no StudyDate.
func NewStudyView(s dicom.StudySummary, now time.Time) *StudyView {
	v := &StudyView{
		StudyInstanceUID: s.StudyInstanceUID, AccessionNumber: strings.TrimSpace(s.AccessionNumber),
		PatientID: s.PatientID, StudyDate: s.StudyDate, Description: s.StudyDescription,
		Modalities: slices.Clone(s.Modalities), NumberOfInstances: s.NumberOfInstances, NumberOfSeries: len(s.Series),
		PatientSex: strings.ToUpper(strings.TrimSpace(s.PatientSex)), Institution: s.InstitutionName,
		Station: s.StationName, ReferringPhysician: s.ReferringPhysician,
		SeriesDescriptions: []string{}, Series: make([]SeriesView, 0, len(s.Series)),
	}
	if v.Modalities == nil {
		v.Modalities = []string{}
	}
	primary := -1
	for i, se := range s.Series {
		sv := SeriesView{SeriesInstanceUID: se.SeriesInstanceUID, Number: se.SeriesNumber,
			Modality: strings.ToUpper(strings.TrimSpace(se.Modality)), Description: se.SeriesDescription,
			BodyPart: strings.ToUpper(strings.TrimSpace(se.BodyPartExamined)),
			Contrast: isAgent(se.ContrastBolusAgent), Instances: len(se.Instances)}
		v.Series = append(v.Series, sv)
		if se.SeriesDescription != "" {
			v.SeriesDescriptions = append(v.SeriesDescriptions, se.SeriesDescription)
		}
		if primary < 0 && sv.Modality != "" && !nonImage[sv.Modality] {
			primary = i
		}
		if sv.Contrast || ContrastFromDescription(se.SeriesDescription) {
			v.Contrast = true
		}
	}
	if primary < 0 && len(v.Series) > 0 {
		primary = 0
	}
	if primary >= 0 {
		v.Modality, v.BodyPart = v.Series[primary].Modality, v.Series[primary].BodyPart
	}
	if v.Modality == "" && len(v.Modalities) > 0 {
		v.Modality = v.Modalities[0]
	}
	if v.BodyPart == "" {
		v.BodyPart = strings.ToUpper(strings.TrimSpace(s.BodyPartExamined))
	}
	if isAgent(s.ContrastBolusAgent) || ContrastFromDescription(s.StudyDescription) {
		v.Contrast = true
	}
	v.PatientAge = studyAge(s.PatientAge, s.PatientBirthDate, s.StudyDate, now)
	return v
}

// isAgent reports whether a ContrastBolusAgent value names an agent; some modalities
// write "NONE" or "N/A" rather than leaving it empty.
func isAgent(s string) bool {
	switch strings.ToUpper(strings.Trim(s, " .-/")) {
	case "", "NONE", "NO", "N/A", "NA", "NIL", "0":
		return false
	}
	return true
}

var (
	// Anything that is not a letter, digit, + or / separates words.
	descSep = regexp.MustCompile(`[^A-Z0-9+/]+`)
	// Contrast given: "W CONTRAST", "WITH IV CONTRAST", "W/ CONTRAST", "W/CON", "C+",
	// "POST CONTRAST", and the with-and-without forms "W AND WO", "W/WO", "WWO",
	// "WITH AND WITHOUT" (a study with both phases had contrast).
	withContrast = regexp.MustCompile(`(^| )((W|WITH)( IV)? (CONTRAST|CONT|CON)|W/ ?(IV )?(CONTRAST|CONT|CON)|` +
		`(W|WITH) (AND|\+) (WO|W/O|WITHOUT)|W/WO|WWO|W/W/O|POST ?CONTRAST|POSTCON)( |$)|(^| )C\+`)
)

// ContrastFromDescription is the description heuristic behind study.Contrast: true when a
// study or series description says contrast was given ("CT HEAD W CONTRAST", "WITH
// CONTRAST", "C+", "W/ CONTRAST", "POST CONTRAST", or both phases as "W AND WO", "W/WO"),
// false for the negative forms ("WO CONTRAST", "W/O", "WITHOUT CONTRAST", "NON
// CONTRAST", "C-") and for anything else. Matching is on whole words, case-insensitive.
func ContrastFromDescription(desc string) bool {
	if desc == "" {
		return false
	}
	norm := strings.ReplaceAll(strings.ToUpper(desc), "&", " AND ")
	norm = strings.TrimSpace(descSep.ReplaceAllString(norm, " "))
	return withContrast.MatchString(norm)
}

// studyAge is the patient's age in whole years: from PatientAge (nnnY; nnnM, nnnW and nnnD
// are under the year for any value below 12, 52 and 365), else from the birth date at the
// study date (or now). 0 when neither is known.
func studyAge(age, birth, studyDate string, now time.Time) int {
	age = strings.ToUpper(strings.TrimSpace(age))
	if len(age) >= 2 {
		n, err := strconv.Atoi(age[:len(age)-1])
		if err == nil && n >= 0 {
			switch age[len(age)-1] {
			case 'Y':
				return n
			case 'M':
				return n / 12
			case 'W':
				return n / 52
			case 'D':
				return n / 365
			}
		}
	}
	born, err := ParseHL7Time(birth) // a DICOM DA is an HL7 date as well
	if err != nil {
		return 0
	}
	at := now
	if d, err := ParseHL7Time(studyDate); err == nil {
		at = d
	}
	if a := Age(born, at); a > 0 {
		return a
	}
	return 0
}
