package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/natsserver"
)

// Integration tests: an in-process nats-server with JetStream on a random
// port, httptest receivers on real sockets. They wait on events (with a
// generous limit), never on sleeps.

const waitLimit = 30 * time.Second

// startJS starts a JetStream server with the relay's stream and returns
// a JetStream handle on a fresh connection.
func startJS(t testing.TB) (*natsserver.Server, jetstream.JetStream) {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Port: natsserver.RandomPort, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	js := connectJS(t, s.ClientURL())
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "CHATWOOT", Subjects: []string{"chatwoot.>"}, Duplicates: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func connectJS(t testing.TB, url string) jetstream.JetStream {
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

// fastOptions retry quickly so failure paths finish in a test.
func fastOptions() Options {
	return Options{
		Stream: "CHATWOOT", Prefix: "chatwoot",
		Schedule: []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond},
		Jitter:   -1, Timeout: time.Second, AckWait: 3 * time.Second, PinnedTTL: 2 * time.Second,
		Addresses: AddressPolicy{AllowLoopback: true}, Concurrency: 4,
		Registerer: prometheus.NewRegistry(), BreakerThreshold: 1000,
	}
}

func startEngine(t *testing.T, js jetstream.JetStream, opts Options) *Engine {
	t.Helper()
	e, err := New(js, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func endpointFor(url string, secret Secret) Endpoint {
	return Endpoint{ID: "crm", URL: url, AllowHTTP: true, Secrets: []Secret{secret},
		Subjects: []string{"chatwoot.*.*.*.*.message.created"}}
}

// publishEvents publishes n message.created events on each of convs
// conversations, interleaved, and returns them in publish order.
func publishEvents(t *testing.T, js jetstream.JetStream, convs, n, from int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		for c := 1; c <= convs; c++ {
			m := nats.NewMsg(fmt.Sprintf("chatwoot.1.2.%d.%d.message.created", c, c))
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("m:1:%d-%d:created", c, i))
			m.Header.Set("Chatwoot-Event", "message.created")
			m.Header.Set("Chatwoot-Conversation-Id", strconv.Itoa(c))
			m.Data = fmt.Appendf(nil, `{"event":"message.created","data":{"conv":%d,"i":%d}}`, c, i)
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// receiver is an httptest endpoint that verifies every signature and
// records what it accepted; answer decides the status of each request.
type receiver struct {
	t      *testing.T
	secret Secret
	srv    *httptest.Server
	answer func(n int, r *http.Request) int

	mu       sync.Mutex
	requests int
	got      []delivered // accepted (2xx), in arrival order
	bad      int         // requests with an invalid signature
	changed  chan struct{}
}

type delivered struct {
	id   string
	conv int
	i    int
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{t: t, secret: NewSecret(), answer: answer, changed: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := rc.requests
	rc.requests++
	rc.mu.Unlock()
	status := rc.answer(n, r)
	w.WriteHeader(status)
	if status/100 != 2 {
		return
	}
	var ev struct {
		Data struct{ Conv, I int } `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	rc.mu.Lock()
	if Verify(rc.secret, r.Header, body, time.Now(), 5*time.Minute) != nil {
		rc.bad++
	}
	rc.got = append(rc.got, delivered{r.Header.Get(HeaderID), ev.Data.Conv, ev.Data.I})
	rc.mu.Unlock()
	select {
	case rc.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds on the accepted deliveries.
func (rc *receiver) waitFor(what string, cond func(got []delivered) bool) []delivered {
	rc.t.Helper()
	deadline := time.After(waitLimit)
	for {
		rc.mu.Lock()
		got := append([]delivered(nil), rc.got...)
		rc.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-rc.changed:
		case <-time.After(100 * time.Millisecond): // re-check: a condition may hold without a new delivery
		case <-deadline:
			rc.t.Fatalf("timed out waiting for %s; have %d deliveries", what, len(got))
		}
	}
}

// distinct counts the different events accepted.
func distinct(got []delivered) int {
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.id] = true
	}
	return len(seen)
}

// checkOrder fails unless, per conversation, the first arrival of each
// event follows publish order and every event 0..n-1 arrived.
func checkOrder(t *testing.T, got []delivered, convs, n int) {
	t.Helper()
	next := map[int]int{}
	for _, d := range got {
		switch {
		case d.i == next[d.conv]:
			next[d.conv]++
		case d.i > next[d.conv]:
			t.Fatalf("conversation %d: event %d arrived before %d", d.conv, d.i, next[d.conv])
		}
	}
	for c := 1; c <= convs; c++ {
		if next[c] != n {
			t.Fatalf("conversation %d: %d of %d events", c, next[c], n)
		}
	}
}

// A flapping receiver (it fails the first attempt of every third event
// and the first two of every seventh) still gets every event, in order per
// conversation, with valid signatures, while conversations are delivered
// in parallel.
func TestFlappingReceiverOrderPerConversation(t *testing.T) {
	_, js := startJS(t)
	var mu sync.Mutex
	tries := map[string]int{}
	rc := newReceiver(t, func(n int, r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get(HeaderID)
		k := tries[id]
		tries[id]++
		h := len(tries)
		if (h%3 == 0 && k == 0) || (h%7 == 0 && k < 2) {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	opts := fastOptions()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	e := startEngine(t, js, opts)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret)}); err != nil {
		t.Fatal(err)
	}
	defer checkLabels(t, reg, rc.srv.URL, "crm")
	const convs, n = 8, 40
	publishEvents(t, js, convs, n, 0)
	got := rc.waitFor("every event", func(g []delivered) bool { return distinct(g) == convs*n })
	checkOrder(t, got, convs, n)
	if rc.bad != 0 {
		t.Fatalf("%d deliveries with an invalid signature", rc.bad)
	}
}

// A receiver that always answers 500: after the schedule the event lands
// on the dead-letter subject with the last status, and the consumer has
// nothing left pending.
func TestServerErrorsEndInDeadLetter(t *testing.T) {
	_, js := startJS(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	all := newReceiver(t, func(int, *http.Request) int { return http.StatusOK })
	everything := endpointFor(all.srv.URL, all.secret)
	everything.ID, everything.Subjects = "everything", []string{"chatwoot.>"}
	opts := fastOptions()
	e := startEngine(t, js, opts)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret), everything}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 1, 0)
	dead := nextDead(t, js, "crm")
	if dead.Headers().Get(HeaderDeadStatus) != "500" || dead.Headers().Get(HeaderDeadAttempts) != "5" ||
		dead.Headers().Get(HeaderDeadEventID) != "m:1:1-0:created" {
		t.Fatalf("dead letter headers %v", dead.Headers())
	}
	rc.mu.Lock()
	if rc.requests != len(opts.Schedule)+1 {
		t.Errorf("%d attempts, want %d", rc.requests, len(opts.Schedule)+1)
	}
	rc.mu.Unlock()
	waitSettled(t, js, "crm")
	// A catch-all endpoint gets the event, never the dead letter (which
	// would loop through its own dead letters).
	waitSettled(t, js, "everything")
	if got := all.waitFor("the event", func(g []delivered) bool { return len(g) >= 1 }); len(got) != 1 {
		t.Fatalf("the catch-all endpoint got %d deliveries, want the event only", len(got))
	}
}

// nextDead reads the first dead letter of an endpoint from the stream.
func nextDead(t *testing.T, js jetstream.JetStream, id string) jetstream.Msg {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), "CHATWOOT", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{DeadSubject("chatwoot", id)}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(waitLimit))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	return m
}

// waitSettled waits until the endpoint's consumer has nothing pending.
func waitSettled(t *testing.T, js jetstream.JetStream, id string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := js.Consumer(context.Background(), "CHATWOOT", ConsumerName(id))
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not settled: %+v", info)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's view; nothing to wait on
	}
}

// A receiver that hangs past the timeout gets the event again; the
// recent attempts show the timeout.
func TestTimeoutIsRetried(t *testing.T) {
	_, js := startJS(t)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			<-r.Context().Done() // hang until the relay gives up
		}
		return http.StatusOK
	})
	opts := fastOptions()
	opts.Timeout = 200 * time.Millisecond
	e := startEngine(t, js, opts)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret)}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 1, 0)
	rc.waitFor("the retry", func(g []delivered) bool { return len(g) == 1 })
	var recent []Attempt
	rc.waitFor("the attempts recorded", func([]delivered) bool { recent = e.Deliveries("crm"); return len(recent) == 2 })
	if len(recent) != 2 || recent[1].Error != "timeout" || recent[1].Outcome != "retry" || recent[0].Status != 200 {
		t.Fatalf("recent attempts %+v", recent)
	}
}

// 429 with Retry-After is retried after the receiver's delay.
func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	_, js := startJS(t)
	var first time.Time
	var gap time.Duration
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 0 {
			first = time.Now()
			return http.StatusTooManyRequests
		}
		gap = time.Since(first)
		return http.StatusOK
	})
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		rc.serve(w, r)
	})
	e := startEngine(t, js, fastOptions())
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret)}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 1, 0)
	rc.waitFor("the retry", func(g []delivered) bool { return len(g) == 1 })
	// Not a timing assertion: the schedule says 5 ms, so any wait of a
	// second or more can only come from Retry-After.
	if gap < time.Second {
		t.Fatalf("retried after %v, before Retry-After", gap)
	}
}

// 410 disables the endpoint, keeps the event, and re-enabling it
// delivers the event.
func TestGoneDisablesEndpointAndKeepsEvent(t *testing.T) {
	_, js := startJS(t)
	var mu sync.Mutex
	status := http.StatusGone
	rc := newReceiver(t, func(int, *http.Request) int { mu.Lock(); defer mu.Unlock(); return status })
	gone := make(chan string, 1)
	opts := fastOptions()
	opts.OnGone = func(id string) { gone <- id }
	e := startEngine(t, js, opts)
	ep := endpointFor(rc.srv.URL, rc.secret)
	if err := e.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 1, 0)
	select {
	case id := <-gone:
		if id != "crm" || e.Running("crm") {
			t.Fatalf("gone %q, running %v", id, e.Running("crm"))
		}
	case <-time.After(waitLimit):
		t.Fatal("410 did not disable the endpoint")
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	if err := e.Apply(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	rc.waitFor("the kept event", func(g []delivered) bool { return len(g) == 1 })
}

// A receiver on a refused address (loopback without AllowLoopback) never
// gets a request; the event is dead-lettered with the reason.
func TestRefusedAddressIsNeverContacted(t *testing.T) {
	_, js := startJS(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusOK })
	opts := fastOptions()
	opts.Addresses = AddressPolicy{}
	e := startEngine(t, js, opts)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, rc.secret)}); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, js, 1, 1, 0)
	dead := nextDead(t, js, "crm")
	if got := dead.Headers().Get(HeaderDeadError); !strings.Contains(got, "loopback") {
		t.Fatalf("dead letter error %q", got)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.requests != 0 {
		t.Fatalf("%d requests reached a refused address", rc.requests)
	}
}

// Two engines (two relay replicas) share one endpoint: every event is
// delivered, in order per conversation, and when the delivering replica
// stops the other one takes over.
func TestTwoReplicasShareOneEndpoint(t *testing.T) {
	s, js := startJS(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusOK })
	ep := endpointFor(rc.srv.URL, rc.secret)
	a := startEngine(t, connectJS(t, s.ClientURL()), fastOptions())
	b := startEngine(t, connectJS(t, s.ClientURL()), fastOptions())
	for _, e := range []*Engine{a, b} {
		if err := e.Apply(context.Background(), []Endpoint{ep}); err != nil {
			t.Fatal(err)
		}
	}
	const convs = 5
	publishEvents(t, js, convs, 30, 0)
	rc.waitFor("the first half", func(g []delivered) bool { return distinct(g) == convs*30 })
	a.Close(context.Background())
	publishEvents(t, js, convs, 30, 30)
	got := rc.waitFor("the second half", func(g []delivered) bool { return distinct(g) == convs*60 })
	checkOrder(t, got, convs, 60)
}

// checkLabels fails if a metric label holds an endpoint id or URL, or a
// value outside the fixed sets.
func checkLabels(t *testing.T, reg *prometheus.Registry, forbidden ...string) {
	t.Helper()
	fixed := map[string]bool{"success": true, "retry": true, "dead": true, "gone": true,
		"2xx": true, "3xx": true, "4xx": true, "5xx": true, "timeout": true, "network": true, "refused": true,
		circuitClosed: true, circuitOpen: true, circuitHalfOpen: true}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				seen++
				for _, f := range forbidden {
					if strings.Contains(l.GetValue(), f) {
						t.Errorf("%s{%s=%q} names an endpoint", mf.GetName(), l.GetName(), l.GetValue())
					}
				}
				if !fixed[l.GetValue()] {
					t.Errorf("%s{%s=%q}: not a fixed label value", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no labelled metric gathered")
	}
}
