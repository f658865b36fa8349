package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the engine. Labels are fixed sets (outcome, class, state):
// never an endpoint id, URL or secret.
type metrics struct {
	attempts *prometheus.CounterVec // outcome, class
	latency  prometheus.Histogram
	dead     prometheus.Counter
	circuits *prometheus.GaugeVec // state
	backlog  prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, backlog func() float64) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome (success, retry, dead, gone) and answer class (2xx..5xx, timeout, network, refused).",
		}, []string{"outcome", "class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_webhook_attempt_seconds",
			Help:    "Duration of one webhook delivery attempt, request to answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_webhook_dead_letters_total",
			Help: "Events published on a dead-letter subject after the last attempt failed.",
		}),
		circuits: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_webhook_circuits",
			Help: "Endpoints delivering in this process, by circuit state (closed, open, half_open).",
		}, []string{"state"}),
		backlog: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relay_webhook_backlog",
			Help: "Events not yet delivered, summed over the endpoints delivering in this process (consumer pending + unacknowledged).",
		}, backlog),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.latency, m.dead, m.circuits, m.backlog)
	}
	return m
}

func (m *metrics) attempt(outcome string, r result) {
	m.attempts.WithLabelValues(outcome, r.class).Inc()
	m.latency.Observe(r.latency.Seconds())
}

// circuitChange moves one endpoint between states ("" = not counted).
func (m *metrics) circuitChange(from, to string) {
	if from != "" {
		m.circuits.WithLabelValues(from).Dec()
	}
	if to != "" {
		m.circuits.WithLabelValues(to).Inc()
	}
}
