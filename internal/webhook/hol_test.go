package webhook

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// A conversation whose events the receiver refuses does not stall the
// other conversations of the endpoint (even with one event of room per
// worker), and the events held meanwhile are not redelivered: the
// receiver gets each healthy event once, at once.
func TestFailingConversationDoesNotStallOthers(t *testing.T) {
	_, js := startJS(t)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if r.Header.Get("Chatwoot-Conversation-Id") == "1" {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	opts := fastOptions()
	opts.Registerer = prometheus.NewRegistry()
	opts.Concurrency, opts.LaneDepth, opts.Batch = 4, 1, 8
	opts.Schedule = []time.Duration{6 * time.Second} // one retry, then dead letter
	e := startEngine(t, js, opts)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	publishEvents(t, js, 1, 2, 0) // conversation 1: two events (head + one queued/blocked)
	time.Sleep(200 * time.Millisecond)
	for c := 2; c <= 6; c++ { // five healthy conversations
		publishOne(t, js, c, 0)
	}
	got := rc.waitFor("healthy conversations", func(g []delivered) bool { return distinct(g) == 5 })
	first := time.Since(start)
	time.Sleep(5 * time.Second) // let redeliveries land
	rc.mu.Lock()
	total := len(rc.got)
	rc.mu.Unlock()
	t.Logf("healthy conversations all delivered after %v; %d accepted deliveries for 5 events", first, total)
	if first > 3*time.Second {
		t.Errorf("healthy conversations waited %v behind conversation 1's retries", first)
	}
	if total != len(got) || total > 5 {
		t.Errorf("duplicates: %d deliveries of 5 distinct events", total)
	}
}

func publishOne(t *testing.T, js jetstream.JetStream, c, i int) {
	t.Helper()
	m := nats.NewMsg("chatwoot.1.2." + strconv.Itoa(c) + "." + strconv.Itoa(c) + ".message.created")
	m.Header.Set(nats.MsgIdHdr, "m:1:"+strconv.Itoa(c)+"-"+strconv.Itoa(i)+":created")
	m.Header.Set("Chatwoot-Event", "message.created")
	m.Header.Set("Chatwoot-Conversation-Id", strconv.Itoa(c))
	m.Data = []byte(`{"event":"message.created","data":{"conv":` + strconv.Itoa(c) + `,"i":` + strconv.Itoa(i) + `}}`)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// roundTrip answers HTTP requests with a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// With a single worker, a conversation whose head waits a minute for its
// retry leaves the worker to the others; its own later event waits behind
// the head and follows it.
func TestRetryingConversationFreesItsWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var ids []string
		failed := false
		rt := roundTrip(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			id := r.Header.Get(HeaderID)
			ids = append(ids, id)
			st := http.StatusNoContent
			if id == "a0" && !failed {
				failed, st = true, http.StatusInternalServerError
			}
			return &http.Response{StatusCode: st, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})
		r, _ := testRunner(t, Options{Concurrency: 1, Schedule: []time.Duration{time.Minute}, Jitter: -1, BreakerThreshold: 100}, rt)
		a0, a1 := newFakeMsg(1, "chatwoot.1.2.3.4.message.created", "a0"), newFakeMsg(2, "chatwoot.1.2.3.4.message.created", "a1")
		b0 := newFakeMsg(3, "chatwoot.1.2.5.6.message.created", "b0")
		for _, m := range []*fakeMsg{a0, a1, b0} {
			r.q.add(m)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.work(ctx); close(done) }()
		synctest.Wait()
		if !b0.acked.Load() || a0.acked.Load() || a1.acked.Load() {
			t.Fatalf("before the retry: acked a0 %v a1 %v b0 %v", a0.acked.Load(), a1.acked.Load(), b0.acked.Load())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		got := slices.Clone(ids)
		mu.Unlock()
		if want := []string{"a0", "b0", "a0", "a1"}; !slices.Equal(got, want) || !a1.acked.Load() {
			t.Fatalf("attempts %v, want %v", got, want)
		}
		cancel()
		r.q.close()
		<-done
	})
}
