package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"

	"github.com/relayhq/relay/internal/fanout"
)

// EchoTracker matches message sends with their message.created echoes from
// the live event stream. A sender calls Expect before posting (the echo may
// arrive before Chatwoot's HTTP response), then waits; the event stream
// calls Observe (or ObserveEvent) for every message.created event.
//
// The number of pending expectations is bounded; past the bound, Expect
// returns a wait that reports false at once. It is safe for concurrent use.
//
// It also remembers the last echoMemory echoes observed (echo_id and
// message id), so that a send whose outcome was lost can be looked up when
// the client retries it (Seen).
type EchoTracker struct {
	max int

	mu      sync.Mutex // guards pending, n and the echo memory
	pending map[string]map[*expectation]struct{}
	n       int
	seen    map[string]string // echo_id -> message id ("" when not known)
	ring    []string          // echo_ids in seen, oldest at next once full
	next    int
}

// echoMemory bounds how many observed echoes a tracker remembers.
const echoMemory = 10000

type expectation struct {
	done chan struct{} // closed by Observe
}

// NewEchoTracker returns a tracker holding at most maxPending expectations
// (zero or less: DefaultMaxEchoWaiters).
func NewEchoTracker(maxPending int) *EchoTracker {
	if maxPending <= 0 {
		maxPending = DefaultMaxEchoWaiters
	}
	return &EchoTracker{max: maxPending, pending: make(map[string]map[*expectation]struct{}), seen: make(map[string]string)}
}

// Expect registers interest in echoID. wait blocks until Observe(echoID) has
// been called after Expect (true) or ctx ends (false). cancel forgets the
// expectation; call it when done, whatever wait returned.
func (t *EchoTracker) Expect(echoID string) (wait func(ctx context.Context) bool, cancel func()) {
	wait, cancel, _ = t.expect(echoID)
	return wait, cancel
}

// expect is Expect that also reports whether the expectation was accepted
// (false: empty id or the tracker is full).
func (t *EchoTracker) expect(echoID string) (wait func(context.Context) bool, cancel func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if echoID == "" || t.n >= t.max {
		return func(context.Context) bool { return false }, func() {}, false
	}
	e := &expectation{done: make(chan struct{})}
	set := t.pending[echoID]
	if set == nil {
		set = make(map[*expectation]struct{}, 1)
		t.pending[echoID] = set
	}
	set[e] = struct{}{}
	t.n++
	return e.wait, func() { t.forget(echoID, e) }, true
}

func (e *expectation) wait(ctx context.Context) bool {
	select {
	case <-e.done:
		return true
	case <-ctx.Done():
		select { // an echo and a deadline at once: the echo wins
		case <-e.done:
			return true
		default:
			return false
		}
	}
}

func (t *EchoTracker) forget(echoID string, e *expectation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.pending[echoID]
	if _, ok := set[e]; !ok {
		return // already observed
	}
	delete(set, e)
	t.n--
	if len(set) == 0 {
		delete(t.pending, echoID)
	}
}

// Observe releases every expectation of echoID and remembers the echo.
func (t *EchoTracker) Observe(echoID string) { t.ObserveMessage(echoID, "") }

// Routed releases the sends waiting for a live event's echo: the fan-out
// calls it as an Observer. A replayed copy does not count: the send's
// caller waits for the message to reach subscribers live.
func (t *EchoTracker) Routed(_ string, r fanout.Route) {
	if r.EchoID != "" && !r.Replayed {
		t.ObserveMessage(r.EchoID, r.MessageID)
	}
}

// ObserveMessage is Observe for a message.created whose message id is
// known; Seen then returns it.
func (t *EchoTracker) ObserveMessage(echoID, messageID string) {
	if echoID == "" {
		return
	}
	t.mu.Lock()
	set := t.pending[echoID]
	delete(t.pending, echoID)
	t.n -= len(set)
	t.remember(echoID, messageID)
	t.mu.Unlock()
	for e := range set {
		close(e.done)
	}
}

// remember adds an echo to the memory, forgetting the oldest when full.
func (t *EchoTracker) remember(echoID, messageID string) {
	if _, ok := t.seen[echoID]; ok {
		if messageID != "" {
			t.seen[echoID] = messageID
		}
		return
	}
	if len(t.ring) < echoMemory {
		t.ring = append(t.ring, echoID)
	} else {
		delete(t.seen, t.ring[t.next])
		t.ring[t.next] = echoID
		t.next = (t.next + 1) % echoMemory
	}
	t.seen[echoID] = messageID
}

// Seen reports whether the echo of echoID was observed recently, and the
// message id when it was known.
func (t *EchoTracker) Seen(echoID string) (messageID string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	messageID, ok = t.seen[echoID]
	return messageID, ok
}

// ObserveEvent calls ObserveMessage with data.echo_id and data.id of a
// Chatwoot event body ({"event":"message.created","data":{...}}, the bytes
// the relay publishes). Other events and messages without an echo_id are
// ignored cheaply.
func (t *EchoTracker) ObserveEvent(body []byte) {
	if id, msgID, ok := eventEcho(body); ok {
		t.ObserveMessage(id, msgID)
	}
}

// EventEchoID returns data.echo_id of a message.created event body. A
// numeric echo_id is returned as its JSON text.
func EventEchoID(body []byte) (string, bool) {
	id, _, ok := eventEcho(body)
	return id, ok
}

// eventEcho returns data.echo_id and data.id of a message.created event.
func eventEcho(body []byte) (echoID, messageID string, ok bool) {
	if !bytes.Contains(body, []byte(`"echo_id"`)) {
		return "", "", false
	}
	var ev struct {
		Event string `json:"event"`
		Data  struct {
			EchoID json.RawMessage `json:"echo_id"`
			ID     json.RawMessage `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &ev) != nil || ev.Event != "message.created" {
		return "", "", false
	}
	echoID = scalarText(ev.Data.EchoID)
	return echoID, scalarText(ev.Data.ID), echoID != ""
}

// Pending returns the number of expectations waiting for an echo.
func (t *EchoTracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// newEchoID returns a random, uuid-shaped (version 4) echo_id.
func newEchoID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// scalarText returns a JSON string's value or a JSON number's text; "" for
// anything else (null, objects, arrays, booleans, malformed).
func scalarText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return s
	case c == '-' || (c >= '0' && c <= '9'):
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		return n.String()
	}
	return ""
}
