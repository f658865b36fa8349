package chatwoottest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// model is the in-memory Chatwoot database. Guarded by mu.
type model struct {
	srv *Server

	mu            sync.Mutex
	rng           *rand.Rand
	accounts      map[int64]*account
	inboxes       map[string]*inbox // by identifier
	contacts      map[int64]*contact
	ciByToken     map[string]*contactInbox
	conversations map[convKey]*conversation
	messages      []*message // index id-1, every message ever created
	agents        map[int64]*agent
	users         map[string]*agent // by access token
	lastID        struct{ inbox, contact, contactInbox, conversation, attachment, agent int64 }
}

type convKey struct{ account, display int64 }

type account struct {
	id          int64
	agents      []*agent
	lastDisplay int64
}

type agent struct {
	id, accountID int64
	name, status  string
	// A user added with AddUser also has tokens and a role; the default
	// agent has none and receives nothing on the cable.
	accessToken, pubsubToken string
	admin                    bool
	inboxes                  map[int64]bool // inboxes an agent is a member of
}

type inbox struct {
	id, accountID             int64
	identifier, name, hmacKey string
	hmacMandatory, lockSingle bool
	activeBot                 bool
	contactInboxes            map[string]*contactInbox // by source_id
}

type contact struct {
	id, accountID                     int64
	name, email, phone, identifier    string
	avatarURL                         string
	custom                            map[string]any
	createdAt, updatedAt, lastActivAt time.Time
	contactInboxes                    []*contactInbox
}

type contactInbox struct {
	id                   int64
	contact              *contact
	inbox                *inbox
	sourceID, token      string
	hmacVerified         bool
	createdAt, updatedAt time.Time
	conversations        []*conversation
}

type conversation struct {
	acc                      *account
	id, displayID, accountID int64
	inboxID                  int64
	formerContactID          int64 // set when the contact was deleted
	uuid                     string
	ci                       *contactInbox
	status                   string
	custom                   map[string]any
	messages                 []*message
	incoming                 []*message // the incoming ones of messages, for unreadCount
	assignee                 *agent
	createdAt, updatedAt     time.Time
	lastActivityAt           time.Time
	waitingSince, firstReply time.Time
	agentSeen, contactSeen   time.Time
}

type message struct {
	id            int64
	conv          *conversation
	msgType       int
	contentType   string
	content       string
	status        string
	private       bool
	attrs         map[string]any
	createdAt     time.Time
	updatedAt     time.Time
	senderContact *contact
	senderAgent   *agent
	attachments   []AttachmentData
	echoID        string // recorded for tests; Chatwoot does not persist it
}

func newModel(s *Server, seed uint64) *model {
	if seed == 0 {
		seed = rand.Uint64()
	}
	m := &model{
		srv:           s,
		rng:           rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		accounts:      make(map[int64]*account),
		inboxes:       make(map[string]*inbox),
		contacts:      make(map[int64]*contact),
		ciByToken:     make(map[string]*contactInbox),
		conversations: make(map[convKey]*conversation),
		agents:        make(map[int64]*agent),
		users:         make(map[string]*agent),
	}
	m.mu.Lock()
	m.addAgentLocked(m.accountLocked(1), "Agent 1", "online")
	m.mu.Unlock()
	return m
}

// now is the database clock: microsecond precision like PostgreSQL.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func (m *model) ensureAccount(id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accountLocked(id)
}

func (m *model) accountLocked(id int64) *account {
	a := m.accounts[id]
	if a == nil {
		a = &account{id: id}
		m.accounts[id] = a
	}
	return a
}

func (m *model) addAgentLocked(a *account, name, status string) *agent {
	m.lastID.agent++
	ag := &agent{id: m.lastID.agent, accountID: a.id, name: name, status: orDefault(status, "online")}
	a.agents = append(a.agents, ag)
	m.agents[ag.id] = ag
	return ag
}

// presenceMessage is RoomChannel's presence.update for a contact of the
// account: agents not offline, no contacts map.
func (m *model) presenceMessage(accountID int64) []byte {
	m.mu.Lock()
	users := make(map[int64]string)
	if a := m.accounts[accountID]; a != nil {
		for _, ag := range a.agents {
			if ag.status != "offline" {
				users[ag.id] = ag.status
			}
		}
	}
	m.mu.Unlock()
	return PresenceUpdate(accountID, users)
}

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// secureToken is Rails' has_secure_token: 24 base58 characters.
func (m *model) secureToken() string {
	b := make([]byte, 24)
	for i := range b {
		b[i] = base58[m.rng.IntN(len(base58))]
	}
	return string(b)
}

func (m *model) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// validHMAC compares like Chatwoot: lowercase hex HMAC-SHA256 with ==.
func validHMAC(key, identifier, hash string) bool {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(identifier))
	return hex.EncodeToString(mac.Sum(nil)) == hash
}

// IdentifierHash returns the identifier_hash Chatwoot expects for identifier
// with the inbox's HMAC token.
func IdentifierHash(hmacToken, identifier string) string {
	mac := hmac.New(sha256.New, []byte(hmacToken))
	mac.Write([]byte(identifier))
	return hex.EncodeToString(mac.Sum(nil))
}

// Lookups (caller holds mu).

func (m *model) contactInboxLocked(inboxIdent, sourceID string) (*contactInbox, error) {
	in := m.inboxes[inboxIdent]
	if in == nil {
		return nil, ErrNotFound
	}
	ci := in.contactInboxes[sourceID]
	if ci == nil {
		return nil, ErrNotFound
	}
	return ci, nil
}

// conversationLocked finds a contact's conversation by display id: among
// all of the contact's conversations when anyInbox or hmac-verified, else
// only the contact inbox's.
func (m *model) conversationLocked(ci *contactInbox, display int64, anyInbox bool) (*conversation, error) {
	cv := m.conversations[convKey{ci.inbox.accountID, display}]
	if cv == nil {
		return nil, ErrNotFound
	}
	if cv.ci == ci || ((anyInbox || ci.hmacVerified) && cv.ci.contact == ci.contact) {
		return cv, nil
	}
	return nil, ErrNotFound
}

func (m *model) accountConversationLocked(accountID, display int64) (*conversation, error) {
	cv := m.conversations[convKey{accountID, display}]
	if cv == nil {
		return nil, ErrNotFound
	}
	return cv, nil
}

func (m *model) messageLocked(id int64) (*message, error) {
	if id < 1 || id > int64(len(m.messages)) || m.messages[id-1].conv.deleted() {
		return nil, ErrNotFound
	}
	return m.messages[id-1], nil
}

func (cv *conversation) deleted() bool { return cv.ci == nil }

// visibleConversations is the conversations index scope.
func (ci *contactInbox) visibleConversations() []*conversation {
	if !ci.hmacVerified {
		return ci.conversations
	}
	var out []*conversation
	for _, other := range ci.contact.contactInboxes {
		out = append(out, other.conversations...)
	}
	slices.SortFunc(out, func(a, b *conversation) int { return int(a.id - b.id) })
	return out
}

// Token sets (protocol §3.2).

// tokens is contact_inbox_tokens: every verified token of the contact when
// ci is verified, else ci's own.
func (ci *contactInbox) tokens() []string {
	if !ci.hmacVerified {
		return []string{ci.token}
	}
	var out []string
	for _, other := range ci.contact.contactInboxes {
		if other.hmacVerified {
			out = append(out, other.token)
		}
	}
	return out
}

func (msg *message) tokens() []string {
	if msg.conv.deleted() {
		return nil
	}
	agents := msg.conv.agentTokens()
	if msg.private || msg.msgType == MessageActivity {
		return agents
	}
	return append(msg.conv.ci.tokens(), agents...)
}

// recipients is the token set of a conversation event: the contact's
// tokens, the inbox's members and every administrator.
func (cv *conversation) recipients() []string {
	return append(cv.ci.tokens(), cv.agentTokens()...)
}

// agentTokens are the pubsub tokens of the users who see cv: the
// administrators of its account and the agents of its inbox.
func (cv *conversation) agentTokens() []string {
	var out []string
	for _, ag := range cv.acc.agents {
		if ag.pubsubToken != "" && (ag.admin || ag.inboxes[cv.inboxID]) {
			out = append(out, ag.pubsubToken)
		}
	}
	return out
}

// Snapshots into payload data (caller holds mu).

func (c *contact) data() ContactData {
	return ContactData{ID: c.id, Name: c.name, Email: c.email, PhoneNumber: c.phone, Identifier: c.identifier}
}

func (a *agent) data() AgentData {
	return AgentData{ID: a.id, Name: a.name, AvailabilityStatus: a.status}
}

func (a *agent) dataPtr() *AgentData {
	if a == nil {
		return nil
	}
	d := a.data()
	return &d
}

func (ci *contactInbox) data() ContactInboxData {
	return ContactInboxData{
		ID: ci.id, ContactID: ci.contact.id, InboxID: ci.inbox.id, SourceID: ci.sourceID,
		PubsubToken: ci.token, HMACVerified: ci.hmacVerified, CreatedAt: ci.createdAt, UpdatedAt: ci.updatedAt,
	}
}

// unreadCount counts the last ≤ 10 incoming messages the agents have not seen.
func (cv *conversation) unreadCount() int {
	n := 0
	for i := len(cv.incoming) - 1; i >= 0 && n < 10; i-- {
		if cv.incoming[i].createdAt.After(cv.agentSeen) {
			n++
		}
	}
	return n
}

func (cv *conversation) lastVisibleMessage() *message {
	for i := len(cv.messages) - 1; i >= 0; i-- {
		if msg := cv.messages[i]; !msg.private && msg.msgType != MessageActivity {
			return msg
		}
	}
	return nil
}

func (msg *message) data(performer *agent) MessageData {
	cv := msg.conv
	d := MessageData{
		ID: msg.id, AccountID: cv.accountID, InboxID: cv.ci.inbox.id, ConversationID: cv.displayID,
		MessageType: msg.msgType, Content: msg.content, ContentType: msg.contentType,
		ContentAttributes: msg.attrs, Status: msg.status, Private: msg.private,
		CreatedAt: msg.createdAt, UpdatedAt: msg.updatedAt, UnreadCount: cv.unreadCount(),
		LastActivityAt: cv.lastActivityAt, ContactSourceID: cv.ci.sourceID,
		Attachments: msg.attachments, Performer: performer.dataPtr(),
	}
	if cv.assignee != nil {
		d.AssigneeID = cv.assignee.id
	}
	if msg.senderContact != nil {
		c := msg.senderContact.data()
		d.SenderContact = &c
	}
	d.SenderAgent = msg.senderAgent.dataPtr()
	return d
}

func (cv *conversation) data(performer *agent) ConversationData {
	d := ConversationData{
		AccountID: cv.accountID, DisplayID: cv.displayID, InboxID: cv.ci.inbox.id,
		ContactInbox: cv.ci.data(), Contact: cv.ci.contact.data(), Assignee: cv.assignee.dataPtr(),
		HMACVerified: cv.ci.hmacVerified, Status: cv.status, CustomAttributes: cv.custom,
		UnreadCount: cv.unreadCount(), FirstReplyCreatedAt: cv.firstReply, WaitingSince: cv.waitingSince,
		AgentLastSeenAt: cv.agentSeen, ContactLastSeenAt: cv.contactSeen,
		LastActivityAt: cv.lastActivityAt, CreatedAt: cv.createdAt, UpdatedAt: cv.updatedAt,
		Performer: performer.dataPtr(),
	}
	if last := cv.lastVisibleMessage(); last != nil {
		md := last.data(nil)
		d.LastMessage = &md
	}
	return d
}
