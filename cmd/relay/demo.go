//go:build !nodemo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// The demo runs the real relay against the fake Chatwoot in this process:
// an administrator's account feed is added, contacts are created through
// the relay's own API proxy (which subscribes them), simulated agents type,
// reply, write a private note and assign a conversation, the fake drops
// every websocket once so catch-up shows, and a NATS consumer prints what
// it receives (each event once, though the feed and the contact both see
// most of them).

const demoContacts = 3

type demo struct {
	out     io.Writer
	fake    *chatwoottest.Server
	inbox   chatwoottest.Inbox
	admin   chatwoottest.User
	app     *app
	http    *http.Client
	mu      sync.Mutex
	convs   []demoConversation
	counts  map[string]int
	replays int
}

type demoConversation struct {
	account, display int64
	name             string
}

func runDemo(ctx context.Context, env map[string]string, duration time.Duration, stdout, stderr io.Writer) error {
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	d := &demo{out: &syncWriter{w: stdout}, http: &http.Client{Timeout: 10 * time.Second}, counts: map[string]int{}}
	d.fake = chatwoottest.New(chatwoottest.Options{})
	defer d.fake.Close()
	addr, err := d.fake.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	if d.inbox, err = d.fake.AddInbox(chatwoottest.InboxConfig{Name: "Demo API inbox"}); err != nil {
		return err
	}
	cfg, cleanup, err := demoConfig(env, "http://"+addr.String())
	if err != nil {
		return err
	}
	defer cleanup()
	d.app, err = start(ctx, cfg, newLogger(stderr, cfg.LogLevel))
	if err != nil {
		return err
	}
	defer d.app.shutdown()
	return d.run(ctx)
}

// demoConfig is the default configuration with the fake as Chatwoot, state in
// a temporary directory and quiet logs, unless the environment says otherwise.
func demoConfig(env map[string]string, chatwootURL string) (Config, func(), error) {
	e := make(map[string]string, len(env)+4)
	for k, v := range env {
		e[k] = v
	}
	e[envPrefix+"CHATWOOT_URL"] = chatwootURL
	cleanup := func() {}
	if _, ok := e[envPrefix+"DATA_DIR"]; !ok {
		dir, err := os.MkdirTemp("", "relay-demo-")
		if err != nil {
			return Config{}, nil, err
		}
		e[envPrefix+"DATA_DIR"] = dir
		cleanup = func() { os.RemoveAll(dir) }
	}
	setDefault := func(k, v string) {
		if _, ok := e[envPrefix+k]; !ok {
			e[envPrefix+k] = v
		}
	}
	setDefault("LOG_LEVEL", "warn")
	setDefault("HTTP_ADDR", "127.0.0.1:0")
	setDefault("NATS_LISTEN", "127.0.0.1:-1")
	setDefault("CABLE_BACKOFF_MIN", "200ms")
	setDefault("WEBHOOKS_ALLOW_LOOPBACK", "true") // the demo's receiver
	cfg, err := loadConfig(e, true)
	if err != nil {
		cleanup()
		return cfg, nil, fmt.Errorf("configuration:\n%w", err)
	}
	return cfg, cleanup, nil
}

func (d *demo) run(ctx context.Context) error {
	fmt.Fprintf(d.out, "relay demo: fake Chatwoot, relay API at %s, NATS at %s\n", d.app.httpURL(), d.app.natsURL)
	fmt.Fprintf(d.out, "             watch it yourself: nats sub -s %s 'chatwoot.>'   (Ctrl-C stops)\n\n", d.app.natsURL)
	security, err := d.app.natsConfig().ClientOptions() // the relay's own credentials
	if err != nil {
		return err
	}
	nc, err := nats.Connect(d.app.natsURL, append(security, nats.Name("relay-demo-consumer"))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Subscribe(d.app.cfg.NATSSubjectPrefix+".>", d.print); err != nil {
		return err
	}
	hook, err := d.startHook(ctx)
	if err != nil {
		return err
	}
	defer hook.close()
	if err := d.addFeed(ctx); err != nil {
		return err
	}
	if err := d.createContacts(ctx); err != nil {
		return err
	}
	d.agents(ctx)
	nc.Flush()
	d.summary()
	hook.summary()
	return nil
}

// addFeed adds an administrator's account feed through the relay's API.
func (d *demo) addFeed(ctx context.Context) error {
	var err error
	if d.admin, err = d.fake.AddUser(chatwoottest.UserConfig{Name: "Demo Admin", Role: chatwoottest.RoleAdministrator}); err != nil {
		return err
	}
	var feed struct {
		ID string `json:"id"`
	}
	if err := d.post(ctx, d.app.httpURL()+"/v1/feeds", map[string]any{"access_token": d.admin.AccessToken}, &feed); err != nil {
		return fmt.Errorf("adding the account feed: %w", err)
	}
	fmt.Fprintf(d.out, "-- account feed %s: an administrator's token, every event of the account (private notes, assignments) --\n\n", feed.ID)
	return nil
}

// createContacts goes through the relay's proxy, like a backend would.
func (d *demo) createContacts(ctx context.Context) error {
	base := d.app.httpURL() + "/public/api/v1/inboxes/" + d.inbox.Identifier
	for i := 1; i <= demoContacts; i++ {
		name := fmt.Sprintf("Customer %d", i)
		var contact struct {
			SourceID string `json:"source_id"`
		}
		if err := d.post(ctx, base+"/contacts", map[string]any{"name": name}, &contact); err != nil {
			return fmt.Errorf("creating a contact through the relay: %w", err)
		}
		var conv struct {
			ID int64 `json:"id"`
		}
		if err := d.post(ctx, base+"/contacts/"+contact.SourceID+"/conversations", map[string]any{}, &conv); err != nil {
			return err
		}
		msg := map[string]any{"content": fmt.Sprintf("Hello, this is %s. Where is my order?", name)}
		if err := d.post(ctx, fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, contact.SourceID, conv.ID), msg, nil); err != nil {
			return err
		}
		d.convs = append(d.convs, demoConversation{account: d.inbox.AccountID, display: conv.ID, name: name})
	}
	return nil
}

func (d *demo) post(ctx context.Context, url string, body any, out any) error {
	status, data, err := d.postJSON(ctx, url, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("HTTP %d: %s", status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// postJSON posts body as JSON and returns the answer's status and body.
func (d *demo) postJSON(ctx context.Context, url string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, nil
}

// agents replies round-robin, types before each reply, drops the websockets
// once (a reply sent meanwhile reaches consumers through catch-up) and
// resolves a conversation, until ctx ends.
func (d *demo) agents(ctx context.Context) {
	tick := time.NewTicker(700 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := d.convs[n%len(d.convs)]
		switch {
		case n == 4:
			fmt.Fprintf(d.out, "\n-- the fake Chatwoot drops every websocket; the next reply is missed live --\n\n")
			d.fake.DropAll(false)
			d.fake.AgentReply(c.account, c.display, fmt.Sprintf("(sent while the relay was disconnected) %s, your parcel left the warehouse.", c.name))
		case n == 2:
			d.fake.AgentNote(c.account, c.display, fmt.Sprintf("(private note) %s asked twice; check the carrier.", c.name))
		case n == 3:
			d.fake.AssignConversation(c.account, c.display, d.admin.ID)
		case n == 9:
			d.fake.ResolveConversation(c.account, c.display)
		default:
			d.fake.AgentTyping(c.account, c.display, true, false)
			d.fake.AgentReply(c.account, c.display, fmt.Sprintf("Hi %s, agent here (reply %d).", c.name, n))
			d.fake.AgentTyping(c.account, c.display, false, false)
		}
	}
}

// print shows one NATS message as a consumer sees it.
func (d *demo) print(m *nats.Msg) {
	var body struct {
		Event string `json:"event"`
		Data  struct {
			Content     *string `json:"content"`
			MessageType any     `json:"message_type"`
			Status      string  `json:"status"`
		} `json:"data"`
		SubscriptionID string `json:"subscription_id"`
	}
	json.Unmarshal(m.Data, &body)
	detail := ""
	switch {
	case body.Data.Content != nil:
		detail = fmt.Sprintf("%q", *body.Data.Content)
	case body.SubscriptionID != "":
		detail = "subscription " + body.SubscriptionID
	case body.Data.Status != "":
		detail = "status " + body.Data.Status
	}
	replayed := m.Header.Get("Relay-Replayed") == "true"
	d.mu.Lock()
	d.counts[eventOf(m.Subject)]++
	if replayed {
		d.replays++
	}
	d.mu.Unlock()
	mark := ""
	if replayed {
		mark = "  [replayed by catch-up]"
	}
	if v := m.Header.Get("Chatwoot-Visibility"); v != "" {
		mark += "  [" + v + ": not for the contact]"
	}
	fmt.Fprintf(d.out, "%s  %-58s %s%s\n", time.Now().Format("15:04:05.000"), m.Subject, detail, mark)
}

// eventOf is the event part of a subject: the last two tokens.
func eventOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 2 {
		return subject
	}
	return strings.Join(parts[len(parts)-2:], ".")
}

func (d *demo) summary() {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "\nreceived on NATS:")
	for _, k := range slices.Sorted(maps.Keys(d.counts)) {
		fmt.Fprintf(d.out, " %s=%d", k, d.counts[k])
	}
	fmt.Fprintf(d.out, " (replayed=%d)\n", d.replays)
}

// syncWriter serialises writes from the NATS callback and the agents.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
