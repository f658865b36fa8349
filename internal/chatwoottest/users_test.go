package chatwoottest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// userIdentifier is the dashboard's RoomChannel identifier.
func userIdentifier(u User) string {
	return fmt.Sprintf(`{"channel":"RoomChannel","pubsub_token":%q,"account_id":%d,"user_id":%d}`, u.PubsubToken, u.AccountID, u.ID)
}

// subscribeUser opens a connection subscribed with a user identifier and
// drains the welcome, confirm and presence frames.
func (e *restEnv) subscribeUser(u User) *testClient {
	c := e.cable()
	c.send(subscribeFrame(userIdentifier(u)))
	synctest.Wait()
	if got := c.drain(); len(got) != 3 {
		e.t.Fatalf("subscribe user %d: frames %q", u.ID, got)
	}
	return c
}

func TestUserReceivesAgentEvents(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		convPath, ci := contactSession(t, e, "s-1")
		other, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-2"})
		admin, _ := e.fake.AddUser(UserConfig{Role: RoleAdministrator})
		member, _ := e.fake.AddUser(UserConfig{Inboxes: []int64{ci.InboxID}})
		outsider, _ := e.fake.AddUser(UserConfig{Inboxes: []int64{other.ID}})
		ca, cm, co := e.subscribeUser(admin), e.subscribeUser(member), e.subscribeUser(outsider)
		contact := e.subscribe(ci.PubsubToken)
		for _, c := range []*testClient{ca, cm, co, contact} {
			defer c.close()
		}

		e.postJSON(convPath+"/messages", map[string]any{"content": "hi"})
		e.fake.AgentNote(1, 1, "secret")
		e.fake.AssignConversation(1, 1, member.ID)
		e.postJSON(convPath+"/update_last_seen", nil)
		e.fake.ResolveConversation(1, 1)
		synctest.Wait()

		want := []string{
			EventMessageCreated, EventContactUpdated, // contact message; the account stream
			EventMessageCreated,                                                 // private note
			EventAssigneeChanged, EventConversationUpdated, EventMessageCreated, // assignment + activity
			EventConversationRead, EventMessageUpdated, // update_last_seen: the activity message is marked read
			EventConversationStatusChanged, EventConversationUpdated, EventMessageCreated, // resolve + activity
		}
		if got := eventNames(t, ca); !slices.Equal(got, want) {
			t.Errorf("administrator got %q, want %q", got, want)
		}
		if got := eventNames(t, cm); !slices.Equal(got, want) {
			t.Errorf("inbox member got %q, want %q", got, want)
		}
		if got := eventNames(t, co); !slices.Equal(got, []string{EventContactUpdated}) {
			t.Errorf("agent of another inbox got %q, want only the account stream", got)
		}
		wantContact := []string{EventMessageCreated, EventConversationUpdated, EventConversationStatusChanged, EventConversationUpdated}
		if got := eventNames(t, contact); !slices.Equal(got, wantContact) {
			t.Errorf("contact got %q, want %q", got, wantContact)
		}
	})
}

func TestUserIdentifierMismatchGetsSilence(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		u, _ := e.fake.AddUser(UserConfig{Role: RoleAdministrator})
		for name, id := range map[string]string{
			"wrong account": fmt.Sprintf(`{"channel":"RoomChannel","pubsub_token":%q,"account_id":2,"user_id":%d}`, u.PubsubToken, u.ID),
			"wrong user":    fmt.Sprintf(`{"channel":"RoomChannel","pubsub_token":%q,"account_id":1,"user_id":%d}`, u.PubsubToken, u.ID+1),
			"no account":    fmt.Sprintf(`{"channel":"RoomChannel","pubsub_token":%q,"user_id":%d}`, u.PubsubToken, u.ID),
		} {
			c := e.cable()
			c.send(subscribeFrame(id))
			synctest.Wait()
			if got := c.drain(); len(got) != 1 { // the welcome only
				t.Errorf("%s: frames %q", name, got)
			}
			c.close()
		}
		rotated, _ := e.fake.RotateUserToken(u.ID)
		c := e.cable()
		defer c.close()
		c.send(subscribeFrame(userIdentifier(u)))
		synctest.Wait()
		if got := c.drain(); len(got) != 1 {
			t.Errorf("rotated token: frames %q", got)
		}
		e.subscribeUser(rotated).close()
	})
}

func TestApplicationAPI(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		_, ci := contactSession(t, e, "s-1")
		other, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-2"})
		admin, _ := e.fake.AddUser(UserConfig{Role: RoleAdministrator})
		agent, _ := e.fake.AddUser(UserConfig{Inboxes: []int64{other.ID}})
		m1, _ := e.fake.AgentReply(1, 1, "one")
		note, _ := e.fake.AgentNote(1, 1, "two")
		appGet := func(token, path string) (int, map[string]any) {
			req, _ := http.NewRequest(http.MethodGet, "http://chatwoot"+path, nil)
			if token != "" {
				req.Header.Set("api_access_token", token)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			return resp.StatusCode, body
		}
		if st, _ := appGet("", "/api/v1/profile"); st != 401 {
			t.Errorf("profile without token: %d", st)
		}
		st, prof := appGet(admin.AccessToken, "/api/v1/profile")
		if st != 200 || prof["pubsub_token"] != admin.PubsubToken || prof["id"] != float64(admin.ID) {
			t.Errorf("profile: %d %v", st, prof)
		}
		_, convs := appGet(admin.AccessToken, "/api/v1/accounts/1/conversations?status=all&sort_by=last_activity_at_desc")
		if n := len(convs["data"].(map[string]any)["payload"].([]any)); n != 1 {
			t.Errorf("administrator sees %d conversations, want 1", n)
		}
		_, convs = appGet(agent.AccessToken, "/api/v1/accounts/1/conversations?status=all")
		if n := len(convs["data"].(map[string]any)["payload"].([]any)); n != 0 {
			t.Errorf("agent of another inbox sees %d conversations", n)
		}
		_, msgs := appGet(admin.AccessToken, fmt.Sprintf("/api/v1/accounts/1/conversations/1/messages?after=%d", m1.ID))
		payload := msgs["payload"].([]any)
		if len(payload) != 1 || payload[0].(map[string]any)["id"] != float64(note.ID) || payload[0].(map[string]any)["private"] != true {
			t.Errorf("messages after %d: %v", m1.ID, payload)
		}
		if st, _ := appGet(agent.AccessToken, "/api/v1/accounts/1/conversations/1/messages"); st != 404 {
			t.Errorf("agent reads another inbox's messages: %d", st)
		}
		if st, _ := appGet(admin.AccessToken, "/api/v1/accounts/2/conversations"); st != 401 {
			t.Errorf("another account: %d", st)
		}
		_ = ci
	})
}

// Every message moves its conversation up the Application API's listing,
// private notes and activity messages included (Message#set_conversation_activity).
func TestEveryMessageBumpsLastActivity(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		contactSession(t, e, "s-1")
		contactSession(t, e, "s-2")
		admin, _ := e.fake.AddUser(UserConfig{Role: RoleAdministrator})
		order := func() []any {
			req, _ := http.NewRequest(http.MethodGet, "http://chatwoot/api/v1/accounts/1/conversations?status=all", nil)
			req.Header.Set("api_access_token", admin.AccessToken)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Data struct {
					Payload []struct {
						ID any `json:"id"`
					} `json:"payload"`
				} `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			var ids []any
			for _, c := range body.Data.Payload {
				ids = append(ids, c.ID)
			}
			return ids
		}
		time.Sleep(time.Second)
		e.fake.AgentNote(1, 1, "note")
		if got := order(); len(got) != 2 || got[0] != float64(1) {
			t.Fatalf("after a note in conversation 1: %v", got)
		}
		time.Sleep(time.Second)
		e.fake.ResolveConversation(1, 2) // an activity message
		if got := order(); got[0] != float64(2) {
			t.Fatalf("after resolving conversation 2: %v", got)
		}
	})
}

// Chatwoot's MessageFinder takes after=0 as given (Rails' present?): the
// oldest 100 after id 0, not the latest 20. The listing embeds the last
// message of any kind, a private note included.
func TestApplicationAPIAfterZeroAndLastMessage(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		contactSession(t, e, "s-1")
		admin, _ := e.fake.AddUser(UserConfig{Role: RoleAdministrator})
		for i := range 30 {
			e.fake.AgentReply(1, 1, fmt.Sprint("reply ", i))
		}
		note, _ := e.fake.AgentNote(1, 1, "note")
		get := func(path string, v any) {
			req, _ := http.NewRequest(http.MethodGet, "http://chatwoot"+path, nil)
			req.Header.Set("api_access_token", admin.AccessToken)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			json.NewDecoder(resp.Body).Decode(v)
		}
		var msgs struct {
			Payload []struct {
				ID int64 `json:"id"`
			} `json:"payload"`
		}
		get("/api/v1/accounts/1/conversations/1/messages?after=0", &msgs)
		if n := len(msgs.Payload); n < 31 || msgs.Payload[n-1].ID != note.ID {
			t.Errorf("after=0: %d messages, want every one (oldest first, up to 100)", n)
		}
		var convs struct {
			Data struct {
				Payload []struct {
					Messages []struct {
						ID int64 `json:"id"`
					} `json:"messages"`
				} `json:"payload"`
			} `json:"data"`
		}
		get("/api/v1/accounts/1/conversations?status=all", &convs)
		if p := convs.Data.Payload; len(p) != 1 || len(p[0].Messages) != 1 || p[0].Messages[0].ID != note.ID {
			t.Errorf("listing's last message %+v, want the note %d", p, note.ID)
		}
	})
}
