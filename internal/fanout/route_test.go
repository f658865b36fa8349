package fanout

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fixtures"
)

var testReceivedAt = time.Date(2026, 11, 21, 8, 13, 1, 962000123, time.UTC)

// TestFixtures covers every recorded cable frame: subject, headers, dedup
// key, redaction and the private-typing filter.
func TestFixtures(t *testing.T) {
	const redacted, redactedSourceID = `"pubsub_token":""`, `"source_id":""`
	hints := Hints{AccountID: "9", InboxID: "5", ContactID: "7"}
	tests := []struct {
		file     string
		hints    Hints
		subject  string
		key      string // dedup key; "~regexp" for instant keys
		msgID    string // Nats-Msg-Id when it differs from key ("" = same)
		kind     Kind
		status   string
		private  bool
		hasToken bool // the body carries the pubsub_token
	}{
		{file: "00_presence.update.json", hints: hints, kind: KindPresence,
			subject: "chatwoot.1.5.7._.presence.update",
			key:     `~^i:1:5:7:_:presence\.update:[0-9a-f]{16}$`},
		{file: "01_conversation.created.json", hints: hints, kind: KindConversation, status: "open", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.created",
			key:     "c:1:1:conversation.created"},
		{file: "02_message.created.incoming_echo.json", kind: KindMessage, status: "sent",
			subject: "chatwoot.1.1.1.1.message.created", key: "m:1:1:created"},
		{file: "03_message.created.agent_reply.json", hints: hints, kind: KindMessage, status: "sent",
			subject: "chatwoot.1.1.7.1.message.created", key: "m:1:2:created"},
		{file: "04_conversation.updated.1.json", kind: KindConversation, status: "open", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.updated",
			key:     "c:1:1:conversation.updated:1795248781.9731889"},
		{file: "05_conversation.typing_on.json", kind: KindTyping, status: "open", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.typing_on",
			key:     `~^i:1:1:1:1:conversation\.typing_on:[0-9a-f]{16}$`},
		{file: "06_conversation.typing_off.json", kind: KindTyping, status: "open", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.typing_off",
			key:     `~^i:1:1:1:1:conversation\.typing_off:[0-9a-f]{16}$`},
		{file: "07_conversation.typing_on.private.json", kind: KindTyping, status: "open", hasToken: true, private: true,
			subject: "chatwoot.1.1.1.1.conversation.typing_on",
			key:     `~^i:1:1:1:1:conversation\.typing_on:[0-9a-f]{16}$`},
		{file: "08_message.updated.json", hints: hints, kind: KindMessage, status: "sent",
			subject: "chatwoot.1.1.7.1.message.updated", key: "m:1:2:2026-11-21T08:13:02.123Z"},
		{file: "09_conversation.status_changed.json", kind: KindConversation, status: "resolved", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.status_changed",
			key:     "c:1:1:conversation.status_changed:1795248782.1307108"},
		{file: "10_conversation.updated.2.json", kind: KindConversation, status: "resolved", hasToken: true,
			subject: "chatwoot.1.1.1.1.conversation.updated",
			key:     "c:1:1:conversation.updated:1795248782.1307108"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			orig := fixtureMessage(t, tt.file)
			if got := bytes.Contains(orig, []byte(fixtureToken)); got != tt.hasToken {
				t.Fatalf("fixture carries token = %v, want %v", got, tt.hasToken)
			}
			b := builder{prefix: "chatwoot", instant: time.Second}
			ev := Event{SubID: "sub-1", Hints: tt.hints, Message: fixtureMessage(t, tt.file), ReceivedAt: testReceivedAt}
			it, r, err := b.build(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if it.msg.Subject != tt.subject || r.Subject("chatwoot") != tt.subject {
				t.Errorf("subject = %s (route %s), want %s", it.msg.Subject, r.Subject("chatwoot"), tt.subject)
			}
			checkKey(t, r, tt.key, tt.msgID)
			if r.Kind != tt.kind || r.Status != tt.status || r.Private != tt.private {
				t.Errorf("kind/status/private = %v/%q/%v, want %v/%q/%v", r.Kind, r.Status, r.Private, tt.kind, tt.status, tt.private)
			}
			checkHeaders(t, it, r)
			want := bytes.ReplaceAll(orig, []byte(`"pubsub_token":"`+fixtureToken+`"`), []byte(redacted))
			want = bytes.ReplaceAll(want, []byte(`"source_id":"`+fixtureSourceID+`"`), []byte(redactedSourceID))
			if !bytes.Equal(it.msg.Data, want) {
				t.Errorf("body not byte-identical to the redacted original:\n got %s\nwant %s", it.msg.Data, want)
			}
			if bytes.Contains(it.msg.Data, []byte(fixtureToken)) || bytes.Contains(it.msg.Data, []byte(fixtureSourceID)) {
				t.Error("token or source_id left in body")
			}
			if bytes.Count(orig, []byte(`"source_id":null`)) != bytes.Count(it.msg.Data, []byte(`"source_id":null`)) {
				t.Error("a message's own source_id changed")
			}
			if !bytes.Contains(orig, []byte(fixtureSourceID)) && !bytes.Equal(it.msg.Data, orig) {
				t.Error("body without credentials changed")
			}
		})
	}
	checkControlFrames(t, covered)
}

func checkKey(t *testing.T, r Route, key, msgID string) {
	t.Helper()
	if strings.HasPrefix(key, "~") {
		if !regexp.MustCompile(key[1:]).MatchString(r.DedupKey) {
			t.Errorf("dedup key %q does not match %s", r.DedupKey, key[1:])
		}
		bucket := strconv.FormatInt(testReceivedAt.UnixNano()/int64(time.Second), 10)
		if want := r.DedupKey + ":" + bucket; r.MsgID != want {
			t.Errorf("Nats-Msg-Id = %q, want %q", r.MsgID, want)
		}
		return
	}
	if msgID == "" {
		msgID = key
	}
	if r.DedupKey != key || r.MsgID != msgID {
		t.Errorf("keys = %q / %q, want %q / %q", r.DedupKey, r.MsgID, key, msgID)
	}
}

func checkHeaders(t *testing.T, it *item, r Route) {
	t.Helper()
	want := map[string]string{
		HeaderMsgID:        r.MsgID,
		HeaderEvent:        r.Event,
		HeaderAccount:      r.AccountID,
		HeaderInbox:        r.InboxID,
		HeaderContact:      r.ContactID,
		HeaderConversation: r.ConversationID,
		HeaderSubscription: "sub-1",
		HeaderReceivedAt:   "2026-11-21T08:13:01.962000123Z",
	}
	if r.Visibility != "" {
		want[HeaderVisibility] = r.Visibility
	}
	if len(it.msg.Header) != len(want) {
		t.Errorf("headers = %v, want %d of them", it.msg.Header, len(want))
	}
	for k, v := range want {
		if got := it.msg.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if tok := strings.Split(r.Subject("chatwoot"), "."); tok[1] != r.AccountID || tok[4] != r.ConversationID {
		t.Errorf("route ids %q/%q disagree with subject", r.AccountID, r.ConversationID)
	}
}

// checkControlFrames: every other fixture is a protocol frame, which has no
// event to publish.
func checkControlFrames(t *testing.T, covered map[string]bool) {
	for _, name := range fixtures.Names(t, "cable") {
		if covered[name] {
			continue
		}
		frame := fixtures.Read(t, "cable/"+name)
		if !strings.HasPrefix(name, "00_") {
			t.Errorf("%s: broadcast fixture without a table entry", name)
		}
		if _, err := Resolve(Event{Message: frame}); !errors.Is(err, ErrNoEvent) {
			t.Errorf("%s: Resolve err = %v, want ErrNoEvent", name, err)
		}
	}
}

func TestReplayedHeaderAndSameKey(t *testing.T) {
	live, err := Resolve(Event{Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
	if err != nil {
		t.Fatal(err)
	}
	// The REST shape catch-up replays: no account_id, no inbox_id.
	rest := []byte(`{"event":"message.created","replayed":true,"data":{"id":2,"content":"Hi Jane, how can I help?",` +
		`"message_type":1,"content_type":"text","content_attributes":{},"created_at":1795248781,"conversation_id":1,` +
		`"sender":{"id":1,"name":"Harness Agent 1","type":"user"}}}`)
	b := builder{prefix: "chatwoot", instant: time.Second}
	ev := Event{SubID: "s", Hints: Hints{AccountID: "1", InboxID: "1", ContactID: "1"}, Message: rest,
		ReceivedAt: testReceivedAt, Replayed: true}
	it, r, err := b.build(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.DedupKey != live.DedupKey || it.msg.Header.Get(HeaderMsgID) != live.MsgID {
		t.Errorf("replay key %q, live key %q: must be equal", r.DedupKey, live.DedupKey)
	}
	if it.msg.Header.Get(HeaderReplayed) != "true" || !r.Replayed {
		t.Errorf("Relay-Replayed = %q", it.msg.Header.Get(HeaderReplayed))
	}
	if r.MessageType != MessageOutgoing || r.MessageID != "2" {
		t.Errorf("message type/id = %d/%q", r.MessageType, r.MessageID)
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		hints   Hints
		subject string
		key     string
		mtype   MessageType
		err     error
	}{
		{name: "message type as name", msg: `{"event":"message.created","data":{"id":5,"account_id":3,"inbox_id":4,"conversation_id":6,"message_type":"incoming","sender":{"id":8,"type":"contact"}}}`,
			subject: "p.3.4.8.6.message.created", key: "m:3:5:created", mtype: MessageIncoming},
		{name: "outgoing sender is not the contact", msg: `{"event":"message.created","data":{"id":5,"account_id":3,"inbox_id":4,"conversation_id":6,"message_type":1,"sender":{"id":8,"type":"contact"}}}`,
			subject: "p.3.4._.6.message.created", key: "m:3:5:created", mtype: MessageOutgoing},
		{name: "sender_type Contact", msg: `{"event":"message.created","data":{"id":5,"account_id":3,"conversation_id":6,"message_type":0,"sender_type":"Contact","sender_id":11}}`,
			hints: Hints{InboxID: "4"}, subject: "p.3.4.11.6.message.created", key: "m:3:5:created", mtype: MessageIncoming},
		{name: "string ids and hints", msg: `{"event":"message.created","data":{"id":"5","account_id":"3","conversation_id":"6"}}`,
			hints: Hints{AccountID: "99", InboxID: "4", ContactID: "12"}, subject: "p.3.4.12.6.message.created", key: "m:3:5:created", mtype: MessageUnknown},
		{name: "null ids fall back to hints", msg: `{"event":"conversation.updated","data":{"id":2,"account_id":null,"inbox_id":null,"updated_at":17.5}}`,
			hints: Hints{AccountID: "3", InboxID: "4"}, subject: "p.3.4._.2.conversation.updated", key: "c:3:2:conversation.updated:17.5"},
		{name: "conversation timestamp when no updated_at", msg: `{"event":"conversation.read","data":{"id":2,"account_id":3,"timestamp":1700}}`,
			subject: "p.3._._.2.conversation.read", key: "c:3:2:conversation.read:1700"},
		{name: "no stamp no key", msg: `{"event":"conversation.read","data":{"id":2,"account_id":3}}`,
			subject: "p.3._._.2.conversation.read", key: ""},
		{name: "message.updated without updated_at", msg: `{"event":"message.updated","data":{"id":2,"account_id":3,"conversation_id":4}}`,
			subject: "p.3._._.4.message.updated", key: "", mtype: MessageUnknown},
		{name: "other message event", msg: `{"event":"message.deleted","data":{"id":2,"account_id":3,"conversation_id":4,"updated_at":"2026-01-01T00:00:00Z"}}`,
			subject: "p.3._._.4.message.deleted", key: "m:3:2:deleted:2026-01-01T00:00:00Z", mtype: MessageUnknown},
		{name: "whitespace and escapes", msg: " {\n \"event\" : \"message.created\" , \"data\" : { \"content\":\"a\\\"b\\\\\", \"id\" : 5 , \"account_id\" : \"\\u0033\" } } ",
			subject: "p.3._._._.message.created", key: "m:3:5:created", mtype: MessageUnknown},
		{name: "no data", msg: `{"event":"presence.update"}`, hints: Hints{AccountID: "1"}, subject: "p.1._._._.presence.update", key: "~"},
		{name: "account with dot", msg: `{"event":"message.created","data":{"id":1,"account_id":"1.2"}}`, err: ErrRouting},
		{name: "float account", msg: `{"event":"message.created","data":{"id":1,"account_id":1.5}}`, err: ErrRouting},
		{name: "inbox with space", msg: `{"event":"message.created","data":{"id":1,"account_id":1,"inbox_id":"4 5"}}`, err: ErrRouting},
		{name: "conversation object", msg: `{"event":"message.created","data":{"id":1,"account_id":1,"conversation_id":{"a":1}}}`, err: ErrRouting},
		{name: "bool contact", msg: `{"event":"conversation.created","data":{"id":1,"contact_inbox":{"contact_id":true}}}`, err: ErrRouting},
		{name: "wildcard in hint", msg: `{"event":"presence.update","data":{}}`, hints: Hints{ContactID: "*"}, err: ErrRouting},
		{name: "reserved account", msg: `{"event":"presence.update","data":{"account_id":"relay"}}`, err: ErrRouting},
		{name: "long id", msg: `{"event":"presence.update","data":{"account_id":"` + strings.Repeat("1", 65) + `"}}`, err: ErrRouting},
		{name: "bad event", msg: `{"event":"message..created","data":{}}`, err: ErrNoEvent},
		{name: "event with wildcard", msg: `{"event":"message.>","data":{}}`, err: ErrNoEvent},
		{name: "event not a string", msg: `{"event":1,"data":{}}`, err: ErrNoEvent},
		{name: "not an object", msg: `["event"]`, err: errNotObject},
		{name: "truncated", msg: `{"event":"message.created","data":{"id":1`, err: errSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := builder{prefix: "p", instant: time.Second}
			ev := Event{Hints: tt.hints, Message: []byte(tt.msg), ReceivedAt: testReceivedAt}
			it, r, err := b.build(&ev)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if it.msg.Subject != tt.subject {
				t.Errorf("subject = %s, want %s", it.msg.Subject, tt.subject)
			}
			if tt.key != "~" && r.DedupKey != tt.key {
				t.Errorf("key = %q, want %q", r.DedupKey, tt.key)
			}
			if r.Kind == KindMessage && r.MessageType != tt.mtype {
				t.Errorf("message type = %d, want %d", r.MessageType, tt.mtype)
			}
			if _, ok := it.msg.Header[HeaderMsgID]; ok != (r.MsgID != "") {
				t.Errorf("Nats-Msg-Id present = %v with key %q", ok, r.MsgID)
			}
		})
	}
}

func TestRoutingErrorHidesValue(t *testing.T) {
	_, err := Resolve(Event{Message: []byte(`{"event":"message.created","data":{"account_id":"secret value"}}`)})
	var re *RoutingError
	if !errors.As(err, &re) || re.Field != "account_id" {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q leaks the value", err)
	}
}

func TestInstantKeyWithoutContactIncludesSubscription(t *testing.T) {
	msg := `{"event":"presence.update","data":{"account_id":1,"users":{}}}`
	a, _ := Resolve(Event{SubID: "a", Message: []byte(msg)})
	b, _ := Resolve(Event{SubID: "b", Message: []byte(msg)})
	if a.DedupKey == b.DedupKey {
		t.Fatalf("unknown contacts share key %q", a.DedupKey)
	}
	c, _ := Resolve(Event{SubID: "a", Hints: Hints{ContactID: "4"}, Message: []byte(msg)})
	d, _ := Resolve(Event{SubID: "b", Hints: Hints{ContactID: "4"}, Message: []byte(msg)})
	if c.DedupKey != d.DedupKey {
		t.Fatalf("same contact through two tokens: %q vs %q", c.DedupKey, d.DedupKey)
	}
}

func TestValidators(t *testing.T) {
	for _, s := range []string{"a", "A-z_0", strings.Repeat("x", 64)} {
		if !validToken(s) {
			t.Errorf("validToken(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a.b", "a b", "*", ">", "é", strings.Repeat("x", 65)} {
		if validToken(s) {
			t.Errorf("validToken(%q) = true", s)
		}
	}
	for _, s := range []string{"message.created", "presence", "first.reply.created"} {
		if !validEvent(s) {
			t.Errorf("validEvent(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".a", "a.", "a..b", "a.b.c.d.e", "a.*"} {
		if validEvent(s) {
			t.Errorf("validEvent(%q) = true", s)
		}
	}
	for p, want := range map[string]bool{"chatwoot": true, "prod.chatwoot": true, "": false, "a.": false, "a b": false, "a.>": false} {
		if validPrefix(p) != want {
			t.Errorf("validPrefix(%q) = %v", p, !want)
		}
	}
}

func TestEchoID(t *testing.T) {
	for _, tt := range []struct {
		name, msg, want string
	}{
		{"fixture echo", string(fixtureMessage(t, "02_message.created.incoming_echo.json")), "echo-123"},
		{"agent reply has none", string(fixtureMessage(t, "03_message.created.agent_reply.json")), ""},
		{"unsafe value ignored", `{"event":"message.created","data":{"id":5,"account_id":1,"echo_id":"a b"}}`, ""},
		{"only on messages", `{"event":"conversation.updated","data":{"id":5,"account_id":1,"echo_id":"x"}}`, ""},
	} {
		r, err := Resolve(Event{SubID: "s", Message: []byte(tt.msg)})
		if err != nil || r.EchoID != tt.want {
			t.Errorf("%s: EchoID = %q, %v; want %q", tt.name, r.EchoID, err, tt.want)
		}
	}
}

// A conversation.created replayed by catch-up carries the REST conversation,
// which has no updated_at: it gets the live event's dedup key, so one of the
// two is dropped.
func TestConversationCreatedReplayKey(t *testing.T) {
	b := builder{prefix: "chatwoot", instant: time.Second}
	live := Event{SubID: "sub-1", Message: fixtureMessage(t, "01_conversation.created.json"), ReceivedAt: testReceivedAt}
	replay := Event{SubID: "sub-1", Hints: Hints{AccountID: "1", InboxID: "1", ContactID: "1"}, Replayed: true, ReceivedAt: testReceivedAt,
		Message: []byte(`{"event":"conversation.created","data":{"id":1,"uuid":"u","inbox_id":1,"status":"open","messages":[],"contact":{"id":1,"account_id":1}},"replayed":true}`)}
	_, lr, err := b.build(&live)
	if err != nil {
		t.Fatal(err)
	}
	_, rr, err := b.build(&replay)
	if err != nil {
		t.Fatal(err)
	}
	if lr.DedupKey == "" || lr.DedupKey != rr.DedupKey || lr.MsgID != rr.MsgID {
		t.Fatalf("live key %q / %q, replay key %q / %q: want equal", lr.DedupKey, lr.MsgID, rr.DedupKey, rr.MsgID)
	}
}

// TestForwardOptions: each credential is kept only when its option asks.
func TestForwardOptions(t *testing.T) {
	const file = "09_conversation.status_changed.json"
	for _, tt := range []struct {
		opts            Options
		token, sourceID bool // kept in the body
	}{
		{Options{}, false, false},
		{Options{ForwardTokens: true}, true, false},
		{Options{ForwardSourceIDs: true}, false, true},
		{Options{ForwardTokens: true, ForwardSourceIDs: true}, true, true},
	} {
		b := builder{prefix: "chatwoot", forward: tt.opts.forwarded(), instant: time.Second}
		ev := Event{SubID: "sub-1", Message: fixtureMessage(t, file), ReceivedAt: testReceivedAt}
		it, _, err := b.build(&ev)
		if err != nil {
			t.Fatal(err)
		}
		token, sourceID := bytes.Contains(it.msg.Data, []byte(fixtureToken)), bytes.Contains(it.msg.Data, []byte(fixtureSourceID))
		if token != tt.token || sourceID != tt.sourceID {
			t.Errorf("%+v: token kept %v, source_id kept %v", tt.opts, token, sourceID)
		}
	}
}
