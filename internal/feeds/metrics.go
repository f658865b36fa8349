package feeds

import "github.com/prometheus/client_golang/prometheus"

// metrics are the relay_feed_* collectors.
type metrics struct {
	catchups *prometheus.CounterVec // by result: ok, error
	replayed prometheus.Counter
	splits   prometheus.Counter
	profiles *prometheus.CounterVec // by result: ok, refused, error
	subs     prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, m *Manager) *metrics {
	mt := &metrics{
		catchups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_feed_catchups_total",
			Help: "Account feed catch-ups finished, by result: ok (NATS holds everything replayed and the cursor moved), error (retried).",
		}, []string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_feed_replayed_total",
			Help: "Messages account feed catch-ups read through the Application API and handed to the fan-out (duplicates included).",
		}),
		splits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_feed_catchup_splits_total",
			Help: "Account feed catch-up runs that reached their bounds (pages, calls) before the walk ended; the next run goes on where it stopped.",
		}),
		profiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_feed_profile_reads_total",
			Help: "Reads of a feed user's profile, by result: ok, refused (Chatwoot refused the access token), error.",
		}, []string{"result"}),
		subs: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "relay_feed_subscriptions",
			Help: "Account feed subscriptions (one per feed and account) in the cable pool.",
		}, func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(len(m.subs))
		}),
	}
	for _, r := range []string{"ok", "error"} {
		mt.catchups.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "refused", "error"} {
		mt.profiles.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(mt.catchups, mt.replayed, mt.splits, mt.profiles, mt.subs)
	}
	return mt
}
