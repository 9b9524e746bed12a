package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the agent's Prometheus metrics, served on /metrics by run.
type Metrics struct {
	Registry      *prometheus.Registry
	Applies       *prometheus.CounterVec // by result: ok, failed, invalid
	ApplyDuration prometheus.Histogram
	SerialApplied prometheus.Gauge
	SerialSeen    prometheus.Gauge
	LastSuccess   prometheus.Gauge
	Ready         prometheus.Gauge
	Smoke         *prometheus.GaugeVec   // by check: 1 passed, 0 failed
	Polls         *prometheus.CounterVec // by outcome: changed, not_modified, error
}

// NewMetrics registers the agent's metrics (plus Go and process metrics) on
// a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodeagent_applies_total", Help: "Applies by result (ok, failed, refused: an invalid or refused document that was not applied).",
		}, []string{"result"}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodeagent_apply_duration_seconds", Help: "Wall time of an apply, smoke checks included.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		SerialApplied: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeagent_topology_serial_applied", Help: "Serial of the topology document the node last applied."}),
		SerialSeen:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeagent_topology_serial_seen", Help: "Highest serial the node has fetched, applied or not."}),
		LastSuccess:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeagent_last_success_timestamp_seconds", Help: "Unix time of the last successful apply."}),
		Ready:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodeagent_ready", Help: "1 when the node is ready to serve, else 0."}),
		Smoke: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodeagent_smoke_check_ok", Help: "Result of each smoke check in the last run: 1 passed, 0 failed.",
		}, []string{"check"}),
		Polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodeagent_source_polls_total", Help: "Topology source checks by outcome (changed, not_modified, error).",
		}, []string{"outcome"}),
	}
	m.Registry.MustRegister(m.Applies, m.ApplyDuration, m.SerialApplied, m.SerialSeen, m.LastSuccess, m.Ready, m.Smoke, m.Polls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"ok", "failed", "refused"} {
		m.Applies.WithLabelValues(r)
	}
	for _, o := range []string{"changed", "not_modified", "error"} {
		m.Polls.WithLabelValues(o)
	}
	return m
}

func (m *Metrics) observeApply(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.Applies.WithLabelValues(result).Inc()
	m.ApplyDuration.Observe(took.Seconds())
}
