package webhook

import (
	"context"
	"sync"
	"time"
)

// Circuit states.
const (
	circuitClosed   = "closed"
	circuitOpen     = "open"
	circuitHalfOpen = "half_open"
)

// breaker pauses an endpoint after threshold consecutive failed attempts:
// open for cooldown, then one probe attempt (half-open) whose success
// closes the circuit and whose failure opens it again. Attempts of every
// conversation pass through it.
type breaker struct {
	threshold int
	cooldown  time.Duration
	onChange  func(from, to string)

	mu       sync.Mutex // guards the fields below
	state    string
	failures int
	until    time.Time     // end of the open period
	probing  bool          // a half-open probe is in flight
	changed  chan struct{} // closed and replaced at every transition
}

func newBreaker(threshold int, cooldown time.Duration, onChange func(from, to string)) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, onChange: onChange,
		state: circuitClosed, changed: make(chan struct{})}
}

// wait blocks until an attempt may be made: at once while closed, after
// the cooldown for the single probe, or when the probe closed the circuit.
func (b *breaker) wait(ctx context.Context) error {
	for {
		d, ch, ok := b.admit()
		if ok {
			return nil
		}
		var timeout <-chan time.Time
		if d > 0 {
			t := time.NewTimer(d)
			timeout = t.C
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-timeout:
		}
	}
}

// admit decides one attempt: ok, or how long to wait and what to watch.
func (b *breaker) admit() (time.Duration, <-chan struct{}, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitClosed:
		return 0, nil, true
	case circuitOpen:
		if d := time.Until(b.until); d > 0 {
			return d, b.changed, false
		}
		b.set(circuitHalfOpen)
	}
	if !b.probing {
		b.probing = true
		return 0, nil, true
	}
	return 0, b.changed, false
}

// record counts the result of an attempt that wait admitted.
func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures = 0
		b.probing = false
		if b.state != circuitClosed {
			b.set(circuitClosed)
		}
		return
	}
	b.failures++
	if b.state == circuitHalfOpen || (b.state == circuitClosed && b.failures >= b.threshold) {
		b.probing = false
		b.until = time.Now().Add(b.cooldown)
		b.set(circuitOpen)
	}
}

// set moves to state and wakes the waiters. Called with mu held.
func (b *breaker) set(state string) {
	from := b.state
	b.state = state
	close(b.changed)
	b.changed = make(chan struct{})
	if b.onChange != nil {
		b.onChange(from, state)
	}
}

// current returns the state (for tests and the API).
func (b *breaker) current() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
