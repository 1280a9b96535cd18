package dicom

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	dcm "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// StudySummary is what Osprey knows about one imaging study once it is complete: the study,
// patient and series attributes that routing rules and mappings use, and where the pixels can
// be fetched. It is the Body (as JSON) of an engine message with content type
// engine.ContentStudy, produced by the DICOMweb sources from stored instances or from the
// DICOM JSON metadata of a study announced by an external PACS.
//
// Values are copied from the instances as DICOM holds them (dates YYYYMMDD, times HHMMSS.FFFFFF,
// person names with ^ separators); an attribute absent from every instance is empty.
type StudySummary struct {
	StudyInstanceUID   string `json:"study_instance_uid"`
	AccessionNumber    string `json:"accession_number"`
	StudyDate          string `json:"study_date,omitempty"`
	StudyTime          string `json:"study_time,omitempty"`
	StudyDescription   string `json:"study_description,omitempty"`
	PatientID          string `json:"patient_id,omitempty"`
	PatientName        string `json:"patient_name,omitempty"`
	PatientSex         string `json:"patient_sex,omitempty"`
	PatientAge         string `json:"patient_age,omitempty"`
	PatientBirthDate   string `json:"patient_birth_date,omitempty"`
	ReferringPhysician string `json:"referring_physician,omitempty"`
	InstitutionName    string `json:"institution_name,omitempty"`
	StationName        string `json:"station_name,omitempty"`
	// Modalities lists the distinct Modality values of the series, sorted (ModalitiesInStudy).
	Modalities []string `json:"modalities"`
	// BodyPartExamined is the study's body part: the first non-empty BodyPartExamined of its
	// series, in series order.
	BodyPartExamined string `json:"body_part_examined,omitempty"`
	// Contrast is true when any instance names a ContrastBolusAgent (0018,0010); the agent is
	// the first one named.
	Contrast           bool            `json:"contrast"`
	ContrastBolusAgent string          `json:"contrast_bolus_agent,omitempty"`
	NumberOfInstances  int             `json:"number_of_instances"`
	Series             []SeriesSummary `json:"series"`
	Retrieve           Retrieve        `json:"retrieve"`
	// Warnings are facts a rule or an analyst may care about that did not stop the summary,
	// such as WarningNoAccession.
	Warnings []string `json:"warnings,omitempty"`
}

// WarningNoAccession is the warning of a study whose instances carry no AccessionNumber. Such
// a study is still summarised and handed to the channel; the rules decide what to do with it.
const WarningNoAccession = "study has no AccessionNumber"

// SeriesSummary is one series of a [StudySummary], in SeriesNumber order.
type SeriesSummary struct {
	SeriesInstanceUID  string            `json:"series_instance_uid"`
	Modality           string            `json:"modality"`
	SeriesNumber       int               `json:"series_number,omitempty"`
	SeriesDescription  string            `json:"series_description,omitempty"`
	BodyPartExamined   string            `json:"body_part_examined,omitempty"`
	ContrastBolusAgent string            `json:"contrast_bolus_agent,omitempty"`
	Instances          []InstanceSummary `json:"instances"`
}

// InstanceSummary is one instance of a [SeriesSummary], in InstanceNumber order.
type InstanceSummary struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	SOPClassUID    string `json:"sop_class_uid"`
	InstanceNumber int    `json:"instance_number,omitempty"`
	// Frames is NumberOfFrames, 1 for a single-frame image and 0 for an instance without
	// pixel data (a structured report, say).
	Frames int `json:"frames"`
}

// Retrieve says where the study's instances can be fetched.
type Retrieve struct {
	// BaseURL is the DICOMweb service root (ending before /studies) that serves the study
	// over WADO-RS: Osprey's own endpoint for a study received by STOW-RS, the PACS's for a
	// study announced by it.
	BaseURL string `json:"base_url"`
	// Source says how the study reached Osprey: SourceSTOW, SourceNotify or SourcePoll.
	Source string `json:"source"`
}

// Values of [Retrieve.Source].
const (
	SourceSTOW   = "stow-rs"
	SourceNotify = "notify"
	SourcePoll   = "qido-poll"
)

// Errors returned by the summarising functions.
var (
	// ErrNoInstances reports a summary asked of no instances at all.
	ErrNoInstances = errors.New("dicom: study has no instances")
	// ErrMixedStudies reports instances of more than one StudyInstanceUID.
	ErrMixedStudies = errors.New("dicom: instances belong to different studies")
	// ErrMissingUID reports an instance without StudyInstanceUID, SeriesInstanceUID or
	// SOPInstanceUID.
	ErrMissingUID = errors.New("dicom: instance is missing a uid")
)

// attributes reads the first value of an element as a string, "" when absent. It hides the
// difference between a parsed Part 10 dataset and a DICOM JSON object.
type attributes interface {
	value(t tag.Tag) string
}

// SummarizeInstances builds the summary of one study from its instances (parsed Part 10
// datasets; pixel data need not have been read). Retrieve is left for the caller to fill.
func SummarizeInstances(instances []*dcm.Dataset) (StudySummary, error) {
	attrs := make([]attributes, len(instances))
	for i, ds := range instances {
		attrs[i] = datasetAttributes{ds}
	}
	return summarize(attrs)
}

// SummarizeMetadata builds the summary of one study from its WADO-RS metadata: a DICOM JSON
// array (PS3.18 F.2) with one object per instance, as GET {base}/studies/{uid}/metadata
// answers. Retrieve is left for the caller to fill.
func SummarizeMetadata(metadata []byte) (StudySummary, error) {
	objs, err := DecodeJSONArray(metadata)
	if err != nil {
		return StudySummary{}, err
	}
	attrs := make([]attributes, len(objs))
	for i, o := range objs {
		attrs[i] = o
	}
	return summarize(attrs)
}

// SummarizeJSON is [SummarizeMetadata] for instances already decoded.
func SummarizeJSON(instances []JSONDataset) (StudySummary, error) {
	attrs := make([]attributes, len(instances))
	for i, o := range instances {
		attrs[i] = o
	}
	return summarize(attrs)
}

func summarize(instances []attributes) (StudySummary, error) {
	if len(instances) == 0 {
		return StudySummary{}, ErrNoInstances
	}
	var s StudySummary
	// first keeps the first non-empty value seen across instances: a PACS may leave an
	// attribute out of some instances' metadata, and study-level values agree where present.
	first := func(dst *string, a attributes, t tag.Tag) {
		if *dst == "" {
			*dst = a.value(t)
		}
	}
	seriesByUID := map[string]*SeriesSummary{}
	seen := map[string]bool{}
	for i, a := range instances {
		study, series, sop := a.value(tag.StudyInstanceUID), a.value(tag.SeriesInstanceUID), a.value(tag.SOPInstanceUID)
		if study == "" || series == "" || sop == "" {
			return StudySummary{}, fmt.Errorf("dicom: summarise instance %d (%q): %w", i, sop, ErrMissingUID)
		}
		if s.StudyInstanceUID == "" {
			s.StudyInstanceUID = study
		} else if study != s.StudyInstanceUID {
			return StudySummary{}, fmt.Errorf("dicom: summarise %s: instance %s is in study %s: %w", s.StudyInstanceUID, sop, study, ErrMixedStudies)
		}
		if seen[sop] {
			continue // the same instance twice (re-sent, or listed twice) counts once
		}
		seen[sop] = true
		first(&s.AccessionNumber, a, tag.AccessionNumber)
		first(&s.StudyDate, a, tag.StudyDate)
		first(&s.StudyTime, a, tag.StudyTime)
		first(&s.StudyDescription, a, tag.StudyDescription)
		first(&s.PatientID, a, tag.PatientID)
		first(&s.PatientName, a, tag.PatientName)
		first(&s.PatientSex, a, tag.PatientSex)
		first(&s.PatientAge, a, tag.PatientAge)
		first(&s.PatientBirthDate, a, tag.PatientBirthDate)
		first(&s.ReferringPhysician, a, tag.ReferringPhysicianName)
		first(&s.InstitutionName, a, tag.InstitutionName)
		first(&s.StationName, a, tag.StationName)

		se := seriesByUID[series]
		if se == nil {
			se = &SeriesSummary{SeriesInstanceUID: series}
			seriesByUID[series] = se
		}
		first(&se.Modality, a, tag.Modality)
		first(&se.SeriesDescription, a, tag.SeriesDescription)
		first(&se.BodyPartExamined, a, tag.BodyPartExamined)
		first(&se.ContrastBolusAgent, a, tag.ContrastBolusAgent)
		if se.SeriesNumber == 0 {
			se.SeriesNumber = atoi(a.value(tag.SeriesNumber))
		}
		frames := 0
		if nf := atoi(a.value(tag.NumberOfFrames)); nf > 0 {
			frames = nf
		} else if a.value(tag.Rows) != "" {
			frames = 1
		}
		se.Instances = append(se.Instances, InstanceSummary{
			SOPInstanceUID: sop,
			SOPClassUID:    a.value(tag.SOPClassUID),
			InstanceNumber: atoi(a.value(tag.InstanceNumber)),
			Frames:         frames,
		})
	}
	for _, se := range seriesByUID {
		slices.SortStableFunc(se.Instances, func(x, y InstanceSummary) int {
			if c := x.InstanceNumber - y.InstanceNumber; c != 0 {
				return c
			}
			return strings.Compare(x.SOPInstanceUID, y.SOPInstanceUID)
		})
		s.Series = append(s.Series, *se)
		s.NumberOfInstances += len(se.Instances)
	}
	slices.SortFunc(s.Series, func(x, y SeriesSummary) int {
		if c := x.SeriesNumber - y.SeriesNumber; c != 0 {
			return c
		}
		return strings.Compare(x.SeriesInstanceUID, y.SeriesInstanceUID)
	})
	s.Modalities = []string{}
	for _, se := range s.Series {
		if se.Modality != "" && !slices.Contains(s.Modalities, se.Modality) {
			s.Modalities = append(s.Modalities, se.Modality)
		}
		if s.BodyPartExamined == "" {
			s.BodyPartExamined = se.BodyPartExamined
		}
		if s.ContrastBolusAgent == "" && se.ContrastBolusAgent != "" {
			s.ContrastBolusAgent = se.ContrastBolusAgent
		}
	}
	slices.Sort(s.Modalities)
	s.Contrast = s.ContrastBolusAgent != ""
	if s.AccessionNumber == "" {
		s.Warnings = append(s.Warnings, WarningNoAccession)
	}
	return s, nil
}

func atoi(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0
	}
	return n
}

// datasetAttributes reads a parsed Part 10 dataset.
type datasetAttributes struct{ ds *dcm.Dataset }

func (d datasetAttributes) value(t tag.Tag) string {
	e, err := d.ds.FindElementByTag(t)
	if err != nil || e.Value == nil {
		return ""
	}
	return firstValue(e.Value)
}

// firstValue renders the first value of v as text, trimmed of DICOM padding.
func firstValue(v dcm.Value) string {
	switch x := v.GetValue().(type) {
	case []string:
		if len(x) > 0 {
			return strings.TrimRight(x[0], " \x00")
		}
	case []int:
		if len(x) > 0 {
			return strconv.Itoa(x[0])
		}
	case []float64:
		if len(x) > 0 {
			return strconv.FormatFloat(x[0], 'g', -1, 64)
		}
	}
	return ""
}
