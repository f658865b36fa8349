package cable

import "github.com/prometheus/client_golang/prometheus"

// Drop reasons.
const (
	dropQueueFull   = "queue_full"         // delivery queue of a connection full
	dropUnknownSub  = "unknown_identifier" // broadcast for no subscription of this connection
	dropSendFull    = "send_queue_full"    // outbound command queue full
	dropDecodeError = "decode_error"       // malformed or unknown frame
	dropOversized   = "oversized"          // frame above ReadLimit
)

// Connection states.
const (
	connDialing   = "dialing"
	connConnected = "connected"
	connBackoff   = "backoff"
)

type metrics struct {
	conns          *prometheus.GaugeVec
	subs           *prometheus.GaugeVec
	reconnects     *prometheus.CounterVec
	confirmLatency prometheus.Histogram
	frames         *prometheus.CounterVec
	drops          *prometheus.CounterVec
	queueDepth     prometheus.Gauge
	subscribes     prometheus.Counter
	confirmMisses  prometheus.Counter
	verifications  *prometheus.CounterVec

	// Hot-path children, resolved once.
	framePing, frameBroadcast prometheus.Counter
	subState                  [numStates]prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_cable_connections", Help: "Websocket connections to Chatwoot by state.",
		}, []string{"state"}),
		subs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relay_cable_subscriptions", Help: "Subscriptions by state.",
		}, []string{"state"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_cable_reconnects_total", Help: "Connection restarts by reason.",
		}, []string{"reason"}),
		confirmLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_cable_confirm_latency_seconds",
			Help:    "Time from sending subscribe to confirm_subscription.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_cable_frames_received_total", Help: "Frames received by type.",
		}, []string{"type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_cable_dropped_total", Help: "Frames or commands dropped by reason.",
		}, []string{"reason"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_cable_subscribe_queue_depth", Help: "Subscriptions waiting for their paced subscribe.",
		}),
		subscribes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_cable_subscribes_sent_total", Help: "Subscribe commands sent.",
		}),
		confirmMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_cable_confirm_timeouts_total", Help: "Subscribes that got no confirm in time.",
		}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_cable_verifications_total", Help: "Verifier calls by verdict.",
		}, []string{"verdict"}),
	}
	reg.MustRegister(m.conns, m.subs, m.reconnects, m.confirmLatency, m.frames, m.drops,
		m.queueDepth, m.subscribes, m.confirmMisses, m.verifications)
	for _, s := range []string{connDialing, connConnected, connBackoff} {
		m.conns.WithLabelValues(s)
	}
	for s := State(0); s < numStates; s++ {
		m.subState[s] = m.subs.WithLabelValues(s.String())
	}
	for t := FrameInvalid; t <= FrameBroadcast; t++ {
		m.frames.WithLabelValues(t.String())
	}
	for _, r := range []string{dropQueueFull, dropUnknownSub, dropSendFull, dropDecodeError, dropOversized} {
		m.drops.WithLabelValues(r)
	}
	m.framePing = m.frames.WithLabelValues(FramePing.String())
	m.frameBroadcast = m.frames.WithLabelValues(FrameBroadcast.String())
	return m
}
