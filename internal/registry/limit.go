package registry

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/api"
)

// limit caps the number of subscriptions. Re-registrations of a known
// subscription are never refused; new ones past the cap are, with
// api.ErrLimit. Refusals are counted and logged at most once a minute.
type limit struct {
	max     int // 0: unlimited
	refused prometheus.Counter

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int // refusals since the last log line
	logEvery time.Duration
}

// limitLogEvery bounds the log lines about refused registrations.
const limitLogEvery = time.Minute

// SetLimit caps the subscriptions the registry holds at max (0: no cap)
// and registers relay_subscriptions_limit and
// relay_subscriptions_refused_total on reg (nil: not exported). Call it
// before use.
func (r *Registry) SetLimit(max int, reg prometheus.Registerer) error {
	if max < 0 {
		return fmt.Errorf("registry: limit %d must not be negative", max)
	}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_subscriptions_limit", Help: "Most subscriptions the relay holds (RELAY_MAX_SUBSCRIPTIONS); 0 = no limit.",
	})
	gauge.Set(float64(max))
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_subscriptions_refused_total", Help: "New subscriptions refused because the limit was reached.",
	})
	if reg != nil {
		if err := reg.Register(gauge); err != nil {
			return err
		}
		if err := reg.Register(refused); err != nil {
			return err
		}
	}
	r.limit = &limit{max: max, refused: refused, logEvery: limitLogEvery}
	return nil
}

// admit reports whether n more new subscriptions fit beside those held,
// counting and logging a refusal. The caller holds writeMu.
func (r *Registry) admit(n int) error {
	l := r.limit
	if l == nil || l.max == 0 {
		return nil
	}
	held := r.pool.Len()
	if held+n <= l.max {
		return nil
	}
	l.refused.Inc()
	l.mu.Lock()
	l.unlogged++
	if now := time.Now(); now.Sub(l.lastLog) >= l.logEvery {
		r.log.Warn("new subscriptions refused: the subscription limit is reached (RELAY_MAX_SUBSCRIPTIONS)",
			"limit", l.max, "held", held, "refused", l.unlogged)
		l.lastLog, l.unlogged = now, 0
	}
	l.mu.Unlock()
	return fmt.Errorf("%w: the relay holds its maximum of %d subscriptions", api.ErrLimit, l.max)
}
