package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Benchmarks: deliveries per second from JetStream to local receivers,
// p99 from publish to receipt, CPU per delivery (the whole process:
// nats-server, engine and receivers together), and whether a slow
// endpoint slows the others.
//
//	go test -run '^$' -bench . -benchtime 20000x ./internal/webhook

// benchReceiver is a fast receiver that records publish→receipt latency.
type benchReceiver struct {
	srv   *httptest.Server
	n     atomic.Int64
	lat   []time.Duration
	delay time.Duration // a slow receiver waits this long per request
	done  chan struct{}
	want  int64
}

func newBenchReceiver(b *testing.B, want int, delay time.Duration) *benchReceiver {
	rc := &benchReceiver{lat: make([]time.Duration, want), delay: delay, done: make(chan struct{}), want: int64(want)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.delay > 0 {
			time.Sleep(rc.delay)
		}
		sent, _ := strconv.ParseInt(r.Header.Get("Relay-Bench-Sent"), 10, 64)
		i := rc.n.Add(1) - 1
		if i < int64(len(rc.lat)) {
			rc.lat[i] = time.Since(time.Unix(0, sent))
		}
		if i+1 == rc.want {
			close(rc.done)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if want == 0 {
		close(rc.done)
	}
	b.Cleanup(rc.srv.Close)
	return rc
}

// benchPublish publishes n events spread over convs conversations of
// account acct(i), each stamped with its publish time.
func benchPublish(b *testing.B, js jetstream.JetStream, n, convs int, acct func(i int) int) {
	body := []byte(`{"event":"message.created","data":{"id":1,"content":"benchmark reply","message_type":1}}`)
	for i := range n {
		m := nats.NewMsg(fmt.Sprintf("chatwoot.%d.2.%d.%d.message.created", acct(i), i%convs, i%convs))
		m.Header.Set(nats.MsgIdHdr, "m:bench:"+strconv.Itoa(i))
		m.Header.Set("Relay-Bench-Sent", strconv.FormatInt(time.Now().UnixNano(), 10))
		m.Data = body
		publishAsync(b, js, m)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishes not acknowledged")
	}
}

// publishAsync publishes m, waiting for the outstanding acks when too
// many are (a loaded machine stalls the server's answers).
func publishAsync(b *testing.B, js jetstream.JetStream, m *nats.Msg) {
	for {
		_, err := js.PublishMsgAsync(m)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				b.Fatal(err)
			}
			return
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes not acknowledged")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func p99(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)*99/100]
}

// benchConcurrency is the lanes per endpoint: RELAY_WEBHOOKS_CONCURRENCY's
// default unless WEBHOOK_BENCH_CONCURRENCY says otherwise.
var benchConcurrency = func() int {
	if n, err := strconv.Atoi(os.Getenv("WEBHOOK_BENCH_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return DefaultConcurrency
}()

func benchEngine(b *testing.B, js jetstream.JetStream) *Engine {
	opts := fastOptions()
	opts.Registerer = nil
	opts.AckWait = 30 * time.Second
	opts.Concurrency = benchConcurrency
	e, err := New(js, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func benchJS(b *testing.B) jetstream.JetStream {
	_, js := startJS(b)
	return js
}

func waitAll(b *testing.B, rcs ...*benchReceiver) {
	for _, rc := range rcs {
		select {
		case <-rc.done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("receiver got %d of %d", rc.n.Load(), rc.want)
		}
	}
}

// drain publishes b.N events while eps have consumers but no runner,
// then starts delivery and times it until every receiver is done: the
// delivery capacity, apart from publishing.
func drain(b *testing.B, js jetstream.JetStream, e *Engine, eps []Endpoint, convs int, acct func(int) int, rcs ...*benchReceiver) {
	ctx := context.Background()
	for _, ep := range eps {
		if _, err := e.consumer(ctx, ep); err != nil {
			b.Fatal(err)
		}
	}
	benchPublish(b, js, b.N, convs, acct)
	cpu0, start := cpuTime(), time.Now()
	b.ResetTimer()
	if err := e.Apply(ctx, eps); err != nil {
		b.Fatal(err)
	}
	waitAll(b, rcs...)
	b.StopTimer()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "deliveries/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/delivery")
}

// One fast endpoint, 100 conversations, from a backlog.
func BenchmarkDeliveryOneEndpoint(b *testing.B) {
	js := benchJS(b)
	rc := newBenchReceiver(b, b.N, 0)
	drain(b, js, benchEngine(b, js), []Endpoint{endpointFor(rc.srv.URL, NewSecret())}, 100, func(int) int { return 1 }, rc)
}

// 100 endpoints, each with its own receiver and subject filter (one
// account each); b.N deliveries in all, from a backlog.
func BenchmarkDelivery100Endpoints(b *testing.B) {
	const n = 100
	js := benchJS(b)
	var rcs []*benchReceiver
	var eps []Endpoint
	for i := range n {
		rc := newBenchReceiver(b, b.N/n+boolInt(i < b.N%n), 0)
		rcs = append(rcs, rc)
		ep := endpointFor(rc.srv.URL, NewSecret())
		ep.ID, ep.Subjects = fmt.Sprintf("ep%d", i), []string{fmt.Sprintf("chatwoot.%d.>", i)}
		eps = append(eps, ep)
	}
	drain(b, js, benchEngine(b, js), eps, 1000, func(i int) int { return i % n }, rcs...)
}

// The fast endpoint of BenchmarkDeliveryOneEndpoint next to one whose
// receiver takes 100 ms per request, both with the same backlog: the
// fast one's figures should not move.
func BenchmarkDeliverySlowNeighbour(b *testing.B) {
	js := benchJS(b)
	fast := newBenchReceiver(b, b.N, 0)
	slow := newBenchReceiver(b, 1<<30, 100*time.Millisecond) // never done
	f, s := endpointFor(fast.srv.URL, NewSecret()), endpointFor(slow.srv.URL, NewSecret())
	f.ID, s.ID = "fast", "slow"
	drain(b, js, benchEngine(b, js), []Endpoint{f, s}, 100, func(int) int { return 1 }, fast)
	b.ReportMetric(float64(slow.n.Load()), "slow-deliveries")
}

// Publish→receipt latency at a steady 2,000 events/s (below capacity),
// one endpoint.
func BenchmarkDeliveryLatency(b *testing.B) {
	js := benchJS(b)
	rc := newBenchReceiver(b, b.N, 0)
	e := benchEngine(b, js)
	if err := e.Apply(context.Background(), []Endpoint{endpointFor(rc.srv.URL, NewSecret())}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	tick := time.NewTicker(5 * time.Millisecond) // 10 events per tick
	defer tick.Stop()
	for sent := 0; sent < b.N; sent += 10 {
		<-tick.C
		benchPublishFrom(b, js, sent, min(10, b.N-sent))
	}
	waitAll(b, rc)
	b.StopTimer()
	b.ReportMetric(float64(p99(rc.lat).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(p50(rc.lat).Microseconds())/1000, "p50-ms")
}

func p50(lat []time.Duration) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchPublishFrom publishes n events numbered from first, 100 conversations.
func benchPublishFrom(b *testing.B, js jetstream.JetStream, first, n int) {
	body := []byte(`{"event":"message.created","data":{"id":1,"content":"benchmark reply","message_type":1}}`)
	for i := first; i < first+n; i++ {
		m := nats.NewMsg(fmt.Sprintf("chatwoot.1.2.%d.%d.message.created", i%100, i%100))
		m.Header.Set(nats.MsgIdHdr, "m:bench:"+strconv.Itoa(i))
		m.Header.Set("Relay-Bench-Sent", strconv.FormatInt(time.Now().UnixNano(), 10))
		m.Data = body
		publishAsync(b, js, m)
	}
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// The engine's own cost of one successful attempt (event, signature,
// request, metrics, recent-attempts ring, ack), against a transport that
// answers at once: no socket, no nats-server.
//
//	go test -run '^$' -bench BenchmarkAttempt -benchmem ./internal/webhook
func BenchmarkAttempt(b *testing.B) {
	ok := &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: http.NoBody}
	rt := roundTrip(func(r *http.Request) (*http.Response, error) { return ok, nil })
	opts := Options{Stream: "CHATWOOT", Prefix: "chatwoot", transport: rt}
	e, err := New(nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	ep := Endpoint{ID: "crm", URL: "https://crm.example/hook", Subjects: []string{"chatwoot.>"}, Secrets: []Secret{NewSecret()}}
	r := newRunner(e, ep, nil)
	m := newFakeMsg(7, "chatwoot.1.2.3.4.message.created", "m:1:99:created")
	m.hdr.Set("Chatwoot-Conversation-Id", "4")
	m.hdr.Set("Chatwoot-Account-Id", "1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, st := r.attempt(ctx, m, 0); st != stepSettled {
			b.Fatal("not settled")
		}
	}
}
