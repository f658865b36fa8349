package chatwoot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestApplicationAPICalls(t *testing.T) {
	const token = "access-secret-1"
	c, rec, _ := newServerClient(t, Options{},
		ok([]byte(`{"id":7,"pubsub_token":"pubsub-secret","accounts":[{"id":3,"role":"agent"}]}`)),
		ok([]byte(`{"data":{"meta":{"all_count":26},"payload":[{"id":12,"inbox_id":4,"last_activity_at":1700000000,"status":"open","messages":[{"id":99,"private":true}]}]}}`)),
		ok([]byte(`{"meta":{},"payload":[{"id":101,"private":true},{"id":102}]}`)),
	)
	ctx := context.Background()
	p, err := c.GetProfile(ctx, token)
	if err != nil || p.ID != 7 || p.PubsubToken != "pubsub-secret" || len(p.Accounts) != 1 || p.Accounts[0].ID != 3 {
		t.Fatalf("profile: %+v %v", p, err)
	}
	convs, total, err := c.ListAccountConversations(ctx, token, 3, 2)
	if err != nil || len(convs) != 1 || total != 26 || convs[0].ID != 12 || convs[0].InboxID != 4 || convs[0].LastMessageID() != 99 || !strings.Contains(string(convs[0].Raw), `"status":"open"`) {
		t.Fatalf("conversations: %+v %v", convs, err)
	}
	msgs, err := c.ListAccountMessages(ctx, token, 3, 12, 100)
	if err != nil || len(msgs) != 2 || msgs[0].ID != 101 || string(msgs[0].Raw) != `{"id":101,"private":true}` {
		t.Fatalf("messages: %+v %v", msgs, err)
	}
	want := []string{
		"/api/v1/profile",
		"/api/v1/accounts/3/conversations?assignee_type=all&page=2&sort_by=last_activity_at_desc&status=all",
		"/api/v1/accounts/3/conversations/12/messages?after=100",
	}
	for i, r := range rec.requests() {
		if r.URI != want[i] || r.Header.Get("api_access_token") != token {
			t.Errorf("request %d: %s (token header %q), want %s", i, r.URI, r.Header.Get("api_access_token"), want[i])
		}
	}
}

// A refused or garbled answer names the route, never the token or what
// the profile carried.
func TestApplicationAPIErrorsHideCredentials(t *testing.T) {
	const token = "access-secret-2"
	c, _, _ := newServerClient(t, Options{},
		status(401, `{"errors":["Invalid Access Token"]}`),
		ok([]byte(`{"id":"x","pubsub_token":"pubsub-secret","access_token":"access-secret-2"`)),
	)
	_, err := c.GetProfile(context.Background(), token)
	if !Unauthorized(err) {
		t.Fatalf("401: %v, want Unauthorized", err)
	}
	_, err = c.GetProfile(context.Background(), token)
	if err == nil {
		t.Fatal("truncated profile accepted")
	}
	var ae *APIError
	if !errors.As(err, &ae) || len(ae.Body) != 0 {
		t.Errorf("the profile body is kept in the error: %v", err)
	}
	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("x", "err", err, "token", AccessToken(token),
		"profile", Profile{PubsubToken: "pubsub-secret"})
	out := fmt.Sprintf("%v %+v %#v %s", err, err, err, sb.String()) + fmt.Sprint(AccessToken(token), Profile{PubsubToken: "pubsub-secret"})
	for _, secret := range []string{token, "pubsub-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q leaked: %s", secret, out)
		}
	}
}
