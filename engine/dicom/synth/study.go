package synth

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/osprey-health/osprey/engine/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrOptions reports options the generators cannot honour; the error text says which.
var ErrOptions = errors.New("synth: invalid options")

// Comment is written to PatientComments and ImageComments of every generated dataset, so that
// nobody mistakes a phantom for a patient.
const Comment = "SYNTHETIC TEST DATA - PHANTOM, NOT A PATIENT - NOT FOR CLINICAL USE"

// Generator names this package in the manifest and in SoftwareVersions.
const Generator = "osprey-synth/1"

// Patient is the synthetic patient. Empty fields derive from the seed, so two studies made
// with one seed belong to one patient.
type Patient struct {
	Name      string    // DICOM person name, "FAMILY^GIVEN"; default "SYNTHETIC^<given>"
	ID        string    // default "SYN" and 7 digits
	BirthDate time.Time // default a date between 1940 and 1989
	Sex       string    // "M", "F" or "O"
}

// StudyOptions are the identity options every generator shares. Empty fields derive from
// Seed.
type StudyOptions struct {
	// Seed derives every UID and default identifier. Empty means a random seed, recorded in
	// the manifest.
	Seed               string
	Patient            Patient
	AccessionNumber    string    // at most 16 characters
	StudyID            string    // at most 16 characters
	StudyInstanceUID   string    // to add a series to an existing study
	StudyTime          time.Time // default a time in 2025 derived from the seed
	ReferringPhysician string    // default "SYNTHETIC^REFERRER"
	Institution        string    // default "OSPREY SYNTHETIC HOSPITAL"
}

// study is StudyOptions with every default resolved.
type study struct {
	seed, kind         string
	patient            Patient
	accession, studyID string
	studyUID           string
	time               time.Time
	referrer           string
	institution        string
}

var givenNames = []string{"ALEX", "SAM", "ROBIN", "JORDAN", "KIM", "CASEY", "TAYLOR", "MORGAN"}

// resolve fills the defaults of o for a generator of the given kind ("head-ct", "chest-xr"):
// the patient depends on the seed alone, the study on the seed and the kind.
func (o StudyOptions) resolve(kind string) (*study, error) {
	s := &study{seed: o.Seed, kind: kind, patient: o.Patient}
	if s.seed == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("synth: random seed: %w", err)
		}
		s.seed = hex.EncodeToString(b[:])
	}
	p := &s.patient
	if p.Name == "" {
		p.Name = "SYNTHETIC^" + givenNames[s.hash("patient", "name")%uint64(len(givenNames))]
	}
	if p.ID == "" {
		p.ID = fmt.Sprintf("SYN%07d", s.hash("patient", "id")%10_000_000)
	}
	if p.BirthDate.IsZero() {
		p.BirthDate = time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(s.hash("patient", "birth")%(50*365)))
	}
	if p.Sex == "" {
		p.Sex = [...]string{"M", "F"}[s.hash("patient", "sex")%2]
	}
	s.accession = o.AccessionNumber
	if s.accession == "" {
		s.accession = fmt.Sprintf("SYN%08d", s.hash(kind, "accession")%100_000_000)
	}
	s.studyID = o.StudyID
	if s.studyID == "" {
		s.studyID = strconv.FormatUint(1000+s.hash(kind, "study-id")%9000, 10)
	}
	s.studyUID = o.StudyInstanceUID
	if s.studyUID == "" {
		s.studyUID = s.uid("study")
	}
	s.time = o.StudyTime
	if s.time.IsZero() {
		s.time = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).
			Add(time.Duration(s.hash(kind, "time")%(365*86400)) * time.Second)
	}
	s.referrer = cmp.Or(o.ReferringPhysician, "SYNTHETIC^REFERRER")
	s.institution = cmp.Or(o.Institution, "OSPREY SYNTHETIC HOSPITAL")
	return s, s.validate()
}

func (s *study) validate() error {
	checks := []struct {
		name, value string
		max         int
	}{
		{"patient name", s.patient.Name, 64},
		{"patient id", s.patient.ID, 64},
		{"accession number", s.accession, 16},
		{"study id", s.studyID, 16},
		{"referring physician", s.referrer, 64},
		{"institution", s.institution, 64},
	}
	for _, c := range checks {
		if len(c.value) > c.max || strings.ContainsAny(c.value, "\\\r\n") {
			return fmt.Errorf("%w: %s %q: at most %d characters, no backslash or newline", ErrOptions, c.name, c.value, c.max)
		}
	}
	if s.patient.Sex != "M" && s.patient.Sex != "F" && s.patient.Sex != "O" {
		return fmt.Errorf("%w: patient sex %q: want M, F or O", ErrOptions, s.patient.Sex)
	}
	if s.patient.BirthDate.After(s.time) {
		return fmt.Errorf("%w: patient born %s, after the study", ErrOptions, dicom.FormatDate(s.patient.BirthDate))
	}
	if err := dicom.ValidUID(s.studyUID); err != nil {
		return fmt.Errorf("%w: study instance uid: %w", ErrOptions, err)
	}
	return nil
}

// hash derives a number from the seed and a purpose, so each default is independent of the
// others and stable across versions that add new ones.
func (s *study) hash(parts ...string) uint64 {
	sum := sha256.Sum256([]byte(s.seed + "/" + strings.Join(parts, "/")))
	return binary.BigEndian.Uint64(sum[:8])
}

func (s *study) uid(parts ...string) string {
	return dicom.NameUID(append([]string{"osprey-synth", s.kind, s.seed}, parts...)...)
}

// addPatientStudy adds the Patient, General Study and Patient Study modules.
func (s *study) addPatientStudy(b *dicom.Builder, description string) {
	b.Add(tag.PatientName, s.patient.Name)
	b.Add(tag.PatientID, s.patient.ID)
	b.Add(tag.PatientBirthDate, s.patient.BirthDate)
	b.Add(tag.PatientSex, s.patient.Sex)
	b.Add(tag.PatientAge, dicom.FormatAge(s.patient.BirthDate, s.time))
	b.Add(tag.PatientComments, Comment)
	b.Add(tag.StudyInstanceUID, s.studyUID)
	b.Add(tag.StudyDate, s.time)
	b.Add(tag.StudyTime, s.time)
	b.Add(tag.AccessionNumber, s.accession)
	b.Add(tag.StudyDescription, description)
	b.Add(tag.ReferringPhysicianName, s.referrer)
	b.Add(tag.StudyID, s.studyID)
}

// manifest starts the manifest of a study.
func (s *study) manifest(description, modality string) Manifest {
	return Manifest{
		Synthetic: true,
		Generator: Generator,
		Seed:      s.seed,
		Patient: PatientManifest{
			Name:      s.patient.Name,
			ID:        s.patient.ID,
			BirthDate: dicom.FormatDate(s.patient.BirthDate),
			Sex:       s.patient.Sex,
			Age:       dicom.FormatAge(s.patient.BirthDate, s.time),
		},
		StudyInstanceUID: s.studyUID,
		AccessionNumber:  s.accession,
		StudyID:          s.studyID,
		StudyDate:        dicom.FormatDate(s.time),
		StudyTime:        dicom.FormatTime(s.time),
		StudyDescription: description,
		Modality:         modality,
	}
}

// Manifest describes a generated study: its identifiers, where each instance was written and
// the ground truth a test can check a reader or a detector against.
type Manifest struct {
	Synthetic        bool            `json:"synthetic"` // always true: phantom data, not a patient
	Generator        string          `json:"generator"`
	Seed             string          `json:"seed"`
	Patient          PatientManifest `json:"patient"`
	StudyInstanceUID string          `json:"studyInstanceUID"`
	AccessionNumber  string          `json:"accessionNumber"`
	StudyID          string          `json:"studyID"`
	StudyDate        string          `json:"studyDate"`
	StudyTime        string          `json:"studyTime"`
	StudyDescription string          `json:"studyDescription"`
	Modality         string          `json:"modality"`
	Contrast         string          `json:"contrast,omitempty"` // ContrastBolusAgent, if any
	Series           []SeriesInfo    `json:"series"`
}

// PatientManifest is the patient as written to the datasets.
type PatientManifest struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	BirthDate string `json:"birthDate"`
	Sex       string `json:"sex"`
	Age       string `json:"age"`
}

// SeriesInfo describes one generated series.
type SeriesInfo struct {
	SeriesInstanceUID   string         `json:"seriesInstanceUID"`
	SeriesNumber        int            `json:"seriesNumber"`
	SeriesDescription   string         `json:"seriesDescription"`
	Modality            string         `json:"modality"`
	SOPClassUID         string         `json:"sopClassUID"`
	FrameOfReferenceUID string         `json:"frameOfReferenceUID,omitempty"`
	Rows                int            `json:"rows"`
	Columns             int            `json:"columns"`
	PixelSpacingMM      [2]float64     `json:"pixelSpacingMM"` // row spacing, column spacing
	SliceThicknessMM    float64        `json:"sliceThicknessMM,omitempty"`
	Instances           []InstanceInfo `json:"instances"`
	Landmarks           []Landmark     `json:"landmarks"`
	Bleed               *BleedInfo     `json:"bleed,omitempty"`
}

// InstanceInfo locates one instance.
type InstanceInfo struct {
	InstanceNumber int    `json:"instanceNumber"`
	SOPInstanceUID string `json:"sopInstanceUID"`
	File           string `json:"file"` // relative to the output folder, with forward slashes
}

// Landmark is a pixel whose value the phantom fixes: a test reads the pixel back and compares.
// Row and Column are 0-based; Instance is the InstanceNumber.
type Landmark struct {
	Name     string  `json:"name"` // "air", "skull", "brain", "csf", "bleed", "lung", ...
	Instance int     `json:"instance"`
	Row      int     `json:"row"`
	Column   int     `json:"column"`
	Value    float64 `json:"value"` // noise-free value
	Unit     string  `json:"unit"`  // "HU" (after rescale) or "stored"
}

// Series is a generated series: its Part 10 files in instance order and the manifest.
type Series struct {
	Instances []Instance
	Manifest  Manifest
}

// Instance is one generated Part 10 file.
type Instance struct {
	InstanceNumber int
	SOPInstanceUID string
	File           string // relative path, e.g. "s002/i0001.dcm"
	Data           []byte
}

// ManifestFile is the name of the manifest WriteDir writes beside the instances.
const ManifestFile = "manifest.json"

// WriteDir writes each instance under dir at its relative path, and the manifest as
// dir/manifest.json.
func (s *Series) WriteDir(dir string) error {
	for _, in := range s.Instances {
		p := filepath.Join(dir, filepath.FromSlash(in.File))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("synth: write %s: %w", p, err)
		}
		if err := os.WriteFile(p, in.Data, 0o644); err != nil {
			return fmt.Errorf("synth: write %s: %w", p, err)
		}
	}
	m, err := s.Manifest.JSON()
	if err != nil {
		return err
	}
	p := filepath.Join(dir, ManifestFile)
	if err := os.WriteFile(p, m, 0o644); err != nil {
		return fmt.Errorf("synth: write %s: %w", p, err)
	}
	return nil
}

// JSON returns the manifest as indented JSON.
func (m Manifest) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("synth: manifest: %w", err)
	}
	return append(b, '\n'), nil
}

func instanceFile(series, instance int) string {
	return fmt.Sprintf("s%03d/i%04d.dcm", series, instance)
}
