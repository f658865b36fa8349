package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/feeds"
)

// lockedBuffer collects the relay's logs across restarts.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// feedEnv is one account feed test: the fake with two inboxes and an
// administrator, and the relay.
type feedEnv struct {
	*e2e
	inbox2 chatwoottest.Inbox
	admin  chatwoottest.User
	feedID string
	logs   *lockedBuffer
}

func newFeedEnv(t *testing.T) *feedEnv {
	logs := &lockedBuffer{}
	e := &e2e{t: t, fake: chatwoottest.New(chatwoottest.Options{PingInterval: time.Second}), noConsumer: true,
		logTo: logs, logLevel: slog.LevelDebug}
	t.Cleanup(func() { e.fake.Close() })
	addr, err := e.fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &feedEnv{e2e: e, logs: logs}
	e.inbox, _ = e.fake.AddInbox(chatwoottest.InboxConfig{})
	f.inbox2, _ = e.fake.AddInbox(chatwoottest.InboxConfig{})
	f.admin, _ = e.fake.AddUser(chatwoottest.UserConfig{Role: chatwoottest.RoleAdministrator})
	e.env = map[string]string{
		"RELAY_CHATWOOT_URL":             "http://" + addr.String(),
		"RELAY_HTTP_ADDR":                "127.0.0.1:0",
		"RELAY_NATS_LISTEN":              "127.0.0.1:-1",
		"RELAY_DATA_DIR":                 t.TempDir(),
		"RELAY_CABLE_BACKOFF_MIN":        "100ms",
		"RELAY_CABLE_BACKOFF_MAX":        "1s",
		"RELAY_CHATWOOT_RATE_PER_MINUTE": "600000",
	}
	e.start()
	return f
}

// account returns the feed's only account as the API shows it.
func (f *feedEnv) account() feeds.Account {
	f.t.Helper()
	resp, body := f.do("GET", "/v1/feeds/"+f.feedID, nil, nil)
	var feed feeds.Feed
	if resp.StatusCode != 200 || json.Unmarshal(body, &feed) != nil || len(feed.Accounts) != 1 {
		f.t.Fatalf("GET feed: %d %s", resp.StatusCode, body)
	}
	return feed.Accounts[0]
}

// caughtUp waits until the feed was confirmed more than confirms times
// and caught up since; it returns the confirms.
func (f *feedEnv) caughtUp(confirms int) int {
	f.t.Helper()
	var a feeds.Account
	waitFor(f.t, 30*time.Second, "feed confirmed and caught up", func() bool {
		a = f.account()
		return a.State == "confirmed" && a.Confirms > confirms && a.CaughtUp
	})
	return a.Confirms
}

// session is one contact of an inbox with a conversation, made in the fake
// directly: no contact subscription.
type session struct {
	ci      chatwoottest.ContactInbox
	display int64
}

func (f *feedEnv) newSession(inbox chatwoottest.Inbox) session {
	f.t.Helper()
	ci, err := f.fake.CreateContact(inbox.Identifier, chatwoottest.ContactParams{})
	if err != nil {
		f.t.Fatal(err)
	}
	cv, err := f.fake.CreateConversation(inbox.Identifier, ci.SourceID)
	if err != nil {
		f.t.Fatal(err)
	}
	return session{ci: ci, display: cv.DisplayID}
}

// activity makes every kind of event in a conversation: a contact
// message, a reply, a private note and an assignment.
func (f *feedEnv) activity(s session, inbox chatwoottest.Inbox, n int) {
	f.t.Helper()
	must := func(err error) {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	_, err := f.fake.ContactSend(inbox.Identifier, s.ci.SourceID, s.display, fmt.Sprintf("question %d", n), "")
	must(err)
	_, err = f.fake.AgentReply(1, s.display, fmt.Sprintf("answer %d", n))
	must(err)
	_, err = f.fake.AgentNote(1, s.display, fmt.Sprintf("note %d", n))
	must(err)
	must(f.fake.AssignConversation(1, s.display, f.admin.ID))
}

// stored is every event of the stream.
type stored struct {
	subject string
	header  nats.Header
	data    []byte
}

func readStream(t *testing.T, url string) []stored {
	t.Helper()
	js := jsOf(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "CHATWOOT", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, stored{m.Subject(), m.Headers(), m.Data()})
		}
		if n == 0 {
			return out
		}
	}
}

// messageIDs counts the message.created events of the stream per message id.
func messageIDs(events []stored) map[int64]int {
	got := map[int64]int{}
	for _, ev := range events {
		if !strings.HasSuffix(ev.subject, ".message.created") {
			continue
		}
		var m struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		json.Unmarshal(ev.data, &m)
		got[m.Data.ID]++
	}
	return got
}

// TestAccountFeedGapFree: an administrator's feed alone (no contact
// registered) receives every message of two inboxes, private notes and
// activity messages included, and the assignments; across three websocket
// drops and a restart of the relay (the feed then also configured through
// RELAY_ACCOUNT_FEEDS) the stream holds each message once; a contact
// registered as well adds no duplicate.
func TestAccountFeedGapFree(t *testing.T) {
	f := newFeedEnv(t)
	resp, body := f.do("POST", "/v1/feeds", map[string]string{"access_token": f.admin.AccessToken}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/feeds: %d %s", resp.StatusCode, body)
	}
	var feed feeds.Feed
	json.Unmarshal(body, &feed)
	f.feedID = feed.ID
	if feed.UserID != f.admin.ID || len(feed.Accounts) != 1 || feed.Accounts[0].ID != 1 {
		t.Fatalf("feed %s", body)
	}
	confirms := f.caughtUp(0)

	s1, s2 := f.newSession(f.inbox), f.newSession(f.inbox2)
	f.activity(s1, f.inbox, 0)
	f.activity(s2, f.inbox2, 0)
	for drop := 1; drop <= 3; drop++ {
		f.fake.DropAll(false)
		f.activity(s1, f.inbox, drop) // while the relay reconnects: lost upstream, caught up
		f.activity(s2, f.inbox2, drop)
		confirms = f.caughtUp(confirms)
	}

	f.stop()
	f.activity(s1, f.inbox, 10) // while the relay is down
	f.activity(s2, f.inbox2, 10)
	f.env["RELAY_ACCOUNT_FEEDS"] = " " + f.admin.AccessToken + " "
	f.start()
	f.caughtUp(0)

	resp, body = f.do("POST", "/v1/subscriptions", map[string]string{"pubsub_token": s1.ci.PubsubToken,
		"inbox_identifier": f.inbox.Identifier, "contact_identifier": s1.ci.SourceID}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/subscriptions: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 30*time.Second, "contact confirmed", func() bool { return allConfirmed(f.e2e) })
	f.activity(s1, f.inbox, 11) // seen through the contact and the feed
	f.activity(s2, f.inbox2, 11)
	if err := f.fake.ResolveConversation(1, s1.display); err != nil {
		t.Fatal(err)
	}

	want := map[int64]bool{}
	for _, m := range f.fake.AllMessages() {
		want[m.ID] = true
	}
	var events []stored
	waitFor(t, time.Minute, "every message in the stream", func() bool {
		events = readStream(t, f.app.natsURL)
		got := messageIDs(events)
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	for id, n := range messageIDs(readStream(t, f.app.natsURL)) {
		if n != 1 || !want[id] {
			t.Errorf("message %d stored %d times (known to Chatwoot: %v)", id, n, want[id])
		}
	}
	checkFeedEvents(t, f, events)
}

// checkFeedEvents: agent events are there and marked; nothing is stored
// twice under one Nats-Msg-Id.
func checkFeedEvents(t *testing.T, f *feedEnv, events []stored) {
	seen := map[string]int{}
	visibility := map[string]int{}
	for _, ev := range events {
		if tok := strings.Split(ev.subject, "."); strings.HasSuffix(ev.subject, ".message.created") && tok[3] == fanout.Unknown {
			t.Errorf("%s (%s) does not name the contact", ev.subject, ev.header.Get(fanout.HeaderVisibility))
		}
		seen[ev.header.Get(fanout.HeaderMsgID)]++
		visibility[ev.header.Get(fanout.HeaderEvent)+"/"+ev.header.Get(fanout.HeaderVisibility)]++
	}
	for id, n := range seen {
		if n > 1 && !strings.HasPrefix(id, "i:") { // instant keys repeat across time buckets by design
			t.Errorf("Nats-Msg-Id %s stored %d times", id, n)
		}
	}
	for _, want := range []string{"message.created/private", "message.created/activity", "message.created/",
		"assignee.changed/agent", "contact.updated/agent"} {
		if visibility[want] == 0 {
			t.Errorf("no %s event in the stream: %v", want, visibility)
		}
	}
}

// TestAccountFeedCredentialsNeverLeak: the access token and the user's
// pubsub token appear in no log line, subject, header, stored body, metric,
// API answer or error, including for a token Chatwoot refuses.
func TestAccountFeedCredentialsNeverLeak(t *testing.T) {
	f := newFeedEnv(t)
	var answers strings.Builder
	resp, body := f.do("POST", "/v1/feeds", map[string]string{"access_token": f.admin.AccessToken}, nil)
	answers.Write(body)
	var feed feeds.Feed
	json.Unmarshal(body, &feed)
	f.feedID = feed.ID
	f.caughtUp(0)
	s := f.newSession(f.inbox)
	f.activity(s, f.inbox, 0)
	refused := "refused-" + f.admin.AccessToken
	resp, body = f.do("POST", "/v1/feeds", map[string]string{"access_token": refused}, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("refused token: %d %s", resp.StatusCode, body)
	}
	answers.Write(body)
	for _, path := range []string{"/v1/feeds", "/v1/feeds/" + f.feedID, "/metrics"} {
		_, body := f.do("GET", path, nil, nil)
		answers.Write(body)
	}
	rotated, _ := f.fake.RotateUserToken(f.admin.ID) // the relay re-reads the profile
	f.fake.DropAll(false)
	waitFor(t, time.Minute, "feed resubscribed with the rotated token", func() bool {
		a := f.account()
		return a.State == "confirmed" && a.CaughtUp && a.SubscriptionID != feed.Accounts[0].SubscriptionID
	})
	f.activity(s, f.inbox, 1)
	waitFor(t, 30*time.Second, "events after the rotation", func() bool {
		return messageIDs(readStream(t, f.app.natsURL))[f.fake.AllMessages()[len(f.fake.AllMessages())-1].ID] == 1
	})
	var stream strings.Builder
	for _, ev := range readStream(t, f.app.natsURL) {
		fmt.Fprintf(&stream, "%s %v %s\n", ev.subject, ev.header, ev.data)
	}
	f.stop()
	everything := f.logs.String() + answers.String() + stream.String()
	for name, secret := range map[string]string{"access token": f.admin.AccessToken, "pubsub token": f.admin.PubsubToken,
		"rotated pubsub token": rotated.PubsubToken} {
		if strings.Contains(everything, secret) {
			t.Errorf("the %s leaked", name)
		}
	}
	if !strings.Contains(f.logs.String(), `"feed"`) {
		t.Error("no log line names a feed: the check saw nothing")
	}
	_ = io.Discard
}
