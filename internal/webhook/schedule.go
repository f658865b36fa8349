package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// DefaultSchedule is the wait before each retry after a failed first
// attempt, as the Standard Webhooks recommendation has it: immediately,
// then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// retryDelay returns how long to wait after the failed attempt number n
// (0-based): the schedule's entry spread by ±jitter, and never less than
// the receiver's Retry-After (itself capped at maxRetryAfter).
func retryDelay(schedule []time.Duration, n int, jitter float64, retryAfter, maxRetryAfter time.Duration) time.Duration {
	d := schedule[min(n, len(schedule)-1)]
	if jitter > 0 {
		d = time.Duration(float64(d) * (1 + jitter*(2*rand.Float64()-1)))
	}
	return max(d, min(retryAfter, maxRetryAfter))
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. Missing, malformed or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
