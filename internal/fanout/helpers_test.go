package fanout

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/fixtures"
)

// fixtureToken is the pubsub_token carried by the fixtures.
const fixtureToken = "os7FhRoFVZEMeCwQpWaJFUxv"

// fixtureSourceID is the contact's source_id carried by the fixtures
// (contact_inbox.source_id of conversation, message and typing payloads).
const fixtureSourceID = "ba852f78-ecf7-4770-8128-e6cc15f7d7cc"

// redactedFixture is fixtureMessage with the contact's pubsub_token and
// source_id blanked, as fanout publishes it by default.
func redactedFixture(t testing.TB, name string) []byte {
	b := bytes.ReplaceAll(fixtureMessage(t, name), []byte(`"pubsub_token":"`+fixtureToken+`"`), []byte(`"pubsub_token":""`))
	return bytes.ReplaceAll(b, []byte(`"source_id":"`+fixtureSourceID+`"`), []byte(`"source_id":""`))
}

// fixtureMessage returns a fresh copy of the `message` object of a cable
// fixture, exactly as it appears in the frame.
func fixtureMessage(t testing.TB, name string) []byte {
	t.Helper()
	frame := fixtures.Read(t, "cable/"+name)
	var f struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Message) == 0 || f.Message[0] != '{' {
		return nil
	}
	return append([]byte(nil), f.Message...)
}

func dropped(f *Fanout, r dropReason) int {
	return int(testutil.ToFloat64(f.m.dropped[r]))
}

func published(f *Fanout, k Kind) int {
	return int(testutil.ToFloat64(f.m.published[k]))
}

// fakePub is an in-memory Publisher. Connected ones accept publishes; by
// default acks resolve at once, with manual acks they wait for the test.
type fakePub struct {
	mu        sync.Mutex
	n         notifier
	connected bool
	manual    bool
	sent      []*nats.Msg // every accepted Publish, in order
	stored    []*nats.Msg // acknowledged ones, in order
	pending   []*fakeAck
	block     chan struct{} // when set, Publish blocks until it is closed
}

type fakeAck struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (a *fakeAck) Ok() <-chan *jetstream.PubAck { return a.ok }
func (a *fakeAck) Err() <-chan error            { return a.err }

func newFakePub(connected bool) *fakePub { return &fakePub{connected: connected} }

func (p *fakePub) Publish(msg *nats.Msg) (Ack, error) {
	p.mu.Lock()
	block := p.block
	p.mu.Unlock()
	if block != nil {
		<-block
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.connected {
		return nil, nats.ErrReconnectBufExceeded
	}
	p.sent = append(p.sent, msg)
	a := &fakeAck{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	if !p.manual {
		p.stored = append(p.stored, msg)
		a.ok <- &jetstream.PubAck{}
		return a, nil
	}
	p.pending = append(p.pending, a)
	return a, nil
}

func (p *fakePub) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected
}

func (p *fakePub) Changed() <-chan struct{} { return p.n.changed() }

func (p *fakePub) setConnected(c bool) {
	p.mu.Lock()
	p.connected = c
	p.mu.Unlock()
	p.n.notify()
}

// resolve answers the oldest n pending acks: nil error stores the message.
func (p *fakePub) resolve(n int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.pending[:n] {
		if err == nil {
			p.stored = append(p.stored, a.msg)
			a.ok <- &jetstream.PubAck{}
		} else {
			a.err <- err
		}
	}
	p.pending = p.pending[n:]
}

func (p *fakePub) storedMsgs() []*nats.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*nats.Msg(nil), p.stored...)
}

func (p *fakePub) pendingLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
