package webhook

import (
	"sync"
	"time"
)

// Attempt is one delivery attempt as GET /v1/webhooks/{id}/deliveries
// shows it. It holds no secret and no URL.
type Attempt struct {
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id"`
	Seq       uint64    `json:"stream_seq"`
	Subject   string    `json:"subject"`
	Attempt   int       `json:"attempt"`
	Status    int       `json:"status"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	Outcome   string    `json:"outcome"`
}

// ring keeps the last attempts of one endpoint in this process.
type ring struct {
	mu   sync.Mutex
	buf  []Attempt
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Attempt, n)} }

func (r *ring) add(a Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = a
	r.next = (r.next + 1) % len(r.buf)
	r.full = r.full || r.next == 0
}

// recent returns the attempts, newest first.
func (r *ring) recent() []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	out := make([]Attempt, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}
