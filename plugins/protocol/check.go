package protocol

import (
	"fmt"
	"math"
	"strconv"
)

// CheckResult checks r, the answer to job, for what the schema cannot express or the Go
// types do not enforce: it belongs to the job (protocol, job id, plugin), its status agrees
// with its error, model and findings (only a completed result has findings), confidences are in [0,1], finding ids are unique, measurements
// are finite with a unit, and every reference and region names an instance (and frame) of
// the job's study. It returns a *ValidationError listing every violation, or nil.
//
// The engine runs ValidateResult on the bytes and CheckResult on the decoded value; a Go
// plugin can run CheckResult before publishing.
func CheckResult(job Job, r Result) error {
	var vs []Violation
	add := func(ptr, format string, args ...any) {
		vs = append(vs, Violation{Pointer: ptr, Reason: fmt.Sprintf(format, args...)})
	}

	if r.Protocol != Version {
		add("/protocol", "must be %q but found %q", Version, r.Protocol)
	}
	if r.JobID != job.JobID {
		add("/job_id", "must be the job's id %q but found %q", job.JobID, r.JobID)
	}
	if r.Plugin != job.Plugin {
		add("/plugin", "must be the job's plugin %q but found %q", job.Plugin, r.Plugin)
	}
	switch r.Status {
	case StatusFailed:
		if r.Error == nil {
			add("/error", "is required when status is failed")
		} else {
			if r.Error.Code == "" {
				add("/error/code", "is required")
			}
			if r.Error.Message == "" {
				add("/error/message", "is required")
			}
		}
	case StatusCompleted, StatusNotApplicable:
		if r.Error != nil {
			add("/error", "must be absent when status is %s", r.Status)
		}
	default:
		add("/status", "must be one of completed, failed, not_applicable but found %q", r.Status)
	}
	if r.Status == StatusCompleted {
		if r.Model.Name == "" {
			add("/model/name", "is required when status is completed")
		}
		if r.Model.Version == "" {
			add("/model/version", "is required when status is completed")
		}
	}
	if r.Status != StatusCompleted && len(r.Findings) > 0 {
		add("/findings", "must be empty when status is %s", r.Status)
	}
	if r.Model.DeviceUID != "" && !ValidUID(r.Model.DeviceUID) {
		add("/model/device_uid", "is not a DICOM UID: %q", r.Model.DeviceUID)
	}
	if !r.Timings.StartedAt.IsZero() && !r.Timings.FinishedAt.IsZero() && r.Timings.FinishedAt.Before(r.Timings.StartedAt) {
		add("/timings/finished_at", "is before started_at")
	}

	// Index the study: which series each instance is in and how many frames it has.
	type inst struct {
		series string
		frames int
	}
	instances := make(map[string]inst)
	for _, s := range job.Study.Series {
		for _, in := range s.Instances {
			n := in.Frames
			if n < 1 {
				n = 1
			}
			instances[in.SOPInstanceUID] = inst{series: s.SeriesInstanceUID, frames: n}
		}
	}

	ids := make(map[string]int)
	for i, f := range r.Findings {
		fp := "/findings/" + strconv.Itoa(i)
		switch prev, dup := ids[f.ID]; {
		case f.ID == "":
			add(fp+"/id", "is required")
		case dup:
			add(fp+"/id", "%q is already the id of finding %d", f.ID, prev)
		default:
			ids[f.ID] = i
		}
		if f.Code.System == "" || f.Code.Code == "" {
			add(fp+"/code", "needs a system and a code")
		}
		if math.IsNaN(f.Confidence) || f.Confidence < 0 || f.Confidence > 1 {
			add(fp+"/confidence", "must be between 0 and 1 but found %v", f.Confidence)
		}
		switch f.Location.Laterality {
		case "", LateralityLeft, LateralityRight, LateralityBilateral:
		default:
			add(fp+"/location/laterality", "must be left, right, bilateral or empty but found %q", f.Location.Laterality)
		}
		for j, m := range f.Measurements {
			mp := fp + "/measurements/" + strconv.Itoa(j)
			if m.Name == "" {
				add(mp+"/name", "is required")
			}
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				add(mp+"/value", "must be a finite number")
			}
			if m.Unit == "" {
				add(mp+"/unit", "is required (a UCUM code; \"1\" for a ratio)")
			}
		}
		for j, ref := range f.References {
			rp := fp + "/references/" + strconv.Itoa(j)
			in, ok := instances[ref.SOPInstanceUID]
			if !ok {
				add(rp+"/sop_instance_uid", "%q is not an instance of the job's study", ref.SOPInstanceUID)
				continue
			}
			if ref.SeriesInstanceUID != in.series {
				add(rp+"/series_instance_uid", "must be %q, the series of instance %q, but found %q", in.series, ref.SOPInstanceUID, ref.SeriesInstanceUID)
			}
			for k, fr := range ref.Frames {
				if fr < 1 || fr > in.frames {
					add(rp+"/frames/"+strconv.Itoa(k), "frame %d is outside 1..%d", fr, in.frames)
				}
			}
		}
		for j, reg := range f.Regions {
			gp := fp + "/regions/" + strconv.Itoa(j)
			if in, ok := instances[reg.SOPInstanceUID]; !ok {
				add(gp+"/sop_instance_uid", "%q is not an instance of the job's study", reg.SOPInstanceUID)
			} else if reg.Frame < 0 || reg.Frame > in.frames {
				add(gp+"/frame", "frame %d is outside 1..%d", reg.Frame, in.frames)
			} else if reg.Frame == 0 && in.frames > 1 {
				add(gp+"/frame", "is required on a multi-frame instance (%d frames)", in.frames)
			}
			switch reg.Shape {
			case ShapePoint, ShapePolyline, ShapePolygon, ShapeEllipse, ShapeBBox:
				if reason := checkPoints(reg.Shape, reg.Points); reason != "" {
					add(gp+"/points", "%s", reason)
				}
			default:
				add(gp+"/shape", "must be point, polyline, polygon, ellipse or bbox but found %q", reg.Shape)
			}
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Kind: KindResult, Violations: vs}
}

// checkPoints returns why points cannot outline shape, or "".
func checkPoints(shape string, points []float64) string {
	n := len(points)
	if n%2 != 0 {
		return fmt.Sprintf("must hold x,y pairs but has %d numbers", n)
	}
	for _, p := range points {
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
			return fmt.Sprintf("coordinates must be finite and >= 0 but found %v", p)
		}
	}
	pairs := n / 2
	switch shape {
	case ShapePoint:
		if pairs != 1 {
			return fmt.Sprintf("a point takes 1 pair but has %d", pairs)
		}
	case ShapeBBox:
		if pairs != 2 {
			return fmt.Sprintf("a bbox takes 2 pairs but has %d", pairs)
		}
	case ShapeEllipse:
		if pairs != 4 {
			return fmt.Sprintf("an ellipse takes 4 pairs but has %d", pairs)
		}
	case ShapePolyline:
		if pairs < 2 {
			return fmt.Sprintf("a polyline takes at least 2 pairs but has %d", pairs)
		}
	case ShapePolygon:
		if pairs < 3 {
			return fmt.Sprintf("a polygon takes at least 3 pairs but has %d", pairs)
		}
	}
	return ""
}
