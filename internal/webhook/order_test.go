package webhook

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Two replicas. Replica A's head event of conversation 1 waits for a
// retry longer than AckWait, with the events behind it held: A keeps them
// alive and keeps the pin, so B never gets conversation 1's event 1
// before event 0.
func TestRetryKeepsOrderAcrossTwoReplicas(t *testing.T) {
	s, js := startJS(t)
	var mu sync.Mutex
	failed := false
	rc := newReceiver(t, func(n int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderID) == "m:1:1-0:created" && !failed {
			failed = true
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	ep := endpointFor(rc.srv.URL, rc.secret)
	mk := func() Options {
		o := fastOptions()
		o.Registerer = prometheus.NewRegistry()
		o.Concurrency, o.LaneDepth, o.Batch = 2, 1, 4
		o.Schedule = []time.Duration{8 * time.Second}
		return o
	}
	a := startEngine(t, connectJS(t, s.ClientURL()), mk())
	if err := a.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	b := startEngine(t, connectJS(t, s.ClientURL()), mk())
	if err := b.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 3, 0)
	got := rc.waitFor("every event", func(g []delivered) bool { return distinct(g) == 3 })
	time.Sleep(4 * time.Second)
	rc.mu.Lock()
	all := append([]delivered(nil), rc.got...)
	rc.mu.Unlock()
	t.Logf("arrivals: %+v", all)
	checkOrder(t, got, 1, 3)
}

// One replica. Its head event of conversation 1 waits for a retry longer
// than AckWait: every event held behind it is kept alive, so JetStream
// redelivers none of them (no duplicate) and the order holds.
func TestRetryKeepsOrderOneReplica(t *testing.T) {
	s, js := startJS(t)
	var mu sync.Mutex
	failed := false
	rc := newReceiver(t, func(n int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderID) == "m:1:1-0:created" && !failed {
			failed = true
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	ep := endpointFor(rc.srv.URL, rc.secret)
	mk := func() Options {
		o := fastOptions()
		o.Registerer = prometheus.NewRegistry()
		o.Concurrency, o.LaneDepth, o.Batch = 2, 1, 4
		o.Schedule = []time.Duration{8 * time.Second}
		return o
	}
	a := startEngine(t, connectJS(t, s.ClientURL()), mk())
	if err := a.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	publishEvents(t, js, 1, 3, 0)
	got := rc.waitFor("every event", func(g []delivered) bool { return distinct(g) == 3 })
	time.Sleep(4 * time.Second)
	rc.mu.Lock()
	all := append([]delivered(nil), rc.got...)
	rc.mu.Unlock()
	t.Logf("arrivals: %+v", all)
	checkOrder(t, got, 1, 3)
	if len(all) != 3 {
		t.Errorf("%d deliveries of 3 events: held events were redelivered", len(all))
	}
}

// Replica A holds conversation 1's events (the head waiting for a retry)
// when it stops; replica B, already pulling, takes the pin over while new
// events of that conversation keep coming. B must deliver A's events,
// redelivered after AckWait, before the new ones.
func TestTakeoverKeepsOrder(t *testing.T) {
	s, js := startJS(t)
	var mu sync.Mutex
	failed, once := make(chan struct{}), false
	rc := newReceiver(t, func(n int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderID) == "m:1:1-0:created" && !once {
			once = true
			close(failed)
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	ep := endpointFor(rc.srv.URL, rc.secret)
	opts := fastOptions()
	opts.Schedule = []time.Duration{time.Minute}
	a := startEngine(t, connectJS(t, s.ClientURL()), opts)
	if err := a.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishOne(t, js, 9, 0) // A holds the pin once it delivered this
	rc.waitFor("the first event", func(g []delivered) bool { return len(g) == 1 })
	opts.Registerer = prometheus.NewRegistry()
	b := startEngine(t, connectJS(t, s.ClientURL()), opts)
	if err := b.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 3, 0)
	<-failed
	a.Close(context.Background())
	publishEvents(t, js, 1, 3, 3)
	got := rc.waitFor("every event", func(g []delivered) bool { return distinct(g) == 7 })
	checkOrder(t, got, 1, 6)
}

// Replica A holds conversation 1's events (its head waiting a minute for
// a retry) when the pin goes to replica B (the server may give it back to
// A: then A keeps delivering, so the test unpins again). A sees the consumer pinned
// elsewhere and lets its events go, so B delivers them after AckWait
// instead of waiting for A's retry.
func TestReplicaThatLostThePinReleasesItsEvents(t *testing.T) {
	s, js := startJS(t)
	var mu sync.Mutex
	failed, once := make(chan struct{}), false
	rc := newReceiver(t, func(n int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(HeaderID) == "m:1:1-0:created" && !once {
			once = true
			close(failed)
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	ep := endpointFor(rc.srv.URL, rc.secret)
	opts := fastOptions()
	opts.Schedule = []time.Duration{time.Minute}
	a := startEngine(t, connectJS(t, s.ClientURL()), opts)
	if err := a.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishOne(t, js, 9, 0)
	rc.waitFor("the first event", func(g []delivered) bool { return len(g) == 1 })
	opts.Registerer = prometheus.NewRegistry()
	b := startEngine(t, connectJS(t, s.ClientURL()), opts)
	if err := b.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 3, 0)
	<-failed
	st, err := js.Stream(context.Background(), "CHATWOOT")
	if err != nil {
		t.Fatal(err)
	}
	// The next event after an unpin goes to whichever pull request the
	// server sees first, A's as well as B's: unpin until B got the pin.
	n := 0
	for took := a; took != b; n++ {
		if err := st.UnpinConsumer(context.Background(), ConsumerName(ep.ID), priorityGroup); err != nil {
			t.Fatal(err)
		}
		publishOne(t, js, 8, n)
		took = pinHolder(t, st, ep.ID, a, b)
	}
	got := rc.waitFor("every event", func(g []delivered) bool { return distinct(g) == 4+n })
	checkOrder(t, got, 1, 3)
}

// pinHolder waits until the consumer of endpoint id is pinned to the
// runner of one of the engines, and returns that engine.
func pinHolder(t *testing.T, st jetstream.Stream, id string, engines ...*Engine) *Engine {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		c, err := st.Consumer(context.Background(), ConsumerName(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range c.CachedInfo().PriorityGroups {
			for _, e := range engines {
				if g.PinnedClientID != "" && g.PinnedClientID == pinOfRunner(e, id) {
					return e
				}
			}
		}
		time.Sleep(10 * time.Millisecond) // re-check: the pin shows up with the next pull
	}
	t.Fatal("timed out waiting for the pin")
	return nil
}

// pinOfRunner is the pin id e's runner of endpoint id last pulled under.
func pinOfRunner(e *Engine, id string) string {
	e.mu.Lock()
	r := e.runners[id]
	e.mu.Unlock()
	if r == nil {
		return ""
	}
	return r.pin.Load().(string)
}
