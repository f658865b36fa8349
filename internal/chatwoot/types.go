package chatwoot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

const redactedText = "REDACTED"

// redact hides a credential but keeps whether it was set.
func redact(s string) string {
	if s == "" {
		return ""
	}
	return redactedText
}

// ContactInbox addresses one contact session of an inbox: the inbox
// identifier (the API channel's secure token, not its numeric id) and the
// contact's source_id. Both are bearer secrets; String and LogValue hide
// them.
type ContactInbox struct {
	Inbox    string
	SourceID string
}

func (ci ContactInbox) String() string {
	return "ContactInbox{Inbox:" + redact(ci.Inbox) + " SourceID:" + redact(ci.SourceID) + "}"
}

// Format prints the redacted form for every verb, %#v and %d included.
func (ci ContactInbox) Format(f fmt.State, _ rune) { io.WriteString(f, ci.String()) }

// LogValue implements slog.LogValuer.
func (ci ContactInbox) LogValue() slog.Value {
	return slog.GroupValue(slog.String("inbox", redact(ci.Inbox)), slog.String("source_id", redact(ci.SourceID)))
}

// Inbox is the public view of an API-channel inbox. It has no numeric id:
// learn that from Conversation.InboxID.
type Inbox struct {
	Identifier                string          `json:"identifier"`
	Name                      string          `json:"name"`
	IdentityValidationEnabled bool            `json:"identity_validation_enabled"` // hmac_mandatory
	Timezone                  string          `json:"timezone"`
	WorkingHoursEnabled       bool            `json:"working_hours_enabled"`
	WorkingHours              json.RawMessage `json:"working_hours,omitempty"`
	CSATSurveyEnabled         bool            `json:"csat_survey_enabled"`
	GreetingEnabled           bool            `json:"greeting_enabled"`
	GreetingMessage           *string         `json:"greeting_message"`
}

// Contact is a contact as the public API returns it. Create and show fill
// SourceID and PubsubToken; update and the contact embedded in conversations
// carry neither. Chatwoot's null strings decode as "". String, Format and
// LogValue hide SourceID and PubsubToken; encoding/json does not, so the
// token can be handed to its owner.
type Contact struct {
	ID          int64  `json:"id"`
	SourceID    string `json:"source_id,omitempty"`
	PubsubToken string `json:"pubsub_token,omitempty"`
	Name        string `json:"name"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phone_number"`
	Identifier  string `json:"identifier,omitempty"`
}

func (c Contact) String() string {
	return "Contact{ID:" + strconv.FormatInt(c.ID, 10) +
		" SourceID:" + redact(c.SourceID) + " PubsubToken:" + redact(c.PubsubToken) + "}"
}

// Format prints the redacted form for every verb, %#v and %d included.
func (c Contact) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue implements slog.LogValuer.
func (c Contact) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", c.ID),
		slog.String("source_id", redact(c.SourceID)),
		slog.String("pubsub_token", redact(c.PubsubToken)),
	)
}

// ContactParams are the fields of contact create and update. Empty fields
// are omitted, so an update cannot clear a field. SourceID is used by create
// only (Chatwoot generates a UUID when it is empty). Identifier and
// IdentifierHash are needed on every contacts call when the inbox enforces
// identity validation (see IdentifierHash); Chatwoot ignores a changed
// Identifier on update.
type ContactParams struct {
	SourceID         string         `json:"source_id,omitempty"`
	Identifier       string         `json:"identifier,omitempty"`
	IdentifierHash   string         `json:"identifier_hash,omitempty"`
	Name             string         `json:"name,omitempty"`
	Email            string         `json:"email,omitempty"`
	PhoneNumber      string         `json:"phone_number,omitempty"`
	AvatarURL        string         `json:"avatar_url,omitempty"`
	CustomAttributes map[string]any `json:"custom_attributes,omitempty"`
}

func (p ContactParams) String() string {
	return "ContactParams{SourceID:" + redact(p.SourceID) + " IdentifierHash:" + redact(p.IdentifierHash) + "}"
}

// Format prints the redacted form for every verb.
func (p ContactParams) Format(f fmt.State, _ rune) { io.WriteString(f, p.String()) }

// LogValue implements slog.LogValuer.
func (p ContactParams) LogValue() slog.Value {
	return slog.GroupValue(slog.String("source_id", redact(p.SourceID)), slog.String("identifier_hash", redact(p.IdentifierHash)))
}

// Identity is the identifier and its hash that GetContact sends when the
// inbox enforces identity validation; zero sends nothing.
type Identity struct {
	Identifier     string
	IdentifierHash string
}

// Conversation is the public API's conversation JSON. Messages embeds every
// chat message of the conversation (unbounded); Raw keeps the exact bytes of
// the conversation object as returned.
type Conversation struct {
	ID                int64     `json:"id"` // display_id, unique per account
	UUID              string    `json:"uuid"`
	InboxID           int64     `json:"inbox_id"`
	Status            string    `json:"status"` // open, resolved, pending, snoozed
	ContactLastSeenAt int64     `json:"contact_last_seen_at"`
	AgentLastSeenAt   int64     `json:"agent_last_seen_at"`
	Messages          []Message `json:"messages"`
	Contact           Contact   `json:"contact"`

	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON tolerates unknown fields, and timestamps as numbers, numeric
// strings or RFC 3339 strings. It walks the conversation once (scan.go):
// the embedded messages make it as long as the conversation's history.
func (c *Conversation) UnmarshalJSON(b []byte) error {
	var v Conversation
	if err := decodeConversation(bytes.Clone(b), &v); err != nil {
		return err
	}
	*c = v
	return nil
}

// Message is the public API's message JSON (not the websocket shape: no
// status, echo_id, updated_at, account_id or inbox_id). Raw keeps the exact
// bytes of the message object as returned, for republishing.
type Message struct {
	ID                int64           `json:"id"`
	Content           *string         `json:"content"`
	MessageType       MessageType     `json:"message_type"`
	ContentType       string          `json:"content_type"`
	ContentAttributes json.RawMessage `json:"content_attributes,omitempty"`
	CreatedAt         int64           `json:"created_at"`      // unix seconds
	ConversationID    int64           `json:"conversation_id"` // display_id
	Attachments       json.RawMessage `json:"attachments,omitempty"`
	Sender            json.RawMessage `json:"sender,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON tolerates unknown fields, and created_at as a number, a
// numeric string or an RFC 3339 string.
func (m *Message) UnmarshalJSON(b []byte) error {
	var v Message
	if err := decodeMessage(bytes.Clone(b), &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// MessageType is Chatwoot's message_type.
type MessageType int

// Message types. MessageUnknown stands for a name this client does not know.
const (
	MessageIncoming MessageType = 0 // from the contact
	MessageOutgoing MessageType = 1 // agent or bot
	MessageActivity MessageType = 2 // never sent to contacts
	MessageTemplate MessageType = 3 // greeting, CSAT, bot forms
	MessageUnknown  MessageType = -1
)

var messageTypeNames = []string{"incoming", "outgoing", "activity", "template"}

func (t MessageType) String() string {
	if t >= 0 && int(t) < len(messageTypeNames) {
		return messageTypeNames[t]
	}
	return "unknown"
}

// UnmarshalJSON accepts the integer and the string name ("outgoing"), and a
// numeric string. Unknown names and null become MessageUnknown rather than
// failing the whole response.
func (t *MessageType) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = MessageUnknown
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*t = MessageType(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("chatwoot: message_type: want integer or name, got %.20s", b)
	}
	*t = parseMessageType(s)
	return nil
}

func parseMessageType(s string) MessageType {
	for i, name := range messageTypeNames {
		if s == name {
			return MessageType(i)
		}
	}
	if n, err := strconv.Atoi(s); err == nil {
		return MessageType(n)
	}
	return MessageUnknown
}

// unixTime decodes a timestamp as unix seconds from an integer, a float, a
// numeric string, an RFC 3339 string, or null (zero).
type unixTime int64

func (u *unixTime) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*u = 0
		return nil
	}
	if len(s) > 0 && s[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*u = 0
			return nil
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			*u = unixTime(t.Unix())
			return nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*u = unixTime(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("chatwoot: timestamp: want unix seconds or RFC 3339, got %.30s", b)
	}
	*u = unixTime(f)
	return nil
}

// MessageParams are the fields of message create. With Attachments the
// request is multipart; otherwise JSON.
type MessageParams struct {
	Content string
	// EchoID comes back in the websocket message.created of this message,
	// so the sender can recognise its own echo.
	EchoID      string
	Attachments []Attachment
}

// Attachment is one file of a multipart message create. Chatwoot derives the
// attachment's file_type (image, audio, video, file) from ContentType.
type Attachment struct {
	Filename    string
	ContentType string // empty: application/octet-stream
	// Body is read while the request is sent. If every attachment's Body is
	// an io.Seeker the request can be retried after a 429; otherwise it is
	// sent once. The client does not close it.
	Body io.Reader
}

// SubmittedValue is one answer to a form, input or CSAT message (message
// update).
type SubmittedValue struct {
	Name               string              `json:"name,omitempty"`
	Title              string              `json:"title,omitempty"`
	Value              any                 `json:"value,omitempty"`
	CSATSurveyResponse *CSATSurveyResponse `json:"csat_survey_response,omitempty"`
}

// CSATSurveyResponse answers an input_csat message.
type CSATSurveyResponse struct {
	FeedbackMessage string `json:"feedback_message,omitempty"`
	Rating          int    `json:"rating,omitempty"`
}
