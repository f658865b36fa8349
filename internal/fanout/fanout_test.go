package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func msgCreated(id int) []byte {
	return fmt.Appendf(nil, `{"event":"message.created","data":{"id":%d,"account_id":1,"inbox_id":2,"conversation_id":3,"message_type":1,"content":"m%d"}}`, id, id)
}

func newTestFanout(t *testing.T, pub Publisher, opts Options) *Fanout {
	t.Helper()
	f, err := New(pub, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeNow(f) })
	return f
}

// closeNow closes f inside a synctest bubble, giving up on what is left.
func closeNow(f *Fanout) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return f.Close(ctx)
}

func storedIDs(t *testing.T, p *fakePub) []int {
	t.Helper()
	var ids []int
	for _, m := range p.storedMsgs() {
		var v struct {
			Data struct{ ID int } `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.Data.ID)
	}
	return ids
}

func wantIDs(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("stored %d events %v, want ids %d..%d", len(got), got, from, to)
	}
	for i, id := range got {
		if id != from+i {
			t.Fatalf("stored ids %v, want %d..%d in order", got, from, to)
		}
	}
}

func TestHandlePublishesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{})
		for i := 1; i <= 200; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		synctest.Wait()
		wantIDs(t, storedIDs(t, p), 1, 200)
		if n := published(f, KindMessage); n != 200 {
			t.Fatalf("published metric = %d", n)
		}
		if b, n := f.q.held(); b != 0 || n != 0 {
			t.Fatalf("buffer holds %d bytes / %d events after publishing", b, n)
		}
		if !f.Ready() {
			t.Fatal("not ready")
		}
		if err := f.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDuplicateAcrossSubscriptionsPublishedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{})
		f.Handle(Event{SubID: "a", Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
		f.Handle(Event{SubID: "b", Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
		// The replay of the same message through catch-up.
		f.Handle(Event{SubID: "a", Hints: Hints{AccountID: "1"}, Replayed: true,
			Message: []byte(`{"event":"message.created","replayed":true,"data":{"id":2,"conversation_id":1,"message_type":1}}`)})
		synctest.Wait()
		if n := len(p.storedMsgs()); n != 1 {
			t.Fatalf("stored %d copies, want 1", n)
		}
		if d := dropped(f, dropDuplicate); d != 2 {
			t.Fatalf("duplicate drops = %d, want 2", d)
		}
		if !f.Seen("m:1:2:created") {
			t.Fatal("Seen(m:1:2:created) = false")
		}
		_ = closeNow(f)
	})
}

func TestInstantDedupWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{InstantWindow: time.Second})
		typing := func(sub string) {
			f.Handle(Event{SubID: sub, Message: fixtureMessage(t, "05_conversation.typing_on.json")})
		}
		typing("a")
		typing("b") // another verified token of the same contact, same instant
		synctest.Wait()
		if n := len(p.storedMsgs()); n != 1 {
			t.Fatalf("same-instant copies stored %d times, want 1", n)
		}
		time.Sleep(2 * time.Second) // fake clock: the agent types again later
		typing("a")
		synctest.Wait()
		if n := len(p.storedMsgs()); n != 2 {
			t.Fatalf("later typing event stored: total %d, want 2", n)
		}
		ids := map[string]bool{}
		for _, m := range p.storedMsgs() {
			ids[m.Header.Get(HeaderMsgID)] = true
		}
		if len(ids) != 2 {
			t.Fatalf("Nats-Msg-Id repeats across time buckets: %v", ids)
		}
		_ = closeNow(f)
	})
}

func TestPrivateTypingFilteredButObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		var seen []Route
		f := newTestFanout(t, p, Options{})
		f.AddObserver(ObserverFunc(func(sub string, r Route) { seen = append(seen, r) }))
		f.Handle(Event{SubID: "a", Message: fixtureMessage(t, "07_conversation.typing_on.private.json")})
		f.Handle(Event{SubID: "a", Message: fixtureMessage(t, "06_conversation.typing_off.json")})
		synctest.Wait()
		if d := dropped(f, dropFiltered); d != 1 {
			t.Fatalf("filtered drops = %d", d)
		}
		stored := p.storedMsgs()
		if len(stored) != 1 || stored[0].Header.Get(HeaderEvent) != "conversation.typing_off" {
			t.Fatalf("stored %d events, want only typing_off", len(stored))
		}
		if len(seen) != 2 || !seen[0].Private || seen[1].ConversationID != "1" {
			t.Fatalf("observed %+v", seen)
		}
		_ = closeNow(f)
	})
}

func TestRoutingFailureCountedNotPublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		f.Handle(Event{SubID: "sub-9", Message: []byte(`{"event":"message.created","data":{"id":1,"account_id":"1.2"}}`)})
		f.Handle(Event{SubID: "sub-9", Message: []byte(`{"event":"message.created","data":{"id":1,"account_id":1,"inbox_id":"a b"}}`)})
		f.Handle(Event{SubID: "sub-9", Message: []byte(`{"type":"ping","message":1}`)})
		synctest.Wait()
		if d := dropped(f, dropRouting); d != 2 {
			t.Fatalf("routing drops = %d, want 2", d)
		}
		if d := dropped(f, dropInvalid); d != 1 {
			t.Fatalf("invalid drops = %d, want 1", d)
		}
		if len(p.sent) != 0 {
			t.Fatalf("%d events published", len(p.sent))
		}
		out := logs.String()
		if !bytes.Contains(logs.Bytes(), []byte("sub=sub-9")) || bytes.Contains(logs.Bytes(), []byte("a b")) {
			t.Fatalf("log must name the subscription and not the bad value: %s", out)
		}
		_ = closeNow(f)
	})
}

func TestOutageBuffersAndDrainsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		f := newTestFanout(t, p, Options{})
		for i := 1; i <= 50; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		synctest.Wait()
		if f.Ready() || len(p.storedMsgs()) != 0 {
			t.Fatal("ready or publishing while NATS is down")
		}
		if _, n := f.q.held(); n != 50 {
			t.Fatalf("buffer holds %d events, want 50", n)
		}
		p.setConnected(true)
		synctest.Wait()
		wantIDs(t, storedIDs(t, p), 1, 50)
		if !f.Ready() {
			t.Fatal("not ready after reconnect")
		}
		_ = closeNow(f)
	})
}

func TestOverflowCountedAndFlipsReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		f := newTestFanout(t, p, Options{BufferEvents: 10})
		for i := 1; i <= 15; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		if d := dropped(f, dropBufferFull); d != 5 {
			t.Fatalf("buffer_full drops = %d, want 5", d)
		}
		if f.Ready() {
			t.Fatal("ready with a saturated buffer")
		}
		p.setConnected(true)
		synctest.Wait()
		wantIDs(t, storedIDs(t, p), 1, 10)
		if !f.Ready() {
			t.Fatal("not ready after the buffer drained")
		}
		// Dropped events were forgotten by the dedup window: a replay gets through.
		f.Handle(Event{SubID: "s", Message: msgCreated(12)})
		synctest.Wait()
		if ids := storedIDs(t, p); ids[len(ids)-1] != 12 {
			t.Fatalf("replay of a dropped event not published: %v", ids)
		}
		_ = closeNow(f)
	})
}

func TestOverflowByBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		big := int64(3 * (itemOverhead + 300))
		f := newTestFanout(t, p, Options{BufferBytes: big})
		huge := append(msgCreated(99)[:0:0], msgCreated(99)...)
		huge = append(huge[:len(huge)-2], []byte(`,"x":"`+string(bytes.Repeat([]byte("x"), int(big)))+`"}}`)...)
		f.Handle(Event{SubID: "s", Message: huge})
		if d := dropped(f, dropTooLarge); d != 1 {
			t.Fatalf("too_large drops = %d, want 1", d)
		}
		for i := 1; i <= 5; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		if b, n := f.q.held(); b > big || n != 3 {
			t.Fatalf("held %d bytes / %d events, bound %d", b, n, big)
		}
		if d := dropped(f, dropBufferFull); d != 2 {
			t.Fatalf("buffer_full drops = %d, want 2", d)
		}
		_ = closeNow(f)
	})
}

// Once the buffer overflows, events are dropped before they are built until
// it has drained to half; every dropped live event is reported through Lost
// (replays through Done), so the subscription can be caught up.
func TestOverflowShedsAndReportsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		var mu sync.Mutex
		var lost []string
		observed := 0
		drained := 0
		f := newTestFanout(t, p, Options{
			BufferEvents: 4,
			Drained:      func() { drained++ },
			Lost: func(sub string) {
				mu.Lock()
				lost = append(lost, sub)
				mu.Unlock()
			},
		})
		f.AddObserver(ObserverFunc(func(string, Route) {
			mu.Lock()
			observed++
			mu.Unlock()
		}))
		for i := 1; i <= 5; i++ { // the fifth overflows: built, refused
			f.Handle(Event{SubID: "a", Message: msgCreated(i)})
		}
		f.Handle(Event{SubID: "b", Message: []byte(`not json`)}) // shed unread
		var replayOK []string
		f.Handle(Event{SubID: "c", Message: msgCreated(7), Replayed: true, Done: func(err error) { replayOK = append(replayOK, outcomeName(err)) }})
		mu.Lock()
		if fmt.Sprint(lost) != "[a b]" || observed != 5 {
			t.Fatalf("lost %v, observed %d; want [a b] and 5", lost, observed)
		}
		mu.Unlock()
		if fmt.Sprint(replayOK) != "[full]" {
			t.Fatalf("replay done %v, want [full]", replayOK)
		}
		if d, inv := dropped(f, dropBufferFull), dropped(f, dropInvalid); d != 3 || inv != 0 {
			t.Fatalf("buffer_full %d, invalid %d; want 3 and 0", d, inv)
		}
		if drained != 0 {
			t.Fatal("Drained called while the buffer is saturated")
		}
		p.setConnected(true)
		synctest.Wait()
		if drained != 1 {
			t.Fatalf("Drained called %d times after the buffer drained, want 1", drained)
		}
		f.Handle(Event{SubID: "a", Message: msgCreated(6)})
		synctest.Wait()
		if ids := storedIDs(t, p); fmt.Sprint(ids) != "[1 2 3 4 6]" {
			t.Fatalf("stored %v, want [1 2 3 4 6]", ids)
		}
		_ = closeNow(f)
	})
}

func TestAckFailureRewindsAndKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{InFlight: 4})
		for i := 1; i <= 8; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		synctest.Wait()
		if n := p.pendingLen(); n != 4 {
			t.Fatalf("%d publishes in flight, want the window of 4", n)
		}
		p.resolve(1, nil)
		p.resolve(3, nats.ErrDisconnected) // connection lost: 2, 3, 4 never stored
		time.Sleep(time.Second)            // fake clock: past the retry backoff
		for p.pendingLen() > 0 {
			p.resolve(p.pendingLen(), nil)
			synctest.Wait()
		}
		wantIDs(t, storedIDs(t, p), 1, 8)
		if r := testutil.ToFloat64(f.m.retries); r != 3 {
			t.Fatalf("retries = %v, want 3", r)
		}
		if n := testutil.ToFloat64(f.m.failures[failDisconnected]); n != 3 {
			t.Fatalf("disconnected failures = %v, want 3", n)
		}
		_ = closeNow(f)
	})
}

func TestRejectedDroppedAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{MaxAttempts: 2})
		f.Handle(Event{SubID: "s", Message: msgCreated(1)})
		rejected := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "message size exceeds maximum allowed"}
		for range 2 {
			time.Sleep(time.Second) // fake clock: past the retry backoff
			p.resolve(1, rejected)
		}
		synctest.Wait()
		if d := dropped(f, dropPublishError); d != 1 {
			t.Fatalf("publish_error drops = %d, want 1", d)
		}
		if f.Seen("m:1:1:created") {
			t.Fatal("dropped event still in the dedup window")
		}
		if _, n := f.q.held(); n != 0 {
			t.Fatalf("buffer still holds %d", n)
		}
		_ = closeNow(f)
	})
}

// TestStreamFullHeldNotDropped: a stream without room (discard new at its
// limits, or the server's storage exhausted) refuses events: they are held
// and retried however often it happens, the Fanout is not ready meanwhile,
// and nothing is counted as published until the stream takes it.
func TestStreamFullHeldNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{MaxAttempts: 2})
		f.Handle(Event{SubID: "s", Message: msgCreated(1)})
		fulls := []error{
			&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum bytes exceeded"},
			&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"},
			&jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"},
		}
		for _, err := range fulls {
			time.Sleep(10 * time.Second) // fake clock: past the retry backoff
			p.resolve(1, err)
			synctest.Wait()
			if f.Ready() {
				t.Fatalf("ready while the stream refuses events (%v)", err)
			}
		}
		if d := dropped(f, dropPublishError); d != 0 {
			t.Fatalf("publish_error drops = %d, want 0", d)
		}
		if n := published(f, KindMessage); n != 0 {
			t.Fatalf("published = %d before the stream took the event", n)
		}
		time.Sleep(10 * time.Second)
		p.resolve(1, nil)
		synctest.Wait()
		if !f.Ready() || published(f, KindMessage) != 1 || len(p.storedMsgs()) != 1 {
			t.Fatalf("after room was made: ready %v, published %d, stored %d", f.Ready(), published(f, KindMessage), len(p.storedMsgs()))
		}
		_ = closeNow(f)
	})
}

// TestHandleNeverBlocks: a publisher stuck inside Publish must not stall
// the cable goroutines calling Handle.
func TestHandleNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.block = make(chan struct{})
		f := newTestFanout(t, p, Options{BufferEvents: 20})
		done := make(chan struct{})
		go func() {
			for i := 1; i <= 100; i++ {
				f.Handle(Event{SubID: "s", Message: msgCreated(i)})
			}
			close(done)
		}()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Handle blocked behind a stuck publisher")
		}
		if d := dropped(f, dropBufferFull); d != 80 {
			t.Fatalf("buffer_full drops = %d, want 80", d)
		}
		close(p.block) // the publisher recovers; Close gives up on the rest
		_ = closeNow(f)
	})
}

func TestCloseGivesUpWhenNATSDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		f := newTestFanout(t, p, Options{})
		for i := 1; i <= 3; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := f.Close(ctx)
		if !errors.Is(err, ErrShutdownDropped) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v", err)
		}
		if d := dropped(f, dropShutdown); d != 3 {
			t.Fatalf("shutdown drops = %d, want 3", d)
		}
		f.Handle(Event{SubID: "s", Message: msgCreated(4)})
		if d := dropped(f, dropShutdown); d != 4 {
			t.Fatalf("Handle after Close not counted: %d", d)
		}
		if f.Ready() {
			t.Fatal("ready after Close")
		}
	})
}

func TestCloseFlushesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{})
		f.Handle(Event{SubID: "s", Message: msgCreated(1)})
		synctest.Wait()
		closed := make(chan error)
		go func() { closed <- f.Close(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v before the ack", err)
		default:
		}
		p.resolve(1, nil)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		wantIDs(t, storedIDs(t, p), 1, 1)
	})
}

func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{Prefix: "cw"})
		at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
		f.Handle(Event{SubID: "s1", Message: msgCreated(1)})
		if err := f.Lifecycle(LifecycleEvent{Event: CatchupDone, SubscriptionID: "s1", At: at, Replayed: 3}); err != nil {
			t.Fatal(err)
		}
		if err := f.Lifecycle(LifecycleEvent{Event: SubscriptionConfirmed, SubscriptionID: "s1"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		stored := p.storedMsgs()
		if len(stored) != 3 || stored[1].Subject != "cw.relay.catchup.done" || stored[2].Subject != "cw.relay.subscription.confirmed" {
			t.Fatalf("stored %d, subjects in wrong order", len(stored))
		}
		var body map[string]any
		if err := json.Unmarshal(stored[1].Data, &body); err != nil {
			t.Fatal(err)
		}
		if body["subscription_id"] != "s1" || body["event"] != CatchupDone || body["replayed"] != 3.0 {
			t.Fatalf("body %s", stored[1].Data)
		}
		h := stored[1].Header
		if h.Get(HeaderSubscription) != "s1" || h.Get(HeaderReceivedAt) != "2026-01-02T03:04:05.000000006Z" ||
			h.Get(HeaderMsgID) != "l:catchup.done:s1:"+strconv.FormatInt(at.UnixNano(), 10) {
			t.Fatalf("headers %v", h)
		}
		if published(f, KindLifecycle) != 2 {
			t.Fatal("lifecycle not counted")
		}
		for _, bad := range []LifecycleEvent{{Event: "a..b", SubscriptionID: "s"}, {Event: "x", SubscriptionID: "a\r\nb"}, {Event: "x"}} {
			if err := f.Lifecycle(bad); !errors.Is(err, ErrRouting) {
				t.Errorf("Lifecycle(%+v) = %v, want ErrRouting", bad, err)
			}
		}
		_ = closeNow(f)
		if err := f.Lifecycle(LifecycleEvent{Event: SubscriptionLost, SubscriptionID: "s1"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v", err)
		}
	})
}

func TestNewRejectsBadPrefixAndReusedRegistry(t *testing.T) {
	if _, err := New(newFakePub(true), Options{Prefix: "a.*"}); !errors.Is(err, ErrInvalidPrefix) {
		t.Fatalf("err = %v", err)
	}
	reg := prometheus.NewRegistry()
	f := newTestFanout(t, newFakePub(true), Options{Registerer: reg})
	if _, err := New(newFakePub(true), Options{Registerer: reg}); err == nil {
		t.Fatal("second Fanout on one registry: want an error, not a panic or silence")
	}
	names := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"relay_fanout_events_published_total", "relay_fanout_events_dropped_total",
		"relay_fanout_buffer_bytes", "relay_fanout_buffer_events", "relay_fanout_publish_latency_seconds",
		"relay_fanout_publish_failures_total", "relay_fanout_publish_retries_total", "relay_fanout_nats_connected", "relay_fanout_ready"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	_ = f
}

// TestNoStallWhileAwaitingAck: events arriving while an ack is outstanding
// are published at once when the window has room.
func TestNoStallWhileAwaitingAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{InFlight: 4})
		f.Handle(Event{SubID: "s", Message: msgCreated(1)})
		synctest.Wait()
		f.Handle(Event{SubID: "s", Message: msgCreated(2)})
		synctest.Wait()
		if n := p.pendingLen(); n != 2 {
			t.Fatalf("%d publishes in flight, want 2", n)
		}
		p.resolve(2, nil)
		synctest.Wait()
		wantIDs(t, storedIDs(t, p), 1, 2)
		_ = closeNow(f)
	})
}

// TestPublishedOnlyAfterAck: progress is reported when NATS holds the
// event, not when it was handed over, so a relay that dies with events
// buffered never records them as delivered.
func TestPublishedOnlyAfterAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		var mu sync.Mutex
		var published []string
		f := newTestFanout(t, p, Options{Published: func(sub string, r Route) {
			mu.Lock()
			published = append(published, sub+":"+r.MessageID)
			mu.Unlock()
		}})
		reply := fixtureMessage(t, "03_message.created.agent_reply.json")
		f.Handle(Event{SubID: "a", Message: reply})
		synctest.Wait()
		mu.Lock()
		if len(published) != 0 {
			t.Fatalf("reported before the ack: %v", published)
		}
		mu.Unlock()
		// The same message through a second token of the contact, while
		// the first copy is in flight: it is reported with that copy's ack,
		// not before.
		f.Handle(Event{SubID: "b", Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
		synctest.Wait()
		mu.Lock()
		if len(published) != 0 {
			t.Fatalf("a duplicate was reported before the first copy's ack: %v", published)
		}
		mu.Unlock()
		p.resolve(1, nil)
		synctest.Wait()
		// Once the first copy is in NATS, a duplicate is reported at once.
		f.Handle(Event{SubID: "c", Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
		mu.Lock()
		got := fmt.Sprint(published)
		mu.Unlock()
		if got != "[a:2 b:2 c:2]" {
			t.Fatalf("published = %s, want [a:2 b:2 c:2]", got)
		}
		_ = closeNow(f)
	})
}

// A duplicate that waited for a first copy which never reached NATS shares
// its fate: Done(false). A rejected event is not reported through Lost (a
// catch-up would bring back the same rejected event).
func TestDuplicateOfDroppedEventIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		var mu sync.Mutex
		var got []string
		f := newTestFanout(t, p, Options{
			MaxAttempts: 1,
			Lost:        func(sub string) { mu.Lock(); got = append(got, "lost:"+sub); mu.Unlock() },
			Published:   func(sub string, _ Route) { mu.Lock(); got = append(got, "published:"+sub); mu.Unlock() },
		})
		reply := func() []byte { return fixtureMessage(t, "03_message.created.agent_reply.json") }
		f.Handle(Event{SubID: "a", Message: reply()})
		f.Handle(Event{SubID: "b", Message: reply()})
		f.Handle(Event{SubID: "a", Message: reply(), Replayed: true, Done: func(err error) {
			mu.Lock()
			got = append(got, "replay done="+outcomeName(err))
			mu.Unlock()
		}})
		synctest.Wait()
		p.resolve(1, errors.New("nats: stream rejected the message"))
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(got) != "[replay done=rejected]" {
			t.Fatalf("got %v, want [replay done=rejected]", got)
		}
		_ = closeNow(f)
	})
}

// outcomeName names an Event.Done outcome.
func outcomeName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBufferFull):
		return "full"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrClosed):
		return "closed"
	}
	return err.Error()
}

// TestEventDone: an event's Done reports whether it reached NATS, and if
// not, why.
func TestEventDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{BufferEvents: 1})
		var mu sync.Mutex
		var got []string
		done := func(name string) func(error) {
			return func(err error) {
				mu.Lock()
				got = append(got, name+"="+outcomeName(err))
				mu.Unlock()
			}
		}
		reply := func() []byte { return fixtureMessage(t, "03_message.created.agent_reply.json") }
		f.Handle(Event{SubID: "a", Message: reply(), Done: done("first")})
		f.Handle(Event{SubID: "b", Message: reply(), Done: done("duplicate")})
		f.Handle(Event{SubID: "a", Message: []byte(`{"event":"message.created","data":{"account_id":"a b"}}`), Done: done("unroutable")})
		f.Handle(Event{SubID: "a", Message: fixtureMessage(t, "08_message.updated.json"), Done: done("overflow")})
		synctest.Wait()
		p.resolve(1, nil)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(got) != "[unroutable=rejected overflow=full first=ok duplicate=ok]" {
			t.Fatalf("done = %v", got)
		}
		_ = closeNow(f)
	})
}

// WaitRoom holds a caller back while the buffer is more than half full,
// and lets it go once NATS has taken the events, or when the fan-out closes.
func TestWaitRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(false)
		f := newTestFanout(t, p, Options{BufferEvents: 4})
		f.Handle(Event{SubID: "a", Message: msgCreated(1)})
		f.Handle(Event{SubID: "a", Message: msgCreated(2)})
		if err := f.WaitRoom(t.Context()); err != nil {
			t.Fatalf("half full: %v", err)
		}
		f.Handle(Event{SubID: "a", Message: msgCreated(3)})
		var err error
		returned := make(chan struct{})
		go func() { err = f.WaitRoom(t.Context()); close(returned) }()
		synctest.Wait()
		select {
		case <-returned:
			t.Fatalf("WaitRoom returned %v with 3 of 4 events held", err)
		default:
		}
		p.setConnected(true)
		synctest.Wait()
		<-returned
		if err != nil {
			t.Fatal(err)
		}

		p.setConnected(false)
		for i := 4; i <= 6; i++ {
			f.Handle(Event{SubID: "a", Message: msgCreated(i)})
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := f.WaitRoom(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("NATS away: WaitRoom = %v, want the deadline", err)
		}
		closed := make(chan struct{})
		go func() { err = f.WaitRoom(t.Context()); close(closed) }()
		synctest.Wait()
		_ = closeNow(f)
		<-closed
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: WaitRoom = %v, want ErrClosed", err)
		}
	})
}

// With HoldBack, a burst larger than the buffer waits for room instead of
// being dropped; a stall that outlasts HoldBack sheds without waiting
// again, until the buffer drained.
func TestHoldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		var lost atomic.Int64
		f := newTestFanout(t, p, Options{BufferEvents: 20, HoldBack: time.Second, Lost: func(string) { lost.Add(1) }})
		done := make(chan struct{})
		go func() {
			for i := 1; i <= 100; i++ {
				f.Handle(Event{SubID: "s", Message: msgCreated(i)})
			}
			close(done)
		}()
		// NATS acknowledges in steps well within HoldBack: nothing is lost.
		for range 200 {
			synctest.Wait()
			select {
			case <-done:
			default:
				time.Sleep(100 * time.Millisecond)
				if n := p.pendingLen(); n > 0 {
					p.resolve(n, nil)
				}
				continue
			}
			break
		}
		synctest.Wait()
		p.resolve(p.pendingLen(), nil)
		synctest.Wait()
		if d := dropped(f, dropBufferFull); d != 0 || lost.Load() != 0 {
			t.Fatalf("burst: %d dropped, %d lost", d, lost.Load())
		}
		wantIDs(t, storedIDs(t, p), 1, 100)

		// NATS stalls: the first event past the bound waits HoldBack, the
		// rest of the overflow is shed at once.
		start := time.Now()
		for i := 101; i <= 140; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("the overflow waited %v, want one HoldBack", waited)
		}
		if d := dropped(f, dropBufferFull); d != 20 || lost.Load() != 20 {
			t.Fatalf("stall: %d dropped, %d lost, want 20", d, lost.Load())
		}
		p.resolve(p.pendingLen(), nil)
		_ = closeNow(f)
	})
}

// A borrowed message the fan-out keeps past Handle is copied: the caller
// may reuse its buffer at once.
func TestBorrowedMessageCopiedWhenKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		p.manual = true
		f := newTestFanout(t, p, Options{})
		buf := msgCreated(1)
		f.Handle(Event{SubID: "s", Message: buf, Borrowed: true})
		copy(buf, bytes.Repeat([]byte("x"), len(buf))) // the reader's next frame
		synctest.Wait()
		p.resolve(1, nil)
		synctest.Wait()
		wantIDs(t, storedIDs(t, p), 1, 1)
		_ = closeNow(f)
	})
}
