package chatwoottest

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Chatwoot limits (cw:lib/limits.rb, application_record.rb).
const (
	maxContentLength     = 150_000
	maxStringColumn      = 255
	maxAttachments       = 15
	messagesPerMinuteCap = 200
)

var (
	errHMACFailed = errors.New("chatwoottest: HMAC failed: Invalid Identifier Hash Provided")
	emailPattern  = regexp.MustCompile(`\A[^@\s]+@[^@\s]+\z`)
	phonePattern  = regexp.MustCompile(`\+[1-9]\d{1,14}\z`)
)

// ValidationError is a model validation failure (HTTP 422). It wraps
// ErrInvalid.
type ValidationError struct {
	Message    string
	Attributes []string
}

func (e *ValidationError) Error() string { return "chatwoottest: " + e.Message }
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(attr, msg string) *ValidationError {
	return &ValidationError{Message: msg, Attributes: []string{attr}}
}

// outEvent is one broadcast to a set of contact tokens.
type outEvent struct {
	tokens []string
	msg    []byte
}

type events []outEvent

func (ev *events) add(tokens []string, msg []byte) {
	if len(tokens) > 0 {
		*ev = append(*ev, outEvent{tokens: tokens, msg: msg})
	}
}

// emit broadcasts events once per distinct token, after the model lock is
// released (broadcasts may block on backpressure).
func (s *Server) emit(ev events) {
	for _, e := range ev {
		for i, t := range e.tokens {
			if !slices.Contains(e.tokens[:i], t) {
				s.broadcast(t, e.msg)
			}
		}
	}
}

// contactParams are the permitted contact params of the public API.
type contactParams struct {
	sourceID, identifier, identifierHash string
	name, email, phone, avatarURL        *string
	custom                               map[string]any
}

func (p contactParams) validate() error {
	if p.email != nil && *p.email != "" && !emailPattern.MatchString(*p.email) {
		return invalid("email", "Email Invalid email")
	}
	if p.phone != nil && *p.phone != "" && !phonePattern.MatchString(*p.phone) {
		return invalid("phone_number", "Phone number should be in e164 format")
	}
	if p.name != nil && utf8.RuneCountInString(*p.name) > maxStringColumn {
		return invalid("name", "Name is too long (maximum is 255 characters)")
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// checkHMAC is process_hmac: skipped when no hash is given and HMAC is not
// mandatory, else the hash must match.
func checkHMAC(in *inbox, identifier, hash string) (verified bool, err error) {
	if strings.TrimSpace(hash) == "" && !in.hmacMandatory {
		return false, nil
	}
	if !validHMAC(in.hmacKey, identifier, hash) {
		return false, errHMACFailed
	}
	return true, nil
}

// createContactLocked is ContactInboxWithContactBuilder.
func (m *model) createContactLocked(in *inbox, p contactParams) (*contactInbox, error) {
	if _, err := checkHMAC(in, p.identifier, p.identifierHash); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.sourceID == "" {
		p.sourceID = m.uuid()
	}
	if ci := in.contactInboxes[p.sourceID]; ci != nil {
		return ci, nil
	}
	c := m.findContactLocked(in.accountID, p.identifier, deref(p.email), deref(p.phone))
	if c == nil {
		c = m.newContactLocked(in.accountID, p)
	}
	return m.newContactInboxLocked(c, in, p.sourceID), nil
}

func (m *model) findContactLocked(accountID int64, identifier, email, phone string) *contact {
	var byEmail, byPhone *contact
	for _, c := range m.sortedContactsLocked() {
		switch {
		case c.accountID != accountID:
		case identifier != "" && c.identifier == identifier:
			return c
		case email != "" && byEmail == nil && strings.EqualFold(c.email, email):
			byEmail = c
		case phone != "" && byPhone == nil && c.phone == phone:
			byPhone = c
		}
	}
	if byEmail != nil {
		return byEmail
	}
	return byPhone
}

func (m *model) sortedContactsLocked() []*contact {
	out := make([]*contact, 0, len(m.contacts))
	for _, c := range m.contacts {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *contact) int { return int(a.id - b.id) })
	return out
}

func (m *model) newContactLocked(accountID int64, p contactParams) *contact {
	t := now()
	m.lastID.contact++
	c := &contact{
		id: m.lastID.contact, accountID: accountID, name: deref(p.name), email: deref(p.email),
		phone: deref(p.phone), identifier: p.identifier, avatarURL: deref(p.avatarURL),
		custom: p.custom, createdAt: t, updatedAt: t,
	}
	if c.name == "" {
		c.name = m.haikunate()
	}
	m.contacts[c.id] = c
	return c
}

func (m *model) newContactInboxLocked(c *contact, in *inbox, sourceID string) *contactInbox {
	t := now()
	m.lastID.contactInbox++
	ci := &contactInbox{
		id: m.lastID.contactInbox, contact: c, inbox: in, sourceID: sourceID,
		token: m.secureToken(), createdAt: t, updatedAt: t,
	}
	c.contactInboxes = append(c.contactInboxes, ci)
	in.contactInboxes[sourceID] = ci
	m.ciByToken[ci.token] = ci
	m.srv.tokens.set(ci.token, in.accountID)
	return ci
}

// verifyLocked runs HMAC for show/update and marks ci verified on success.
func (m *model) verifyLocked(ci *contactInbox, identifier, hash string) error {
	ok, err := checkHMAC(ci.inbox, identifier, hash)
	if err != nil {
		return err
	}
	if ok && !ci.hmacVerified {
		ci.hmacVerified, ci.updatedAt = true, now()
	}
	return nil
}

// updateContactLocked is ContactIdentifyAction without identifier: a
// contact whose email or phone another contact has is merged into it.
func (m *model) updateContactLocked(ci *contactInbox, p contactParams) (*contact, error) {
	if err := m.verifyLocked(ci, p.identifier, p.identifierHash); err != nil {
		return nil, err
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	c := ci.contact
	if other := m.mergeTargetLocked(c, deref(p.email), deref(p.phone)); other != nil {
		m.mergeLocked(c, other)
		c = other
	}
	applyContactParams(c, p)
	return c, nil
}

func (m *model) mergeTargetLocked(c *contact, email, phone string) *contact {
	for _, o := range m.sortedContactsLocked() {
		if o == c || o.accountID != c.accountID {
			continue
		}
		if (email != "" && strings.EqualFold(o.email, email)) || (phone != "" && o.phone == phone) {
			return o
		}
	}
	return nil
}

// mergeLocked moves from's contact inboxes (tokens, source_ids and
// conversations unchanged) and messages to into, then deletes from.
func (m *model) mergeLocked(from, into *contact) {
	for _, ci := range from.contactInboxes {
		ci.contact = into
		into.contactInboxes = append(into.contactInboxes, ci)
	}
	for _, msg := range m.messages {
		if msg.senderContact == from {
			msg.senderContact = into
		}
	}
	delete(m.contacts, from.id)
}

func applyContactParams(c *contact, p contactParams) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.name, p.name)
	set(&c.email, p.email)
	set(&c.phone, p.phone)
	set(&c.avatarURL, p.avatarURL)
	if len(p.custom) > 0 {
		if c.custom == nil {
			c.custom = map[string]any{}
		}
		for k, v := range p.custom {
			c.custom[k] = v
		}
	}
	c.updatedAt = now()
}

// createConversationLocked is ConversationBuilder for the public API.
func (m *model) createConversationLocked(ci *contactInbox, custom map[string]any) (*conversation, events) {
	if ci.inbox.lockSingle && len(ci.conversations) > 0 {
		return ci.conversations[len(ci.conversations)-1], nil
	}
	t := now()
	acc := m.accountLocked(ci.inbox.accountID)
	acc.lastDisplay++
	m.lastID.conversation++
	cv := &conversation{
		acc: acc, id: m.lastID.conversation, displayID: acc.lastDisplay, accountID: acc.id, inboxID: ci.inbox.id,
		uuid: m.uuid(), ci: ci, status: "open", custom: custom,
		createdAt: t, updatedAt: t, lastActivityAt: t, waitingSince: t,
	}
	if ci.inbox.activeBot {
		cv.status = "pending"
	}
	ci.conversations = append(ci.conversations, cv)
	m.conversations[convKey{acc.id, cv.displayID}] = cv
	var ev events
	ev.add(cv.recipients(), ConversationCreated(cv.data(nil)))
	return cv, ev
}

// newMessage describes a message to create.
type newMessage struct {
	msgType       int
	content       string
	echoID        string
	private       bool
	senderContact *contact
	senderAgent   *agent
	attachments   []AttachmentData
}

func (m *model) addMessageLocked(cv *conversation, nm newMessage) *message {
	t := now()
	msg := &message{
		id: int64(len(m.messages)) + 1, conv: cv, msgType: nm.msgType, contentType: "text",
		content: nm.content, status: "sent", private: nm.private, createdAt: t, updatedAt: t,
		senderContact: nm.senderContact, senderAgent: nm.senderAgent, echoID: nm.echoID,
	}
	for _, a := range nm.attachments {
		m.lastID.attachment++
		a.ID = m.lastID.attachment
		msg.attachments = append(msg.attachments, a)
	}
	m.messages = append(m.messages, msg)
	cv.messages = append(cv.messages, msg)
	if msg.msgType == MessageIncoming {
		cv.incoming = append(cv.incoming, msg)
	}
	cv.lastActivityAt = t // every message, as Message#set_conversation_activity
	return msg
}

func validateContent(cv *conversation, content string, attachments int) error {
	if utf8.RuneCountInString(content) > maxContentLength {
		return invalid("content", "Content is too long (maximum is 150000 characters)")
	}
	if attachments > maxAttachments {
		return invalid("attachments", "Attachments exceeded maximum allowed")
	}
	since := time.Now().Add(-time.Minute)
	n := 0
	for i := len(cv.messages) - 1; i >= 0 && cv.messages[i].createdAt.After(since); i-- {
		n++
	}
	if n >= messagesPerMinuteCap {
		return &ValidationError{Message: "Too many messages", Attributes: []string{"base"}}
	}
	return nil
}

// contactMessageLocked creates an incoming message from the contact; it
// reopens a resolved or snoozed conversation.
func (m *model) contactMessageLocked(cv *conversation, content, echoID string, att []AttachmentData) (*message, events, error) {
	if err := validateContent(cv, content, len(att)); err != nil {
		return nil, nil, err
	}
	var ev events
	if cv.status == "resolved" || cv.status == "snoozed" {
		status := "open"
		if cv.ci.inbox.activeBot {
			status = "pending"
		}
		ev = m.setStatusLocked(cv, status, nil)
	}
	msg := m.addMessageLocked(cv, newMessage{
		msgType: MessageIncoming, content: content, echoID: echoID,
		senderContact: cv.ci.contact, attachments: att,
	})
	c := cv.ci.contact
	c.lastActivAt, c.updatedAt = msg.createdAt, msg.createdAt
	d := msg.data(nil)
	d.EchoID = echoID
	ev.add(msg.tokens(), MessageCreated(d))
	ev.add([]string{accountStream(cv.accountID)}, ContactUpdated(c.data(), cv.accountID))
	if cv.waitingSince.IsZero() {
		cv.waitingSince, cv.updatedAt = msg.createdAt, now()
		ev.add(cv.recipients(), ConversationUpdated(cv.data(nil)))
	}
	return msg, ev, nil
}

// setStatusLocked changes the status and returns status_changed + updated.
func (m *model) setStatusLocked(cv *conversation, status string, performer *agent) events {
	if cv.status == status {
		return nil
	}
	cv.status, cv.updatedAt = status, now()
	var ev events
	d := cv.data(performer)
	ev.add(cv.recipients(), ConversationStatusChanged(d))
	ev.add(cv.recipients(), ConversationUpdated(d))
	if status == "resolved" {
		act := m.addMessageLocked(cv, newMessage{
			msgType: MessageActivity, content: "Conversation was marked resolved by " + actorName(cv, performer),
		})
		ev.add(act.tokens(), MessageCreated(act.data(nil)))
	}
	return ev
}

func actorName(cv *conversation, performer *agent) string {
	if performer != nil {
		return performer.name
	}
	return cv.ci.contact.name
}

// agentReplyLocked creates an outgoing (or private) agent message.
func (m *model) agentReplyLocked(cv *conversation, ag *agent, content string, private bool) (*message, events) {
	msg := m.addMessageLocked(cv, newMessage{
		msgType: MessageOutgoing, content: content, private: private, senderAgent: ag,
	})
	var ev events
	ev.add(msg.tokens(), MessageCreated(msg.data(ag)))
	if private {
		return msg, ev
	}
	changed := false
	if cv.firstReply.IsZero() {
		cv.firstReply, changed = msg.createdAt, true
	}
	if !cv.waitingSince.IsZero() {
		cv.waitingSince, changed = time.Time{}, true
	}
	if changed {
		cv.updatedAt = now()
		ev.add(cv.recipients(), ConversationUpdated(cv.data(ag)))
	}
	return msg, ev
}

// updateLastSeenLocked marks the agent side's sent/delivered messages read,
// as Conversations::UpdateMessageStatusJob does.
func (m *model) updateLastSeenLocked(cv *conversation) events {
	t := now()
	cv.contactSeen = t
	var ev events
	ev.add(cv.agentTokens(), event(EventConversationRead, cv.data(nil).push(true)))
	for _, msg := range cv.messages {
		if msg.msgType == MessageIncoming || msg.private || msg.createdAt.After(t) {
			continue
		}
		if msg.status == "sent" || msg.status == "delivered" {
			msg.status, msg.updatedAt = "read", t
			ev.add(msg.tokens(), MessageUpdated(msg.data(nil)))
		}
	}
	return ev
}

// deleteContactLocked removes a contact, its contact inboxes (tokens become
// unknown) and conversations. Messages stay in the message log.
func (m *model) deleteContactLocked(c *contact) {
	for _, ci := range c.contactInboxes {
		for _, cv := range ci.conversations {
			cv.formerContactID = c.id
			cv.ci = nil
			delete(m.conversations, convKey{cv.accountID, cv.displayID})
		}
		delete(ci.inbox.contactInboxes, ci.sourceID)
		delete(m.ciByToken, ci.token)
		m.srv.tokens.remove(ci.token)
	}
	delete(m.contacts, c.id)
}

var (
	haikuAdjectives = []string{"autumn", "hidden", "bitter", "misty", "silent", "empty", "dry", "dark", "summer", "icy", "quiet", "white", "cool", "spring", "winter", "patient"}
	haikuNouns      = []string{"waterfall", "river", "breeze", "moon", "rain", "wind", "sea", "morning", "snow", "lake", "sunset", "pine", "shadow", "leaf", "dawn", "glitter"}
)

// haikunate is the default contact name: adjective-noun-NNN.
func (m *model) haikunate() string {
	return fmt.Sprintf("%s-%s-%03d", haikuAdjectives[m.rng.IntN(len(haikuAdjectives))],
		haikuNouns[m.rng.IntN(len(haikuNouns))], m.rng.IntN(1000))
}
