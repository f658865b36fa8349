package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrReplay reports a replay request that names no event, or an event
// that is not the endpoint's.
var ErrReplay = errors.New("webhook: invalid replay")

// maxDeadScan bounds the dead letters read to find one by event id.
const maxDeadScan = 100_000

// Replay names what to deliver again: exactly one field.
type Replay struct {
	// Seq is a stream sequence: an event of the endpoint, or one of its
	// dead letters.
	Seq uint64 `json:"stream_seq,omitempty"`
	// EventID is a webhook-id (dedup key) of a dead-lettered event.
	EventID string `json:"event_id,omitempty"`
	// Since rewinds the endpoint's consumer to its first event at or after
	// this time: everything from there is delivered again, in order, with
	// the usual retries.
	Since *time.Time `json:"since,omitempty"`
}

// ReplayResult is what a replay did.
type ReplayResult struct {
	// Attempt is the single attempt of a one-event replay.
	Attempt *Attempt `json:"attempt,omitempty"`
	// FromSeq is where a Since replay rewound the consumer (0: no event
	// since that time).
	FromSeq uint64 `json:"from_stream_seq,omitempty"`
}

// Test sends a synthetic relay.webhook.test event to the endpoint once,
// signed like any delivery, and returns the attempt.
func (m *Manager) Test(ctx context.Context, id string) (Attempt, error) {
	ep, err := m.Get(ctx, id)
	if err != nil {
		return Attempt{}, err
	}
	now := time.Now().UTC()
	h := nats.Header{}
	h.Set("Chatwoot-Event", "relay.webhook.test")
	ev := event{id: "test:" + newID()[3:], subject: m.eng.opts.Prefix + ".relay.webhook.test", headers: h,
		body: fmt.Appendf(nil, `{"event":"relay.webhook.test","data":{"endpoint":%q,"sent_at":%q}}`, ep.ID, now.Format(time.RFC3339Nano))}
	return m.eng.once(ctx, ep, ev)
}

// Replay delivers an event again (one attempt, answered here) or rewinds
// the endpoint's consumer (Since).
func (m *Manager) Replay(ctx context.Context, id string, r Replay) (ReplayResult, error) {
	ep, err := m.Get(ctx, id)
	if err != nil {
		return ReplayResult{}, err
	}
	n := 0
	for _, set := range []bool{r.Seq != 0, r.EventID != "", r.Since != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return ReplayResult{}, fmt.Errorf("%w: give exactly one of stream_seq, event_id and since", ErrReplay)
	}
	if r.Since != nil {
		seq, err := m.eng.rewind(ctx, ep, *r.Since)
		return ReplayResult{FromSeq: seq}, err
	}
	ev, err := m.eng.find(ctx, ep, r)
	if err != nil {
		return ReplayResult{}, err
	}
	a, err := m.eng.once(ctx, ep, ev)
	return ReplayResult{Attempt: &a}, err
}

// once makes one attempt of ev to ep and records it.
func (e *Engine) once(ctx context.Context, ep Endpoint, ev event) (Attempt, error) {
	s, err := newSigner(ep.Secrets, ep.ChatwootSignature)
	if err != nil {
		return Attempt{}, err
	}
	res := post(ctx, e.client, &ep, s, ev, e.opts.Timeout)
	outcome := "success"
	if !res.ok() {
		outcome = "failed"
	}
	a := Attempt{At: time.Now().UTC(), EventID: ev.id, Seq: ev.seq, Subject: ev.subject, Attempt: 1,
		Status: res.status, LatencyMS: float64(res.latency.Microseconds()) / 1000, Error: res.err, Outcome: outcome}
	e.ring(ep.ID).add(a)
	return a, nil
}

// find reads the event a one-event replay names.
func (e *Engine) find(ctx context.Context, ep Endpoint, r Replay) (event, error) {
	if r.Seq != 0 {
		s, err := e.js.Stream(ctx, e.opts.Stream)
		if err != nil {
			return event{}, err
		}
		raw, err := s.GetMsg(ctx, r.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return event{}, fmt.Errorf("%w: stream sequence %d", ErrNotFound, r.Seq)
		}
		if err != nil {
			return event{}, err
		}
		return e.fromStored(ep, raw.Subject, raw.Header, raw.Data, raw.Sequence)
	}
	return e.findDead(ctx, ep, r.EventID)
}

// fromStored turns a stored message into the event to deliver: a dead
// letter of ep gives back the original event; any other message must
// match one of ep's subjects.
func (e *Engine) fromStored(ep Endpoint, subject string, h nats.Header, data []byte, seq uint64) (event, error) {
	if subject == DeadSubject(e.opts.Prefix, ep.ID) {
		orig, _ := strconv.ParseUint(h.Get(HeaderDeadSeq), 10, 64)
		clean := nats.Header{}
		for k, v := range h {
			if !strings.HasPrefix(k, "Relay-Webhook-") && k != nats.MsgIdHdr {
				clean[k] = v
			}
		}
		return event{id: h.Get(HeaderDeadEventID), seq: orig, subject: h.Get(HeaderDeadSubject), body: data, headers: clean}, nil
	}
	if !matchesAny(ep.Subjects, subject) {
		return event{}, fmt.Errorf("%w: stream sequence %d is not an event of endpoint %s", ErrReplay, seq, ep.ID)
	}
	ev := event{seq: seq, subject: subject, body: data, headers: h, id: h.Get(nats.MsgIdHdr)}
	if ev.id == "" {
		ev.id = "seq:" + strconv.FormatUint(seq, 10)
	}
	return ev, nil
}

// findDead scans ep's dead letters for the event id.
func (e *Engine) findDead(ctx context.Context, ep Endpoint, id string) (event, error) {
	c, err := e.js.OrderedConsumer(ctx, e.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{DeadSubject(e.opts.Prefix, ep.ID)}})
	if err != nil {
		return event{}, err
	}
	for range maxDeadScan {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		if m.Headers().Get(HeaderDeadEventID) == id {
			md, _ := m.Metadata()
			return e.fromStored(ep, m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream)
		}
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
			break
		}
	}
	return event{}, fmt.Errorf("%w: no dead letter with that event id", ErrNotFound)
}

// rewind moves ep's consumer back to its first event at or after since
// (at most back to when the endpoint was created).
func (e *Engine) rewind(ctx context.Context, ep Endpoint, since time.Time) (uint64, error) {
	cons, err := e.js.Consumer(ctx, e.opts.Stream, ConsumerName(ep.ID))
	if err != nil {
		return 0, err
	}
	if start := cons.CachedInfo().Config.OptStartTime; start != nil && since.Before(*start) {
		since = *start
	}
	c, err := e.js.OrderedConsumer(ctx, e.opts.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: ep.Subjects, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since})
	if err != nil {
		return 0, err
	}
	m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
	if err != nil {
		return 0, nil // nothing since then
	}
	md, err := m.Metadata()
	if err != nil {
		return 0, err
	}
	if _, err := e.js.ResetConsumerToSequence(ctx, e.opts.Stream, ConsumerName(ep.ID), md.Sequence.Stream); err != nil {
		return 0, fmt.Errorf("rewind: %w", err)
	}
	return md.Sequence.Stream, nil
}

// matchesAny reports whether subject matches one of the NATS patterns.
func matchesAny(patterns []string, subject string) bool {
	for _, p := range patterns {
		if matches(p, subject) {
			return true
		}
	}
	return false
}

func matches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range pt {
		switch {
		case t == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case t != "*" && t != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}
