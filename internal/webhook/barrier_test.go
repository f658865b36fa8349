package webhook

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pulledMsg is a fakeMsg as the fetch loop pulls it: with a consumer
// sequence and the pin id it was delivered under.
type pulledMsg struct {
	*fakeMsg
	cseq uint64
}

func newPulledMsg(sseq, cseq uint64, subj, id, pin string) *pulledMsg {
	m := newFakeMsg(sseq, subj, id)
	m.hdr.Set(pinHeader, pin)
	return &pulledMsg{fakeMsg: m, cseq: cseq}
}

func (m *pulledMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq, Consumer: m.cseq}, NumDelivered: 1}, nil
}
func (m *pulledMsg) Reply() string                    { return "" }
func (m *pulledMsg) DoubleAck(context.Context) error  { return m.Ack() }
func (m *pulledMsg) Nak() error                       { return nil }
func (m *pulledMsg) NakWithDelay(time.Duration) error { return nil }
func (m *pulledMsg) Term() error                      { return nil }
func (m *pulledMsg) TermWithReason(string) error      { return nil }

// pull is one answer of the scripted consumer: a message, or a pull
// timeout when msg is nil; info, when set, is the consumer's state from
// then on.
type pull struct {
	msg  *pulledMsg
	info *jetstream.ConsumerInfo
}

// scriptedConsumer hands the fetch loop a fixed sequence of pulls, then
// pull timeouts until stopped, and answers Info with the state the last
// pull set.
type scriptedConsumer struct {
	jetstream.Consumer

	mu      sync.Mutex
	pulls   []pull
	info    jetstream.ConsumerInfo
	stopped chan struct{}
	once    sync.Once
}

func (c *scriptedConsumer) Messages(...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	return scriptedPulls{c: c}, nil
}

// scriptedPulls is the scripted consumer's message iterator.
type scriptedPulls struct {
	jetstream.MessagesContext
	c *scriptedConsumer
}

func (c *scriptedConsumer) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := c.info
	return &info, nil
}

func (it scriptedPulls) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	c := it.c
	c.mu.Lock()
	var p pull
	if len(c.pulls) > 0 {
		p, c.pulls = c.pulls[0], c.pulls[1:]
	}
	if p.info != nil {
		c.info = *p.info
	}
	c.mu.Unlock()
	if p.msg != nil {
		return p.msg, nil
	}
	select {
	case <-c.stopped:
		return nil, jetstream.ErrMsgIteratorClosed
	case <-time.After(barrierPoll):
		return nil, nats.ErrTimeout
	}
}

func (it scriptedPulls) Stop() {
	c := it.c
	c.once.Do(func() { close(c.stopped) })
}

// pinnedTo is a consumer state: ackPending events unacknowledged, the
// last delivery numbered delivered, pinned to pin.
func pinnedTo(pin string, ackPending int, delivered uint64) *jetstream.ConsumerInfo {
	return &jetstream.ConsumerInfo{NumAckPending: ackPending,
		Delivered:      jetstream.SequenceInfo{Consumer: delivered},
		PriorityGroups: []jetstream.PriorityGroupState{{Group: priorityGroup, PinnedClientID: pin}}}
}

// The runner takes the pin over while the previous holder's three events
// of conversation 1 (stream 2, 3, 4) wait for their redelivery. JetStream
// redelivers them out of stream order (3, 4, 2), and the barrier looks at
// the consumer after they were sent but before they were read: it must
// stay up until they are here, then deliver them in stream order.
func TestBarrierWaitsForRedeliveriesOnTheirWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var ids []string
		rt := roundTrip(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, r.Header.Get(HeaderID))
			return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		r, _ := testRunner(t, Options{Concurrency: 2, Jitter: -1, BreakerThreshold: 100}, rt)
		conv1, conv8 := "chatwoot.1.2.1.1.message.created", "chatwoot.1.2.8.8.message.created"
		r.cons = &scriptedConsumer{stopped: make(chan struct{}), pulls: []pull{
			{msg: newPulledMsg(5, 5, conv8, "8-0", "P"), info: pinnedTo("P", 4, 5)},
			{info: pinnedTo("P", 4, 8)}, // redeliveries sent, not yet read
			{msg: newPulledMsg(3, 6, conv1, "1-1", "P")},
			{msg: newPulledMsg(4, 7, conv1, "1-2", "P")},
			{msg: newPulledMsg(2, 8, conv1, "1-0", "P")},
		}}
		r.start()
		defer r.stop()
		for range 100 {
			mu.Lock()
			n := len(ids)
			mu.Unlock()
			if n == 4 {
				break
			}
			time.Sleep(barrierPoll)
		}
		mu.Lock()
		got := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "8-0" })
		mu.Unlock()
		if want := []string{"1-0", "1-1", "1-2"}; !slices.Equal(got, want) {
			t.Fatalf("conversation 1 delivered %v, want %v", got, want)
		}
	})
}
