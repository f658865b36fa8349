package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/chatwoottest"
)

// e2e runs the real relay (embedded NATS, bbolt) against the fake Chatwoot
// over loopback sockets.
type e2e struct {
	t     *testing.T
	fake  *chatwoottest.Server
	inbox chatwoottest.Inbox
	env   map[string]string
	app   *app
	nc    *nats.Conn
	msgs  chan *nats.Msg
	// stopConsume ends the stream consumer.
	stopConsume func()
	// noConsumer starts the relay without the test's consumer.
	noConsumer bool
	// logTo, if set, receives the relay's logs (JSON, from logLevel:
	// warnings and up when nil).
	logTo    io.Writer
	logLevel slog.Leveler
}

func newE2E(t *testing.T, extra map[string]string) *e2e {
	t.Helper()
	e := &e2e{t: t, fake: chatwoottest.New(chatwoottest.Options{PingInterval: time.Second})}
	t.Cleanup(func() { e.fake.Close() })
	addr, err := e.fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if e.inbox, err = e.fake.AddInbox(chatwoottest.InboxConfig{}); err != nil {
		t.Fatal(err)
	}
	e.env = map[string]string{
		"RELAY_CHATWOOT_URL":      "http://" + addr.String(),
		"RELAY_HTTP_ADDR":         "127.0.0.1:0",
		"RELAY_NATS_LISTEN":       "127.0.0.1:-1",
		"RELAY_DATA_DIR":          t.TempDir(),
		"RELAY_CABLE_BACKOFF_MIN": "100ms",
		"RELAY_CABLE_BACKOFF_MAX": "1s",
	}
	for k, v := range extra {
		e.env[k] = v
	}
	e.start()
	return e
}

// start boots the relay and subscribes a NATS consumer to everything.
func (e *e2e) start() {
	e.t.Helper()
	cfg, err := loadConfig(e.env, false)
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if e.logTo != nil {
		level := e.logLevel
		if level == nil {
			level = slog.LevelWarn
		}
		log = slog.New(slog.NewJSONHandler(e.logTo, &slog.HandlerOptions{Level: level}))
	}
	if e.app, err = start(context.Background(), cfg, log); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.stop() })
	if e.nc, err = nats.Connect(e.app.natsURL, e.natsAuth()...); err != nil {
		e.t.Fatal(err)
	}
	e.msgs = make(chan *nats.Msg, 10000)
	if e.noConsumer {
		return
	}
	if e.env["RELAY_NATS_JETSTREAM"] == "false" {
		if _, err := e.nc.ChanSubscribe("chatwoot.>", e.msgs); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	// Read the stream from its start: events published before this consumer
	// existed (a catch-up right after start) are there too.
	js, _ := jetstream.New(e.nc)
	// The relay creates the stream when its NATS connection is up, which
	// can come a moment after start returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "CHATWOOT", jetstream.OrderedConsumerConfig{})
	for errors.Is(err, jetstream.ErrStreamNotFound) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		cons, err = js.OrderedConsumer(ctx, "CHATWOOT", jetstream.OrderedConsumerConfig{})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e.msgs <- &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.stopConsume = cc.Stop
}

// natsAuth gives the test's consumer the credentials the relay's NATS
// was configured with.
func (e *e2e) natsAuth() []nats.Option {
	var opts []nats.Option
	if cert := e.env["RELAY_NATS_LISTEN_TLS_CERT"]; cert != "" { // the test's certificate is its own CA
		opts = append(opts, nats.RootCAs(cert), nats.ClientCert(cert, e.env["RELAY_NATS_LISTEN_TLS_KEY"]))
	}
	switch {
	case e.env["RELAY_NATS_TOKEN"] != "":
		return append(opts, nats.Token(e.env["RELAY_NATS_TOKEN"]))
	case e.env["RELAY_NATS_USER"] != "":
		return append(opts, nats.UserInfo(e.env["RELAY_NATS_USER"], e.env["RELAY_NATS_PASSWORD"]))
	case e.env["RELAY_NATS_NKEY_SEED_FILE"] != "":
		o, err := nats.NkeyOptionFromSeed(e.env["RELAY_NATS_NKEY_SEED_FILE"])
		if err != nil {
			e.t.Fatal(err)
		}
		return append(opts, o)
	}
	return opts
}

func (e *e2e) stop() {
	if e.app == nil {
		return
	}
	if e.stopConsume != nil {
		e.stopConsume()
	}
	e.nc.Close()
	if err := e.app.shutdown(); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	e.app = nil
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// await returns the first message on a subject ending in suffix whose body
// contains want, failing after a bound.
func (e *e2e) await(suffix, want string) *nats.Msg {
	e.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m := <-e.msgs:
			if strings.HasSuffix(m.Subject, suffix) && strings.Contains(string(m.Data), want) {
				return m
			}
		case <-deadline:
			e.t.Fatalf("no %s containing %q on NATS", suffix, want)
		}
	}
}

func (e *e2e) do(method, path string, body any, header http.Header) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.app.httpURL()+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// TestEndToEnd is the worked example of the README: a backend creates a
// contact through the relay, receives the agent's replies on NATS, sends a
// message twice with one Idempotency-Key, and keeps receiving across a
// restart of the relay — including a reply sent while it was down.
func TestEndToEnd(t *testing.T) {
	e := newE2E(t, nil)
	base := "/public/api/v1/inboxes/" + e.inbox.Identifier

	resp, body := e.do("POST", base+"/contacts", map[string]any{"name": "Jane", "email": "jane@example.com"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("contact create: %d %s", resp.StatusCode, body)
	}
	var contact struct {
		ID       int64  `json:"id"`
		SourceID string `json:"source_id"`
		Token    string `json:"pubsub_token"`
	}
	json.Unmarshal(body, &contact)
	subID := resp.Header.Get("Relay-Subscription")
	if subID == "" || contact.Token == "" {
		t.Fatalf("no subscription for the new contact: %v %s", resp.Header, body)
	}
	e.await("relay.subscription.confirmed", subID)

	resp, body = e.do("POST", fmt.Sprintf("%s/contacts/%s/conversations", base, contact.SourceID), map[string]any{}, nil)
	var conv struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal(body, &conv)
	created := e.await("conversation.created", `"id":`)
	if strings.Contains(string(created.Data), contact.Token) {
		t.Fatal("the pubsub_token reached NATS")
	}

	// An agent reply arrives on the contact's and conversation's subject.
	e.fake.AgentReply(e.inbox.AccountID, conv.ID, "Hello Jane")
	m := e.await("message.created", "Hello Jane")
	wantSubject := fmt.Sprintf("chatwoot.%d.%d.%d.%d.message.created", e.inbox.AccountID, e.inbox.ID, contact.ID, conv.ID)
	if m.Subject != wantSubject || m.Header.Get("Relay-Subscription") != subID || m.Header.Get("Nats-Msg-Id") == "" {
		t.Fatalf("subject %s headers %v, want %s", m.Subject, m.Header, wantSubject)
	}

	// A send retried with the same Idempotency-Key posts once.
	msgPath := fmt.Sprintf("%s/contacts/%s/conversations/%d/messages?wait=echo", base, contact.SourceID, conv.ID)
	key := http.Header{"Idempotency-Key": {"order-42"}}
	r1, b1 := e.do("POST", msgPath, map[string]any{"content": "Where is my order?"}, key)
	r2, b2 := e.do("POST", msgPath, map[string]any{"content": "Where is my order?"}, key)
	if r1.StatusCode != 200 || r2.StatusCode != 200 || !bytes.Equal(b1, b2) || r2.Header.Get("Idempotent-Replay") != "true" {
		t.Fatalf("idempotent send: %d %s / %d %s %v", r1.StatusCode, b1, r2.StatusCode, b2, r2.Header)
	}
	if r1.Header.Get("Relay-Echo") != "received" {
		t.Fatalf("wait=echo: Relay-Echo = %q", r1.Header.Get("Relay-Echo"))
	}
	msgs, _ := e.fake.Messages(e.inbox.AccountID, conv.ID)
	n := 0
	for _, msg := range msgs {
		if msg.Content == "Where is my order?" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("Chatwoot has %d copies of the message, want 1", n)
	}

	resp, body = e.do("GET", "/v1/subscriptions/"+subID, nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"state":"confirmed"`) || !strings.Contains(string(body), `"catch_up":true`) {
		t.Fatalf("subscription: %d %s", resp.StatusCode, body)
	}

	// Restart: the subscription comes back from the state file, and a reply
	// sent while the relay was down is replayed by catch-up.
	e.stop()
	e.fake.AgentReply(e.inbox.AccountID, conv.ID, "Sent while the relay was down")
	e.start()
	replayed := e.await("message.created", "Sent while the relay was down")
	if replayed.Header.Get("Relay-Replayed") != "true" {
		t.Fatalf("missed reply not marked replayed: %v", replayed.Header)
	}
	e.fake.AgentReply(e.inbox.AccountID, conv.ID, "After the restart")
	e.await("message.created", "After the restart")
}

// TestDemo runs the README's first command briefly.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	env := []string{"RELAY_DATA_DIR=" + t.TempDir()}
	if err := run(context.Background(), []string{"-demo", "-demo-duration", "5s"}, env, &out, io.Discard); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"message.created", "[replayed by catch-up]", "relay.subscription.confirmed", "received on NATS:", "signature verified", "rejected=0",
		"account feed", "[private: not for the contact]", "assignee.changed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSubscriptionsFile: static subscriptions are registered at start and
// kept in step with the file on reload (what SIGHUP does).
func TestSubscriptionsFile(t *testing.T) {
	file := t.TempDir() + "/subscriptions"
	os.WriteFile(file, []byte("# static\nstatic-token-1\n{\"pubsub_token\":\"static-token-2\"}\n"), 0o600)
	e := newE2E(t, map[string]string{"RELAY_SUBSCRIPTIONS_FILE": file})
	e.fake.AddToken("static-token-1", 1)
	e.fake.AddToken("static-token-2", 1)
	list := func() string {
		_, body := e.do("GET", "/v1/subscriptions", nil, nil)
		return string(body)
	}
	id1, id2 := cable.SubscriptionID("static-token-1"), cable.SubscriptionID("static-token-2")
	if l := list(); !strings.Contains(l, id1) || !strings.Contains(l, id2) || !strings.Contains(l, `"origin":"file"`) {
		t.Fatalf("subscriptions: %s", l)
	}
	os.WriteFile(file, []byte("static-token-1\n"), 0o600)
	if err := e.app.static.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := list(); !strings.Contains(l, id1) || strings.Contains(l, id2) {
		t.Fatalf("after reload: %s", l)
	}
	os.WriteFile(file, []byte("static-token-1\nbad token line\n"), 0o600)
	if err := e.app.static.reload(context.Background()); err == nil || strings.Contains(err.Error(), "bad token") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if l := list(); !strings.Contains(l, id1) {
		t.Fatalf("a bad file changed the subscriptions: %s", l)
	}
}
