package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/channels/dicomweb"
	"github.com/osprey-health/osprey/engine"
	"github.com/osprey-health/osprey/engine/dicom/synth"
	"github.com/osprey-health/osprey/plugins/protocol"
)

// origin is the run's own DICOMweb server: the engine's source.dicomweb, holding the canned
// studies in buckets named for the run.
type origin struct {
	src    *dicomweb.Source
	js     jetstream.JetStream
	log    *slog.Logger
	bucket string
	admin  string // the bearer token that opens everything: for the run's own STOW-RS
	cancel context.CancelFunc
	done   chan error
}

// startOrigin starts the DICOMweb source on opts.DICOMwebListen and waits until it serves.
func (r *run) startOrigin(ctx context.Context) (*origin, error) {
	admin, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	o := &origin{
		js:     r.b.JetStream(),
		log:    r.log,
		bucket: "osprey-check-" + r.runID,
		admin:  admin,
		done:   make(chan error, 1),
	}
	o.src, err = dicomweb.NewSource(dicomweb.SourceConfig{
		Address:   r.opts.DICOMwebListen,
		PublicURL: r.opts.PublicURL,
		Tokens:    []string{admin},
		// The run never wants a study message: its studies are complete when stored.
		QuietPeriod: 24 * time.Hour,
		// Should the run die before it cleans up, JetStream drops the studies after this.
		Retention: time.Hour,
		Bucket:    o.bucket,
	}, engine.Resources{Logger: r.log, Channel: "plugin-check", Broker: r.b})
	if err != nil {
		return nil, fmt.Errorf("conformance: dicomweb origin: %w", err)
	}
	if err := o.src.Listen(); err != nil {
		return nil, fmt.Errorf("conformance: dicomweb origin on %s: %w", r.opts.DICOMwebListen, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	o.cancel = cancel
	sink := engine.SinkFunc(func(context.Context, *engine.Message) (engine.Receipt, error) {
		return engine.Receipt{Verdict: engine.Accepted}, nil
	})
	go func() { o.done <- o.src.Run(sctx, sink) }()
	select {
	case <-o.src.Ready():
	case err := <-o.done:
		cancel()
		o.deleteBuckets()
		if err == nil {
			err = errors.New("stopped before serving")
		}
		return nil, fmt.Errorf("conformance: dicomweb origin: %w", err)
	case <-ctx.Done():
		o.close()
		return nil, ctx.Err()
	}
	return o, nil
}

// baseURL is the DICOMweb root jobs carry: the public URL, or the listener's.
func (o *origin) baseURL() string { return o.src.BaseURL() }

// localURL is the DICOMweb root the run itself reaches, on the listener whatever the public
// URL says.
func (o *origin) localURL() string {
	a, ok := o.src.Addr().(*net.TCPAddr)
	if !ok {
		return o.src.BaseURL()
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port)) + dicomweb.DefaultBasePath
}

// store sends the series' instances to the origin by STOW-RS.
func (o *origin) store(ctx context.Context, s *synth.Series) error {
	c, err := dicomweb.NewClient(o.localURL(), dicomweb.ClientConfig{Auth: dicomweb.Auth{Token: o.admin}})
	if err != nil {
		return err
	}
	parts := make([][]byte, len(s.Instances))
	for i, in := range s.Instances {
		parts[i] = in.Data
	}
	ct, body := dicomweb.Multipart(parts...)
	res, err := c.Store(ctx, ct, body)
	if err != nil {
		return fmt.Errorf("conformance: store study %s: %w", s.Manifest.StudyInstanceUID, err)
	}
	if res.Status != http.StatusOK {
		return fmt.Errorf("conformance: store study %s: HTTP %d: %.200s", s.Manifest.StudyInstanceUID, res.Status, res.Body)
	}
	return nil
}

// close stops the source and deletes the buckets that held the canned studies.
func (o *origin) close() {
	o.cancel()
	<-o.done
	o.deleteBuckets()
}

// deleteBuckets deletes every object store and key-value bucket named after the run's
// bucket: the instances and the index beside them.
func (o *origin) deleteBuckets() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objs := o.js.ObjectStoreNames(ctx)
	var obj, kv []string
	for name := range objs.Name() {
		if strings.HasPrefix(name, o.bucket) {
			obj = append(obj, name)
		}
	}
	kvs := o.js.KeyValueStoreNames(ctx)
	for name := range kvs.Name() {
		if strings.HasPrefix(name, o.bucket) {
			kv = append(kv, name)
		}
	}
	for _, name := range obj {
		if err := o.js.DeleteObjectStore(ctx, name); err != nil {
			o.log.Warn("plugin check: delete canned studies", "bucket", name, "err", err)
		}
	}
	for _, name := range kv {
		if err := o.js.DeleteKeyValue(ctx, name); err != nil {
			o.log.Warn("plugin check: delete canned studies index", "bucket", name, "err", err)
		}
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("conformance: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// canned is one canned job and what the plugin must answer to it beyond a valid result.
type canned struct {
	name string // short, in job ids and row names
	what string // for people
	job  protocol.Job
	// mint makes the job's token for a study, valid for a while.
	mint func(study string, ttl time.Duration) string
	// fetchFails marks the job whose token the origin refuses: the answer must be failed
	// with code fetch_failed.
	fetchFails bool
}

// Canned case names, as they appear in row names and Outcome.Case.
const (
	CaseCTHeadBleed  = "ct-head-bleed"
	CaseCTHeadNormal = "ct-head-normal"
	CaseXRChest      = "xr-chest"
	CaseBadToken     = "bad-token"
)

// syntheticStudies are the canned studies: fixed seeds make them the same in every run, so
// they are made once per process.
var syntheticStudies = sync.OnceValues(func() ([3]*synth.Series, error) {
	var out [3]*synth.Series
	bleed, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "osprey-plugin-check-ct-bleed"}, Bleed: &synth.Bleed{}})
	if err != nil {
		return out, fmt.Errorf("conformance: synthetic head CT: %w", err)
	}
	normal, err := synth.HeadCT(synth.CTOptions{StudyOptions: synth.StudyOptions{Seed: "osprey-plugin-check-ct-normal"}})
	if err != nil {
		return out, fmt.Errorf("conformance: synthetic head CT: %w", err)
	}
	xr, err := synth.ChestXR(synth.XROptions{StudyOptions: synth.StudyOptions{Seed: "osprey-plugin-check-xr-chest"}})
	if err != nil {
		return out, fmt.Errorf("conformance: synthetic chest XR: %w", err)
	}
	return [3]*synth.Series{bleed, normal, xr}, nil
})

// cannedCases stores the synthetic studies in the origin and returns the jobs.
func (r *run) cannedCases(ctx context.Context, o *origin) ([]canned, error) {
	studies, err := syntheticStudies()
	if err != nil {
		return nil, err
	}
	bleed, normal, xr := studies[0], studies[1], studies[2]
	n := 0
	for _, s := range studies {
		if err := o.store(ctx, s); err != nil {
			return nil, err
		}
		n += len(s.Instances)
	}
	r.rep.add("dicomweb origin", true, "3 synthetic studies (%d instances) at %s", n, o.baseURL())

	ctOrder := func(s *synth.Series) *protocol.Order {
		return &protocol.Order{
			Accession: s.Manifest.AccessionNumber, Priority: protocol.PriorityStat, Location: "ED",
			ProcedureCode: "CTHEADWO", ProcedureText: "CT head without contrast", Reason: "conformance check (synthetic study)",
		}
	}
	key, err := dicomweb.NewKey()
	if err != nil {
		return nil, err
	}
	base := o.baseURL()
	return []canned{
		{name: CaseCTHeadBleed, what: "head CT with an intracranial haemorrhage", job: r.job(CaseCTHeadBleed, bleed, "HEAD", ctOrder(bleed), base), mint: o.src.MintToken},
		{name: CaseCTHeadNormal, what: "head CT without haemorrhage", job: r.job(CaseCTHeadNormal, normal, "HEAD", ctOrder(normal), base), mint: o.src.MintToken},
		{name: CaseXRChest, what: "chest radiograph", job: r.job(CaseXRChest, xr, "CHEST", &protocol.Order{
			Accession: xr.Manifest.AccessionNumber, Priority: protocol.PriorityRoutine, Location: "OP",
			ProcedureCode: "XRCHESTPA", ProcedureText: "XR chest PA", Reason: "conformance check (synthetic study)",
		}, base), mint: o.src.MintToken},
		// A token signed by another key: the origin answers 401, as it does for an expired one.
		{name: CaseBadToken, what: "head CT, a token the origin refuses", job: r.job(CaseBadToken, normal, "HEAD", ctOrder(normal), base), fetchFails: true,
			mint: func(study string, ttl time.Duration) string { return dicomweb.MintToken(key, study, ttl) }},
	}, nil
}

// job builds the job for one canned study; its token and deadline are set when it is sent.
func (r *run) job(name string, s *synth.Series, bodyPart string, order *protocol.Order, base string) protocol.Job {
	m := s.Manifest
	study := protocol.Study{
		StudyInstanceUID: m.StudyInstanceUID,
		AccessionNumber:  m.AccessionNumber,
		Modality:         m.Modality,
		BodyPart:         bodyPart,
		StudyDescription: m.StudyDescription,
	}
	for _, si := range m.Series {
		ps := protocol.Series{SeriesInstanceUID: si.SeriesInstanceUID, Modality: si.Modality, SeriesDescription: si.SeriesDescription}
		for _, in := range si.Instances {
			ps.Instances = append(ps.Instances, protocol.Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: si.SOPClassUID, InstanceNumber: in.InstanceNumber})
		}
		study.Series = append(study.Series, ps)
	}
	patient := protocol.Patient{PseudoID: "check-patient-" + name, Sex: m.Patient.Sex}
	if age, ok := strings.CutSuffix(m.Patient.Age, "Y"); ok {
		if n, err := strconv.Atoi(age); err == nil {
			patient.AgeYears = &n
		}
	}
	return protocol.Job{
		Protocol: protocol.Version,
		JobID:    JobIDPrefix + r.runID + "-" + name,
		Plugin:   r.opts.Plugin,
		Study:    study,
		Patient:  patient,
		Order:    order,
		DICOMweb: protocol.DICOMweb{BaseURL: base},
		Attempt:  1,
	}
}
