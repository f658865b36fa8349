package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/webhook"
)

// hookReceiver verifies every delivery's signature and records, in
// arrival order, the (conversation, message) of the accepted ones. It
// fails the first attempt of every fifth event, so retries are in flight
// when the relay is killed.
type hookReceiver struct {
	secret webhook.Secret
	mu     sync.Mutex
	tries  map[string]int
	got    []convMsg
	bad    int
}

type convMsg struct {
	conv string
	msg  int64
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if webhook.Verify(h.secret, r.Header, body, time.Now(), 5*time.Minute) != nil {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(webhook.HeaderID)
	h.tries[id]++
	if h.tries[id] == 1 && len(h.tries)%5 == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	h.got = append(h.got, convMsg{r.Header.Get("Chatwoot-Conversation-Id"), ev.Data.ID})
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) received() []convMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]convMsg(nil), h.got...)
}

// TestWebhooksSurviveRelayKill: agents reply while the relay process is
// killed (SIGKILL) mid-delivery and started again. Every message.created in
// the stream reaches the receiver at least once, in stream order per
// conversation, with a valid Standard Webhooks signature.
func TestWebhooksSurviveRelayKill(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 20 s")
	}
	c := newChat(t)
	rc := &hookReceiver{secret: webhook.NewSecret(), tries: map[string]int{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "webhooks.jsonl")
	line := fmt.Sprintf(`{"id":"crm","url":%q,"allow_http":true,"subjects":["chatwoot.*.*.*.*.message.created"],"secrets":[%q]}`, srv.URL, string(rc.secret))
	if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr, natsAddr := freePort(t), freePort(t)
	p := &relayProcess{t: t, url: "http://" + httpAddr, env: []string{
		"RELAY_CHATWOOT_URL=" + c.url, "RELAY_HTTP_ADDR=" + httpAddr, "RELAY_NATS_LISTEN=" + natsAddr,
		"RELAY_DATA_DIR=" + t.TempDir(), "RELAY_LOG_LEVEL=warn", "RELAY_CABLE_BACKOFF_MIN=200ms",
		"RELAY_CABLE_SUBSCRIBE_RATE=1000", "RELAY_CHATWOOT_RATE_PER_MINUTE=600000",
		"RELAY_WEBHOOKS_FILE=" + file, "RELAY_WEBHOOKS_ALLOW_LOOPBACK=true",
		"RELAY_WEBHOOKS_SCHEDULE=20ms,50ms,100ms,200ms,500ms,1s,2s", "RELAY_WEBHOOKS_TIMEOUT=1s",
		"RELAY_WEBHOOKS_ACK_WAIT=2s", "RELAY_WEBHOOKS_FAILOVER=1s",
	}}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.stop(syscall.SIGKILL)
		}
	})
	c.createContacts(p.url, 20)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	waitFor(t, 30*time.Second, "first deliveries", func() bool { return len(rc.received()) > 50 })
	t.Logf("SIGKILL after %d deliveries", len(rc.received()))
	p.stop(syscall.SIGKILL)
	time.Sleep(time.Second) // agents keep replying while the relay is down
	p.start()
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	stream := streamOrder(t, "nats://"+natsAddr, len(c.created()))
	waitFor(t, 60*time.Second, "every event delivered", func() bool { return missingFrom(stream, rc.received()) == 0 })
	got := rc.received()
	checkStreamOrder(t, stream, got)
	if rc.bad != 0 {
		t.Fatalf("%d deliveries with an invalid signature", rc.bad)
	}
	t.Logf("%d events in the stream, %d deliveries accepted (%d duplicates)", len(stream), len(got), len(got)-len(stream))
	p.stop(syscall.SIGTERM)
}

// streamOrder reads the message.created events of the stream in order,
// waiting until it holds at least want.
func streamOrder(t *testing.T, natsURL string, want int) []convMsg {
	t.Helper()
	js := jsOf(t, natsURL)
	var out []convMsg
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		out = out[:0]
		cons, err := js.OrderedConsumer(context.Background(), "CHATWOOT", jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{"chatwoot.*.*.*.*.message.created"}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				break
			}
			out = append(out, convMsgOf(m.Headers(), m.Data()))
		}
	}
	if len(out) < want {
		t.Fatalf("stream holds %d message.created, want %d", len(out), want)
	}
	return out
}

func convMsgOf(h nats.Header, data []byte) convMsg {
	var ev struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(data, &ev)
	return convMsg{h.Get("Chatwoot-Conversation-Id"), ev.Data.ID}
}

// missingFrom counts stream events never delivered.
func missingFrom(stream, got []convMsg) int {
	seen := map[convMsg]bool{}
	for _, g := range got {
		seen[g] = true
	}
	n := 0
	for _, s := range stream {
		if !seen[s] {
			n++
		}
	}
	return n
}

// checkStreamOrder: per conversation, the first arrival of each event
// follows stream order.
func checkStreamOrder(t *testing.T, stream, got []convMsg) {
	t.Helper()
	order := map[string][]int64{}
	for _, s := range stream {
		order[s.conv] = append(order[s.conv], s.msg)
	}
	next, seen := map[string]int{}, map[convMsg]bool{}
	for _, g := range got {
		if seen[g] {
			continue
		}
		seen[g] = true
		want := order[g.conv]
		if i := next[g.conv]; i >= len(want) || want[i] != g.msg {
			t.Fatalf("conversation %s: message %d arrived out of stream order (expected %v next)", g.conv, g.msg, want[min(i, len(want)-1)])
		}
		next[g.conv]++
	}
}
