package cable

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// harness runs a Pool against the fake Chatwoot over an in-memory network.
// Create it inside a synctest bubble.
type harness struct {
	t     *testing.T
	srv   *chatwoottest.Server
	pool  *Pool[any]
	reg   *prometheus.Registry
	start time.Time

	mu         sync.Mutex
	changes    []StateChange[any]
	deliveries []Delivery[any]
	subscribes []time.Time
	idents     []string // identifiers of the subscribes, in the order read
}

func newHarness(t *testing.T, sopts chatwoottest.Options, mod func(*Config[any])) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry(), start: time.Now()}
	sopts.OnSubscribe = func(ident string, _ time.Time) {
		h.mu.Lock()
		h.subscribes = append(h.subscribes, time.Now())
		h.idents = append(h.idents, ident)
		h.mu.Unlock()
	}
	h.srv = chatwoottest.New(sopts)
	ln := h.srv.ServeMem()
	cfg := Config[any]{
		URL:            "ws://chatwoot.test/cable",
		NetDialContext: ln.DialContext,
		Registerer:     h.reg,
		Jitter:         func() float64 { return 0.5 },
		Handler: func(d Delivery[any]) {
			h.mu.Lock()
			h.deliveries = append(h.deliveries, d)
			h.mu.Unlock()
		},
		OnState: func(c StateChange[any]) {
			h.mu.Lock()
			h.changes = append(h.changes, c)
			h.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New[any](cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.pool = p
	t.Cleanup(func() {
		p.Close()
		h.srv.Close()
	})
	return h
}

func token(i int) string { return fmt.Sprintf("tok%021d", i) }

// add registers n valid tokens with the fake and the pool.
func (h *harness) add(n int) []string {
	ids := make([]string, n)
	for i := range n {
		h.srv.AddToken(token(i), 1)
		id, err := h.pool.Add(token(i), i)
		if err != nil {
			h.t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// since is the time elapsed in the bubble.
func (h *harness) since() time.Duration { return time.Since(h.start) }

func (h *harness) changesOf(c Change) []StateChange[any] {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []StateChange[any]
	for _, ch := range h.changes {
		if ch.Change == c {
			out = append(out, ch)
		}
	}
	return out
}

func (h *harness) subscribeTimes() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]time.Duration, len(h.subscribes))
	for i, at := range h.subscribes {
		out[i] = at.Sub(h.start)
	}
	return out
}

func (h *harness) counter(name string, labels ...string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// assertNoDuplicates checks every open fake connection holds each
// identifier once and that the server never saw a duplicate subscribe.
func (h *harness) assertNoDuplicates() {
	h.t.Helper()
	if d := h.srv.Stats().DuplicateSubscribes; d != 0 {
		h.t.Errorf("server saw %d duplicate subscribes", d)
	}
	seen := map[string]int64{}
	for _, c := range h.srv.Conns() {
		for _, s := range c.Subscriptions {
			if other, dup := seen[s.Identifier]; dup {
				h.t.Errorf("identifier on connections %d and %d", other, c.ID)
			}
			seen[s.Identifier] = c.ID
		}
	}
}

func TestPoolConfirmsAndDeliversInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		ids := h.add(3)
		synctest.Wait()
		if got := len(h.changesOf(ChangeConfirmed)); got != 3 {
			t.Fatalf("confirmed %d, want 3", got)
		}
		for _, id := range ids {
			in, ok := h.pool.Get(id)
			if !ok || in.State != StateConfirmed || in.Confirms != 1 || in.Conn != 1 {
				t.Fatalf("%s: %+v", id, in)
			}
		}
		h.mu.Lock()
		h.deliveries = nil // the presence.update Chatwoot sends on subscribe
		h.mu.Unlock()
		for i := range 50 {
			h.srv.Broadcast(token(1), fmt.Appendf(nil, `{"event":"message.created","data":{"id":%d}}`, i))
		}
		synctest.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.deliveries) != 50 {
			t.Fatalf("delivered %d, want 50", len(h.deliveries))
		}
		for i, d := range h.deliveries {
			want := fmt.Sprintf(`{"event":"message.created","data":{"id":%d}}`, i)
			if string(d.Message) != want || d.ID != ids[1] || d.Meta != 1 {
				t.Fatalf("delivery %d = %s %s %v, want %s", i, d.ID, d.Message, d.Meta, want)
			}
		}
	})
}

func TestPoolBackoffExactTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var dials []time.Duration
		start := time.Now()
		cfg := Config[any]{
			URL:    "ws://chatwoot.test/cable",
			Jitter: func() float64 { return 0.5 },
			NetDialContext: func(context.Context, string, string) (net.Conn, error) {
				mu.Lock()
				dials = append(dials, time.Since(start))
				mu.Unlock()
				return nil, errors.New("connection refused")
			},
		}
		p, err := New[any](cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Add("some-token", nil)
		time.Sleep(100 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		// Full jitter at 0.5 of min(1s·2ⁿ, 30s): 0.5, 1, 2, 4, 8, 15, 15 ...
		want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond,
			7500 * time.Millisecond, 15500 * time.Millisecond, 30500 * time.Millisecond, 45500 * time.Millisecond,
			60500 * time.Millisecond, 75500 * time.Millisecond, 90500 * time.Millisecond}
		if fmt.Sprint(dials) != fmt.Sprint(want) {
			t.Fatalf("dials at %v\nwant        %v", dials, want)
		}
	})
}

func TestPoolStaleReconnectAndResubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		h.add(2)
		synctest.Wait()
		// Pings come at 3 s, 6 s, 9 s; the server hangs at 10 s.
		time.Sleep(10 * time.Second)
		h.srv.Stall(true)
		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		if n := len(h.changesOf(ChangeLost)); n != 0 {
			t.Fatalf("lost before the stale threshold: %d", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		lost := h.changesOf(ChangeLost)
		if len(lost) != 2 || lost[0].At.Sub(h.start) != 15*time.Second || lost[0].Reason != "connection" {
			t.Fatalf("lost = %+v, want 2 at 15s (6 s after the 9 s ping)", lost)
		}
		// Redial at 15.5 s gets no welcome from the hung server: stale at 21.5 s,
		// next dial after 1 s (attempt 1) at 22.5 s. The server recovers before.
		time.Sleep(7 * time.Second) // 22 s
		h.srv.Stall(false)
		time.Sleep(time.Second)
		synctest.Wait()
		conf := h.changesOf(ChangeConfirmed)
		if len(conf) != 4 {
			t.Fatalf("confirms = %d, want 4", len(conf))
		}
		for _, c := range conf[2:] {
			if c.Confirms != 2 || c.At.Sub(h.start) != 22500*time.Millisecond {
				t.Fatalf("reconfirm %+v at %v, want Confirms 2 at 22.5s", c, c.At.Sub(h.start))
			}
		}
		if got := h.counter("relay_cable_reconnects_total", "reason", "stale"); got != 2 {
			t.Fatalf("stale reconnects = %v, want 2", got)
		}
		h.assertNoDuplicates()
	})
}

// defaultInterval is the pacing interval at the default rate (50/s), with
// the pool's margin.
var defaultInterval = func() time.Duration {
	perSecond := float64(DefaultSubscribeRate) * (1 - paceMargin)
	return time.Duration(float64(time.Second) / perSecond)
}()

func TestPoolPacesSubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		h.add(120)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		times := h.subscribeTimes()
		if len(times) != 120 {
			t.Fatalf("subscribes = %d, want 120", len(times))
		}
		// Burst of 5 at once, then one every 20.2 ms (50/s less the 1 %
		// margin).
		for i, at := range times {
			want := time.Duration(max(0, i-4)) * defaultInterval
			if d := at - want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("subscribe %d at %v, want %v", i, at, want)
			}
		}
		if n := len(h.changesOf(ChangeConfirmed)); n != 120 {
			t.Fatalf("confirmed %d, want 120", n)
		}
	})
}

func TestPoolReconnectStormNeverExceedsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.PerConn = 25 })
		h.add(200)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		h.mu.Lock()
		h.subscribes = nil
		h.mu.Unlock()
		h.srv.DropAll(false)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		times := h.subscribeTimes()
		if len(times) != 200 {
			t.Fatalf("resubscribes = %d, want 200", len(times))
		}
		assertBucket(t, times)
		if n := len(h.changesOf(ChangeConfirmed)); n != 400 {
			t.Fatalf("confirms = %d, want 400", n)
		}
		h.assertNoDuplicates()
	})
}

// assertBucket checks sorted subscribe times against the default token
// bucket (50/s less the margin, burst 5): any n consecutive subscribes span
// at least n-5 intervals, so no window of any length holds more than
// rate·t + burst.
func assertBucket(t *testing.T, times []time.Duration) {
	t.Helper()
	for i := range times {
		for j := i + DefaultSubscribeBurst; j < len(times); j++ {
			min := time.Duration(j-i+1-DefaultSubscribeBurst)*defaultInterval - time.Microsecond
			if times[j]-times[i] < min {
				t.Fatalf("subscribes %d..%d within %v, want at least %v", i, j, times[j]-times[i], min)
			}
		}
	}
}

// A writer that falls behind (descheduled, or a socket that blocked) must
// not send the subscribes queued meanwhile back to back: the bound holds
// where Chatwoot sees them, in every window, not only where they are
// admitted.
func TestPoolPacesAtTheSocket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.PerConn = 25 })
		var once sync.Once
		h.pool.beforePacedWrite = func(conn int) {
			if conn == 1 { // the first connection
				once.Do(func() { time.Sleep(400 * time.Millisecond) })
			}
		}
		h.add(50)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		times := h.subscribeTimes()
		if len(times) != 50 {
			t.Fatalf("subscribes = %d, want 50", len(times))
		}
		assertBucket(t, times)
		if n := len(h.changesOf(ChangeConfirmed)); n != 50 {
			t.Fatalf("confirmed %d, want 50", n)
		}
	})
}

func TestPoolUnknownTokenRetriesThenVerifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var verified []time.Duration // guarded by vmu
		var vmu sync.Mutex
		var h *harness
		h = newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.Jitter = func() float64 { return 0 }
			c.Verifier = VerifierFunc[any](func(_ context.Context, id string, meta any) (Verdict, error) {
				vmu.Lock()
				defer vmu.Unlock()
				verified = append(verified, h.since())
				if meta != "contact-7" {
					t.Errorf("verifier meta = %v", meta)
				}
				return VerdictInvalid, nil
			})
		})
		h.add(1) // keeps the connection open throughout
		synctest.Wait()
		h.mu.Lock()
		h.subscribes = nil
		h.mu.Unlock()
		id, _ := h.pool.Add("unknown-token", "contact-7") // the fake does not know it
		time.Sleep(60 * time.Second)
		synctest.Wait()
		// Subscribe at 0; timeout at 10 s → unsubscribe, retry after 0.5 s; then
		// 1 s; after the third miss (31.5 s) the verifier says invalid.
		want := []time.Duration{0, 10500 * time.Millisecond, 21500 * time.Millisecond}
		if got := h.subscribeTimes(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("subscribes at %v, want %v", got, want)
		}
		vmu.Lock()
		defer vmu.Unlock()
		if fmt.Sprint(verified) != "[31.5s]" {
			t.Fatalf("verified at %v, want [31.5s]", verified)
		}
		inv := h.changesOf(ChangeInvalid)
		if len(inv) != 1 || inv[0].ID != id || inv[0].Reason != "verifier" {
			t.Fatalf("invalid = %+v", inv)
		}
		if in, _ := h.pool.Get(id); in.State != StateInvalid || in.Conn != 0 {
			t.Fatalf("info = %+v", in)
		}
		st := h.srv.Stats()
		if st.Unsubscribes != 3 || st.DuplicateSubscribes != 0 {
			t.Fatalf("server stats %+v: want 3 unsubscribes, no duplicates", st)
		}
		// Adding it again after the contact exists revives it.
		h.srv.AddToken("unknown-token", 1)
		h.pool.Add("unknown-token", "contact-7")
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State != StateConfirmed {
			t.Fatalf("after re-add: %+v", in)
		}
	})
}

func TestPoolVerifierValidKeepsRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.Verifier = VerifierFunc[any](func(context.Context, string, any) (Verdict, error) {
				calls.Add(1)
				return VerdictValid, nil
			})
		})
		id, _ := h.pool.Add("slow-token", nil)
		time.Sleep(45 * time.Second)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State == StateInvalid || calls.Load() == 0 {
			t.Fatalf("state %v after %d verifications", in.State, calls.Load())
		}
		h.srv.AddToken("slow-token", 1)
		time.Sleep(60 * time.Second)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State != StateConfirmed || in.Misses != 0 {
			t.Fatalf("info = %+v", in)
		}
	})
}

func TestPoolDropResubscribes(t *testing.T) {
	for _, withFrame := range []bool{false, true} {
		t.Run(fmt.Sprint("disconnect_frame=", withFrame), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.PerConn = 4 })
				h.add(10)
				time.Sleep(time.Second) // paced: 5 at once, then one per 20 ms
				synctest.Wait()
				for round := 2; round <= 4; round++ {
					h.srv.DropAll(withFrame)
					time.Sleep(2 * time.Second)
					synctest.Wait()
					for _, in := range h.pool.List() {
						if in.State != StateConfirmed || in.Confirms != round {
							t.Fatalf("round %d: %+v", round, in)
						}
					}
					h.assertNoDuplicates()
				}
				if n := len(h.changesOf(ChangeLost)); n != 30 {
					t.Fatalf("lost = %d, want 30", n)
				}
				if len(h.srv.Conns()) != 3 {
					t.Fatalf("server connections = %d, want 3", len(h.srv.Conns()))
				}
			})
		})
	}
}

func TestPoolDisconnectWithoutReconnectBacksOffToCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		h.add(1)
		synctest.Wait()
		h.srv.Disconnect("unauthorized", false)
		synctest.Wait()
		lost := h.changesOf(ChangeLost)
		if len(lost) != 1 {
			t.Fatalf("lost = %v", lost)
		}
		time.Sleep(30*time.Second - time.Millisecond)
		synctest.Wait()
		if n := len(h.changesOf(ChangeConfirmed)); n != 1 {
			t.Fatalf("reconnected before the cap: %d confirms", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		conf := h.changesOf(ChangeConfirmed)
		if len(conf) != 2 || conf[1].At.Sub(lost[0].At) != 30*time.Second {
			t.Fatalf("confirms %+v, want the second 30 s after the disconnect", conf)
		}
	})
}

func TestPoolRejectMakesInvalid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		h.srv.AddToken("bad", 1)
		h.srv.RejectToken("bad")
		id, _ := h.pool.Add("bad", nil)
		synctest.Wait()
		inv := h.changesOf(ChangeInvalid)
		if len(inv) != 1 || inv[0].ID != id || inv[0].Reason != "rejected" {
			t.Fatalf("invalid = %+v", inv)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(h.subscribeTimes()); n != 1 {
			t.Fatalf("subscribes = %d: an invalid subscription must not be retried", n)
		}
	})
}

// TestPoolSlowHandlerDoesNotFreezeReader: a handler that blocks fills the
// bounded delivery queue; further broadcasts are dropped with a gap report,
// and the connection keeps reading pings instead of going stale.
// blockedHandler is a Handler that blocks on every message.created until
// released, then records them.
type blockedHandler struct {
	ch       chan struct{}
	released bool
	mu       sync.Mutex
	got      []string
}

func newBlockedHandler() *blockedHandler { return &blockedHandler{ch: make(chan struct{})} }

// unblock releases the handler if the test did not: defer it, so that a
// failed check does not leave the pool's Close waiting for the handler.
func (b *blockedHandler) unblock() {
	if !b.released {
		close(b.ch)
	}
}

func (b *blockedHandler) handle(d Delivery[any]) {
	if !strings.Contains(string(d.Message), "message.created") {
		return
	}
	<-b.ch
	b.mu.Lock()
	b.got = append(b.got, string(d.Message))
	b.mu.Unlock()
}

// release lets the handler go and returns what it got once the bubble is
// idle again.
func (b *blockedHandler) release() []string {
	close(b.ch)
	b.released = true
	synctest.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got
}

func TestPoolSlowHandlerDoesNotFreezeReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := newBlockedHandler()
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.DeliveryQueue, c.Handler = 4, bh.handle
		})
		defer bh.unblock()
		h.add(1)
		synctest.Wait()
		// The first broadcast reaches the handler and blocks it; only then
		// do the others come, so exactly 4 fit in the queue whichever way
		// the reader and the delivery goroutine are scheduled.
		broadcast := func(i int) {
			h.srv.Broadcast(token(0), fmt.Appendf(nil, `{"event":"message.created","data":{"id":%d}}`, i))
		}
		broadcast(0)
		synctest.Wait()
		for i := 1; i < 10; i++ {
			broadcast(i)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		// 1 in the handler, 4 queued, 5 dropped: one gap reported for them.
		if gaps := h.changesOf(ChangeGap); len(gaps) != 1 || gaps[0].Reason != "queue_full" {
			t.Fatalf("gaps = %+v, want one", gaps)
		}
		if n := h.counter("relay_cable_dropped_total", "reason", "queue_full"); n != 5 {
			t.Fatalf("queue_full drops = %v", n)
		}
		if n := len(h.changesOf(ChangeLost)); n != 0 {
			t.Fatalf("connection lost while the handler was slow")
		}
		got := bh.release()
		if len(got) != 5 || got[0] != `{"event":"message.created","data":{"id":0}}` || got[4] != `{"event":"message.created","data":{"id":4}}` {
			t.Fatalf("delivered %v", got)
		}
	})
}

func TestPoolRemoveUnsubscribesAndRebalances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.PerConn = 10 })
		ids := h.add(25)
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(h.srv.Conns()); n != 3 {
			t.Fatalf("connections = %d, want 3", n)
		}
		// Remove 8 of the first connection's 10: 17 left fit on two connections.
		for _, id := range ids[:8] {
			if !h.pool.Remove(id) {
				t.Fatal("remove failed")
			}
		}
		if h.pool.Remove(ids[0]) {
			t.Fatal("second remove reported success")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(h.changesOf(ChangeRemoved)); n != 8 {
			t.Fatalf("removed events = %d", n)
		}
		if st := h.pool.Stats(); st.Connections != 2 || st.Subscriptions[StateConfirmed] != 17 {
			t.Fatalf("stats = %+v", st)
		}
		conns := h.srv.Conns()
		total := 0
		for _, c := range conns {
			total += len(c.Subscriptions)
		}
		if len(conns) != 2 || total != 17 {
			t.Fatalf("server has %d connections with %d subscriptions, want 2 with 17", len(conns), total)
		}
		h.assertNoDuplicates()
		if g := testutil.ToFloat64(h.pool.m.subState[StateConfirmed]); g != 17 {
			t.Fatalf("confirmed gauge = %v", g)
		}
	})
}

// TestPoolDrainHoldsMovedSubscribes: subscriptions moved off a drained
// connection are subscribed on their new socket only unsubscribeGap after
// the old one closed. Chatwoot handles the close and the subscribe on
// different sockets independently, so subscribing at once could leave a
// token held by two sockets for a moment (seen in the scale-out proof).
func TestPoolDrainHoldsMovedSubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tokens chatwoottest.TokenLog
		h := newHarness(t, chatwoottest.Options{OnToken: tokens.Record}, func(c *Config[any]) { c.PerConn = 10 })
		ids := h.add(25)
		time.Sleep(time.Second)
		synctest.Wait()
		before := len(h.subscribeTimes())
		drainAt := h.since()
		for _, id := range ids[:8] { // the first connection's last 2 move
			h.pool.Remove(id)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		moved := h.subscribeTimes()[before:]
		if len(moved) != 2 {
			t.Fatalf("%d subscribes after the drain, want the 2 moved", len(moved))
		}
		for _, at := range moved {
			if at-drainAt < unsubscribeGap {
				t.Errorf("moved subscription subscribed %v after the drain, want at least %v", at-drainAt, unsubscribeGap)
			}
		}
		if ov := tokens.Overlaps(h.start, time.Now()); len(ov) != 0 {
			t.Errorf("tokens on two sockets at once: %+v", ov)
		}
		if st := h.pool.Stats(); st.Connections != 2 || st.Subscriptions[StateConfirmed] != 17 {
			t.Fatalf("stats = %+v", st)
		}
		h.assertNoDuplicates()
	})
}

func TestPoolPresenceHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.PresenceInterval = 15 * time.Second })
		h.add(2)
		synctest.Wait()
		// Jitter 0.5: first at 7.5 s, then 22.5 s, 37.5 s.
		time.Sleep(40 * time.Second)
		synctest.Wait()
		if n := h.srv.Stats().PresenceUpdates; n != 6 {
			t.Fatalf("presence updates = %d, want 6", n)
		}
	})
}

func TestPoolOrigin(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mod      func(*Config[any])
		confirms int
	}{
		{"derived from URL", nil, 1},
		{"explicit", func(c *Config[any]) { c.Origin = "http://chatwoot.test" }, 1},
		{"none", func(c *Config[any]) { c.NoOrigin = true }, 0},
		{"wrong", func(c *Config[any]) { c.Origin = "https://evil.test" }, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, chatwoottest.Options{RequireOrigin: "http://chatwoot.test"}, tt.mod)
				h.add(1)
				time.Sleep(time.Second)
				synctest.Wait()
				if n := len(h.changesOf(ChangeConfirmed)); n != tt.confirms {
					t.Fatalf("confirms = %d, want %d", n, tt.confirms)
				}
			})
		})
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config[any]
		want string
	}{
		{Config[any]{URL: "http://x/cable"}, "scheme"},
		{Config[any]{URL: "ws:///cable"}, "no host"},
		{Config[any]{URL: "ws://x/cable", BackoffMin: time.Minute}, "exceeds"},
		{Config[any]{URL: "ws://x/cable", StaleAfter: -1}, "negative"},
	} {
		_, err := New[any](tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.cfg.URL, err, tt.want)
		}
	}
	p, err := New[any](Config[any]{URL: "ws://x/cable"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, bad := range []string{"", "a\nb", strings.Repeat("x", 257)} {
		if _, err := p.Add(bad, nil); !errors.Is(err, ErrBadToken) {
			t.Errorf("Add(%q) = %v", bad, err)
		}
	}
}

// TestDefaults pins the documented defaults.
func TestDefaults(t *testing.T) {
	var c Config[any]
	c.setDefaults()
	got := fmt.Sprint(c.PerConn, c.SubscribeRate, c.SubscribeBurst, c.StaleAfter, c.BackoffMin, c.BackoffMax,
		c.ConfirmTimeout, c.VerifyAfter, c.PresenceInterval, c.ReadLimit, c.DeliveryQueue)
	want := "200 50 5 6s 1s 30s 10s 3 0s 1048576 8192"
	if got != want {
		t.Fatalf("defaults %s, want %s", got, want)
	}
}

func TestCableURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://chat.example.com":       "wss://chat.example.com/cable",
		"http://localhost:3000/":         "ws://localhost:3000/cable",
		"https://example.com/chatwoot?x": "wss://example.com/chatwoot/cable",
	} {
		if got, err := CableURL(in); err != nil || got != want {
			t.Errorf("CableURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := CableURL("ftp://x"); err == nil {
		t.Error("ftp accepted")
	}
}

// TestPoolReaddWaitsAfterUnsubscribe: removing and adding a token again
// never sends its subscribe right behind the unsubscribe on one socket.
func TestPoolReaddWaitsAfterUnsubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		ids := h.add(2)
		synctest.Wait()
		removedAt := h.since()
		h.pool.Remove(ids[1])
		h.pool.Add(token(1), 1)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		times := h.subscribeTimes()
		if len(times) != 3 || times[2]-removedAt != unsubscribeGap {
			t.Fatalf("subscribes at %v, want the third %v after the remove at %v", times, unsubscribeGap, removedAt)
		}
		if in, _ := h.pool.Get(ids[1]); in.State != StateConfirmed {
			t.Fatalf("re-added: %+v", in)
		}
		h.assertNoDuplicates()
	})
}

// TestPoolOversizedFrameSkipped: a frame above the read limit is refused and
// reported as a gap of its subscription; the connection and the frames
// after it live on.
func TestPoolOversizedFrameSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.ReadLimit = 4096 })
		h.add(1)
		synctest.Wait()
		big := fmt.Appendf(nil, `{"event":"message.created","data":{"content":"%s"}}`, strings.Repeat("x", 8000))
		h.srv.Broadcast(token(0), big)
		h.srv.Broadcast(token(0), []byte(`{"event":"message.created","data":{"id":2}}`))
		synctest.Wait()
		if n := h.counter("relay_cable_dropped_total", "reason", "oversized"); n != 1 {
			t.Fatalf("oversized drops = %v", n)
		}
		if gaps := h.changesOf(ChangeGap); len(gaps) != 1 || gaps[0].Reason != "oversized" {
			t.Fatalf("gaps = %+v", gaps)
		}
		if n := len(h.changesOf(ChangeLost)); n != 0 {
			t.Fatal("the connection was dropped")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		last := h.deliveries[len(h.deliveries)-1]
		if string(last.Message) != `{"event":"message.created","data":{"id":2}}` {
			t.Fatalf("last delivery %s", last.Message)
		}
	})
}

// sharedPace admits one subscribe per tick of its own, as a deployment-wide
// bucket slower than the process's would.
type sharedPace struct{ every time.Duration }

func (s sharedPace) Wait(ctx context.Context) error {
	select {
	case <-time.After(s.every):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPoolWaitsForTheSharedPace: with a deployment-wide pace slower than
// the process's rate, subscribes go out at the shared pace.
func TestPoolWaitsForTheSharedPace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.SharedPace = sharedPace{every: 100 * time.Millisecond} })
		h.add(10)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		times := h.subscribeTimes()
		if len(times) != 10 {
			t.Fatalf("subscribes = %d, want 10", len(times))
		}
		for i, at := range times {
			if want := time.Duration(i+1) * 100 * time.Millisecond; at < want {
				t.Fatalf("subscribe %d at %v, before the shared pace allows (%v)", i, at, want)
			}
		}
	})
}

// Invalidate stops a confirmed subscription the relay learned is dead:
// Chatwoot sees the unsubscribe, the change carries the reason, nothing is
// retried, and adding the token again subscribes it again.
func TestPoolInvalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		ids := h.add(1)
		time.Sleep(time.Second)
		synctest.Wait()
		if !h.pool.Invalidate(ids[0], "gone") || h.pool.Invalidate(ids[0], "gone") || h.pool.Invalidate("unknown", "gone") {
			t.Fatal("Invalidate reports wrong")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		inv := h.changesOf(ChangeInvalid)
		if len(inv) != 1 || inv[0].Reason != "gone" {
			t.Fatalf("invalid changes %+v", inv)
		}
		if in, _ := h.pool.Get(ids[0]); in.State != StateInvalid {
			t.Fatalf("state %v", in.State)
		}
		total := 0
		for _, c := range h.srv.Conns() {
			total += len(c.Subscriptions)
		}
		if total != 0 || len(h.subscribeTimes()) != 1 {
			t.Fatalf("server holds %d subscriptions after %d subscribes", total, len(h.subscribeTimes()))
		}
		if _, err := h.pool.Add(token(0), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if in, _ := h.pool.Get(ids[0]); in.State != StateConfirmed {
			t.Fatalf("state %v after adding again", in.State)
		}
	})
}

// TestPoolDirectHoldsTheSocket: with Direct, the reader itself calls the
// handler; a handler that waits holds the socket back instead of dropping
// broadcasts, and every broadcast arrives, in order, once it returns.
func TestPoolDirectHoldsTheSocket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := newBlockedHandler()
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.Direct, c.DeliveryQueue, c.Handler = true, 4, bh.handle
		})
		defer bh.unblock()
		h.add(1)
		synctest.Wait()
		for i := range 10 {
			h.srv.Broadcast(token(0), fmt.Appendf(nil, `{"event":"message.created","data":{"id":%d}}`, i))
		}
		time.Sleep(2 * time.Second) // below StaleAfter
		synctest.Wait()
		if n := h.counter("relay_cable_dropped_total", "reason", "queue_full"); n != 0 {
			t.Fatalf("queue_full drops = %v", n)
		}
		got := bh.release()
		if len(got) != 10 || got[0] != `{"event":"message.created","data":{"id":0}}` || got[9] != `{"event":"message.created","data":{"id":9}}` {
			t.Fatalf("delivered %v", got)
		}
		if n := len(h.changesOf(ChangeLost)); n != 0 {
			t.Fatalf("connection lost while the handler held it")
		}
	})
}

// The pool is the index of its records: Lookup, Len and Each read it.
func TestPoolIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		ids := h.add(3)
		if m, ok := h.pool.Lookup(ids[1]); !ok || m != 1 {
			t.Fatalf("Lookup = %v, %v", m, ok)
		}
		if _, ok := h.pool.Lookup("unknown"); ok {
			t.Fatal("Lookup found an unknown id")
		}
		h.pool.Remove(ids[0])
		seen := map[string]any{}
		h.pool.Each(func(id string, m any) { seen[id] = m })
		if h.pool.Len() != 2 || len(seen) != 2 || seen[ids[2]] != 2 {
			t.Fatalf("Len %d, Each %v", h.pool.Len(), seen)
		}
	})
}
