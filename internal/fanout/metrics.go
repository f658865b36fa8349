package fanout

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// dropReason is the fixed label set of relay_fanout_events_dropped_total.
type dropReason uint8

const (
	dropInvalid      dropReason = iota // message is not a JSON object with an event name
	dropRouting                        // an id is not a valid subject token
	dropFiltered                       // private-note typing
	dropDuplicate                      // dedup window hit
	dropBufferFull                     // buffer bound reached
	dropTooLarge                       // one event larger than the whole buffer
	dropPublishError                   // NATS refused it for good
	dropShutdown                       // still buffered when Close gave up
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"invalid", "routing", "filtered", "duplicate", "buffer_full", "too_large", "publish_error", "shutdown",
}

// failure is the fixed label set of relay_fanout_publish_failures_total.
type failure uint8

const (
	failNotConnected failure = iota // publish refused: connection or stream not ready
	failDisconnected                // connection lost while awaiting the ack
	failTimeout                     // no ack within the ack timeout
	failNoStream                    // no stream answered (missing, or JetStream starting)
	failRejected                    // the stream answered with an error
	failFull                        // the stream or its server has no room (see streamFull)
	failOther
	numFailures
)

var failureNames = [numFailures]string{"not_connected", "disconnected", "timeout", "no_stream", "rejected", "stream_full", "other"}

type metrics struct {
	published [numKinds]prometheus.Counter
	dropped   [numDropReasons]prometheus.Counter
	failures  [numFailures]prometheus.Counter
	retries   prometheus.Counter
	heldBack  prometheus.Counter
	// publishedNow counts events Handle published itself (core NATS,
	// nothing waiting): a share of published, not an addition.
	publishedNow prometheus.Counter
	latency      prometheus.Histogram
}

// newMetrics registers the fanout metrics; state gauges read f on scrape.
func newMetrics(reg prometheus.Registerer, f *Fanout) (*metrics, error) {
	m := &metrics{}
	published := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_fanout_events_published_total",
		Help: "Events accepted by NATS (JetStream: stored), by event kind.",
	}, []string{"kind"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_fanout_events_dropped_total",
		Help: "Events not published, by reason.",
	}, []string{"reason"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_fanout_publish_failures_total",
		Help: "Failed publish attempts (the event is retried unless dropped), by reason.",
	}, []string{"reason"})
	for k := range numKinds {
		m.published[k] = published.WithLabelValues(k.String())
	}
	for r := range numDropReasons {
		m.dropped[r] = dropped.WithLabelValues(dropNames[r])
	}
	for r := range numFailures {
		m.failures[r] = failures.WithLabelValues(failureNames[r])
	}
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_fanout_publish_retries_total",
		Help: "Events put back at the head of the buffer after a failed publish.",
	})
	m.heldBack = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_fanout_held_back_total",
		Help: "Live events that found the buffer full and waited for room (RELAY_HOLD_BACK) instead of being dropped.",
	})
	m.publishedNow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_fanout_published_inline_total",
		Help: "Events published by the websocket reader itself (core NATS with nothing buffered), without a hand-off to the sender; included in relay_fanout_events_published_total.",
	})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relay_fanout_publish_latency_seconds",
		Help:    "Time from Handle to NATS acceptance (JetStream: ack) per event.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
	})
	cs := append([]prometheus.Collector{published, dropped, failures, m.retries, m.heldBack, m.publishedNow, m.latency}, stateGauges(f)...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// stateGauges read the Fanout's state at scrape time.
func stateGauges(f *Fanout) []prometheus.Collector {
	return []prometheus.Collector{
		gauge("relay_fanout_buffer_bytes", "Bytes held in the buffer (waiting and in flight).", func() float64 {
			b, _ := f.q.held()
			return float64(b)
		}),
		gauge("relay_fanout_buffer_events", "Events held in the buffer (waiting and in flight).", func() float64 {
			_, n := f.q.held()
			return float64(n)
		}),
		gauge("relay_fanout_inflight_events", "Events published and awaiting acknowledgement.", func() float64 {
			return float64(f.inflightN.Load())
		}),
		gauge("relay_fanout_dedup_keys", "Keys in the in-process dedup window.", func() float64 {
			return float64(f.dedup.len())
		}),
		gauge("relay_fanout_nats_connected", "1 when NATS (and in JetStream mode the stream) is usable.", func() float64 {
			return b2f(f.pub.Connected())
		}),
		gauge("relay_fanout_ready", "1 when the fanout is ready (connected and buffer not saturated).", func() float64 {
			return b2f(f.Ready())
		}),
	}
}

func gauge(name, help string, fn func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registerCounter registers c, or returns the counter already registered
// under the same name.
func registerCounter(reg prometheus.Registerer, c prometheus.Counter) prometheus.Counter {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
	}
	return c
}
