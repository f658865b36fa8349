package cable

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// A token Chatwoot never confirms, while it confirms others, is parked
// after ParkAfter misses: tried again every ParkInterval only, logged once
// on its first miss and then in a periodic count, not per retry.
func TestPoolParksUnconfirmedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &logBuffer{}
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.Jitter = func() float64 { return 0 }
			c.ParkAfter = 3
			c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		})
		h.add(1) // Chatwoot confirms this one
		synctest.Wait()
		h.mu.Lock()
		h.subscribes = nil
		h.mu.Unlock()
		id, _ := h.pool.Add("unknown-token", nil)
		// Subscribes at 0, 10.5 s, 21.5 s (as in the test above); the third
		// miss at 31.5 s parks it for ParkInterval/2 (jitter 0): 5 min.
		time.Sleep(32 * time.Second)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State != StateParked || in.Misses != 3 {
			t.Fatalf("after 3 misses: %+v", in)
		}
		if st := h.pool.Stats(); st.Subscriptions[StateParked] != 1 {
			t.Fatalf("stats %+v", st)
		}
		if g := testutil.ToFloat64(h.pool.m.subState[StateParked]); g != 1 {
			t.Fatalf("parked gauge = %v", g)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		// Parked tries every 5 min, each unconfirmed 10 s later.
		got := h.subscribeTimes()
		want := []time.Duration{0, 10500 * time.Millisecond, 21500 * time.Millisecond, 331500 * time.Millisecond, 641500 * time.Millisecond}
		if len(got) < len(want) || fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) || len(got) != 14 {
			t.Fatalf("subscribes at %v, want %v then one per 5 min 10 s (14 in all)", got, want)
		}
		if in, _ := h.pool.Get(id); in.State != StateParked {
			t.Fatalf("after an hour: %+v", in)
		}
		if n := logs.count("not confirmed in time"); n != 1 {
			t.Errorf("%d lines on missed confirms, want 1:\n%s", n, logs.buf.String())
		}
		if n := logs.count("subscriptions parked"); n < 10 || n > 13 {
			t.Errorf("%d parked summaries in an hour, want one per 5 min", n)
		}
		if n := logs.count("parked=1"); n != logs.count("subscriptions parked") {
			t.Errorf("summaries do not count the parked subscription:\n%s", logs.buf.String())
		}

		// Known to Chatwoot now: the next try confirms it.
		h.srv.AddToken("unknown-token", 1)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State != StateConfirmed || in.Misses != 0 {
			t.Fatalf("after the token became known: %+v", in)
		}
	})
}

// A Chatwoot that confirms nothing is down, not full of unknown tokens:
// its subscriptions are not parked and keep the usual backoff.
func TestPoolDoesNotParkWhenNothingConfirms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) { c.ParkAfter = 2 })
		id, _ := h.pool.Add("unknown-token", nil)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State == StateParked || in.Misses < 5 {
			t.Fatalf("info = %+v", in)
		}
	})
}

// A real contact registered behind 2,000 tokens Chatwoot never confirms is
// subscribed before their retries: new subscriptions do not queue behind
// subscriptions that already missed a confirm.
func TestPoolNewSubscriptionBeforeRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, chatwoottest.Options{}, nil)
		h.add(1)
		for i := range 2000 {
			if _, err := h.pool.Add(fmt.Sprintf("made-up-%05d", i), nil); err != nil {
				t.Fatal(err)
			}
		}
		// 2,000 first subscribes take 40 s at 50/s; by 70 s every one has
		// missed its confirm and retries are queued.
		time.Sleep(70 * time.Second)
		synctest.Wait()
		queued := h.pool.Stats().QueueDepth
		if queued < 100 {
			t.Fatalf("only %d subscribes queued: the test proves nothing", queued)
		}
		h.mu.Lock()
		before := len(h.idents)
		h.mu.Unlock()
		real := "real-contact-token"
		h.srv.AddToken(real, 1)
		id, _ := h.pool.Add(real, nil)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if in, _ := h.pool.Get(id); in.State != StateConfirmed {
			t.Fatalf("real contact: %+v", in)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		ahead := -1
		for i, ident := range h.idents[before:] {
			if strings.Contains(ident, real) {
				ahead = i
				break
			}
		}
		t.Logf("%d subscribes queued when the real contact registered; %d sent ahead of it", queued, ahead)
		if ahead < 0 || ahead > DefaultSubscribeBurst+1 {
			t.Fatalf("%d subscribe frames ahead of the real contact's, want at most %d", ahead, DefaultSubscribeBurst+1)
		}
	})
}

// 2,000 tokens Chatwoot never confirms log one line each on their first
// miss and then a periodic count, not a line per retry, and end parked.
func TestPoolUnconfirmedTokensLogQuietly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := &logBuffer{}
		h := newHarness(t, chatwoottest.Options{}, func(c *Config[any]) {
			c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		})
		h.add(1)
		for i := range 2000 {
			h.pool.Add(fmt.Sprintf("made-up-%05d", i), nil)
		}
		time.Sleep(9 * time.Minute)
		synctest.Wait()
		warns := logs.count("level=WARN")
		st := h.pool.Stats()
		t.Logf("9 min: %d WARN lines, %d subscribes sent, %d parked", warns, int(testutil.ToFloat64(h.pool.m.subscribes)), st.Subscriptions[StateParked])
		if warns > 2000+2 {
			t.Fatalf("%d WARN lines for 2,000 unconfirmed tokens, want one each and a summary every 5 min", warns)
		}
		if st.Subscriptions[StateParked] != 2000 {
			t.Fatalf("stats %+v, want 2,000 parked", st)
		}
	})
}
