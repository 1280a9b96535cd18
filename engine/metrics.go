package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors the runtime updates. Each engine has its own
// registry so tests and reloads never collide on global state.
type Metrics struct {
	Registry *prometheus.Registry

	Received      *prometheus.CounterVec   // channel, verdict
	Filtered      *prometheus.CounterVec   // channel
	Sent          *prometheus.CounterVec   // channel, destination
	Failed        *prometheus.CounterVec   // channel, destination, kind (rejected|transport)
	DeadLetters   *prometheus.CounterVec   // channel, destination
	QueueDepth    *prometheus.GaugeVec     // channel, queue (inbound | destination name)
	AckLatency    *prometheus.HistogramVec // channel: receive to durable commit
	DeliveryTime  *prometheus.HistogramVec // channel, destination: one attempt
	EndToEnd      *prometheus.HistogramVec // channel, destination: received to delivered
	ProcessErrors *prometheus.CounterVec   // channel, stage

	JobsDispatched *prometheus.CounterVec   // plugin: job attempts published
	JobResults     *prometheus.CounterVec   // plugin, status: final outcomes of jobs
	JobLatency     *prometheus.HistogramVec // plugin: job published to result recorded
}

// NewMetrics registers Osprey's collectors, plus the Go and process collectors, in a new registry.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "messages_received_total",
			Help: "Messages received by a channel's source, by verdict (accepted, duplicate, rejected)."}, []string{"channel", "verdict"}),
		Filtered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "messages_filtered_total",
			Help: "Messages dropped by a channel filter."}, []string{"channel"}),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "messages_sent_total",
			Help: "Messages a destination's peer confirmed."}, []string{"channel", "destination"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "delivery_failures_total",
			Help: "Failed delivery attempts, by kind: rejected (AE/AR, 4xx) or transport."}, []string{"channel", "destination", "kind"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "dead_letters_total",
			Help: "Messages moved to the dead-letter state."}, []string{"channel", "destination"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "osprey", Name: "queue_depth",
			Help: "Messages waiting in a channel's inbound queue or a destination's queue."}, []string{"channel", "queue"}),
		AckLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "osprey", Name: "ack_latency_seconds",
			Help:    "Time from a message's arrival to its durable commit (when the sender's ACK can go).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"channel"}),
		DeliveryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "osprey", Name: "delivery_attempt_seconds",
			Help:    "Duration of one delivery attempt, until the peer's reply.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"channel", "destination"}),
		EndToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "osprey", Name: "end_to_end_seconds",
			Help:    "Time from arrival to confirmed delivery.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"channel", "destination"}),
		ProcessErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "processing_errors_total",
			Help: "Errors in filter or transform stages."}, []string{"channel", "stage"}),
		JobsDispatched: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "ai_jobs_dispatched_total",
			Help: "AI job attempts published to a plugin's queue."}, []string{"plugin"}),
		JobResults: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osprey", Name: "ai_job_results_total",
			Help: "AI jobs ended, by status: completed, failed, not_applicable, timeout, invalid."}, []string{"plugin", "status"}),
		JobLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "osprey", Name: "ai_job_latency_seconds",
			Help:    "Time from a job attempt's publication to its result being recorded.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}, []string{"plugin"}),
	}
	r.MustRegister(m.Received, m.Filtered, m.Sent, m.Failed, m.DeadLetters, m.QueueDepth, m.AckLatency,
		m.DeliveryTime, m.EndToEnd, m.ProcessErrors, m.JobsDispatched, m.JobResults, m.JobLatency,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
