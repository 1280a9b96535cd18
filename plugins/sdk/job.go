package sdk

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/osprey-health/osprey/plugins/protocol"
)

// Job is the job a handler answers: the protocol job, plus what the instance can do for it.
type Job struct {
	protocol.Job
	// Delivery counts the JetStream deliveries of this job message, from 1; above 1 an
	// instance took it before and did not finish (it died, or shut down).
	Delivery int

	msg    jetstream.Msg
	nc     *nats.Conn
	plugin string
	log    *slog.Logger
	http   *http.Client

	mu      sync.Mutex
	percent float64
	message string
	client  *Client
	done    bool // answered or handed back: a handler left running must not signal for it
}

// Progress reports how far the job is (0 to 100) with a short message for people watching
// (no patient data): a protocol.Progress on protocol.ProgressSubject, and a JetStream
// in-progress acknowledgement so the job is not redelivered. Run repeats the last progress
// on its own while the handler runs, so calling Progress is for information, not to keep
// the job alive. Failures are logged, not returned: a lost heartbeat must not fail a job.
func (j *Job) Progress(percent float64, message string) {
	percent = min(max(percent, 0), 100)
	j.mu.Lock()
	j.percent, j.message = percent, message
	j.mu.Unlock()
	j.beat()
}

// beat sends the last progress again, and the in-progress acknowledgement.
func (j *Job) beat() {
	j.mu.Lock()
	done := j.done
	j.mu.Unlock()
	if done {
		return
	}
	if err := j.msg.InProgress(); err != nil {
		j.log.Debug("sdk: in progress ack", "error", err)
	}
	j.mu.Lock()
	p := protocol.Progress{
		Protocol: protocol.Version, JobID: j.JobID, Plugin: j.plugin,
		Percent: j.percent, Message: j.message, At: time.Now().UTC(),
	}
	j.mu.Unlock()
	data, err := json.Marshal(p)
	if err == nil {
		err = j.nc.Publish(protocol.ProgressSubject(j.JobID), data)
	}
	if err != nil {
		j.log.Debug("sdk: progress", "error", err)
	}
}

// end marks the job answered or handed back.
func (j *Job) end() {
	j.mu.Lock()
	j.done = true
	j.mu.Unlock()
}

// DICOMweb returns a WADO-RS client for the job's study, authenticated with its token.
func (j *Job) DICOMweb() *Client {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.client == nil {
		j.client = NewClient(j.Job.DICOMweb, j.Study.StudyInstanceUID, j.http)
	}
	return j.client
}

// Logger returns the instance's logger with the job's id and attempt attached.
func (j *Job) Logger() *slog.Logger { return j.log }
