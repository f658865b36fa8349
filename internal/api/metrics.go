package api

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the outcome metrics.
const (
	echoReceived = "received"
	echoTimeout  = "timeout"
	echoCanceled = "canceled"
	echoOverflow = "overflow" // the tracker was full

	regCreated         = "created"
	regExisting        = "existing"
	regFailed          = "failed"
	regInvalidResponse = "invalid_response"

	lookupFound     = "found"
	lookupAbsent    = "absent"
	lookupUndecided = "undecided"
)

// metrics are the API's collectors. Label values are fixed: route
// templates, method names, status classes, outcomes.
type metrics struct {
	requests      *prometheus.CounterVec   // route, method, code
	duration      *prometheus.HistogramVec // route
	replays       prometheus.Counter
	conflicts     prometheus.Counter
	echoWaits     *prometheus.CounterVec // outcome
	registrations *prometheus.CounterVec // outcome
	lookups       *prometheus.CounterVec // outcome
	inflight      prometheus.Gauge
	overloaded    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_api_requests_total",
			Help: "HTTP API requests by route template, method and status class.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relay_api_request_duration_seconds",
			Help:    "Time to answer an HTTP API request, by route template (proxied routes include Chatwoot's time).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_api_idempotent_replays_total",
			Help: "Message sends answered from a stored Idempotency-Key response instead of posting again.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_api_idempotency_conflicts_total",
			Help: "Message sends refused with 409 because the same Idempotency-Key was still being processed.",
		}),
		echoWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_api_echo_waits_total",
			Help: "Message sends with ?wait=echo by outcome (received, timeout, canceled, overflow).",
		}, []string{"outcome"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_api_contact_registrations_total",
			Help: "Subscriptions registered from proxied contact create/show responses, by outcome.",
		}, []string{"outcome"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_api_idempotency_lookups_total",
			Help: "Retries of a message send whose outcome was unknown, by what the lookup decided (found, absent: posted again, undecided: 503).",
		}, []string{"outcome"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_api_requests_in_flight",
			Help: "HTTP API requests being served, within the RELAY_HTTP_MAX_CONCURRENT bound (health, readiness and metrics not counted).",
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_api_overload_refusals_total",
			Help: "HTTP API requests refused with 503 because RELAY_HTTP_MAX_CONCURRENT requests were in flight.",
		}),
	}
	for _, o := range []string{echoReceived, echoTimeout, echoCanceled, echoOverflow} {
		m.echoWaits.WithLabelValues(o)
	}
	for _, o := range []string{regCreated, regExisting, regFailed, regInvalidResponse} {
		m.registrations.WithLabelValues(o)
	}
	for _, o := range []string{lookupFound, lookupAbsent, lookupUndecided} {
		m.lookups.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.replays, m.conflicts, m.echoWaits, m.registrations, m.lookups, m.inflight, m.overloaded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics (one Server per registry): %w", err)
		}
	}
	return m, nil
}

// codeClass maps a status to a fixed label value.
func codeClass(status int) string {
	switch {
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

// methodLabel maps a request method to a fixed label value.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	default:
		return "OTHER"
	}
}
