package chatwoot

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/fixtures"
)

const contactRecord = `{"id":7,"name":"Jane","email":"jane@example.com","phone_number":"+15550100","account_id":1,
 "identifier":"cust-7","additional_attributes":{},"custom_attributes":{},"contact_type":"lead","blocked":false}`

const prefix = "/public/api/v1/inboxes/" + testInboxEsc
const contactPrefix = prefix + "/contacts/" + testSourceIDEsc

func TestCalls(t *testing.T) {
	tests := []struct {
		name       string
		respond    resp
		call       func(*Client) (any, error)
		wantMethod string
		wantURI    string
		wantBody   string
		check      func(*testing.T, any)
	}{
		{
			name:       "inbox show",
			respond:    ok(fixtures.Read(t, "api/inbox_show.json")),
			call:       func(c *Client) (any, error) { return c.GetInbox(bg, testInbox) },
			wantMethod: "GET", wantURI: prefix,
			check: func(t *testing.T, v any) {
				in := v.(Inbox)
				var hours []json.RawMessage
				if err := json.Unmarshal(in.WorkingHours, &hours); err != nil || len(hours) != 7 {
					t.Errorf("working hours = %s (%v)", in.WorkingHours, err)
				}
				if in.Name != "Support API" || in.Identifier != "inbox-1" || in.Timezone != "UTC" || in.GreetingMessage != nil {
					t.Errorf("inbox = %+v", in)
				}
			},
		},
		{
			name:    "contact create",
			respond: ok(fixtures.Read(t, "api/contact_create.json")),
			call: func(c *Client) (any, error) {
				return c.CreateContact(bg, testInbox, ContactParams{SourceID: "s-1", Name: "Jane Customer", Email: "jane@example.com",
					Identifier: "cust-7", IdentifierHash: "abc", CustomAttributes: map[string]any{"plan": "pro"}})
			},
			wantMethod: "POST", wantURI: prefix + "/contacts",
			wantBody: `{"source_id":"s-1","identifier":"cust-7","identifier_hash":"abc","name":"Jane Customer",
				"email":"jane@example.com","custom_attributes":{"plan":"pro"}}`,
			check: func(t *testing.T, v any) {
				want := Contact{ID: 1, SourceID: "ba852f78-ecf7-4770-8128-e6cc15f7d7cc", PubsubToken: "os7FhRoFVZEMeCwQpWaJFUxv",
					Name: "Jane Customer", Email: "jane@example.com"}
				if got := v.(Contact); got != want {
					t.Errorf("contact = %+v, token %q, source_id %q", got, got.PubsubToken, got.SourceID)
				}
			},
		},
		{
			name:       "contact show",
			respond:    ok(fixtures.Read(t, "api/contact_create.json")),
			call:       func(c *Client) (any, error) { return c.GetContact(bg, testCI, Identity{}) },
			wantMethod: "GET", wantURI: contactPrefix,
			check: func(t *testing.T, v any) {
				if v.(Contact).PubsubToken != "os7FhRoFVZEMeCwQpWaJFUxv" {
					t.Error("token not decoded")
				}
			},
		},
		{
			name:    "contact show with identity",
			respond: ok(fixtures.Read(t, "api/contact_create.json")),
			call: func(c *Client) (any, error) {
				return c.GetContact(bg, testCI, Identity{Identifier: "a b&c", IdentifierHash: "ff00"})
			},
			wantMethod: "GET", wantURI: contactPrefix + "?identifier=a+b%26c&identifier_hash=ff00",
		},
		{
			name:    "contact update",
			respond: ok([]byte(contactRecord)),
			call: func(c *Client) (any, error) {
				return c.UpdateContact(bg, testCI, ContactParams{SourceID: "ignored", Email: "jane@example.com", PhoneNumber: "+15550100"})
			},
			wantMethod: "PATCH", wantURI: contactPrefix,
			wantBody: `{"email":"jane@example.com","phone_number":"+15550100"}`,
			check: func(t *testing.T, v any) {
				want := Contact{ID: 7, Name: "Jane", Email: "jane@example.com", PhoneNumber: "+15550100", Identifier: "cust-7"}
				if v.(Contact) != want {
					t.Errorf("contact = %+v", v)
				}
			},
		},
		{
			name:       "conversations index",
			respond:    ok(fixtures.Read(t, "api/conversations_index.json")),
			call:       func(c *Client) (any, error) { return c.ListConversations(bg, testCI) },
			wantMethod: "GET", wantURI: contactPrefix + "/conversations",
			check: func(t *testing.T, v any) {
				cs := v.([]Conversation)
				if len(cs) != 1 || cs[0].Status != "resolved" || cs[0].ID != 1 || cs[0].InboxID != 1 || len(cs[0].Messages) != 2 {
					t.Fatalf("conversations = %+v", cs)
				}
				if cs[0].Messages[1].MessageType != MessageOutgoing || cs[0].Contact.Email != "jane@example.com" {
					t.Errorf("conversation = %+v", cs[0])
				}
			},
		},
		{
			name:    "conversation create",
			respond: ok(fixtures.Read(t, "api/conversation_create.json")),
			call: func(c *Client) (any, error) {
				return c.CreateConversation(bg, testCI, map[string]any{"order": "A-1"})
			},
			wantMethod: "POST", wantURI: contactPrefix + "/conversations",
			wantBody: `{"custom_attributes":{"order":"A-1"}}`,
			check: func(t *testing.T, v any) {
				cv := v.(Conversation)
				if cv.UUID != "3b592af6-9044-4c05-9f84-fec595b14c8e" || cv.Status != "open" || len(cv.Messages) != 0 {
					t.Errorf("conversation = %+v", cv)
				}
			},
		},
		{
			name:       "conversation create without attributes",
			respond:    ok(fixtures.Read(t, "api/conversation_create.json")),
			call:       func(c *Client) (any, error) { return c.CreateConversation(bg, testCI, nil) },
			wantMethod: "POST", wantURI: contactPrefix + "/conversations",
			wantBody: `{}`,
		},
		{
			name:       "conversation show",
			respond:    ok(fixtures.Read(t, "api/conversation_create.json")),
			call:       func(c *Client) (any, error) { return c.GetConversation(bg, testCI, 42) },
			wantMethod: "GET", wantURI: contactPrefix + "/conversations/42",
		},
		{
			name:       "toggle status",
			respond:    ok(fixtures.Read(t, "api/conversation_create.json")),
			call:       func(c *Client) (any, error) { return c.ToggleStatus(bg, testCI, 42) },
			wantMethod: "POST", wantURI: contactPrefix + "/conversations/42/toggle_status",
		},
		{
			name:       "toggle typing on",
			respond:    ok(nil),
			call:       func(c *Client) (any, error) { return nil, c.ToggleTyping(bg, testCI, 42, true) },
			wantMethod: "POST", wantURI: contactPrefix + "/conversations/42/toggle_typing",
			wantBody: `{"typing_status":"on"}`,
		},
		{
			name:       "toggle typing off",
			respond:    ok(nil),
			call:       func(c *Client) (any, error) { return nil, c.ToggleTyping(bg, testCI, 42, false) },
			wantMethod: "POST", wantURI: contactPrefix + "/conversations/42/toggle_typing",
			wantBody: `{"typing_status":"off"}`,
		},
		{
			name:       "update last seen",
			respond:    ok(nil),
			call:       func(c *Client) (any, error) { return nil, c.UpdateLastSeen(bg, testCI, 42) },
			wantMethod: "POST", wantURI: contactPrefix + "/conversations/42/update_last_seen",
		},
		{
			name:       "messages index",
			respond:    ok(fixtures.Read(t, "api/messages_index.json")),
			call:       func(c *Client) (any, error) { return c.ListMessages(bg, testCI, 42, 0) },
			wantMethod: "GET", wantURI: contactPrefix + "/conversations/42/messages",
			check: func(t *testing.T, v any) {
				ms := v.([]Message)
				if len(ms) != 2 || ms[0].ID != 1 || *ms[0].Content != "Hello, I need help" || ms[0].MessageType != MessageIncoming ||
					ms[0].CreatedAt != 1795248781 || ms[0].ConversationID != 1 || ms[0].ContentType != "text" {
					t.Errorf("messages = %+v", ms)
				}
			},
		},
		{
			name:       "messages index before",
			respond:    ok(fixtures.Read(t, "api/messages_index.json")),
			call:       func(c *Client) (any, error) { return c.ListMessages(bg, testCI, 42, 17) },
			wantMethod: "GET", wantURI: contactPrefix + "/conversations/42/messages?before=17",
		},
		{
			name:    "message create",
			respond: ok(fixtures.Read(t, "api/message_create.json")),
			call: func(c *Client) (any, error) {
				return c.CreateMessage(bg, testCI, 42, MessageParams{Content: "Hello, I need help", EchoID: "e-1"})
			},
			wantMethod: "POST", wantURI: contactPrefix + "/conversations/42/messages",
			wantBody: `{"content":"Hello, I need help","echo_id":"e-1"}`,
			check: func(t *testing.T, v any) {
				if m := v.(Message); m.ID != 1 || !bytes.Contains(m.Sender, []byte(`"type": "contact"`)) {
					t.Errorf("message = %+v", m)
				}
			},
		},
		{
			name:    "message update",
			respond: ok(fixtures.Read(t, "api/message_create.json")),
			call: func(c *Client) (any, error) {
				return c.UpdateMessage(bg, testCI, 42, 7, []SubmittedValue{{Name: "email", Value: "a@b.c"},
					{CSATSurveyResponse: &CSATSurveyResponse{Rating: 5}}})
			},
			wantMethod: "PATCH", wantURI: contactPrefix + "/conversations/42/messages/7",
			wantBody: `{"submitted_values":[{"name":"email","value":"a@b.c"},{"csat_survey_response":{"rating":5}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec, _ := newServerClient(t, Options{}, tt.respond)
			got, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.wantMethod || r.URI != tt.wantURI {
				t.Errorf("request = %s %s, want %s %s", r.Method, r.URI, tt.wantMethod, tt.wantURI)
			}
			jsonEqual(t, r.Body, tt.wantBody)
			if ct := r.Header.Get("Content-Type"); (tt.wantBody != "") != (ct == "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if r.Header.Get("Accept") != "application/json" || r.Header.Get("User-Agent") != testUA {
				t.Errorf("headers = %v", r.Header)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestMessageRawKeepsExactBytes(t *testing.T) {
	body := fixtures.Read(t, "api/conversations_index.json")
	c, _, _ := newServerClient(t, Options{}, ok(body))
	cs, err := c.ListConversations(bg, testCI)
	if err != nil {
		t.Fatal(err)
	}
	conv := cs[0]
	if !bytes.Contains(body, conv.Raw) || !bytes.HasPrefix(conv.Raw, []byte("{")) || !bytes.HasSuffix(conv.Raw, []byte("}")) {
		t.Errorf("conversation Raw is not a slice of the response: %.80s", conv.Raw)
	}
	for _, m := range conv.Messages {
		if !bytes.Contains(body, m.Raw) || !bytes.Contains(m.Raw, []byte(`"sender": {`)) {
			t.Errorf("message %d Raw is not the original object: %s", m.ID, m.Raw)
		}
		var back Message
		if err := json.Unmarshal(m.Raw, &back); err != nil || back.ID != m.ID {
			t.Errorf("Raw of %d does not decode to itself: %v", m.ID, err)
		}
	}
}

func TestRawIsACopy(t *testing.T) {
	buf := fixtures.Read(t, "api/messages_index.json")
	var ms []Message
	if err := json.Unmarshal(buf, &ms); err != nil {
		t.Fatal(err)
	}
	want := string(ms[0].Raw)
	for i := range buf {
		buf[i] = 'x' // a decoder may reuse its buffer
	}
	if string(ms[0].Raw) != want {
		t.Error("Raw aliases the response buffer")
	}
}

func TestCreateMessageMultipart(t *testing.T) {
	c, rec, _ := newServerClient(t, Options{}, ok(fixtures.Read(t, "api/message_create.json")))
	p := MessageParams{Content: "see attached", EchoID: "e-2", Attachments: []Attachment{
		{Filename: "a.png", ContentType: "image/png", Body: strings.NewReader("PNGDATA")},
		{Filename: "bad\r\nX-Injected: 1\".txt", Body: io.MultiReader(strings.NewReader("text body"))},
	}}
	m, err := c.CreateMessage(bg, testCI, 42, p)
	if err != nil || m.ID != 1 {
		t.Fatalf("CreateMessage = %+v, %v", m, err)
	}
	r := rec.requests()[0]
	if r.URI != contactPrefix+"/conversations/42/messages" || r.Method != "POST" {
		t.Errorf("request = %s %s", r.Method, r.URI)
	}
	parts := readMultipart(t, r)
	want := []string{
		`content|||see attached`,
		`echo_id|||e-2`,
		`attachments[]|a.png|image/png|PNGDATA`,
		`attachments[]|badX-Injected: 1".txt|application/octet-stream|text body`,
	}
	if strings.Join(parts, "\n") != strings.Join(want, "\n") {
		t.Errorf("parts:\n%s\nwant:\n%s", strings.Join(parts, "\n"), strings.Join(want, "\n"))
	}
}

// readMultipart returns each part as "name|filename|content type|content".
func readMultipart(t *testing.T, r seen) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type = %q", r.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(r.Body), params["boundary"])
	var out []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		out = append(out, p.FormName()+"|"+p.FileName()+"|"+p.Header.Get("Content-Type")+"|"+string(b))
	}
}

func TestArgumentsRejectedBeforeSending(t *testing.T) {
	c, rec, _ := newServerClient(t, Options{}, ok(nil))
	calls := map[string]func() error{
		"empty inbox":       func() error { _, err := c.GetInbox(bg, ""); return err },
		"dot-dot inbox":     func() error { _, err := c.GetInbox(bg, ".."); return err },
		"empty source_id":   func() error { _, err := c.GetContact(bg, ContactInbox{Inbox: "i"}, Identity{}); return err },
		"dot source_id":     func() error { _, err := c.ListConversations(bg, ContactInbox{Inbox: "i", SourceID: "."}); return err },
		"zero conversation": func() error { return c.UpdateLastSeen(bg, testCI, 0) },
		"zero message":      func() error { _, err := c.UpdateMessage(bg, testCI, 1, 0, nil); return err },
		"negative before":   func() error { _, err := c.ListMessages(bg, testCI, 1, -1); return err },
		"nil attachment": func() error {
			_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Attachments: []Attachment{{}}})
			return err
		},
		"too many attachments": func() error {
			_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Attachments: make([]Attachment, 16)})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrArgument) {
			t.Errorf("%s: err = %v, want ErrArgument", name, err)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestBaseURLPathPrefixKept(t *testing.T) {
	rec := &recorder{resps: []resp{ok(fixtures.Read(t, "api/inbox_show.json"))}}
	srv := newHTTPServer(t, rec)
	c, _ := newTestClient(t, Options{BaseURL: srv + "/chat/"})
	if _, err := c.GetInbox(bg, "inbox-1"); err != nil {
		t.Fatal(err)
	}
	if got := rec.requests()[0].URI; got != "/chat/public/api/v1/inboxes/inbox-1" {
		t.Errorf("URI = %s", got)
	}
}

func TestResponseTooLarge(t *testing.T) {
	c, _, _ := newServerClient(t, Options{MaxResponseBytes: 64}, ok(fixtures.Read(t, "api/inbox_show.json")))
	_, err := c.GetInbox(bg, "inbox-1")
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("err = %v, want ErrDecode", err)
	}
}
