package cable

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// broadcastFrame returns a broadcast frame for token whose message object is
// about size bytes, shaped like Chatwoot's message.created.
func broadcastFrame(token string, size int) []byte {
	id := NewIdentifier(token)
	head := `{"identifier":"` + id.Key + `","message":{"event":"message.created","data":{"id":2,"account_id":1,"inbox_id":1,"conversation_id":1,"message_type":1,"content":"`
	tail := `","created_at":1795248781,"updated_at":"2026-11-21T08:13:01.972Z","private":false,"status":"sent","sender":{"id":1,"name":"Agent","type":"user"}}}}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		pad = 0
	}
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// dispatchConn builds a connection slot without a socket, carrying one
// subscription, with its delivery queue drained.
func dispatchConn(_ testing.TB, token string) (*conn[any], func()) {
	c := newTestConn(token)
	done := make(chan struct{})
	go func() {
		c.deliveries.drain(func(Delivery[any]) {})
		close(done)
	}()
	return c, func() { c.cancel(); c.deliveries.close(); <-done }
}

// newTestConn builds a connection slot without a socket or goroutines,
// carrying one confirmed subscription.
func newTestConn(token string) *conn[any] {
	p := &Pool[any]{m: newMetrics(prometheus.NewRegistry()), cfg: Config[any]{Handler: func(Delivery[any]) {}, OnState: func(StateChange[any]) {}}}
	p.cfg.setDefaults()
	p.log = p.cfg.Logger
	p.subs = map[string]*sub[any]{}
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn[any]{p: p, ctx: ctx, cancel: cancel, deliveries: newDeliveryQueue[any](1024),
		routes: map[string]*sub[any]{}}
	s := &sub[any]{id: SubscriptionID(token), key: contactKey(token), state: StateConfirmed, conn: c}
	s.meta.Store(metaBox[any]{})
	c.setRoute(s.key, s)
	return c
}

// BenchmarkDecodeDispatch measures the reader's per-frame work for a 1 KiB
// broadcast: decode, route to the subscription, copy the message, queue it
// for the handler.
func BenchmarkDecodeDispatch(b *testing.B) {
	c, stop := dispatchConn(b, fixtureToken)
	defer stop()
	frame := broadcastFrame(fixtureToken, 1024)
	var f Frame
	var res sessionResult
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.handle(frame, &f, 1, &res); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is the decoder alone on the same frame.
func BenchmarkDecode(b *testing.B) {
	frame := broadcastFrame(fixtureToken, 1024)
	var f Frame
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(frame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDispatchDelivers(t *testing.T) {
	c := newTestConn(fixtureToken)
	frame := broadcastFrame(fixtureToken, 1024)
	var f Frame
	var res sessionResult
	if err := c.handle(frame, &f, 1, &res); err != nil {
		t.Fatal(err)
	}
	batch, _ := c.deliveries.take()
	d := batch[0]
	if d.ID != SubscriptionID(fixtureToken) || !strings.HasPrefix(string(d.Message), `{"event":"message.created"`) ||
		!strings.HasSuffix(string(d.Message), `}}`) || d.ReceivedAt.IsZero() {
		t.Fatalf("delivery = %+v", d)
	}
	// The message is a copy: reusing the read buffer must not change it.
	before := string(d.Message)
	clear(frame)
	if string(d.Message) != before {
		t.Fatal("delivery aliases the read buffer")
	}
	if err := c.handle(broadcastFrame("another-token", 200), &f, 1, &res); err != nil {
		t.Fatal("unknown identifier must be counted, not an error")
	}
	if c.deliveries.len() != 0 {
		t.Fatal("broadcast for an unknown identifier was delivered")
	}
}

// The fields captured while the frame was read reach the handler with the
// message, relative to it: they hold for the copy the delivery queue gets
// (and for the borrowed buffer with Direct).
func TestDispatchDeliversFields(t *testing.T) {
	for _, direct := range []bool{false, true} {
		c := newTestConn(fixtureToken)
		c.p.cfg.Fields, c.p.cfg.Direct = testFields, direct
		var got string
		c.p.cfg.Handler = func(d Delivery[any]) { got = deliveredFields(d) }
		frame := broadcastFrame(fixtureToken, 300)
		var f Frame
		var res sessionResult
		if err := c.handle(frame, &f, 1, &res); err != nil {
			t.Fatal(err)
		}
		if !direct {
			batch, _ := c.deliveries.take()
			clear(frame) // the reader's buffer is reused
			got = deliveredFields(batch[0])
		}
		if got != "s:message.created n:2 s:user" {
			t.Fatalf("direct %v: fields %q", direct, got)
		}
	}
}

func deliveredFields(d Delivery[any]) string {
	if !d.Fields.Of(testFields) {
		return "not captured"
	}
	f := Frame{Message: d.Message, Fields: d.Fields}
	return captured(&f, 0) + " " + captured(&f, 1) + " " + captured(&f, 2)
}
