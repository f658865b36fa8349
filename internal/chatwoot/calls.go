package chatwoot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// GetInbox returns the inbox: GET /inboxes/{inbox}.
func (c *Client) GetInbox(ctx context.Context, inbox string) (Inbox, error) {
	var out Inbox
	rt, err := newRoute(http.MethodGet, RouteInbox, inbox)
	if err != nil {
		return out, err
	}
	return out, c.callJSON(ctx, rt, nil, object(&out))
}

// CreateContact creates (or, for a known p.SourceID, returns unchanged) a
// contact session: POST /inboxes/{inbox}/contacts. The result carries the
// source_id and pubsub_token.
func (c *Client) CreateContact(ctx context.Context, inbox string, p ContactParams) (Contact, error) {
	var out Contact
	rt, err := newRoute(http.MethodPost, RouteContacts, inbox)
	if err != nil {
		return out, err
	}
	return out, c.callJSON(ctx, rt, p, object(&out))
}

// GetContact returns a contact session: GET /inboxes/{inbox}/contacts/{source_id}.
// ErrNotFound means the session is gone (its pubsub_token is dead). id is
// required when the inbox enforces identity validation.
func (c *Client) GetContact(ctx context.Context, ci ContactInbox, id Identity) (Contact, error) {
	var out Contact
	rt, err := newRoute(http.MethodGet, RouteContact, ci.Inbox, ci.SourceID)
	if err != nil {
		return out, err
	}
	if id != (Identity{}) {
		rt.query = url.Values{"identifier": {id.Identifier}, "identifier_hash": {id.IdentifierHash}}.Encode()
	}
	return out, c.callJSON(ctx, rt, nil, object(&out))
}

// UpdateContact updates the contact: PATCH /inboxes/{inbox}/contacts/{source_id}.
// The result is the full contact record, without source_id and pubsub_token;
// its ID differs from before when Chatwoot merged the contact into another
// one with the same email or phone number.
func (c *Client) UpdateContact(ctx context.Context, ci ContactInbox, p ContactParams) (Contact, error) {
	var out Contact
	rt, err := newRoute(http.MethodPatch, RouteContact, ci.Inbox, ci.SourceID)
	if err != nil {
		return out, err
	}
	p.SourceID = "" // not an update field; it is in the path
	return out, c.callJSON(ctx, rt, p, object(&out))
}

// ListConversations returns the contact's conversations, each with all its
// messages: GET .../contacts/{source_id}/conversations.
func (c *Client) ListConversations(ctx context.Context, ci ContactInbox) ([]Conversation, error) {
	var out []Conversation
	rt, err := newRoute(http.MethodGet, RouteConversations, ci.Inbox, ci.SourceID)
	if err != nil {
		return nil, err
	}
	return out, c.callJSON(ctx, rt, nil, conversationList(&out))
}

// CreateConversation creates a conversation (or returns the last one when the
// inbox is locked to a single conversation): POST .../conversations.
func (c *Client) CreateConversation(ctx context.Context, ci ContactInbox, customAttributes map[string]any) (Conversation, error) {
	var out Conversation
	rt, err := newRoute(http.MethodPost, RouteConversations, ci.Inbox, ci.SourceID)
	if err != nil {
		return out, err
	}
	in := struct {
		CustomAttributes map[string]any `json:"custom_attributes,omitempty"`
	}{customAttributes}
	return out, c.callJSON(ctx, rt, in, object(&out))
}

// GetConversation returns one conversation by display_id:
// GET .../conversations/{conversation}.
func (c *Client) GetConversation(ctx context.Context, ci ContactInbox, conversationID int64) (Conversation, error) {
	return c.conversationCall(ctx, http.MethodGet, RouteConversation, ci, conversationID)
}

// ToggleStatus resolves the conversation (a no-op when already resolved; the
// public API cannot reopen): POST .../conversations/{conversation}/toggle_status.
func (c *Client) ToggleStatus(ctx context.Context, ci ContactInbox, conversationID int64) (Conversation, error) {
	return c.conversationCall(ctx, http.MethodPost, RouteToggleStatus, ci, conversationID)
}

func (c *Client) conversationCall(ctx context.Context, method, tmpl string, ci ContactInbox, conversationID int64) (Conversation, error) {
	var out Conversation
	rt, err := conversationRoute(method, tmpl, ci, conversationID)
	if err != nil {
		return out, err
	}
	return out, c.callJSON(ctx, rt, nil, object(&out))
}

// ToggleTyping tells agents the contact is typing (on) or stopped:
// POST .../conversations/{conversation}/toggle_typing.
func (c *Client) ToggleTyping(ctx context.Context, ci ContactInbox, conversationID int64, on bool) error {
	rt, err := conversationRoute(http.MethodPost, RouteToggleTyping, ci, conversationID)
	if err != nil {
		return err
	}
	status := "off"
	if on {
		status = "on"
	}
	in := struct {
		TypingStatus string `json:"typing_status"`
	}{status}
	return c.callJSON(ctx, rt, in, nil)
}

// UpdateLastSeen marks the conversation read by the contact:
// POST .../conversations/{conversation}/update_last_seen.
func (c *Client) UpdateLastSeen(ctx context.Context, ci ContactInbox, conversationID int64) error {
	rt, err := conversationRoute(http.MethodPost, RouteUpdateLastSeen, ci, conversationID)
	if err != nil {
		return err
	}
	return c.callJSON(ctx, rt, nil, nil)
}

// ListMessages returns up to 20 messages in ascending order: the latest when
// before is 0, else the latest with an id below before:
// GET .../conversations/{conversation}/messages[?before=id].
func (c *Client) ListMessages(ctx context.Context, ci ContactInbox, conversationID, before int64) ([]Message, error) {
	var out []Message
	rt, err := conversationRoute(http.MethodGet, RouteMessages, ci, conversationID)
	if err != nil {
		return nil, err
	}
	if before < 0 {
		return nil, fmt.Errorf("%w: negative before", ErrArgument)
	}
	if before > 0 {
		rt.query = "before=" + idSegment(before)
	}
	return out, c.callJSON(ctx, rt, nil, array(&out))
}

// CreateMessage sends a message as the contact:
// POST .../conversations/{conversation}/messages, as JSON, or multipart when
// p has attachments.
func (c *Client) CreateMessage(ctx context.Context, ci ContactInbox, conversationID int64, p MessageParams) (Message, error) {
	var out Message
	rt, err := conversationRoute(http.MethodPost, RouteMessages, ci, conversationID)
	if err != nil {
		return out, err
	}
	if len(p.Attachments) == 0 {
		in := struct {
			Content string `json:"content"`
			EchoID  string `json:"echo_id,omitempty"`
		}{p.Content, p.EchoID}
		return out, c.callJSON(ctx, rt, in, object(&out))
	}
	b, contentType, err := multipartBody(p)
	if err != nil {
		return out, err
	}
	return out, c.exchange(ctx, &request{rt: rt, header: jsonHeader(contentType), body: b}, object(&out))
}

// UpdateMessage submits the answers to a form, input or CSAT message:
// PATCH .../conversations/{conversation}/messages/{message}.
func (c *Client) UpdateMessage(ctx context.Context, ci ContactInbox, conversationID, messageID int64, values []SubmittedValue) (Message, error) {
	var out Message
	if conversationID <= 0 || messageID <= 0 {
		return out, fmt.Errorf("%w: conversation and message ids must be positive", ErrArgument)
	}
	rt, err := newRoute(http.MethodPatch, RouteMessage, ci.Inbox, ci.SourceID, idSegment(conversationID), idSegment(messageID))
	if err != nil {
		return out, err
	}
	in := struct {
		SubmittedValues []SubmittedValue `json:"submitted_values"`
	}{values}
	return out, c.callJSON(ctx, rt, in, object(&out))
}

func conversationRoute(method, tmpl string, ci ContactInbox, conversationID int64) (route, error) {
	if conversationID <= 0 {
		return route{}, fmt.Errorf("%w: conversation id must be positive", ErrArgument)
	}
	return newRoute(method, tmpl, ci.Inbox, ci.SourceID, idSegment(conversationID))
}

// decoder decodes a success body; nil means the body is ignored.
type decoder func([]byte) error

func object(out any) decoder { return func(b []byte) error { return decodeAs(b, '{', out) } }
func array(out any) decoder  { return func(b []byte) error { return decodeAs(b, '[', out) } }

// decodeAs refuses a body that is not the expected JSON kind (null, a string,
// an HTML page) before decoding it.
func decodeAs(b []byte, open byte, out any) error {
	if err := expectKind(b, open); err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func expectKind(b []byte, open byte) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return errors.New("empty body")
	}
	if t[0] != open {
		return fmt.Errorf("want a JSON %s, body starts with %q", kindName(open), t[:1])
	}
	return nil
}

// conversationList decodes a conversations index: checked once, then
// walked once (scan.go), its conversations and messages keeping slices of
// b as their Raw.
func conversationList(out *[]Conversation) decoder {
	return func(b []byte) error {
		if err := expectKind(b, '['); err != nil {
			return err
		}
		if !json.Valid(b) {
			return json.Unmarshal(b, out) // says where
		}
		list := []Conversation{}
		err := eachElement(b, func(e []byte) error {
			list = append(list, Conversation{})
			return decodeConversation(e, &list[len(list)-1])
		})
		if err != nil {
			return err
		}
		*out = list
		return nil
	}
}

func kindName(open byte) string {
	if open == '[' {
		return "array"
	}
	return "object"
}

func jsonHeader(contentType string) http.Header {
	h := http.Header{"Accept": {"application/json"}}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

// callJSON sends in (if not nil) as a JSON body and decodes the response.
func (c *Client) callJSON(ctx context.Context, rt route, in any, dec decoder) error {
	r := &request{rt: rt, header: jsonHeader("")}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%w: encode request: %w", ErrArgument, err)
		}
		r.body = bytesBody(data)
		r.header.Set("Content-Type", "application/json")
	}
	return c.exchange(ctx, r, dec)
}

// exchange sends r and turns a non-2xx status, an unreadable or a malformed
// body into an *APIError.
func (c *Client) exchange(ctx context.Context, r *request, dec decoder) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
		return statusError(r.rt, resp.StatusCode, b)
	}
	if dec == nil {
		discard(resp)
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return c.failed(transportError(r.rt, err, ctx))
	}
	if int64(len(data)) > c.maxBody {
		err = fmt.Errorf("body exceeds %d bytes", c.maxBody)
	} else {
		err = dec(data)
	}
	if err != nil {
		return c.failed(&APIError{
			Kind: KindDecode, Route: r.rt.name(), Status: resp.StatusCode,
			Body: data[:min(len(data), MaxErrorBody)], Err: scrubbedError{err, r.rt},
		})
	}
	return nil
}

// failed counts an error found after send returned a response.
func (c *Client) failed(e *APIError) *APIError {
	c.m.errors.WithLabelValues(string(e.Kind)).Inc()
	return e
}
