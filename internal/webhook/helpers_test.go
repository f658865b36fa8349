package webhook

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a JetStream message held by a lane in unit tests.
type fakeMsg struct {
	subj       string
	data       []byte
	hdr        nats.Header
	seq        uint64
	acked      atomic.Bool
	inProgress atomic.Int32
}

func newFakeMsg(seq uint64, subj, id string) *fakeMsg {
	h := nats.Header{}
	h.Set(nats.MsgIdHdr, id)
	h.Set("Chatwoot-Event", "message.created")
	return &fakeMsg{subj: subj, data: []byte(`{"event":"message.created","data":{"id":1}}`), hdr: h, seq: seq}
}

func (m *fakeMsg) Data() []byte         { return m.data }
func (m *fakeMsg) Headers() nats.Header { return m.hdr }
func (m *fakeMsg) Subject() string      { return m.subj }
func (m *fakeMsg) Ack() error           { m.acked.Store(true); return nil }
func (m *fakeMsg) InProgress() error    { m.inProgress.Add(1); return nil }
func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: m.seq}}, nil
}

// fakePub records dead letters.
type fakePub struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func (p *fakePub) PublishMsg(_ context.Context, m *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, m)
	return &jetstream.PubAck{}, nil
}

// script is an http.RoundTripper answering from a list of statuses (the
// last one repeats) and recording when each attempt came.
type script struct {
	mu       sync.Mutex
	statuses []int
	headers  []http.Header // optional, per attempt
	at       []time.Time
	reqs     []*http.Request
}

func (s *script) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.at)
	s.at = append(s.at, time.Now())
	s.reqs = append(s.reqs, r)
	st := s.statuses[min(n, len(s.statuses)-1)]
	h := http.Header{}
	if n < len(s.headers) && s.headers[n] != nil {
		h = s.headers[n]
	}
	return &http.Response{StatusCode: st, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (s *script) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

// testRunner builds a runner for endpoint "crm" whose HTTP goes to rt and
// whose dead letters go to the returned publisher.
func testRunner(t *testing.T, opts Options, rt http.RoundTripper) (*runner, *fakePub) {
	t.Helper()
	opts.Stream, opts.Prefix, opts.transport = "CHATWOOT", "chatwoot", rt
	e, err := New(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePub{}
	e.pub = p
	ep := Endpoint{ID: "crm", URL: "https://crm.example/hook", Subjects: []string{"chatwoot.>"}, Secrets: []Secret{NewSecret()}}
	return newRunner(e, ep, nil), p
}

// deliver runs m through r's queues and one worker, inside a synctest
// bubble, and reports whether m was settled (acknowledged or
// dead-lettered) before the worker stopped.
func deliver(r *runner, m delivery) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	r.q.add(m)
	go func() { r.work(ctx); close(stopped) }()
	for r.q.count() > 0 {
		select {
		case <-stopped:
			return false
		case <-time.After(time.Second):
		}
	}
	r.q.close()
	<-stopped
	return true
}
