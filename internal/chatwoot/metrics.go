package chatwoot

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the client's Prometheus collectors. Label values are fixed:
// route templates, method names, status classes and error kinds.
type metrics struct {
	requests    *prometheus.CounterVec   // route, method, code: one per attempt
	duration    *prometheus.HistogramVec // route, method: time to response headers
	errors      *prometheus.CounterVec   // kind: one per failed call
	retries     *prometheus.CounterVec   // reason (a Kind)
	limiterWait prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_chatwoot_requests_total",
			Help: "HTTP attempts to Chatwoot's public API by route template, method and status class (code=error: no response).",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_chatwoot_request_duration_seconds",
			Help:    "Time from sending a request to Chatwoot until its response headers (or failure), per attempt.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"route", "method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_chatwoot_errors_total",
			Help: "Calls to Chatwoot's public API that failed, after retries, by error kind.",
		}, []string{"kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_chatwoot_retries_total",
			Help: "Requests to Chatwoot retried after backoff, by the kind of failure that caused the retry.",
		}, []string{"reason"}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_chatwoot_limiter_wait_seconds",
			Help:    "Time requests waited for the shared Chatwoot rate limiter.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	for _, k := range allKinds {
		m.errors.WithLabelValues(string(k))
	}
	for _, k := range []Kind{KindRateLimited, KindUpstream, KindUnreachable} {
		m.retries.WithLabelValues(string(k))
	}
	if reg == nil {
		return m, nil
	}
	return m, m.register(reg)
}

// register adds the collectors to reg, adopting collectors that another
// client already registered there so that clients can share a registry.
func (m *metrics) register(reg prometheus.Registerer) error {
	var err error
	if m.requests, err = registerOrReuse(reg, m.requests); err != nil {
		return err
	}
	if m.duration, err = registerOrReuse(reg, m.duration); err != nil {
		return err
	}
	if m.errors, err = registerOrReuse(reg, m.errors); err != nil {
		return err
	}
	if m.retries, err = registerOrReuse(reg, m.retries); err != nil {
		return err
	}
	m.limiterWait, err = registerOrReuse(reg, m.limiterWait)
	return err
}

func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("chatwoot: register metrics: %w", err)
}

// codeClass maps a status to a fixed label value.
func codeClass(status int) string {
	switch {
	case status == 0:
		return "error"
	case status >= 200 && status < 300:
		return "2xx"
	case status >= 300 && status < 400:
		return "3xx"
	case status >= 400 && status < 500:
		return "4xx"
	case status >= 500 && status < 600:
		return "5xx"
	default:
		return "other"
	}
}
