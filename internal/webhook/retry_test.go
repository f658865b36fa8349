package webhook

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
)

// The default schedule, without jitter: attempts at 0, 5 s, 5 min, 30 min,
// 2 h, 5 h, 10 h and 10 h after the previous one, then a dead letter with
// the last status, and the event acknowledged.
func TestRetryScheduleThenDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &script{statuses: []int{500}}
		r, pub := testRunner(t, Options{Jitter: -1, BreakerThreshold: 100}, rt)
		m := newFakeMsg(7, "chatwoot.1.2.3.4.message.created", "m:1:99:created")
		start := time.Now()
		if !deliver(r, m) {
			t.Fatal("deliver gave up")
		}
		at := rt.times()
		if len(at) != len(DefaultSchedule)+1 {
			t.Fatalf("%d attempts, want %d", len(at), len(DefaultSchedule)+1)
		}
		prev := start
		for i, a := range at {
			want := time.Duration(0)
			if i > 0 {
				want = DefaultSchedule[i-1]
			}
			if got := a.Sub(prev); got != want {
				t.Errorf("attempt %d after %v, want %v", i+1, got, want)
			}
			prev = a
		}
		if !m.acked.Load() || len(pub.msgs) != 1 {
			t.Fatalf("acked %v, dead letters %d", m.acked.Load(), len(pub.msgs))
		}
		d := pub.msgs[0]
		if d.Subject != "chatwoot.relay.webhook.dead.crm" || d.Header.Get(HeaderDeadStatus) != "500" ||
			d.Header.Get(HeaderDeadError) != "HTTP 500" || d.Header.Get(HeaderDeadAttempts) != "8" ||
			d.Header.Get(HeaderDeadEventID) != "m:1:99:created" || d.Header.Get(HeaderDeadSeq) != "7" ||
			d.Header.Get(nats.MsgIdHdr) == "m:1:99:created" || string(d.Data) != string(m.data) {
			t.Fatalf("dead letter %s %v %s", d.Subject, d.Header, d.Data)
		}
		// Every attempt carries the same webhook-id, and the routing headers.
		for _, req := range rt.reqs {
			if req.Header.Get(HeaderID) != "m:1:99:created" || req.Header.Get("Chatwoot-Event") != "message.created" {
				t.Fatalf("headers %v", req.Header)
			}
		}
	})
}

// A 429 with Retry-After: 120 waits 120 s, not the schedule's 5 s.
func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &script{statuses: []int{429, 204}, headers: []http.Header{{"Retry-After": {"120"}}}}
		r, _ := testRunner(t, Options{Jitter: -1}, rt)
		m := newFakeMsg(1, "chatwoot.1.2.3.4.message.created", "id")
		if !deliver(r, m) || !m.acked.Load() {
			t.Fatal("not delivered")
		}
		at := rt.times()
		if len(at) != 2 || at[1].Sub(at[0]) != 120*time.Second {
			t.Fatalf("attempts %v", at)
		}
	})
}

// Configurable schedule with jitter stays within ±jitter of each entry.
func TestRetryJitterWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &script{statuses: []int{503, 503, 503, 200}}
		sched := []time.Duration{time.Minute, time.Minute, time.Minute}
		r, _ := testRunner(t, Options{Schedule: sched, Jitter: 0.5}, rt)
		if !deliver(r, newFakeMsg(1, "chatwoot.1.2.3.4.message.created", "id")) {
			t.Fatal("not delivered")
		}
		at := rt.times()
		for i := 1; i < len(at); i++ {
			if d := at[i].Sub(at[i-1]); d < 30*time.Second || d > 90*time.Second {
				t.Fatalf("wait %v outside 1 min ± 50%%", d)
			}
		}
	})
}

// After BreakerThreshold failures the circuit opens: no attempt for the
// cooldown, then a single probe; a failed probe opens it again, a good
// one closes it and lets the waiting attempts through.
func TestBreakerPausesAndProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []string
		b := newBreaker(3, time.Minute, func(from, to string) { changes = append(changes, to) })
		ctx := context.Background()
		for range 3 {
			if err := b.wait(ctx); err != nil {
				t.Fatal(err)
			}
			b.record(false)
		}
		if b.current() != circuitOpen {
			t.Fatalf("state %s after 3 failures", b.current())
		}
		start := time.Now()
		if err := b.wait(ctx); err != nil { // the probe
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Fatalf("probe after %v, want the 1 min cooldown", d)
		}
		other := make(chan time.Duration, 1)
		go func() { _ = b.wait(ctx); other <- time.Since(start) }()
		synctest.Wait()
		select {
		case <-other:
			t.Fatal("a second attempt passed while the probe was in flight")
		default:
		}
		b.record(false) // probe failed: open again
		synctest.Wait()
		if b.current() != circuitOpen {
			t.Fatalf("state %s after a failed probe", b.current())
		}
		// The waiting attempt becomes the next probe, one cooldown later.
		if d := <-other; d != 2*time.Minute {
			t.Fatalf("next probe after %v, want 2 min", d)
		}
		b.record(true)
		if b.current() != circuitClosed {
			t.Fatalf("state %s after a good probe", b.current())
		}
		if err := b.wait(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{circuitOpen, circuitHalfOpen, circuitOpen, circuitHalfOpen, circuitClosed}
		if len(changes) != len(want) {
			t.Fatalf("transitions %v, want %v", changes, want)
		}
	})
}

// The runner keeps every event it holds alive while a head waits for a
// retry, so JetStream redelivers none of them behind its back; a settled
// event is no longer touched.
func TestHeldEventsKeptAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		r, _ := testRunner(t, Options{}, &script{statuses: []int{204}})
		a, b := newFakeMsg(1, "s", "a"), newFakeMsg(2, "s", "b")
		r.q.add(a)
		r.q.add(b)
		go r.keepAlive(ctx, 10*time.Second)
		time.Sleep(35 * time.Second)
		if a.inProgress.Load() != 3 || b.inProgress.Load() != 3 {
			t.Fatalf("in-progress %d %d, want 3 each", a.inProgress.Load(), b.inProgress.Load())
		}
		r.q.settled(r.q.next())
		time.Sleep(10 * time.Second)
		if a.inProgress.Load() != 3 || b.inProgress.Load() != 4 {
			t.Fatalf("a settled event is still kept alive")
		}
		cancel()
	})
}
