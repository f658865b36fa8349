package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// consumer is the backend service of the picture: one NATS connection with
// a counting subscription per relay or floor.
type consumer struct {
	nc   *nats.Conn
	base time.Time
}

func newConsumer(url string, base time.Time) (*consumer, error) {
	nc, err := nats.Connect(url, nats.Name("relay-bench-consumer"))
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return &consumer{nc: nc, base: base}, nil
}

func (c *consumer) close() { c.nc.Close() }

// counter counts the messages of one subject and, while recording, their
// latency from the fake's send time.
type counter struct {
	base time.Time
	sub  *nats.Subscription
	n    atomic.Int64
	last atomic.Int64 // since-base of the latest message

	mu        sync.Mutex
	recording bool
	samples   []int64 // latencies in nanoseconds
	unstamped int64
}

// count subscribes to subject. Pending limits are off: the consumer must
// never be the one that drops.
func (c *consumer) count(subject string) (*counter, error) {
	k := &counter{base: c.base}
	sub, err := c.nc.Subscribe(subject, k.handle)
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	k.sub = sub
	return k, c.nc.Flush()
}

func (k *counter) handle(m *nats.Msg) {
	now := int64(time.Since(k.base))
	k.n.Add(1)
	k.last.Store(now)
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.recording {
		return
	}
	if ts, ok := sentAt(m.Data); ok {
		k.samples = append(k.samples, now-ts)
	} else {
		k.unstamped++
	}
}

// reset zeroes the counter and starts or stops recording latencies.
func (k *counter) reset(record bool, expect int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.n.Store(0)
	k.last.Store(0)
	k.recording = record
	k.samples = make([]int64, 0, expect)
	k.unstamped = 0
}

// take returns the recorded latencies and stops recording.
func (k *counter) take() ([]int64, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.recording = false
	s, u := k.samples, k.unstamped
	k.samples, k.unstamped = nil, 0
	return s, u
}

// settle waits until want messages arrived, or nothing arrived for quiet.
func (k *counter) settle(ctx context.Context, want int64, quiet time.Duration) int64 {
	seen, since := k.n.Load(), time.Now()
	for seen < want && time.Since(since) < quiet {
		if !sleepCtx(ctx, 5*time.Millisecond) {
			break
		}
		if n := k.n.Load(); n != seen {
			seen, since = n, time.Now()
		}
	}
	return k.n.Load()
}
