package chatwoot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
)

// Application API routes (a user's access token in the api_access_token
// header), relative to Chatwoot's root. Account feeds call them.
const (
	RouteProfile              = "/api/v1/profile"
	RouteAccountConversations = "/api/v1/accounts/{account}/conversations"
	RouteAccountMessages      = RouteAccountConversations + "/{conversation}/messages"
)

// AccessToken is a Chatwoot user's access token: a credential. String,
// Format and LogValue hide it.
type AccessToken string

func (t AccessToken) String() string { return redact(string(t)) }

// Format prints the redacted form for every verb.
func (t AccessToken) Format(f fmt.State, _ rune) { f.Write([]byte(t.String())) }

// LogValue implements slog.LogValuer.
func (t AccessToken) LogValue() slog.Value { return slog.StringValue(t.String()) }

// Profile is the user behind an access token: GET /api/v1/profile. Its
// PubsubToken is a credential; String, Format and LogValue hide it.
type Profile struct {
	ID          int64            `json:"id"`
	PubsubToken string           `json:"pubsub_token"`
	Accounts    []ProfileAccount `json:"accounts"`
}

// ProfileAccount is one account of the user and the user's role in it.
type ProfileAccount struct {
	ID   int64  `json:"id"`
	Role string `json:"role"`
}

func (p Profile) String() string {
	return fmt.Sprintf("Profile{ID:%d PubsubToken:%s Accounts:%v}", p.ID, redact(p.PubsubToken), p.Accounts)
}

// Format prints the redacted form for every verb.
func (p Profile) Format(f fmt.State, _ rune) { f.Write([]byte(p.String())) }

// LogValue implements slog.LogValuer.
func (p Profile) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", p.ID), slog.Int("accounts", len(p.Accounts)))
}

// AccountConversation is one conversation of an account listing: the
// routing fields and the raw conversation push data.
type AccountConversation struct {
	ID             int64 `json:"id"` // display_id
	InboxID        int64 `json:"inbox_id"`
	LastActivityAt int64 `json:"last_activity_at"`
	Meta           struct {
		Sender struct {
			ID int64 `json:"id"`
		} `json:"sender"`
	} `json:"meta"`
	// Messages is the conversation's last message as the listing embeds
	// it (private notes and activity messages included); empty when the
	// conversation has none.
	Messages []struct {
		ID int64 `json:"id"`
	} `json:"messages"`
	Raw json.RawMessage
}

// LastMessageID is the id of the conversation's last message, 0 without
// one.
func (c AccountConversation) LastMessageID() int64 {
	var id int64
	for _, m := range c.Messages {
		id = max(id, m.ID)
	}
	return id
}

// ContactID is the conversation's contact id as text, "" when unknown.
func (c AccountConversation) ContactID() string {
	if c.Meta.Sender.ID == 0 {
		return ""
	}
	return strconv.FormatInt(c.Meta.Sender.ID, 10)
}

// UnmarshalJSON keeps the raw document next to the decoded fields.
func (c *AccountConversation) UnmarshalJSON(b []byte) error {
	type plain AccountConversation
	if err := json.Unmarshal(b, (*plain)(c)); err != nil {
		return err
	}
	c.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// AccountMessage is one message of the Application API (the message push
// data, private notes and activity messages included), raw.
type AccountMessage struct {
	ID  int64 `json:"id"`
	Raw json.RawMessage
}

// UnmarshalJSON keeps the raw document next to the id.
func (m *AccountMessage) UnmarshalJSON(b []byte) error {
	var v struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.ID, m.Raw = v.ID, append(json.RawMessage(nil), b...)
	return nil
}

// GetProfile returns the user of token: GET /api/v1/profile. A token
// Chatwoot refuses gives an error for which Unauthorized is true.
func (c *Client) GetProfile(ctx context.Context, token AccessToken) (Profile, error) {
	var out Profile
	rt := route{method: http.MethodGet, tmpl: RouteProfile, path: RouteProfile, app: true}
	return out, c.appCall(ctx, token, rt, object(&out))
}

// ListAccountConversations returns one page (from 1) of an account's
// conversations in every status, most recently active first, and how many
// the listing holds (meta.all_count; 0 when Chatwoot does not say):
// GET /api/v1/accounts/{account}/conversations.
func (c *Client) ListAccountConversations(ctx context.Context, token AccessToken, account int64, page int) ([]AccountConversation, int, error) {
	var out struct {
		Data struct {
			Meta struct {
				AllCount int `json:"all_count"`
			} `json:"meta"`
			Payload []AccountConversation `json:"payload"`
		} `json:"data"`
	}
	rt, err := newRoute(http.MethodGet, RouteAccountConversations, idSegment(account))
	if err != nil {
		return nil, 0, err
	}
	rt.app = true
	rt.query = url.Values{"status": {"all"}, "assignee_type": {"all"}, "sort_by": {"last_activity_at_desc"},
		"page": {strconv.Itoa(page)}}.Encode()
	err = c.appCall(ctx, token, rt, object(&out))
	return out.Data.Payload, out.Data.Meta.AllCount, err
}

// ListAccountMessages returns up to 100 messages of a conversation with an
// id above after, oldest first, private notes and activity messages
// included: GET .../conversations/{display_id}/messages?after=.
func (c *Client) ListAccountMessages(ctx context.Context, token AccessToken, account, conversation, after int64) ([]AccountMessage, error) {
	var out struct {
		Payload []AccountMessage `json:"payload"`
	}
	rt, err := newRoute(http.MethodGet, RouteAccountMessages, idSegment(account), idSegment(conversation))
	if err != nil {
		return nil, err
	}
	rt.app = true
	rt.query = url.Values{"after": {strconv.FormatInt(after, 10)}}.Encode()
	return out.Payload, c.appCall(ctx, token, rt, object(&out))
}

// appCall sends an Application API request with the access token. Bodies
// are left out of its errors: a profile carries credentials.
func (c *Client) appCall(ctx context.Context, token AccessToken, rt route, dec decoder) error {
	if token == "" {
		return fmt.Errorf("%w: empty access token", ErrArgument)
	}
	r := &request{rt: rt, header: jsonHeader("")}
	r.header.Set("api_access_token", string(token))
	err := c.exchange(ctx, r, dec)
	var ae *APIError
	if errors.As(err, &ae) {
		ae.Body = nil
	}
	return err
}

// Unauthorized reports whether Chatwoot refused the credentials (401).
func Unauthorized(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusUnauthorized
}
