package ich

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
)

// The plugin's identity. PluginVersion is the plugin's (the wrapper's) semantic version;
// ModelVersion the detector's.
const (
	PluginName    = "ich"
	PluginVersion = "0.3.0"
	// Manufacturer says, in every result and in discovery, what this is.
	Manufacturer = "Osprey demo (NOT FOR CLINICAL USE)"
	// DeviceUID identifies the demonstration detector as a DICOM device in SR output.
	DeviceUID = "1.2.826.0.1.3680043.8.498.99"
)

// Codes of the findings.
var (
	CodeICH    = protocol.Coding{System: protocol.SystemSNOMED, Code: "1386000", Display: "Intracranial hemorrhage"}
	codeBrain  = protocol.Coding{System: protocol.SystemSNOMED, Code: "12738006", Display: "Brain structure"}
	codeVolume = protocol.Coding{System: protocol.SystemSNOMED, Code: "118565006", Display: "Volume"}
)

// negativeConfidence is the confidence of "no haemorrhage found". The detector scores what
// it finds, not what it does not; this fixed value is a heuristic, not a calibrated
// probability, like every number of this demonstration.
const negativeConfidence = 0.9

// minSlices is the fewest instances a series needs for the detector to measure volumes.
const minSlices = 5

// Plugin is the ich plugin for sdk.Run, registered as "ich". NOT FOR CLINICAL USE: it runs
// the demonstration detector of this package.
var Plugin = sdk.Plugin{
	Name:        PluginName,
	Version:     PluginVersion,
	Description: "Demonstration intracranial haemorrhage detector on non-contrast head CT. NOT FOR CLINICAL USE.",
	Model:       protocol.Model{Name: ModelName, Version: ModelVersion, Manufacturer: Manufacturer, DeviceUID: DeviceUID},
	Modalities:  []string{"CT"},
	BodyParts:   []string{"HEAD", "BRAIN"},
	Handle:      handle,
}

func init() { sdk.Register(Plugin) }

// handle picks the head CT series of the job's study, fetches it over WADO-RS, runs Detect
// and turns its report into a result.
func handle(ctx context.Context, job *sdk.Job) (protocol.Result, error) {
	series, reason := pickSeries(job.Study)
	if reason != "" {
		return protocol.Result{}, sdk.NotApplicable(reason)
	}
	fetchStart := time.Now()
	client := job.DICOMweb()
	instances := make([][]byte, len(series.Instances))
	for i, in := range series.Instances {
		data, err := client.Instance(ctx, series.SeriesInstanceUID, in.SOPInstanceUID)
		if err != nil {
			return protocol.Result{}, fmt.Errorf("ich: series %s: %w", series.SeriesInstanceUID, err)
		}
		instances[i] = data
		job.Progress(float64(60*(i+1)/len(series.Instances)), fmt.Sprintf("fetched %d of %d instances", i+1, len(series.Instances)))
	}
	fetched := time.Now()

	v, err := VolumeFromDICOM(instances)
	switch {
	case errors.Is(err, ErrNotCT):
		return protocol.Result{}, sdk.NotApplicable(err.Error())
	case err != nil:
		return protocol.Result{}, &protocol.Error{Code: protocol.ErrCodeInput, Message: err.Error()}
	}
	if !axial(v) {
		return protocol.Result{}, sdk.NotApplicable(fmt.Sprintf("series %s is not axial (ImageOrientationPatient %v %v)", v.SeriesInstanceUID, v.RowDirection, v.ColDirection))
	}
	job.Progress(70, "detecting")
	if err := ctx.Err(); err != nil {
		return protocol.Result{}, err
	}
	r := Detect(v, Options{})
	if r.NotApplicable != "" {
		return protocol.Result{}, sdk.NotApplicable(Disclaimer + " " + r.NotApplicable)
	}
	done := time.Now()
	return protocol.Result{
		Status:   protocol.StatusCompleted,
		Findings: findings(r, v.SeriesInstanceUID),
		Summary:  r.Summary,
		Timings: protocol.Timings{
			FetchMS:     fetched.Sub(fetchStart).Milliseconds(),
			InferenceMS: done.Sub(fetched).Milliseconds(),
		},
	}, nil
}

// pickSeries chooses the series to read: CT, of a head study when the study says, not a
// scout, dose report or contrast series by its description, with enough instances; the
// largest of those. It returns why there is none otherwise.
func pickSeries(st protocol.Study) (protocol.Series, string) {
	if m := strings.ToUpper(st.Modality); m != "" && m != "CT" {
		return protocol.Series{}, fmt.Sprintf("modality %s: the detector reads non-contrast head CT only", st.Modality)
	}
	if bp := strings.ToUpper(st.BodyPart); bp != "" && !slices.Contains([]string{"HEAD", "BRAIN", "SKULL"}, bp) {
		return protocol.Series{}, fmt.Sprintf("body part %s: the detector reads head CT only", st.BodyPart)
	}
	var best protocol.Series
	for _, s := range st.Series {
		modality := strings.ToUpper(s.Modality)
		if modality == "" {
			modality = strings.ToUpper(st.Modality)
		}
		if modality != "CT" || len(s.Instances) < minSlices || excluded(s.SeriesDescription) {
			continue
		}
		if !slices.ContainsFunc(s.Instances, func(in protocol.Instance) bool {
			return in.SOPClassUID == "" || in.SOPClassUID == ctImageStorage
		}) {
			continue
		}
		if len(s.Instances) > len(best.Instances) {
			best = s
		}
	}
	if best.SeriesInstanceUID == "" {
		return best, fmt.Sprintf("no axial non-contrast CT series of at least %d images in the study", minSlices)
	}
	// Only CT images go to the reader; a series may carry, say, a dose screen capture.
	best.Instances = slices.DeleteFunc(slices.Clone(best.Instances), func(in protocol.Instance) bool {
		return in.SOPClassUID != "" && in.SOPClassUID != ctImageStorage
	})
	return best, ""
}

// excluded reports whether a series description names a series the detector must not read.
func excluded(description string) bool {
	d := strings.ToLower(description)
	for _, w := range []string{"scout", "localizer", "localiser", "topogram", "dose", "contrast", "c+", "cta", "angio", "perfusion"} {
		if strings.Contains(d, w) {
			return true
		}
	}
	return false
}

// axial reports whether the slices are axial within about 25 degrees: the slice normal
// mostly along the patient's feet-head axis.
func axial(v *Volume) bool {
	row, col := v.directions()
	return math.Abs(cross(row, col)[2]) >= 0.9
}

// findings maps a report to protocol findings: one per component, or one ruled-out finding
// when there is none, so that "looked and found nothing" differs from "did not look".
func findings(r Report, series string) []protocol.Finding {
	if len(r.Findings) == 0 {
		return []protocol.Finding{{ID: "ich-1", Code: CodeICH, Present: false, Confidence: negativeConfidence}}
	}
	out := make([]protocol.Finding, len(r.Findings))
	for i, c := range r.Findings {
		place, laterality := "midline", ""
		if c.Side == Left || c.Side == Right {
			place, laterality = "patient's "+c.Side+" hemisphere", c.Side
		}
		refs := make([]protocol.Reference, len(c.SOPInstanceUIDs))
		for k, sop := range c.SOPInstanceUIDs {
			refs[k] = protocol.Reference{SeriesInstanceUID: series, SOPInstanceUID: sop}
		}
		brain, volume := codeBrain, codeVolume
		out[i] = protocol.Finding{
			ID:         fmt.Sprintf("ich-%d", i+1),
			Code:       CodeICH,
			Present:    true,
			Confidence: c.Confidence,
			Location: protocol.Location{
				Text:       fmt.Sprintf("%s, instances %d to %d", place, c.FirstInstance, c.LastInstance),
				Code:       &brain,
				Laterality: laterality,
			},
			Measurements: []protocol.Measurement{
				{Name: "volume", Code: &volume, Value: round1(c.VolumeML), Unit: "mL"},
				// Densities have no code of their own: they are a mean and a maximum of CT
				// values, which SR and FHIR output name by the text.
				{Name: "mean density", Value: round1(c.MeanHU), Unit: "[hnsf'U]"},
				{Name: "maximum density", Value: float64(c.MaxHU), Unit: "[hnsf'U]"},
			},
			References: refs,
		}
	}
	return out
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
