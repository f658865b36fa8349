package webhook

import (
	"context"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// delivery is the part of a JetStream message a lane uses;
// jetstream.Msg satisfies it.
type delivery interface {
	Data() []byte
	Headers() nats.Header
	Subject() string
	Ack() error
	InProgress() error
	Metadata() (*jetstream.MsgMetadata, error)
}

// lane delivers the events of the conversations hashed to it one at a
// time, in stream order. It owns its delivered-but-unacknowledged messages
// and keeps them alive (InProgress) while the head waits for a retry, so
// JetStream redelivers nothing that is still queued here.
type lane struct {
	slots chan struct{} // one per queued message; bounds the lane
	wake  chan struct{} // 1-buffered: the queue grew

	mu    sync.Mutex // guards queue
	queue []delivery // queue[0] is being delivered
}

func newLane(depth int) *lane {
	return &lane{slots: make(chan struct{}, depth), wake: make(chan struct{}, 1)}
}

// push queues m, waiting for room.
func (l *lane) push(ctx context.Context, m delivery) error {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	l.queue = append(l.queue, m)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// head waits for the oldest queued message.
func (l *lane) head(ctx context.Context) (delivery, error) {
	for {
		l.mu.Lock()
		if len(l.queue) > 0 {
			m := l.queue[0]
			l.mu.Unlock()
			return m, nil
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pop removes the head once it is settled.
func (l *lane) pop() {
	l.mu.Lock()
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.mu.Unlock()
	<-l.slots
}

// keepAlive tells JetStream every interval that the queued messages are
// still being worked on.
func (l *lane) keepAlive(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		held := append([]delivery(nil), l.queue...)
		l.mu.Unlock()
		for _, m := range held {
			_ = m.InProgress()
		}
	}
}

// laneKey is the ordering key of a subject: account and conversation
// (<prefix>.<account>.<inbox>.<contact>.<conversation>.<event...>), or
// account and contact when the conversation is unknown ("_"). Other
// subjects (relay lifecycle events) share one key.
func laneKey(subject string) string {
	t := strings.SplitN(subject, ".", 6)
	if len(t) < 6 || t[1] == "relay" {
		return "relay"
	}
	if t[4] != "_" {
		return t[1] + ".c." + t[4]
	}
	return t[1] + ".p." + t[3]
}

// laneIndex maps a key to one of n lanes.
func laneIndex(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}
