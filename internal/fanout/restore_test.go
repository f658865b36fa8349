package fanout

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/natsserver"
)

// coreCounter counts, per Nats-Msg-Id, the messages a core subscriber
// receives.
type coreCounter struct {
	mu  sync.Mutex
	nc  *nats.Conn
	ids map[string]int
}

func countCore(t *testing.T, url, subject string) *coreCounter {
	t.Helper()
	c := &coreCounter{nc: connect(t, url), ids: map[string]int{}}
	if _, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ids[m.Header.Get(HeaderMsgID)]++
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// counts returns the number of distinct ids and of extra copies received,
// after a round trip that lets everything published before arrive.
func (c *coreCounter) counts(t *testing.T) (distinct, dups int) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.ids {
		dups += n - 1
	}
	return len(c.ids), dups
}

// TestIntegrationRestartRestoresDedupWindow: a relay publishes events into
// the stream and goes away; a new relay process (fresh Fanout) is handed
// the same events again as catch-up replays, plus new ones. Core
// subscribers get every event once, and the replays count as published.
func TestIntegrationRestartRestoresDedupWindow(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, t.TempDir())
	core := countCore(t, s.ClientURL(), "chatwoot.>")
	first := openFanout(t, s.ClientURL(), false, Options{})
	waitUntil(t, first, "first ready", first.Ready)
	for i := 1; i <= 20; i++ {
		first.Handle(Event{SubID: "s", Message: msgCreated(i)})
	}
	closeFlush(t, first) // all stored; its window dies with it

	var reported atomic.Int64
	second := openFanout(t, s.ClientURL(), false, Options{
		Published: func(string, Route) { reported.Add(1) },
	})
	for i := 11; i <= 30; i++ {
		second.Handle(Event{SubID: "s", Message: msgCreated(i), Replayed: i <= 20})
	}
	closeFlush(t, second)

	if distinct, dups := core.counts(t); distinct != 30 || dups != 0 {
		t.Fatalf("core subscriber: %d distinct ids, %d duplicates; want 30 and 0", distinct, dups)
	}
	if got := dropped(second, dropDuplicate); got != 10 {
		t.Fatalf("duplicates dropped in-process = %d, want 10", got)
	}
	if got := reported.Load(); got != 20 {
		t.Fatalf("Published reported %d events, want 20 (replays of stored events included)", got)
	}
}

// publishIDs stores n message.created events with ids from..from+n-1
// directly in the stream, as a relay would.
func publishIDs(t testing.TB, js jetstream.JetStream, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DefaultStreamName, Subjects: []string{"chatwoot.>"}, Duplicates: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		m := nats.NewMsg("chatwoot.1.2._.3.message.created")
		m.Header.Set(HeaderMsgID, fmt.Sprintf("m:1:%d:created", i))
		for _, h := range []string{HeaderEvent, HeaderAccount, HeaderInbox, HeaderContact, HeaderConversation, HeaderSubscription} {
			m.Header.Set(h, "1") // the size of a relay's headers
		}
		m.Header.Set(HeaderReceivedAt, "2026-11-21T08:13:01.962000123Z")
		m.Data = msgCreated(i)
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
		if (i-from)%1000 == 999 || i == from+n-1 {
			select { // at most 1,000 unacknowledged
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("stream did not acknowledge every publish")
			}
		}
	}
}

// restoreFrom rebuilds a window of size from the stream as of now.
func restoreFrom(t testing.TB, js jetstream.JetStream, size int, ttl time.Duration, now time.Time) (*window, int) {
	t.Helper()
	w := newWindow(size)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	n, err := restoreWindow(ctx, js, DefaultStreamName, w, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return w, n
}

func newJS(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestRestoreWindowBounds: at most the window's size is read (the newest
// ids), ids are kept for the window's TTL from when they were stored, and
// ids the window does not keep across restarts are skipped.
func TestRestoreWindowBounds(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, t.TempDir())
	js := newJS(t, s.ClientURL())
	if w, n := restoreFrom(t, js, 10, time.Minute, time.Now()); n != 0 || w.len() != 0 {
		t.Fatalf("without a stream: read %d, hold %d", n, w.len())
	}
	publishIDs(t, js, 1, 50)
	lc := nats.NewMsg("chatwoot.relay.subscription.confirmed")
	lc.Header.Set(HeaderMsgID, "l:subscription.confirmed:s:1")
	if _, err := js.PublishMsg(context.Background(), lc); err != nil {
		t.Fatal(err)
	}
	stored := time.Now()

	w, n := restoreFrom(t, js, 10, time.Minute, stored)
	if n != 10 {
		t.Fatalf("read %d messages, want the window's size 10", n)
	}
	now := stored.UnixNano()
	if w.seen("m:1:41:created", now) || !w.seen("m:1:42:created", now) || !w.seen("m:1:50:created", now) {
		t.Fatal("the window does not hold exactly the newest ids")
	}
	if w.seen("l:subscription.confirmed:s:1", now) || w.len() != 9 {
		t.Fatalf("lifecycle id restored (window holds %d)", w.len())
	}
	if w.seen("m:1:50:created", stored.Add(2*time.Minute).UnixNano()) {
		t.Fatal("a restored id outlives its TTL")
	}

	if w, n := restoreFrom(t, js, 100, time.Minute, stored.Add(2*time.Minute)); n != 0 || w.len() != 0 {
		t.Fatalf("ids older than the TTL: read %d, hold %d", n, w.len())
	}
	if w, n := restoreFrom(t, js, 100, time.Minute, stored); n != 51 || w.len() != 50 {
		t.Fatalf("whole stream: read %d, hold %d; want 51 and 50", n, w.len())
	}
}

// TestRestoreWindowNewestFirst: the newest messages are read first, then
// the older ones up to the window's size or age bound.
func TestRestoreWindowNewestFirst(t *testing.T) {
	defer func(n uint64) { restoreRecent = n }(restoreRecent)
	restoreRecent = 5
	s := startServer(t, natsserver.RandomPort, t.TempDir())
	js := newJS(t, s.ClientURL())
	publishIDs(t, js, 1, 50)
	now := time.Now()
	for _, tc := range []struct{ size, read, oldest int }{
		{size: 20, read: 20, oldest: 31}, // bounded by size: from sequence 31
		{size: 100, read: 50, oldest: 1}, // bounded by age: from the first
		{size: 3, read: 3, oldest: 48},   // the newest part alone
	} {
		w, n := restoreFrom(t, js, tc.size, time.Minute, now)
		if n != tc.read || w.len() != tc.read {
			t.Fatalf("size %d: read %d, hold %d; want %d", tc.size, n, w.len(), tc.read)
		}
		for id := tc.oldest; id <= 50; id++ {
			if !w.seen(fmt.Sprintf("m:1:%d:created", id), now.UnixNano()) {
				t.Fatalf("size %d: id %d not restored", tc.size, id)
			}
		}
	}
}

// BenchmarkRestoreWindow measures rebuilding a full default window
// (100,000 ids) from the stream.
func BenchmarkRestoreWindow(b *testing.B) {
	dir := b.TempDir()
	s, err := natsserver.Start(natsserver.Config{Port: natsserver.RandomPort, JetStream: true, StoreDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown()
	js := newJS(b, s.ClientURL())
	publishIDs(b, js, 1, DefaultDedupSize)
	b.ResetTimer()
	for b.Loop() {
		w, n := restoreFrom(b, js, DefaultDedupSize, DefaultDedupTTL, time.Now())
		if n != DefaultDedupSize || w.len() != DefaultDedupSize {
			b.Fatalf("read %d, hold %d", n, w.len())
		}
	}
}
