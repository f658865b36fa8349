package cluster

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// SharedRate is a rate for the whole deployment: every replica waits on
// one GCRA bucket in Redis (go-redis/redis_rate, timed by Redis' own
// clock, so replicas' clocks do not matter). While Redis is out of reach
// it falls back to a local bucket running at the rate divided by the
// members last seen, so that the replicas together stay near the rate.
type SharedRate struct {
	lim     *redis_rate.Limiter
	key     string
	limit   redis_rate.Limit
	perSec  float64
	burst   int
	members func() int // live members; nil or < 1 counts as 1
	local   atomic.Pointer[rate.Limiter]
	retryAt atomic.Int64 // unix ns before which Redis is not asked again
	shares  atomic.Int64 // members the local bucket was sized for
	log     *slog.Logger
	denied  prometheus.Counter
	offline prometheus.Counter
}

// RateOptions configure NewSharedRate.
type RateOptions struct {
	// Key names the bucket in Redis (under the deployment's key prefix).
	Key string
	// PerSecond and Burst are the deployment's rate.
	PerSecond float64
	Burst     int
	// Members returns the live member count for the fallback share.
	Members    func() int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Name labels the metrics (subscribe, chatwoot).
	Name string
}

// offlineRetry is how long a SharedRate paces locally after Redis failed.
const offlineRetry = 5 * time.Second

// ratePeriod is the GCRA period: redis_rate takes a whole number of
// events per period, so a long one keeps fractional rates exact to 0.01/s.
const ratePeriod = 100 * time.Second

// NewSharedRate returns a deployment-wide rate on rdb.
func NewSharedRate(rdb redis.UniversalClient, o RateOptions) *SharedRate {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &SharedRate{
		lim: redis_rate.NewLimiter(rdb), key: o.Key, perSec: o.PerSecond, burst: max(o.Burst, 1), members: o.Members, log: o.Logger,
		limit: redis_rate.Limit{Rate: max(1, int(math.Floor(o.PerSecond*ratePeriod.Seconds()))), Burst: max(o.Burst, 1), Period: ratePeriod},
		denied: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_cluster_rate_waits_total",
			Help: "Waits on a deployment-wide rate (the shared bucket was empty).", ConstLabels: prometheus.Labels{"rate": o.Name}}),
		offline: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_cluster_rate_local_total",
			Help: "Events paced by the local share of a deployment-wide rate because Redis was out of reach.", ConstLabels: prometheus.Labels{"rate": o.Name}}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.denied, s.offline)
	}
	return s
}

// Wait blocks until one event may happen deployment-wide, or ctx ends.
// After a Redis failure it paces locally for offlineRetry before asking
// Redis again, so that an unreachable Redis costs one dial timeout, not
// one per event.
func (s *SharedRate) Wait(ctx context.Context) error {
	for {
		if time.Now().UnixNano() < s.retryAt.Load() {
			s.offline.Inc()
			return s.localShare().Wait(ctx)
		}
		res, err := s.lim.Allow(ctx, s.key, s.limit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.retryAt.Store(time.Now().Add(offlineRetry).UnixNano())
			continue
		}
		if res.Allowed > 0 {
			return nil
		}
		s.denied.Inc()
		t := time.NewTimer(max(res.RetryAfter, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// localShare is the fallback bucket sized for the members last seen.
func (s *SharedRate) localShare() *rate.Limiter {
	n := 1
	if s.members != nil {
		n = max(s.members(), 1)
	}
	if l := s.local.Load(); l != nil && s.shares.Load() == int64(n) {
		return l
	}
	l := rate.NewLimiter(rate.Limit(s.perSec/float64(n)), max(s.burst/n, 1))
	s.local.Store(l)
	s.shares.Store(int64(n))
	s.log.Warn("Redis out of reach: pacing by this replica's share of a deployment-wide rate", "key", s.key, "members", n)
	return l
}

// Members returns how many live members this member saw last.
func (c *Cluster) Members() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}
