package webhook

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Dead-letter headers, next to the event's own routing headers.
const (
	HeaderDeadEndpoint = "Relay-Webhook-Endpoint"
	HeaderDeadSubject  = "Relay-Webhook-Subject"
	HeaderDeadSeq      = "Relay-Webhook-Stream-Seq"
	HeaderDeadEventID  = "Relay-Webhook-Event-Id"
	HeaderDeadAttempts = "Relay-Webhook-Attempts"
	HeaderDeadStatus   = "Relay-Webhook-Status"
	HeaderDeadError    = "Relay-Webhook-Error"
)

// DeadSubject is where an endpoint's undeliverable events go.
func DeadSubject(prefix, endpointID string) string {
	return prefix + ".relay.webhook.dead." + endpointID
}

// deadLetter publishes ev, with its last status and error, on the
// endpoint's dead-letter subject, then acknowledges m. The publish is
// retried until it is stored or the runner stops (m then stays
// unacknowledged and is redelivered: nothing is lost).
func (r *runner) deadLetter(ctx context.Context, m delivery, ev event, attempts int, last result) bool {
	msg := deadMessage(r.e.opts.Prefix, r.ep.ID, ev, attempts, last)
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := r.e.pub.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			break
		}
		r.log.Warn("webhook: dead letter not stored; retrying", "err", err)
		if sleep(ctx, 5*time.Second) != nil {
			return false
		}
	}
	r.e.m.dead.Inc()
	r.log.Warn("webhook: event dead-lettered", "seq", ev.seq, "attempts", attempts,
		"status", last.status, "err", last.err)
	_ = m.Ack()
	return true
}

// deadMessage builds the dead letter: the event's body byte for byte, its
// routing headers, and what the last attempt got.
func deadMessage(prefix, id string, ev event, attempts int, last result) *nats.Msg {
	h := nats.Header{}
	for k, v := range ev.headers {
		if k != nats.MsgIdHdr {
			h[k] = v
		}
	}
	h.Set(nats.MsgIdHdr, "webhook-dead:"+id+":"+strconv.FormatUint(ev.seq, 10))
	h.Set(HeaderDeadEndpoint, id)
	h.Set(HeaderDeadSubject, ev.subject)
	h.Set(HeaderDeadSeq, strconv.FormatUint(ev.seq, 10))
	h.Set(HeaderDeadEventID, ev.id)
	h.Set(HeaderDeadAttempts, strconv.Itoa(attempts))
	h.Set(HeaderDeadStatus, strconv.Itoa(last.status))
	h.Set(HeaderDeadError, last.errorText())
	return &nats.Msg{Subject: DeadSubject(prefix, id), Header: h, Data: ev.body}
}
