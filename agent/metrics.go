package agent

import (
	"time"

	"github.com/nodeagent/nodeagent/metrics"
)

// Metrics are the agent's Prometheus metrics, served on /metrics by run.
type Metrics struct {
	Registry      *metrics.Registry
	Applies       metrics.CounterVec // by result: ok, failed, refused
	ApplyDuration *metrics.Histogram
	SerialApplied *metrics.Gauge
	SerialSeen    *metrics.Gauge
	LastSuccess   *metrics.Gauge
	Ready         *metrics.Gauge
	Smoke         metrics.GaugeVec   // by check: 1 passed, 0 failed
	Polls         metrics.CounterVec // by outcome: changed, not_modified, error
	Reports       metrics.CounterVec // node report writes by result: ok, error
}

// NewMetrics registers the agent's metrics (plus Go and process metrics) on
// a fresh registry.
func NewMetrics() *Metrics {
	r := metrics.NewRegistry(true)
	return &Metrics{
		Registry: r,
		Applies: r.NewCounterVec("nodeagent_applies_total",
			"Applies by result (ok, failed, refused: an invalid or refused document that was not applied).",
			"result", "ok", "failed", "refused"),
		ApplyDuration: r.NewHistogram("nodeagent_apply_duration_seconds", "Wall time of an apply, smoke checks included.",
			[]float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}),
		SerialApplied: r.NewGauge("nodeagent_topology_serial_applied", "Serial of the topology document the node last applied."),
		SerialSeen:    r.NewGauge("nodeagent_topology_serial_seen", "Highest serial the node has fetched, applied or not."),
		LastSuccess:   r.NewGauge("nodeagent_last_success_timestamp_seconds", "Unix time of the last successful apply."),
		Ready:         r.NewGauge("nodeagent_ready", "1 when the node is ready to serve, else 0."),
		Smoke: r.NewGaugeVec("nodeagent_smoke_check_ok",
			"Result of each smoke check in the last run: 1 passed, 0 failed.", "check"),
		Polls: r.NewCounterVec("nodeagent_source_polls_total",
			"Topology source checks by outcome (changed, not_modified, error).",
			"outcome", "changed", "not_modified", "error"),
		Reports: r.NewCounterVec("nodeagent_reports_total",
			"Node report writes to the fleet.reports prefix by result (ok, error); a failed write never fails an apply.",
			"result", "ok", "error"),
	}
}

func (m *Metrics) observeApply(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.Applies.With(result).Inc()
	m.ApplyDuration.Observe(took.Seconds())
}
