package cluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	members       prometheus.Gauge
	buckets       prometheus.Gauge
	held          prometheus.Gauge
	renewFailures prometheus.Counter
	handovers     *prometheus.CounterVec
	fenced        prometheus.Counter
	unreachable   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_cluster_members",
			Help: "Live members this replica sees (itself included)."}),
		buckets: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_cluster_buckets",
			Help: "Buckets of the deployment (fixed)."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_cluster_buckets_held",
			Help: "Buckets whose lease this replica holds."}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_cluster_lease_renew_failures_total",
			Help: "Lease renewals that did not reach the store (the buckets are kept)."}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_cluster_handovers_total",
			Help: "Buckets this replica claimed or gave up, by reason: claimed, rebalance, fenced, shutdown."}, []string{"reason"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_cluster_fenced_buckets_total",
			Help: "Buckets dropped because another member holds their lease now."}),
		unreachable: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_cluster_store_unreachable",
			Help: "1 while the cluster store (Redis) is out of reach and held buckets are kept without renewal."}),
	}
	for _, r := range []string{ReasonClaimed, ReasonRebalance, ReasonFenced, ReasonShutdown} {
		m.handovers.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.members, m.buckets, m.held, m.renewFailures, m.handovers, m.fenced, m.unreachable)
	}
	return m
}
