package catchup

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Run results (label values of relay_catchup_runs_total).
const (
	resultOK = iota
	resultError
	resultSkipped
	resultGone
	numResults
)

var resultNames = [numResults]string{"ok", "error", "skipped", "gone"}

// Store operations (label values of relay_catchup_store_errors_total).
const (
	opLoad = iota
	opWrite
	opFlush
	numOps
)

var opNames = [numOps]string{"load", "write", "flush"}

type metrics struct {
	queued, running, backoff prometheus.Gauge
	runs                     [numResults]prometheus.Counter
	replayed                 *prometheus.CounterVec
	pages, truncated         prometheus.Counter
	retries, flushed         prometheus.Counter
	rejected                 prometheus.Counter
	storeErrors              [numOps]prometheus.Counter
	duration, latency        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_catchup_" + name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_catchup_" + name, Help: help})
	}
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_catchup_runs_total",
		Help: "Catch-ups finished, by result: ok, error (gave up), skipped (no catch-up data), gone (contact or subscription no longer exists).",
	}, []string{"result"})
	storeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_catchup_store_errors_total",
		Help: "Cursor store calls that failed, by operation: load, write (catch-up), flush (live cursors).",
	}, []string{"op"})
	buckets := []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	m := &metrics{
		queued:  gauge("queued", "Subscriptions waiting for a catch-up worker."),
		running: gauge("running", "Catch-ups running."),
		backoff: gauge("backoff", "Catch-ups waiting to retry after a failed attempt."),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_catchup_replayed_total",
			Help: "Events replayed from the public API, by event.",
		}, []string{"event"}),
		pages:     counter("pages_total", "Message pages fetched from the public API."),
		truncated: counter("truncated_total", "Conversations whose missed messages exceeded MaxPages; older ones were not replayed."),
		retries:   counter("retries_total", "Failed catch-up attempts that will be retried."),
		flushed:   counter("cursor_flushes_total", "Cursors moved by live events and written to the store."),
		rejected:  counter("rejected_total", "Replayed events the fan-out rejected for good (unroutable, too large, refused by the stream), skipped so the cursor can move on."),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "relay_catchup_duration_seconds", Help: "Duration of one catch-up attempt.", Buckets: buckets,
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "relay_catchup_latency_seconds", Help: "Time from trigger to a completed catch-up (queueing and retries included).", Buckets: buckets,
		}),
	}
	for i, name := range resultNames {
		m.runs[i] = runs.WithLabelValues(name)
	}
	for i, name := range opNames {
		m.storeErrors[i] = storeErrors.WithLabelValues(name)
	}
	for _, ev := range []string{evMessageCreated, evConversationCreated, evStatusChanged} {
		m.replayed.WithLabelValues(ev)
	}
	for _, col := range []prometheus.Collector{
		m.queued, m.running, m.backoff, runs, m.replayed, m.pages, m.truncated, m.retries, m.flushed, m.rejected,
		storeErrors, m.duration, m.latency,
	} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("catchup: register metrics: %w", err)
		}
	}
	return m, nil
}
