package ich_test

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/broker"
	"github.com/osprey-health/osprey/engine/broker/brokertest"
	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/ich"
	"github.com/osprey-health/osprey/plugins/protocol"
	"github.com/osprey-health/osprey/plugins/sdk"
	"github.com/osprey-health/osprey/plugins/sdk/sdktest"
)

const adminToken = "stow-secret"

// origin runs a real Osprey DICOMweb source (source.dicomweb) on the broker, the endpoint
// plugins fetch pixels from.
func origin(t *testing.T, b *broker.Broker) *dicomweb.Source {
	t.Helper()
	src, err := dicomweb.NewSource(dicomweb.SourceConfig{Address: "127.0.0.1:0", Tokens: []string{adminToken}, QuietPeriod: time.Hour},
		engine.Resources{Channel: "studies", Broker: b, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sink := engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
		return engine.Receipt{ID: "m1", Verdict: engine.Accepted}, nil
	})
	go func() { done <- src.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dicomweb source: %v", err)
		}
	})
	select {
	case <-src.Ready():
	case err := <-done:
		t.Fatalf("dicomweb source: %v", err)
	case <-time.After(sdktest.Wait):
		t.Fatal("dicomweb source not ready")
	}
	return src
}

// stow stores a series on the origin by STOW-RS and returns the job that asks for it, with a
// token scoped to its study.
func stow(t *testing.T, src *dicomweb.Source, s *synth.Series, jobID string) protocol.Job {
	t.Helper()
	var parts [][]byte
	for _, in := range s.Instances {
		parts = append(parts, in.Data)
	}
	typ, body := dicomweb.Multipart(parts...)
	req, err := http.NewRequest(http.MethodPost, src.BaseURL()+"/studies", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", typ)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("STOW-RS: HTTP %d", resp.StatusCode)
	}
	m := s.Manifest
	info := m.Series[0]
	series := protocol.Series{SeriesInstanceUID: info.SeriesInstanceUID, Modality: info.Modality, SeriesDescription: info.SeriesDescription}
	for _, in := range info.Instances {
		series.Instances = append(series.Instances, protocol.Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: info.SOPClassUID, InstanceNumber: in.InstanceNumber})
	}
	return protocol.Job{
		JobID: jobID,
		Study: protocol.Study{
			StudyInstanceUID: m.StudyInstanceUID, AccessionNumber: m.AccessionNumber, Modality: "CT", BodyPart: "HEAD",
			StudyDescription: m.StudyDescription, Series: []protocol.Series{series},
		},
		Patient: protocol.Patient{PseudoID: "pseudo-" + jobID},
		DICOMweb: protocol.DICOMweb{
			BaseURL: src.BaseURL(),
			Token:   dicomweb.MintToken(src.TokenKey(), m.StudyInstanceUID, 10*time.Minute),
		},
		Deadline: time.Now().Add(2 * time.Minute),
	}
}

func headCT(t *testing.T, opts synth.CTOptions) *synth.Series {
	t.Helper()
	s, err := synth.HeadCT(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPluginOnDICOMweb runs the whole plugin: jobs over NATS, pixels by WADO-RS from a real
// Osprey DICOMweb origin with study-scoped tokens, results on the results stream. NOT FOR
// CLINICAL USE: the studies are synthetic phantoms.
func TestPluginOnDICOMweb(t *testing.T) {
	s := brokertest.New(t)
	src := origin(t, s.Broker)
	env := sdktest.Setup(t, s.Conn(), ich.PluginName, nil)
	perm := protocol.PluginPermissions(ich.PluginName)
	creds := s.CredsFile(t, ich.PluginName, &broker.Permissions{Publish: perm.Publish, Subscribe: perm.Subscribe, AllowResponses: perm.AllowResponses})
	p, ok := sdk.Lookup(ich.PluginName)
	if !ok {
		t.Fatalf("plugin %s not registered; have %v", ich.PluginName, sdk.Names())
	}
	p.Concurrency = 2
	sdktest.Start(t, p, sdk.WithURL(s.ClientURL()), sdk.WithCreds(creds), sdk.WithLogger(slog.New(slog.DiscardHandler)))

	bleed := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "plugin-bleed"}, Bleed: &synth.Bleed{Side: "right"}})
	clean := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "plugin-clean"}})
	contrast := headCT(t, synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "plugin-contrast"}, Slices: 8, Size: 64, Contrast: "IOHEXOL"})
	progress, err := s.Conn().SubscribeSync(protocol.ProgressSubject("ich-bleed"))
	if err != nil {
		t.Fatal(err)
	}
	bleedJob := env.Publish(t, stow(t, src, bleed, "ich-bleed"))
	cleanJob := env.Publish(t, stow(t, src, clean, "ich-clean"))
	contrastJob := env.Publish(t, stow(t, src, contrast, "ich-contrast"))
	// A token for another study: the origin refuses it.
	wrong := stow(t, src, clean, "ich-wrong-token")
	wrong.DICOMweb.Token = dicomweb.MintToken(src.TokenKey(), bleed.Manifest.StudyInstanceUID, time.Minute)
	wrongJob := env.Publish(t, wrong)
	mr := cleanJob
	mr.JobID, mr.Study.Modality = "ich-mr", "MR"
	mrJob := env.Publish(t, mr)

	t.Run("bleed", func(t *testing.T) {
		got := env.WaitResult(t, bleedJob)
		r := got.Result
		truth := bleed.Manifest.Series[0].Bleed
		if r.Status != protocol.StatusCompleted || len(r.Findings) != 1 {
			t.Fatalf("result %s", got.Data)
		}
		f := r.Findings[0]
		if !f.Present || f.Code != ich.CodeICH || f.Confidence <= 0.5 {
			t.Errorf("finding %+v", f)
		}
		if f.Location.Laterality != protocol.LateralityRight || !strings.Contains(f.Location.Text, "right") {
			t.Errorf("location %+v, want the patient's right", f.Location)
		}
		var volume float64
		for _, m := range f.Measurements {
			if m.Name == "volume" && m.Unit == "mL" {
				volume = m.Value
			}
		}
		if rel := math.Abs(volume-truth.VolumeML) / truth.VolumeML; rel > 0.15 {
			t.Errorf("volume %.2f mL, the phantom's bleed %.2f mL", volume, truth.VolumeML)
		}
		var seen []int
		byUID := map[string]int{}
		for _, in := range bleed.Manifest.Series[0].Instances {
			byUID[in.SOPInstanceUID] = in.InstanceNumber
		}
		for _, ref := range f.References {
			seen = append(seen, byUID[ref.SOPInstanceUID])
		}
		if len(seen) == 0 || slices.Max(seen) < truth.FirstInstance || slices.Min(seen) > truth.LastInstance {
			t.Errorf("references instances %v, the bleed is on %d to %d", seen, truth.FirstInstance, truth.LastInstance)
		}
		if !strings.HasPrefix(r.Summary, ich.Disclaimer) || !strings.Contains(r.Model.Manufacturer, "NOT FOR CLINICAL USE") {
			t.Errorf("not labelled as a demonstration: summary %q, model %+v", r.Summary, r.Model)
		}
		if r.Model.Name != ich.ModelName || r.Model.DeviceUID != ich.DeviceUID {
			t.Errorf("model %+v", r.Model)
		}
		if v := got.Header.Get(protocol.HeaderPluginVersion); v != ich.PluginVersion {
			t.Errorf("plugin version header %q", v)
		}
		m, err := progress.NextMsg(sdktest.Wait)
		if err != nil {
			t.Fatalf("no progress heartbeat: %v", err)
		}
		if pr, err := protocol.DecodeProgress(m.Data); err != nil || !strings.HasPrefix(pr.Message, "fetched 1 of ") {
			t.Errorf("first progress %s (%v), want the first instance fetched", m.Data, err)
		}
	})
	t.Run("no bleed", func(t *testing.T) {
		got := env.WaitResult(t, cleanJob)
		r := got.Result
		if r.Status != protocol.StatusCompleted || len(r.Findings) != 1 || r.Findings[0].Present {
			t.Fatalf("want one ruled-out finding: %s", got.Data)
		}
		if !strings.HasPrefix(r.Summary, ich.Disclaimer) {
			t.Errorf("summary %q", r.Summary)
		}
	})
	others := []struct {
		name    string
		job     protocol.Job
		status  protocol.Status
		code    string
		mention string
	}{
		{"contrast", contrastJob, protocol.StatusNotApplicable, "", "contrast"},
		{"not CT", mrJob, protocol.StatusNotApplicable, "", "modality MR"},
		{"token for another study", wrongJob, protocol.StatusFailed, protocol.ErrCodeFetch, "HTTP 403"},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			got := env.WaitResult(t, tt.job)
			r := got.Result
			text := r.Summary
			if r.Error != nil {
				text = r.Error.Code + " " + r.Error.Message
				if r.Error.Code != tt.code {
					t.Errorf("code %s, want %s", r.Error.Code, tt.code)
				}
			}
			if r.Status != tt.status || !strings.Contains(text, tt.mention) {
				t.Errorf("status %s, %q; want %s mentioning %q", r.Status, text, tt.status, tt.mention)
			}
		})
	}
	env.WaitJobsDone(t)
}

func TestPickSeries(t *testing.T) {
	ct := func(uid, desc string, n int) protocol.Series {
		s := protocol.Series{SeriesInstanceUID: uid, Modality: "CT", SeriesDescription: desc}
		for i := range n {
			s.Instances = append(s.Instances, protocol.Instance{SOPInstanceUID: uid + "." + string(rune('1'+i))})
		}
		return s
	}
	tests := []struct {
		name  string
		study protocol.Study
		want  string // series uid, or "" for not applicable
	}{
		{"largest plain series", protocol.Study{Modality: "CT", Series: []protocol.Series{ct("1.1", "Scout", 2), ct("1.2", "Head 5mm", 30), ct("1.3", "Head thin", 12)}}, "1.2"},
		{"contrast series skipped", protocol.Study{Modality: "CT", Series: []protocol.Series{ct("1.2", "Head C+ 5mm", 30), ct("1.3", "Head 5mm", 20)}}, "1.3"},
		{"too few slices", protocol.Study{Modality: "CT", Series: []protocol.Series{ct("1.2", "Head", 3)}}, ""},
		{"chest", protocol.Study{Modality: "CT", BodyPart: "CHEST", Series: []protocol.Series{ct("1.2", "Chest", 30)}}, ""},
		{"MR", protocol.Study{Modality: "MR", Series: []protocol.Series{ct("1.2", "Head", 30)}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, reason := ich.PickSeries(tt.study)
			if s.SeriesInstanceUID != tt.want || (tt.want == "") != (reason != "") {
				t.Errorf("picked %q (%q), want %q", s.SeriesInstanceUID, reason, tt.want)
			}
		})
	}
}
