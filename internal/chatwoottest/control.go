package chatwoottest

import (
	"fmt"
	"slices"
	"time"
)

// InboxConfig describes an API-channel inbox to add.
type InboxConfig struct {
	AccountID     int64  // 0 means 1; created if missing
	Identifier    string // the public inbox identifier; "" generates one
	Name          string // "" means "API Inbox <id>"
	HMACToken     string // "" generates one
	HMACMandatory bool   // identity validation enforced on every contacts call
	// LockToSingleConversation makes conversation create return the contact
	// inbox's last conversation.
	LockToSingleConversation bool
	// ActiveBot makes new and reopened conversations "pending".
	ActiveBot bool
}

// Inbox is an API-channel inbox.
type Inbox struct {
	ID, AccountID int64
	Identifier    string
	Name          string
	HMACToken     string
	HMACMandatory bool
}

// ContactParams are the public contact create params.
type ContactParams struct {
	SourceID       string // "" generates a uuid
	Name           string // "" generates adjective-noun-NNN
	Email          string
	PhoneNumber    string
	Identifier     string
	IdentifierHash string
}

// ContactInbox is a contact's session in an inbox: its source_id and
// pubsub_token.
type ContactInbox struct {
	ID, ContactID, AccountID, InboxID int64
	InboxIdentifier                   string
	SourceID                          string
	PubsubToken                       string
	HMACVerified                      bool
}

// Conversation is a snapshot of a conversation.
type Conversation struct {
	AccountID, DisplayID, InboxID, ContactID int64
	UUID                                     string
	SourceID                                 string // the contact inbox's
	Status                                   string
}

// Message is a snapshot of a message.
type Message struct {
	ID, AccountID, InboxID, ContactID int64
	ConversationID                    int64 // display_id
	MessageType                       int
	ContentType, Content, Status      string
	Private                           bool
	EchoID                            string // as given at creation (Chatwoot does not persist it)
	SenderType                        string // "Contact", "User" or ""
	SenderID                          int64
	Attachments                       int
	CreatedAt, UpdatedAt              time.Time
}

// AddInbox adds an API-channel inbox.
func (s *Server) AddInbox(cfg InboxConfig) (Inbox, error) {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	if cfg.AccountID == 0 {
		cfg.AccountID = 1
	}
	if cfg.Identifier == "" {
		cfg.Identifier = m.secureToken()
	}
	if m.inboxes[cfg.Identifier] != nil {
		return Inbox{}, fmt.Errorf("%w: inbox identifier already used", ErrInvalid)
	}
	if cfg.HMACToken == "" {
		cfg.HMACToken = m.secureToken()
	}
	m.accountLocked(cfg.AccountID)
	m.lastID.inbox++
	in := &inbox{
		id: m.lastID.inbox, accountID: cfg.AccountID, identifier: cfg.Identifier,
		name: cfg.Name, hmacKey: cfg.HMACToken, hmacMandatory: cfg.HMACMandatory,
		lockSingle: cfg.LockToSingleConversation, activeBot: cfg.ActiveBot,
		contactInboxes: make(map[string]*contactInbox),
	}
	if in.name == "" {
		in.name = fmt.Sprintf("API Inbox %d", in.id)
	}
	m.inboxes[in.identifier] = in
	return in.snapshot(), nil
}

func (in *inbox) snapshot() Inbox {
	return Inbox{
		ID: in.id, AccountID: in.accountID, Identifier: in.identifier, Name: in.name,
		HMACToken: in.hmacKey, HMACMandatory: in.hmacMandatory,
	}
}

// AddAgent adds an agent to an account (created if missing). availability
// is "online" (default), "busy" or "offline"; it shapes presence.update.
func (s *Server) AddAgent(accountID int64, name, availability string) AgentData {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addAgentLocked(m.accountLocked(accountID), name, availability).data()
}

// SetAgentAvailability changes an agent's availability.
func (s *Server) SetAgentAvailability(agentID int64, availability string) error {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	ag := m.agents[agentID]
	if ag == nil {
		return ErrNotFound
	}
	ag.status = orDefault(availability, "online")
	return nil
}

// CreateContact creates (or returns, by source_id) a contact inbox exactly
// as POST .../contacts does.
func (s *Server) CreateContact(inboxIdentifier string, p ContactParams) (ContactInbox, error) {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.inboxes[inboxIdentifier]
	if in == nil {
		return ContactInbox{}, ErrNotFound
	}
	ci, err := m.createContactLocked(in, contactParams{
		sourceID: p.SourceID, identifier: p.Identifier, identifierHash: p.IdentifierHash,
		name: optional(p.Name), email: optional(p.Email), phone: optional(p.PhoneNumber),
	})
	if err != nil {
		return ContactInbox{}, err
	}
	return ci.snapshot(), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (ci *contactInbox) snapshot() ContactInbox {
	return ContactInbox{
		ID: ci.id, ContactID: ci.contact.id, AccountID: ci.inbox.accountID, InboxID: ci.inbox.id,
		InboxIdentifier: ci.inbox.identifier, SourceID: ci.sourceID, PubsubToken: ci.token,
		HMACVerified: ci.hmacVerified,
	}
}

// CreateConversation creates a conversation for a contact inbox as POST
// .../conversations does (conversation.created is broadcast).
func (s *Server) CreateConversation(inboxIdentifier, sourceID string) (Conversation, error) {
	m := s.model
	m.mu.Lock()
	ci, err := m.contactInboxLocked(inboxIdentifier, sourceID)
	if err != nil {
		m.mu.Unlock()
		return Conversation{}, err
	}
	cv, ev := m.createConversationLocked(ci, nil)
	snap := cv.snapshot()
	m.mu.Unlock()
	s.emit(ev)
	return snap, nil
}

// ContactSend creates an incoming message from the contact as POST
// .../messages does (message.created with echoID is broadcast).
func (s *Server) ContactSend(inboxIdentifier, sourceID string, displayID int64, content, echoID string) (Message, error) {
	m := s.model
	m.mu.Lock()
	ci, err := m.contactInboxLocked(inboxIdentifier, sourceID)
	var cv *conversation
	if err == nil {
		cv, err = m.conversationLocked(ci, displayID, true)
	}
	if err != nil {
		m.mu.Unlock()
		return Message{}, err
	}
	msg, ev, err := m.contactMessageLocked(cv, content, echoID, nil)
	return s.finishMessage(msg, ev, err)
}

// finishMessage snapshots msg, unlocks the model and emits ev.
func (s *Server) finishMessage(msg *message, ev events, err error) (Message, error) {
	var snap Message
	if msg != nil {
		snap = msg.snapshot()
	}
	s.model.mu.Unlock()
	s.emit(ev)
	return snap, err
}

// AgentReply posts an outgoing message from the account's first agent:
// message.created (with performer), then conversation.updated when the
// first reply time or waiting_since changed.
func (s *Server) AgentReply(accountID, displayID int64, content string) (Message, error) {
	return s.agentMessage(accountID, displayID, content, false)
}

// AgentNote posts a private note: contacts receive nothing and the public
// API never lists it, but it takes a message id.
func (s *Server) AgentNote(accountID, displayID int64, content string) (Message, error) {
	return s.agentMessage(accountID, displayID, content, true)
}

func (s *Server) agentMessage(accountID, displayID int64, content string, private bool) (Message, error) {
	m := s.model
	m.mu.Lock()
	cv, ag, err := m.agentTargetLocked(accountID, displayID)
	if err != nil {
		m.mu.Unlock()
		return Message{}, err
	}
	msg, ev := m.agentReplyLocked(cv, ag, content, private)
	return s.finishMessage(msg, ev, nil)
}

func (m *model) agentTargetLocked(accountID, displayID int64) (*conversation, *agent, error) {
	cv, err := m.accountConversationLocked(accountID, displayID)
	if err != nil {
		return nil, nil, err
	}
	acc := m.accounts[accountID]
	if len(acc.agents) == 0 {
		return nil, nil, fmt.Errorf("%w: account %d has no agent", ErrNotFound, accountID)
	}
	return cv, acc.agents[0], nil
}

// AgentEditMessage changes a message's content as an agent and broadcasts
// message.updated (with performer).
func (s *Server) AgentEditMessage(messageID int64, content string) (Message, error) {
	m := s.model
	m.mu.Lock()
	msg, err := m.messageLocked(messageID)
	if err != nil {
		m.mu.Unlock()
		return Message{}, err
	}
	_, ag, err := m.agentTargetLocked(msg.conv.accountID, msg.conv.displayID)
	if err != nil {
		m.mu.Unlock()
		return Message{}, err
	}
	msg.content, msg.updatedAt = content, now()
	var ev events
	ev.add(msg.tokens(), MessageUpdated(msg.data(ag)))
	return s.finishMessage(msg, ev, nil)
}

// AgentTyping broadcasts conversation.typing_on/off from the account's
// first agent to the conversation's contact token; private means typing a
// private note (Chatwoot still sends it to the contact).
func (s *Server) AgentTyping(accountID, displayID int64, on, private bool) error {
	m := s.model
	m.mu.Lock()
	cv, ag, err := m.agentTargetLocked(accountID, displayID)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	var ev events
	ev.add(append([]string{cv.ci.token}, cv.agentTokens()...), ConversationTyping(cv.data(nil), ag.data(), on, private))
	m.mu.Unlock()
	s.emit(ev)
	return nil
}

// ResolveConversation resolves a conversation as an agent:
// conversation.status_changed and conversation.updated (with performer).
func (s *Server) ResolveConversation(accountID, displayID int64) error {
	return s.SetConversationStatus(accountID, displayID, "resolved")
}

// SetConversationStatus sets open, resolved, pending or snoozed as an agent.
// A change broadcasts status_changed and updated; no change is a no-op.
func (s *Server) SetConversationStatus(accountID, displayID int64, status string) error {
	switch status {
	case "open", "resolved", "pending", "snoozed":
	default:
		return fmt.Errorf("%w: status %q", ErrInvalid, status)
	}
	m := s.model
	m.mu.Lock()
	cv, ag, err := m.agentTargetLocked(accountID, displayID)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	ev := m.setStatusLocked(cv, status, ag)
	m.mu.Unlock()
	s.emit(ev)
	return nil
}

// DeleteContact deletes a contact with its contact inboxes and
// conversations. Its tokens become unknown: new subscribes get silence,
// existing subscriptions stay (and receive nothing more).
func (s *Server) DeleteContact(contactID int64) error {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.contacts[contactID]
	if c == nil {
		return ErrNotFound
	}
	m.deleteContactLocked(c)
	return nil
}

// Messages returns the messages of a conversation in id order, private and
// activity messages included.
func (s *Server) Messages(accountID, displayID int64) ([]Message, error) {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	cv, err := m.accountConversationLocked(accountID, displayID)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(cv.messages))
	for _, msg := range cv.messages {
		out = append(out, msg.snapshot())
	}
	return out, nil
}

// AllMessages returns every message the fake ever created, in id order,
// including those of deleted contacts.
func (s *Server) AllMessages() []Message {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Message, 0, len(m.messages))
	for _, msg := range m.messages {
		out = append(out, msg.snapshot())
	}
	return out
}

// Conversations returns the existing conversations by account and display id.
func (s *Server) Conversations() []Conversation {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Conversation, 0, len(m.conversations))
	for _, cv := range m.conversations {
		out = append(out, cv.snapshot())
	}
	slices.SortFunc(out, func(a, b Conversation) int {
		if a.AccountID != b.AccountID {
			return int(a.AccountID - b.AccountID)
		}
		return int(a.DisplayID - b.DisplayID)
	})
	return out
}

func (cv *conversation) contactID() int64 {
	if cv.deleted() {
		return cv.formerContactID
	}
	return cv.ci.contact.id
}

func (cv *conversation) snapshot() Conversation {
	c := Conversation{
		AccountID: cv.accountID, DisplayID: cv.displayID, InboxID: cv.inboxID,
		ContactID: cv.contactID(), UUID: cv.uuid, Status: cv.status,
	}
	if !cv.deleted() {
		c.SourceID = cv.ci.sourceID
	}
	return c
}

func (msg *message) snapshot() Message {
	cv := msg.conv
	out := Message{
		ID: msg.id, AccountID: cv.accountID, InboxID: cv.inboxID, ContactID: cv.contactID(),
		ConversationID: cv.displayID, MessageType: msg.msgType, ContentType: msg.contentType,
		Content: msg.content, Status: msg.status, Private: msg.private, EchoID: msg.echoID,
		Attachments: len(msg.attachments), CreatedAt: msg.createdAt, UpdatedAt: msg.updatedAt,
	}
	switch {
	case msg.senderContact != nil:
		out.SenderType, out.SenderID = "Contact", msg.senderContact.id
	case msg.senderAgent != nil:
		out.SenderType, out.SenderID = "User", msg.senderAgent.id
	}
	return out
}
