package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/natsserver"
)

// Integration tests against an in-process nats-server on a random port.
// They wait on NATS events and state-change channels, never on sleeps.

const waitLimit = 20 * time.Second

func startServer(t *testing.T, port int, storeDir string) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Port: port, JetStream: storeDir != "", StoreDir: storeDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func openFanout(t *testing.T, url string, core bool, opts Options) *Fanout {
	t.Helper()
	opts.Registerer = prometheus.NewRegistry()
	f, err := Open(Config{NATS: NATSConfig{URL: url, ReconnectWait: 20 * time.Millisecond}, Core: core}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.Close(ctx)
	})
	return f
}

// waitUntil waits for cond, re-checking at every publisher state change.
func waitUntil(t *testing.T, f *Fanout, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		changed, saturation := f.pub.Changed(), f.q.satChange.changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-saturation:
		case <-deadline.C:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestIntegrationCore(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, "")
	sub, err := connect(t, s.ClientURL()).SubscribeSync("chatwoot.>")
	if err != nil {
		t.Fatal(err)
	}
	f := openFanout(t, s.ClientURL(), true, Options{})
	waitUntil(t, f, "ready", f.Ready)
	f.Handle(Event{SubID: "sub-1", Message: fixtureMessage(t, "09_conversation.status_changed.json"), ReceivedAt: testReceivedAt})
	m, err := sub.NextMsg(waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "chatwoot.1.1.1.1.conversation.status_changed" {
		t.Fatalf("subject %s", m.Subject)
	}
	want := redactedFixture(t, "09_conversation.status_changed.json")
	if !bytes.Equal(m.Data, want) {
		t.Fatalf("body differs from the redacted original")
	}
	for k, v := range map[string]string{
		HeaderMsgID: "c:1:1:conversation.status_changed:1795248782.1307108", HeaderEvent: "conversation.status_changed",
		HeaderAccount: "1", HeaderInbox: "1", HeaderContact: "1", HeaderConversation: "1",
		HeaderSubscription: "sub-1", HeaderReceivedAt: "2026-11-21T08:13:01.962000123Z",
	} {
		if got := m.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func streamMsgs(t *testing.T, url string) []*nats.Msg {
	t.Helper()
	js, err := jetstream.New(connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	st, err := js.Stream(ctx, DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	}
	return out
}

func msgIDs(t *testing.T, msgs []*nats.Msg) []int {
	t.Helper()
	var ids []int
	for _, m := range msgs {
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

func closeFlush(t *testing.T, f *Fanout) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestIntegrationJetStreamDeliversAndDedups(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, t.TempDir())
	a := openFanout(t, s.ClientURL(), false, Options{})
	b := openFanout(t, s.ClientURL(), false, Options{}) // a second relay replica
	waitUntil(t, a, "a ready", a.Ready)
	waitUntil(t, b, "b ready", b.Ready)
	a.Handle(Event{SubID: "sa", Message: fixtureMessage(t, "03_message.created.agent_reply.json"), ReceivedAt: testReceivedAt})
	closeFlush(t, a)
	b.Handle(Event{SubID: "sb", Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
	b.Handle(Event{SubID: "sb", Message: fixtureMessage(t, "08_message.updated.json")})
	closeFlush(t, b)
	msgs := streamMsgs(t, s.ClientURL())
	if len(msgs) != 2 {
		t.Fatalf("stream holds %d messages, want 2 (JetStream drops the replica's duplicate)", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "chatwoot.1.1._.1.message.created" || m.Header.Get(HeaderMsgID) != "m:1:2:created" ||
		m.Header.Get(HeaderSubscription) != "sa" || m.Header.Get(HeaderReceivedAt) != "2026-11-21T08:13:01.962000123Z" {
		t.Fatalf("first message %s %v", m.Subject, m.Header)
	}
	if !bytes.Equal(m.Data, redactedFixture(t, "03_message.created.agent_reply.json")) {
		t.Fatal("body changed beyond the redaction")
	}
	if msgs[1].Header.Get(HeaderEvent) != "message.updated" {
		t.Fatalf("second message %v", msgs[1].Header)
	}
}

// TestIntegrationOutageRestartSamePort restarts the JetStream server on the
// same port and store while events keep arriving: nothing within the buffer
// bound is lost, nothing is stored twice, and the order holds.
func TestIntegrationOutageRestartSamePort(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, natsserver.RandomPort, dir)
	port, url := s.Port(), s.ClientURL()
	f := openFanout(t, url, false, Options{})
	waitUntil(t, f, "ready", f.Ready)

	const total = 3000
	handled := make(chan int, total)
	go func() {
		for i := 1; i <= total; i++ {
			f.Handle(Event{SubID: "s", Message: msgCreated(i)})
			handled <- i
		}
	}()
	for i := range handled {
		if i == total/3 {
			s.Shutdown() // mid-stream, with publishes in flight
			waitUntil(t, f, "not ready", func() bool { return !f.Ready() })
		}
		if i == 2*total/3 {
			startServer(t, port, dir)
		}
		if i == total {
			break
		}
	}
	waitUntil(t, f, "ready again", f.Ready)
	closeFlush(t, f)
	ids := msgIDs(t, streamMsgs(t, url))
	if len(ids) != total {
		t.Fatalf("stream holds %d events, want %d", len(ids), total)
	}
	for i, id := range ids {
		if id != i+1 {
			t.Fatalf("order broken at stream position %d: id %d", i+1, id)
		}
	}
	if d := dropped(f, dropBufferFull) + dropped(f, dropPublishError) + dropped(f, dropShutdown); d != 0 {
		t.Fatalf("%d events dropped", d)
	}
	var fails []string
	for r := range numFailures {
		if n := testutil.ToFloat64(f.m.failures[r]); n > 0 {
			fails = append(fails, fmt.Sprintf("%s=%v", failureNames[r], n))
		}
	}
	t.Logf("retries=%v failures=%v", testutil.ToFloat64(f.m.retries), fails)
}

// TestIntegrationOverflowCounted: with NATS down, events beyond the buffer
// bound are dropped and counted, and readiness flips until the buffer drains.
func TestIntegrationOverflowCounted(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, natsserver.RandomPort, dir)
	port, url := s.Port(), s.ClientURL()
	f := openFanout(t, url, false, Options{BufferEvents: 50})
	waitUntil(t, f, "ready", f.Ready)
	s.Shutdown()
	waitUntil(t, f, "not ready", func() bool { return !f.Ready() })
	for i := 1; i <= 80; i++ {
		f.Handle(Event{SubID: "s", Message: msgCreated(i)})
	}
	if d := dropped(f, dropBufferFull); d != 30 {
		t.Fatalf("buffer_full drops = %d, want 30", d)
	}
	startServer(t, port, dir)
	waitUntil(t, f, "ready after drain", f.Ready)
	closeFlush(t, f)
	ids := msgIDs(t, streamMsgs(t, url))
	if len(ids) != 50 || ids[0] != 1 || ids[49] != 50 {
		t.Fatalf("stream ids %v, want 1..50", ids)
	}
}

// TestIntegrationStartsWithNATSDown: the relay starts while NATS is
// unreachable, buffers, and delivers once NATS appears (JetStream stream
// created on first connect).
func TestIntegrationStartsWithNATSDown(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, natsserver.RandomPort, dir)
	port, url := s.Port(), s.ClientURL()
	s.Shutdown()
	f := openFanout(t, url, false, Options{})
	if f.Ready() {
		t.Fatal("ready without NATS")
	}
	for i := 1; i <= 10; i++ {
		f.Handle(Event{SubID: "s", Message: msgCreated(i)})
	}
	startServer(t, port, dir)
	waitUntil(t, f, "ready", f.Ready)
	closeFlush(t, f)
	if ids := msgIDs(t, streamMsgs(t, url)); len(ids) != 10 || ids[0] != 1 || ids[9] != 10 {
		t.Fatalf("stream ids %v, want 1..10", ids)
	}
}

// TestNATSOptionsReconnectForever pins the connection defaults: nats.go's
// own default (60 attempts) would give up after about two minutes.
func TestNATSOptionsReconnectForever(t *testing.T) {
	o := nats.GetDefaultOptions()
	for _, opt := range (NATSConfig{}).options(slog.New(slog.DiscardHandler), prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "b"})) {
		if err := opt(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.MaxReconnect != -1 || !o.AllowReconnect || !o.RetryOnFailedConnect || o.ReconnectBufSize != -1 {
		t.Fatalf("MaxReconnect=%d AllowReconnect=%v RetryOnFailedConnect=%v ReconnectBufSize=%d",
			o.MaxReconnect, o.AllowReconnect, o.RetryOnFailedConnect, o.ReconnectBufSize)
	}
	if o.ReconnectWait != DefaultReconnectWait || o.Name != DefaultNATSName || o.PingInterval != DefaultPingInterval ||
		o.FlusherTimeout != DefaultFlusherTimeout {
		t.Fatalf("ReconnectWait=%s Name=%q PingInterval=%s FlusherTimeout=%s", o.ReconnectWait, o.Name, o.PingInterval, o.FlusherTimeout)
	}

	// And in practice: far more failed attempts than nats.go's default
	// allows, and the connection is still trying.
	s := startServer(t, natsserver.RandomPort, "")
	url := s.ClientURL()
	s.Shutdown()
	var failures atomic.Int32
	enough := make(chan struct{})
	opts := append((NATSConfig{ReconnectWait: time.Millisecond}).options(slog.New(slog.DiscardHandler),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "b"})),
		nats.ReconnectJitter(0, 0),
		nats.ReconnectErrHandler(func(*nats.Conn, error) {
			if failures.Add(1) == 2*nats.DefaultMaxReconnect {
				close(enough)
			}
		}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("Connect with the server down: %v (must start and keep trying)", err)
	}
	defer nc.Close()
	select {
	case <-enough:
	case <-time.After(waitLimit):
		t.Fatalf("only %d reconnect attempts", failures.Load())
	}
	if nc.IsClosed() || nc.Status() != nats.RECONNECTING {
		t.Fatalf("status %v after %d failed attempts", nc.Status(), failures.Load())
	}
	if err := nc.Publish("x", nil); !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Fatalf("publish while disconnected = %v: nats.go must not buffer silently", err)
	}
}

func TestNATSConfig(t *testing.T) {
	bad := NATSConfig{User: "u", Token: "t", CertFile: "c"}
	err := bad.Validate()
	if !errors.Is(err, ErrNATSConfig) {
		t.Fatalf("Validate = %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "nats", NATSConfig{
		URL: "nats://u:hunter2@h:4222,nats://s3cr3t@h2:4222", Password: "hunter2", Token: "s3cr3t"})
	for _, secret := range []string{"hunter2", "s3cr3t"} {
		if bytes.Contains(buf.Bytes(), []byte(secret)) {
			t.Fatalf("secret %q logged: %s", secret, buf.Bytes())
		}
	}
	if _, err := Connect(bad, nil, nil); !errors.Is(err, ErrNATSConfig) {
		t.Fatalf("Connect with bad config = %v", err)
	}
}

// TestIntegrationCorePublishesInline: in core mode the caller's goroutine
// publishes when nothing waits before its event, and order per
// subscription holds with several callers at once.
func TestIntegrationCorePublishesInline(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, "")
	sub, err := connect(t, s.ClientURL()).SubscribeSync("chatwoot.>")
	if err != nil {
		t.Fatal(err)
	}
	f := openFanout(t, s.ClientURL(), true, Options{})
	waitUntil(t, f, "ready", f.Ready)
	const subs, each = 4, 300
	var wg sync.WaitGroup
	for k := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Appendf(nil, `{"event":"message.created","data":{"id":%d,"account_id":1,"inbox_id":2,"conversation_id":%d,"message_type":1}}`, k*each+i, k+1)
				f.Handle(Event{SubID: fmt.Sprint("sub-", k), Message: msg})
			}
		}()
	}
	wg.Wait()
	last := map[string]int{}
	for range subs * each {
		m, err := sub.NextMsg(waitLimit)
		if err != nil {
			t.Fatal(err)
		}
		id := msgIDs(t, []*nats.Msg{m})[0]
		conv := m.Header.Get(HeaderConversation)
		if prev, ok := last[conv]; ok && id != prev+1 {
			t.Fatalf("conversation %s: message %d after %d", conv, id, prev)
		}
		last[conv] = id
	}
	if n := testutil.ToFloat64(f.m.publishedNow); n == 0 {
		t.Fatal("no event was published inline")
	}
}

// TestIntegrationCoreInlineWaitsWhileDisconnected: while core NATS is down
// the reader's inline publish is refused by the connection (no reconnect
// buffer), so no event is reported published until the sender has really
// published it after the restart.
func TestIntegrationCoreInlineWaitsWhileDisconnected(t *testing.T) {
	s := startServer(t, natsserver.RandomPort, "")
	port, url := s.Port(), s.ClientURL()
	f := openFanout(t, url, true, Options{})
	waitUntil(t, f, "ready", f.Ready)
	s.Shutdown()
	waitUntil(t, f, "not ready", func() bool { return !f.Ready() })
	const n = 10
	outcomes := make(chan error, n)
	for i := 1; i <= n; i++ {
		f.Handle(Event{SubID: "s", Message: msgCreated(i), Done: func(err error) { outcomes <- err }})
	}
	select {
	case err := <-outcomes:
		t.Fatalf("an event was settled (%v) while NATS was down", err)
	default:
	}
	if got := published(f, KindMessage); got != 0 {
		t.Fatalf("%d events counted as published while NATS was down", got)
	}
	startServer(t, port, "")
	for range n {
		select {
		case err := <-outcomes:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitLimit):
			t.Fatal("events not published after the restart")
		}
	}
}
