package chatwoottest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// contactSession creates inbox-1 (if needed), a contact and a conversation,
// and returns the conversation path and the contact inbox.
func contactSession(t *testing.T, e *restEnv, source string) (string, ContactInbox) {
	t.Helper()
	e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
	ci, err := e.fake.CreateContact("inbox-1", ContactParams{SourceID: source, Name: "C " + source})
	if err != nil {
		t.Fatal(err)
	}
	r := e.postJSON(inboxPath+"/contacts/"+source+"/conversations", nil)
	if r.status != 200 {
		t.Fatalf("conversation create: %d %s", r.status, r.body)
	}
	return fmt.Sprintf("%s/contacts/%s/conversations/%v", inboxPath, source, r.json(t)["id"]), ci
}

func TestEventsPerAction(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		c := e.subscribe(ci.PubsubToken)
		defer c.close()
		steps := []struct {
			name string
			do   func()
			want []string
		}{
			{"contact message", func() { e.postJSON(convPath+"/messages", map[string]any{"content": "hi"}) },
				[]string{EventMessageCreated}},
			{"agent reply", func() { e.fake.AgentReply(1, 1, "hello") },
				[]string{EventMessageCreated, EventConversationUpdated}},
			{"second reply: nothing tracked changed", func() { e.fake.AgentReply(1, 1, "again") },
				[]string{EventMessageCreated}},
			{"private note is not sent", func() { e.fake.AgentNote(1, 1, "secret") }, nil},
			{"contact typing goes to agents only", func() {
				e.postJSON(convPath+"/toggle_typing", map[string]any{"typing_status": "on"})
			}, nil},
			{"update_last_seen marks agent messages read", func() { e.postJSON(convPath+"/update_last_seen", nil) },
				[]string{EventMessageUpdated, EventMessageUpdated}},
			{"contact resolves", func() { e.postJSON(convPath+"/toggle_status", nil) },
				[]string{EventConversationStatusChanged, EventConversationUpdated}},
			{"toggle_status again is a no-op", func() { e.postJSON(convPath+"/toggle_status", nil) }, nil},
			{"message reopens and sets waiting_since", func() { e.postJSON(convPath+"/messages", map[string]any{"content": "back"}) },
				[]string{EventConversationStatusChanged, EventConversationUpdated, EventMessageCreated, EventConversationUpdated}},
			{"agent resolve", func() { e.fake.ResolveConversation(1, 1) },
				[]string{EventConversationStatusChanged, EventConversationUpdated}},
		}
		for _, st := range steps {
			st.do()
			if got := eventNames(t, c); !slices.Equal(got, st.want) {
				t.Errorf("%s: events %q, want %q", st.name, got, st.want)
			}
		}
		msgs, _ := e.fake.Messages(1, 1)
		var types []int
		for _, m := range msgs {
			types = append(types, m.MessageType)
		}
		// The note is private (type 1), resolutions add activity messages.
		if want := []int{0, 1, 1, 1, 2, 0, 2}; !slices.Equal(types, want) {
			t.Errorf("message types %v, want %v", types, want)
		}
	})
}

func TestEchoArrivesWithEchoID(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		c := e.subscribe(ci.PubsubToken)
		defer c.close()
		r := e.postForm(convPath+"/messages", map[string][]string{"content": {"form body"}, "echo_id": {"e-1"}})
		var rest map[string]any
		json.Unmarshal(r.body, &rest)
		if _, ok := rest["echo_id"]; ok || rest["content"] != "form body" {
			t.Errorf("REST message %s", r.body)
		}
		synctest.Wait()
		frames := c.drain()
		if len(frames) != 1 || !strings.Contains(frames[0], `"echo_id":"e-1"`) || !strings.Contains(frames[0], `"message_type":0`) {
			t.Fatalf("frames %q", frames)
		}
		if all := e.fake.AllMessages(); len(all) != 1 || all[0].EchoID != "e-1" || all[0].Content != "form body" {
			t.Errorf("AllMessages %+v", all)
		}
	})
}

func TestMessagesIndexPaging(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		for i := 1; i <= 45; i++ {
			if _, err := e.fake.ContactSend("inbox-1", ci.SourceID, 1, "m"+strconv.Itoa(i), ""); err != nil {
				t.Fatal(err)
			}
			if i == 10 {
				e.fake.AgentNote(1, 1, "hidden") // id 11, never listed
			}
		}
		ids := func(path string) []int64 {
			var msgs []struct{ ID int64 }
			if err := json.Unmarshal(e.get(path).body, &msgs); err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, m := range msgs {
				out = append(out, m.ID)
			}
			return out
		}
		tests := []struct {
			query string
			want  []int64
		}{
			{"", seq(27, 46)},
			{"?before=27", append(seq(6, 10), seq(12, 26)...)},
			{"?before=7", seq(1, 6)},
			{"?before=13", append(seq(1, 10), 12)}, // 11 is the private note
			{"?before=1", nil},
		}
		for _, tt := range tests {
			got := ids(convPath + "/messages" + tt.query)
			if !slices.Equal(got, tt.want) {
				t.Errorf("messages%s = %v, want %v", tt.query, got, tt.want)
			}
		}
	})
}

// seq returns from..to inclusive.
func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestMultipartAttachments(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		c := e.subscribe(ci.PubsubToken)
		defer c.close()
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("content", "see attached")
		mw.WriteField("echo_id", "e-9")
		fw, _ := mw.CreateFormFile("attachments[]", "photo.png")
		fw.Write(bytes.Repeat([]byte{1}, 1234))
		mw.Close()
		r := e.do(http.MethodPost, convPath+"/messages", mw.FormDataContentType(), body.Bytes())
		var msg struct {
			Content     string
			Attachments []struct {
				FileType string `json:"file_type"`
				FileSize int64  `json:"file_size"`
				DataURL  string `json:"data_url"`
			}
		}
		if err := json.Unmarshal(r.body, &msg); err != nil || r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		a := msg.Attachments
		if msg.Content != "see attached" || len(a) != 1 || a[0].FileType != "file" && a[0].FileType != "image" ||
			a[0].FileSize != 1234 || !strings.HasSuffix(a[0].DataURL, "/photo.png") {
			t.Errorf("message %+v", msg)
		}
		synctest.Wait()
		if f := c.drain(); len(f) != 1 || !strings.Contains(f[0], `"attachments":[{`) || !strings.Contains(f[0], `"echo_id":"e-9"`) {
			t.Errorf("frames %q", f)
		}
	})
}

func TestHMACVerifiedFanOutAndScope(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		a, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-a", HMACToken: "ka"})
		b, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-b", HMACToken: "kb"})
		ciA, _ := e.fake.CreateContact("inbox-a", ContactParams{SourceID: "sa", Identifier: "u1"})
		ciB, _ := e.fake.CreateContact("inbox-b", ContactParams{SourceID: "sb", Identifier: "u1"})
		if ciA.ContactID != ciB.ContactID {
			t.Fatalf("identifier should match the same contact: %+v %+v", ciA, ciB)
		}
		convA, _ := e.fake.CreateConversation("inbox-a", "sa")
		e.fake.CreateConversation("inbox-b", "sb")
		cA, cB := e.subscribe(ciA.PubsubToken), e.subscribe(ciB.PubsubToken)
		defer cA.close()
		defer cB.close()

		listB := func() int {
			var convs []any
			json.Unmarshal(e.get("/public/api/v1/inboxes/inbox-b/contacts/sb/conversations").body, &convs)
			return len(convs)
		}
		e.fake.AgentReply(convA.AccountID, convA.DisplayID, "unverified")
		if ga, gb := eventNames(t, cA), eventNames(t, cB); len(ga) != 2 || len(gb) != 0 || listB() != 1 {
			t.Fatalf("unverified: a=%q b=%q listB=%d", ga, gb, listB())
		}
		for _, v := range []struct{ inbox, source, key string }{{"inbox-a", "sa", a.HMACToken}, {"inbox-b", "sb", b.HMACToken}} {
			r := e.get("/public/api/v1/inboxes/" + v.inbox + "/contacts/" + v.source + "?identifier=u1&identifier_hash=" + IdentifierHash(v.key, "u1"))
			if r.status != 200 {
				t.Fatalf("verify %s: %d", v.inbox, r.status)
			}
		}
		e.fake.AgentReply(convA.AccountID, convA.DisplayID, "verified")
		if ga, gb := eventNames(t, cA), eventNames(t, cB); len(ga) != 1 || len(gb) != 1 || listB() != 2 {
			t.Errorf("verified: a=%q b=%q listB=%d", ga, gb, listB())
		}
	})
}

func TestDeleteContactSilencesToken(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		_, ci := contactSession(t, e, "s-1")
		live := e.subscribe(ci.PubsubToken)
		defer live.close()
		if err := e.fake.DeleteContact(ci.ContactID); err != nil {
			t.Fatal(err)
		}
		if r := e.get(inboxPath + "/contacts/s-1"); r.status != 404 {
			t.Errorf("contact show after delete: %d", r.status)
		}
		c := e.cable()
		defer c.close()
		c.send(subscribeFrame(identifier(ci.PubsubToken)))
		synctest.Wait()
		if got := c.drain(); len(got) != 1 { // welcome only
			t.Errorf("subscribe with a deleted token got %q", got)
		}
		if _, err := e.fake.AgentReply(1, 1, "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("reply to a deleted conversation: %v", err)
		}
		if n := len(e.fake.AllMessages()); n != 0 {
			t.Errorf("AllMessages = %d", n)
		}
	})
}

func TestContactUpdateMergesByEmail(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		old, _ := e.fake.CreateContact("inbox-1", ContactParams{SourceID: "s-old", Email: "known@example.com"})
		anon, _ := e.fake.CreateContact("inbox-1", ContactParams{SourceID: "s-anon"})
		r := e.patchJSON(inboxPath+"/contacts/s-anon", map[string]any{"email": "known@example.com", "name": "Known"})
		body := r.json(t)
		if body["id"] != float64(old.ContactID) || body["name"] != "Known" {
			t.Errorf("merge response %s", r.body)
		}
		if _, ok := body["pubsub_token"]; ok {
			t.Errorf("PATCH response carries pubsub_token: %s", r.body)
		}
		show := e.get(inboxPath + "/contacts/s-anon").json(t)
		if show["id"] != float64(old.ContactID) || show["pubsub_token"] != anon.PubsubToken {
			t.Errorf("after merge the session keeps its token and points at the survivor: %v", show)
		}
	})
}

func TestConversationCreateOptions(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "single", LockToSingleConversation: true})
		e.fake.AddInbox(InboxConfig{Identifier: "bot", ActiveBot: true})
		e.fake.CreateContact("single", ContactParams{SourceID: "s"})
		e.fake.CreateContact("bot", ContactParams{SourceID: "b"})
		one := e.postJSON("/public/api/v1/inboxes/single/contacts/s/conversations", nil).json(t)
		two := e.postJSON("/public/api/v1/inboxes/single/contacts/s/conversations", nil).json(t)
		if one["id"] != two["id"] {
			t.Errorf("lock to single conversation: %v then %v", one["id"], two["id"])
		}
		bot := e.postJSON("/public/api/v1/inboxes/bot/contacts/b/conversations", map[string]any{"custom_attributes": map[string]any{"plan": "pro"}}).json(t)
		if bot["status"] != "pending" || bot["id"] != float64(2) {
			t.Errorf("active bot conversation %v", bot)
		}
	})
}

func TestMessageFloodAndLength(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		if r := e.postJSON(convPath+"/messages", map[string]any{"content": strings.Repeat("x", 150001)}); r.status != 422 {
			t.Errorf("long content: %d %s", r.status, r.body)
		}
		for i := range 200 {
			if _, err := e.fake.ContactSend("inbox-1", ci.SourceID, 1, "m", ""); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		r := e.postJSON(convPath+"/messages", map[string]any{"content": "one more"})
		if r.status != 422 || string(r.body) != `{"message":"Too many messages","attributes":["base"]}` {
			t.Errorf("flood: %d %s", r.status, r.body)
		}
		time.Sleep(time.Minute)
		if r := e.postJSON(convPath+"/messages", map[string]any{"content": "later"}); r.status != 200 {
			t.Errorf("after a minute: %d %s", r.status, r.body)
		}
	})
}

func TestMessageUpdateSubmittedValues(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		msg, _ := e.fake.AgentReply(1, 1, "pick one")
		c := e.subscribe(ci.PubsubToken)
		defer c.close()
		r := e.patchJSON(convPath+"/messages/"+strconv.FormatInt(msg.ID, 10),
			map[string]any{"submitted_values": []any{map[string]any{"name": "a", "value": "1"}}})
		if r.status != 200 || !strings.Contains(string(r.body), `"submitted_values":[{"name":"a","value":"1"}]`) {
			t.Errorf("%d %s", r.status, r.body)
		}
		if got := eventNames(t, c); !slices.Equal(got, []string{EventMessageUpdated}) {
			t.Errorf("events %q", got)
		}
		if r := e.patchJSON(convPath+"/messages/999", nil); r.status != 404 {
			t.Errorf("unknown message: %d", r.status)
		}
	})
}
