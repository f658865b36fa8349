package chatwoot

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"
)

// retryPolicy decides whether and when a failed attempt is retried.
type retryPolicy struct {
	maxAttempts int
	base, max   time.Duration
}

// backoff is the delay before retry number n (1-based): base·2^(n-1) capped
// at max, with "equal jitter" so the delay lies in [d/2, d].
func (p retryPolicy) backoff(n int) time.Duration {
	d := p.base
	for i := 1; i < n && d < p.max; i++ {
		d *= 2
	}
	d = min(d, p.max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryReason returns the kind of failure that allows another attempt, or ""
// when the attempt must not be repeated.
//
//   - 429 (Rack::Attack, rejected before the controller): any method.
//   - Dial failure (nothing was sent): any method.
//   - Other connection failures, 502/503/504: GET and HEAD only, since a POST
//     or PATCH may have been executed.
//   - Timeouts, other statuses: never.
func retryReason(method string, resp *http.Response, err error) Kind {
	safe := method == http.MethodGet || method == http.MethodHead
	if err != nil {
		var ae *APIError
		if !errors.As(err, &ae) || ae.Kind != KindUnreachable {
			return ""
		}
		if safe || isDialError(err) {
			return KindUnreachable
		}
		return ""
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return KindRateLimited
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if safe {
			return KindUpstream
		}
	}
	return ""
}

// fitsDeadline reports whether ctx leaves room to sleep d and try again.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
