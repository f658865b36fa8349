package chatwoottest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Event names a contact's RoomChannel subscription receives.
const (
	EventMessageCreated            = "message.created"
	EventMessageUpdated            = "message.updated"
	EventConversationCreated       = "conversation.created"
	EventConversationUpdated       = "conversation.updated"
	EventConversationStatusChanged = "conversation.status_changed"
	EventConversationTypingOn      = "conversation.typing_on"
	EventConversationTypingOff     = "conversation.typing_off"
	EventPresenceUpdate            = "presence.update"
)

// Event names only users (agents) receive.
const (
	EventAssigneeChanged  = "assignee.changed"
	EventConversationRead = "conversation.read"
	EventContactUpdated   = "contact.updated"
)

// ContactUpdated builds contact.updated (account stream): the contact with
// its account_id.
func ContactUpdated(c ContactData, accountID int64) []byte {
	return event(EventContactUpdated, struct {
		*contactPush
		AccountID int64 `json:"account_id"`
	}{c.push(), accountID})
}

// Message types (Chatwoot sends message_type as an integer).
const (
	MessageIncoming = 0
	MessageOutgoing = 1
	MessageActivity = 2
	MessageTemplate = 3
)

// ContactData is a contact as payloads show it. Empty strings are null.
type ContactData struct {
	ID          int64
	Name        string
	Email       string
	PhoneNumber string
	Identifier  string
	Blocked     bool
}

// AgentData is an agent (User) as payloads show it.
type AgentData struct {
	ID                 int64
	Name               string
	AvailabilityStatus string // "online", "busy", "offline"; "" means online
}

// ContactInboxData is a contact inbox record: it carries the pubsub_token and
// source_id, exactly as Chatwoot puts them into conversation payloads.
type ContactInboxData struct {
	ID, ContactID, InboxID int64
	SourceID               string
	PubsubToken            string
	HMACVerified           bool
	CreatedAt, UpdatedAt   time.Time
}

// AttachmentData is a message attachment.
type AttachmentData struct {
	ID       int64
	FileType string // image, audio, video, file, ...
	DataURL  string
	ThumbURL string
	FileSize int64
}

// MessageData is the input of the message builders (Message#push_event_data).
type MessageData struct {
	ID, AccountID, InboxID int64
	ConversationID         int64 // the conversation display_id
	MessageType            int
	Content                string // "" is null
	ContentType            string // "" is "text"
	ContentAttributes      map[string]any
	Status                 string // "" is "sent"
	SourceID               string // "" is null
	Private                bool
	CreatedAt, UpdatedAt   time.Time

	SenderContact *ContactData // sender_type "Contact"
	SenderAgent   *AgentData   // sender_type "User"

	// The embedded conversation summary.
	AssigneeID      int64 // 0 is null
	UnreadCount     int
	LastActivityAt  time.Time
	ContactSourceID string

	EchoID      string // only on the message.created of the creating request
	Attachments []AttachmentData
	Performer   *AgentData // set when an agent session caused the event
}

// ConversationData is the input of the conversation builders
// (Conversations::EventDataPresenter#push_data).
type ConversationData struct {
	AccountID, DisplayID, InboxID int64
	ContactInbox                  ContactInboxData
	Contact                       ContactData
	Assignee                      *AgentData
	HMACVerified                  bool
	Status                        string // "" is "open"
	LastMessage                   *MessageData
	CustomAttributes              map[string]any
	UnreadCount                   int
	FirstReplyCreatedAt           time.Time // zero is null
	WaitingSince                  time.Time // zero is 0
	AgentLastSeenAt               time.Time // zero is 0
	ContactLastSeenAt             time.Time // zero is 0
	LastActivityAt, CreatedAt     time.Time
	UpdatedAt                     time.Time // sent as float seconds
	Performer                     *AgentData
}

// MessageCreated builds {"event":"message.created","data":{...}}.
func MessageCreated(m MessageData) []byte { return event(EventMessageCreated, m.push()) }

// MessageUpdated builds {"event":"message.updated","data":{...}}. EchoID is
// never part of it.
func MessageUpdated(m MessageData) []byte {
	m.EchoID = ""
	return event(EventMessageUpdated, m.push())
}

// ConversationCreated builds a conversation.created event.
func ConversationCreated(c ConversationData) []byte {
	return event(EventConversationCreated, c.push(true))
}

// ConversationUpdated builds a conversation.updated event.
func ConversationUpdated(c ConversationData) []byte {
	return event(EventConversationUpdated, c.push(true))
}

// ConversationStatusChanged builds a conversation.status_changed event.
func ConversationStatusChanged(c ConversationData) []byte {
	return event(EventConversationStatusChanged, c.push(true))
}

// ConversationTyping builds conversation.typing_on (on) or typing_off for an
// agent typing; private means a private note (still sent to the contact).
func ConversationTyping(c ConversationData, agent AgentData, on, private bool) []byte {
	name := EventConversationTypingOff
	if on {
		name = EventConversationTypingOn
	}
	c.Performer = nil
	return event(name, typingPush{
		Conversation: c.push(false),
		User:         agent.push(),
		IsPrivate:    private,
		AccountID:    c.AccountID,
	})
}

// PresenceUpdate builds a presence.update event; users maps agent ids to
// "online", "busy" or "offline".
func PresenceUpdate(accountID int64, users map[int64]string) []byte {
	u := make(map[string]string, len(users))
	for id, st := range users {
		u[strconv.FormatInt(id, 10)] = st
	}
	return event(EventPresenceUpdate, presencePush{AccountID: accountID, Users: u})
}

// MessageCreatedSized builds a message.created of exactly n bytes by padding
// the content (and, for parity, the message source_id). It fails when n is
// smaller than the message with a one-byte content.
func MessageCreatedSized(m MessageData, n int) ([]byte, error) {
	m.Content, m.SourceID = "x", ""
	base := len(MessageCreated(m))
	diff := n - base
	if diff < 0 {
		return nil, fmt.Errorf("%w: %d bytes is below the minimum %d", ErrInvalid, n, base)
	}
	if diff%2 == 1 {
		m.SourceID = "pad" // "pad" replaces null: one byte more
		diff--
	}
	m.Content += repeatByte('x', diff/2) // content appears twice
	out := MessageCreated(m)
	if len(out) != n {
		return nil, fmt.Errorf("%w: sized message has %d bytes, want %d", ErrInvalid, len(out), n)
	}
	return out, nil
}

func repeatByte(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

type eventEnvelope struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
}

func event(name string, data any) []byte {
	b, err := json.Marshal(eventEnvelope{Event: name, Data: data})
	if err != nil {
		panic(fmt.Sprintf("chatwoottest: marshal %s: %v", name, err)) // only plain data types
	}
	return b
}

// Wire shapes. Field order is Chatwoot's.

var emptyObject = json.RawMessage(`{}`)

type nullString string

func (s nullString) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(s))
}

// isoTime is ActiveSupport's JSON time: UTC, millisecond precision; the zero
// time is null.
type isoTime time.Time

func (t isoTime) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + tt.UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// unixOrZero is an integer timestamp where the zero time is 0.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// floatSeconds is Ruby's Time#to_f.
func floatSeconds(t time.Time) rubyFloat {
	return rubyFloat(float64(t.Unix()) + float64(t.Nanosecond())/1e9)
}

// rubyFloat marshals like Ruby's Float#to_s: always with a decimal point.
type rubyFloat float64

func (f rubyFloat) MarshalJSON() ([]byte, error) {
	b := strconv.AppendFloat(nil, float64(f), 'f', -1, 64)
	if !bytes.ContainsRune(b, '.') {
		b = append(b, ".0"...)
	}
	return b, nil
}

func objectOrEmpty(m map[string]any) any {
	if len(m) == 0 {
		return emptyObject
	}
	return m
}

type contactPush struct {
	AdditionalAttributes json.RawMessage `json:"additional_attributes"`
	CustomAttributes     json.RawMessage `json:"custom_attributes"`
	Email                nullString      `json:"email"`
	ID                   int64           `json:"id"`
	Identifier           nullString      `json:"identifier"`
	Name                 string          `json:"name"`
	PhoneNumber          nullString      `json:"phone_number"`
	Thumbnail            string          `json:"thumbnail"`
	Blocked              bool            `json:"blocked"`
	Type                 string          `json:"type"`
}

func (c ContactData) push() *contactPush {
	return &contactPush{
		AdditionalAttributes: emptyObject, CustomAttributes: emptyObject,
		Email: nullString(c.Email), ID: c.ID, Identifier: nullString(c.Identifier),
		Name: c.Name, PhoneNumber: nullString(c.PhoneNumber), Blocked: c.Blocked, Type: "contact",
	}
}

type agentPush struct {
	ID                 int64  `json:"id"`
	Name               string `json:"name"`
	AvailableName      string `json:"available_name"`
	AvatarURL          string `json:"avatar_url"`
	Type               string `json:"type"`
	AvailabilityStatus string `json:"availability_status"`
	Thumbnail          string `json:"thumbnail"`
}

func (a AgentData) push() *agentPush {
	st := a.AvailabilityStatus
	if st == "" {
		st = "online"
	}
	return &agentPush{ID: a.ID, Name: a.Name, AvailableName: a.Name, Type: "user", AvailabilityStatus: st}
}

func (a *AgentData) pushOrNil() *agentPush {
	if a == nil {
		return nil
	}
	return a.push()
}

type attachmentPush struct {
	ID        int64      `json:"id"`
	MessageID int64      `json:"message_id"`
	FileType  string     `json:"file_type"`
	AccountID int64      `json:"account_id"`
	Extension nullString `json:"extension"`
	DataURL   string     `json:"data_url"`
	ThumbURL  string     `json:"thumb_url"`
	FileSize  int64      `json:"file_size"`
	Width     *int       `json:"width"`
	Height    *int       `json:"height"`
}

type messageConvPush struct {
	AssigneeID     *int64 `json:"assignee_id"`
	UnreadCount    int    `json:"unread_count"`
	LastActivityAt int64  `json:"last_activity_at"`
	ContactInbox   struct {
		SourceID nullString `json:"source_id"`
	} `json:"contact_inbox"`
}

type messagePush struct {
	ID                      int64            `json:"id"`
	Content                 nullString       `json:"content"`
	AccountID               int64            `json:"account_id"`
	InboxID                 int64            `json:"inbox_id"`
	ConversationID          int64            `json:"conversation_id"`
	MessageType             int              `json:"message_type"`
	CreatedAt               int64            `json:"created_at"`
	UpdatedAt               isoTime          `json:"updated_at"`
	Private                 bool             `json:"private"`
	Status                  string           `json:"status"`
	SourceID                nullString       `json:"source_id"`
	ContentType             string           `json:"content_type"`
	ContentAttributes       any              `json:"content_attributes"`
	SenderType              nullString       `json:"sender_type"`
	SenderID                *int64           `json:"sender_id"`
	ExternalSourceIDs       json.RawMessage  `json:"external_source_ids"`
	AdditionalAttributes    json.RawMessage  `json:"additional_attributes"`
	ProcessedMessageContent nullString       `json:"processed_message_content"`
	Sentiment               json.RawMessage  `json:"sentiment"`
	Conversation            messageConvPush  `json:"conversation"`
	EchoID                  string           `json:"echo_id,omitempty"`
	Attachments             []attachmentPush `json:"attachments,omitempty"`
	Sender                  any              `json:"sender,omitempty"`
	Performer               *agentPush       `json:"performer,omitempty"`
}

func (m MessageData) push() *messagePush {
	p := &messagePush{
		ID: m.ID, Content: nullString(m.Content), AccountID: m.AccountID, InboxID: m.InboxID,
		ConversationID: m.ConversationID, MessageType: m.MessageType,
		CreatedAt: m.CreatedAt.Unix(), UpdatedAt: isoTime(m.UpdatedAt), Private: m.Private,
		Status: orDefault(m.Status, "sent"), SourceID: nullString(m.SourceID),
		ContentType: orDefault(m.ContentType, "text"), ContentAttributes: objectOrEmpty(m.ContentAttributes),
		ExternalSourceIDs: emptyObject, AdditionalAttributes: emptyObject,
		ProcessedMessageContent: nullString(m.Content), Sentiment: emptyObject,
		EchoID: m.EchoID, Performer: m.Performer.pushOrNil(),
	}
	p.Conversation.UnreadCount = m.UnreadCount
	p.Conversation.LastActivityAt = m.LastActivityAt.Unix()
	p.Conversation.ContactInbox.SourceID = nullString(m.ContactSourceID)
	if m.AssigneeID != 0 {
		p.Conversation.AssigneeID = &m.AssigneeID
	}
	m.setSender(p)
	for _, a := range m.Attachments {
		p.Attachments = append(p.Attachments, a.push(m.ID, m.AccountID))
	}
	return p
}

func (m MessageData) setSender(p *messagePush) {
	switch {
	case m.SenderContact != nil:
		id := m.SenderContact.ID
		p.SenderType, p.SenderID, p.Sender = "Contact", &id, m.SenderContact.push()
	case m.SenderAgent != nil:
		id := m.SenderAgent.ID
		p.SenderType, p.SenderID, p.Sender = "User", &id, m.SenderAgent.push()
	}
}

func (a AttachmentData) push(messageID, accountID int64) attachmentPush {
	return attachmentPush{
		ID: a.ID, MessageID: messageID, FileType: orDefault(a.FileType, "file"), AccountID: accountID,
		DataURL: a.DataURL, ThumbURL: a.ThumbURL, FileSize: a.FileSize,
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type contactInboxPush struct {
	ID           int64   `json:"id"`
	ContactID    int64   `json:"contact_id"`
	InboxID      int64   `json:"inbox_id"`
	SourceID     string  `json:"source_id"`
	CreatedAt    isoTime `json:"created_at"`
	UpdatedAt    isoTime `json:"updated_at"`
	HMACVerified bool    `json:"hmac_verified"`
	PubsubToken  string  `json:"pubsub_token"`
}

type conversationMeta struct {
	Sender       *contactPush `json:"sender"`
	Assignee     *agentPush   `json:"assignee"`
	Team         *struct{}    `json:"team"`
	HMACVerified bool         `json:"hmac_verified"`
}

type conversationPush struct {
	AdditionalAttributes json.RawMessage  `json:"additional_attributes"`
	CanReply             bool             `json:"can_reply"`
	Channel              string           `json:"channel"`
	ContactInbox         contactInboxPush `json:"contact_inbox"`
	ID                   int64            `json:"id"`
	InboxID              int64            `json:"inbox_id"`
	Messages             []*messagePush   `json:"messages"`
	Labels               []string         `json:"labels"`
	Meta                 conversationMeta `json:"meta"`
	Status               string           `json:"status"`
	CustomAttributes     any              `json:"custom_attributes"`
	SnoozedUntil         *string          `json:"snoozed_until"`
	UnreadCount          int              `json:"unread_count"`
	FirstReplyCreatedAt  isoTime          `json:"first_reply_created_at"`
	Priority             *string          `json:"priority"`
	WaitingSince         int64            `json:"waiting_since"`
	AgentLastSeenAt      int64            `json:"agent_last_seen_at"`
	ContactLastSeenAt    int64            `json:"contact_last_seen_at"`
	LastActivityAt       int64            `json:"last_activity_at"`
	Timestamp            int64            `json:"timestamp"`
	CreatedAt            int64            `json:"created_at"`
	UpdatedAt            rubyFloat        `json:"updated_at"`
	AccountID            *int64           `json:"account_id,omitempty"`
	Performer            *agentPush       `json:"performer,omitempty"`
}

// push builds the conversation data; withAccount adds account_id (and the
// performer) as the listener does for conversation events.
func (c ConversationData) push(withAccount bool) *conversationPush {
	ci := c.ContactInbox
	p := &conversationPush{
		AdditionalAttributes: emptyObject, CanReply: true, Channel: "Channel::Api",
		ContactInbox: contactInboxPush{
			ID: ci.ID, ContactID: ci.ContactID, InboxID: ci.InboxID, SourceID: ci.SourceID,
			CreatedAt: isoTime(ci.CreatedAt), UpdatedAt: isoTime(ci.UpdatedAt),
			HMACVerified: ci.HMACVerified, PubsubToken: ci.PubsubToken,
		},
		ID: c.DisplayID, InboxID: c.InboxID, Messages: []*messagePush{}, Labels: []string{},
		Meta: conversationMeta{
			Sender: c.Contact.push(), Assignee: c.Assignee.pushOrNil(), HMACVerified: c.HMACVerified,
		},
		Status: orDefault(c.Status, "open"), CustomAttributes: objectOrEmpty(c.CustomAttributes),
		UnreadCount: c.UnreadCount, FirstReplyCreatedAt: isoTime(c.FirstReplyCreatedAt),
		WaitingSince: unixOrZero(c.WaitingSince), AgentLastSeenAt: unixOrZero(c.AgentLastSeenAt),
		ContactLastSeenAt: unixOrZero(c.ContactLastSeenAt), LastActivityAt: c.LastActivityAt.Unix(),
		Timestamp: c.LastActivityAt.Unix(), CreatedAt: c.CreatedAt.Unix(), UpdatedAt: floatSeconds(c.UpdatedAt),
	}
	if c.LastMessage != nil {
		m := *c.LastMessage
		m.EchoID, m.Performer = "", nil
		p.Messages = append(p.Messages, m.push())
	}
	if withAccount {
		p.AccountID = &c.AccountID
		p.Performer = c.Performer.pushOrNil()
	}
	return p
}

type typingPush struct {
	Conversation *conversationPush `json:"conversation"`
	User         *agentPush        `json:"user"`
	IsPrivate    bool              `json:"is_private"`
	AccountID    int64             `json:"account_id"`
}

type presencePush struct {
	AccountID int64             `json:"account_id"`
	Users     map[string]string `json:"users"`
}
