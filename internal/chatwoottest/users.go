package chatwoottest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Roles of a user in an account.
const (
	RoleAdministrator = "administrator"
	RoleAgent         = "agent"
)

// UserConfig describes a dashboard user to add.
type UserConfig struct {
	AccountID int64  // 0 means 1; created if missing
	Name      string // "" means "User <id>"
	// Role is RoleAdministrator (every inbox) or RoleAgent ("" means agent).
	Role string
	// Inboxes an agent is a member of (numeric inbox ids); ignored for
	// administrators.
	Inboxes []int64
}

// User is a dashboard user: the access token the Application API takes in
// its api_access_token header and the pubsub token its RoomChannel
// subscription uses (with account_id and user_id).
type User struct {
	ID, AccountID int64
	Name, Role    string
	AccessToken   string
	PubsubToken   string
}

// AddUser adds a user to an account. Its pubsub token receives what
// Chatwoot sends to agents: conversation and message events (private notes
// and activity messages included) of its inboxes, or of all inboxes for an
// administrator; its subscription also streams the account (contact.*).
func (s *Server) AddUser(cfg UserConfig) (User, error) {
	role := orDefault(cfg.Role, RoleAgent)
	if role != RoleAgent && role != RoleAdministrator {
		return User{}, fmt.Errorf("%w: role %q", ErrInvalid, cfg.Role)
	}
	if cfg.AccountID == 0 {
		cfg.AccountID = 1
	}
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	ag := m.addAgentLocked(m.accountLocked(cfg.AccountID), cfg.Name, "online")
	if cfg.Name == "" {
		ag.name = fmt.Sprintf("User %d", ag.id)
	}
	ag.admin, ag.inboxes = role == RoleAdministrator, make(map[int64]bool)
	for _, id := range cfg.Inboxes {
		ag.inboxes[id] = true
	}
	ag.accessToken, ag.pubsubToken = m.secureToken(), m.secureToken()
	m.users[ag.accessToken] = ag
	return ag.user(), nil
}

// RotateUserToken gives a user a new pubsub token, as Chatwoot does when
// the password changes: subscribes with the old one get silence, existing
// subscriptions receive nothing more. It returns the user.
func (s *Server) RotateUserToken(userID int64) (User, error) {
	m := s.model
	m.mu.Lock()
	defer m.mu.Unlock()
	ag := m.agents[userID]
	if ag == nil || ag.accessToken == "" {
		return User{}, ErrNotFound
	}
	ag.pubsubToken = m.secureToken()
	return ag.user(), nil
}

func (ag *agent) user() User {
	role := RoleAgent
	if ag.admin {
		role = RoleAdministrator
	}
	return User{ID: ag.id, AccountID: ag.accountID, Name: ag.name, Role: role,
		AccessToken: ag.accessToken, PubsubToken: ag.pubsubToken}
}

// userSubscription resolves a user identifier as RoomChannel does:
// User.find_by!(pubsub_token:, id: user_id), then the account among the
// user's. ok is false when Chatwoot would raise (no confirm, no reply).
func (m *model) userSubscription(token, userID string, accountID int64) (account int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, err := strconv.ParseInt(userID, 10, 64)
	ag := m.agents[id]
	if err != nil || ag == nil || ag.pubsubToken == "" || ag.pubsubToken != token || ag.accountID != accountID {
		return 0, false
	}
	return accountID, true
}

// accountStream is the name of an account's stream (contact.* events).
func accountStream(accountID int64) string { return "account_" + strconv.FormatInt(accountID, 10) }

// AssignConversation assigns a conversation to a user as an agent does:
// assignee.changed and conversation.updated to the agents (contacts get
// the conversation.updated only), then the activity message.
func (s *Server) AssignConversation(accountID, displayID, userID int64) error {
	m := s.model
	m.mu.Lock()
	cv, performer, err := m.agentTargetLocked(accountID, displayID)
	ag := m.agents[userID]
	if err == nil && (ag == nil || ag.accountID != accountID) {
		err = fmt.Errorf("%w: user %d", ErrNotFound, userID)
	}
	if err != nil {
		m.mu.Unlock()
		return err
	}
	cv.assignee, cv.updatedAt = ag, now()
	var ev events
	d := cv.data(nil)
	ev.add(cv.agentTokens(), event(EventAssigneeChanged, d.push(true)))
	ev.add(cv.recipients(), ConversationUpdated(d))
	act := m.addMessageLocked(cv, newMessage{
		msgType: MessageActivity, content: "Assigned to " + ag.name + " by " + performer.name,
	})
	ev.add(act.tokens(), MessageCreated(act.data(nil)))
	m.mu.Unlock()
	s.emit(ev)
	return nil
}

// ContactRead is the contact reading the conversation (update_last_seen):
// conversation.read to the agents and message.updated (read) to everyone.
func (s *Server) ContactRead(accountID, displayID int64) error {
	m := s.model
	m.mu.Lock()
	cv, err := m.accountConversationLocked(accountID, displayID)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	ev := m.updateLastSeenLocked(cv)
	m.mu.Unlock()
	s.emit(ev)
	return nil
}

// Application API (header api_access_token), the routes the relay calls.

func matchAppRoute(method string, p string) route {
	if p == "/api/v1/profile" && method == http.MethodGet {
		return route{name: RouteProfile, handle: (*Server).profile}
	}
	rest, ok := strings.CutPrefix(p, "/api/v1/accounts/")
	seg := strings.Split(rest, "/")
	if !ok || method != http.MethodGet || len(seg) < 2 || seg[1] != "conversations" {
		return route{name: RouteNotFound}
	}
	rt := route{name: RouteNotFound, inbox: seg[0]} // inbox holds the account id
	switch {
	case len(seg) == 2:
		rt.name, rt.handle = RouteAppConversations, (*Server).appConversations
	case len(seg) == 4 && seg[3] == "messages":
		rt.conv = seg[2]
		rt.name, rt.handle = RouteAppMessages, (*Server).appMessages
	}
	return rt
}

func unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []string{"Invalid Access Token"}})
}

// userLocked authenticates a request by its api_access_token.
func (m *model) userLocked(r *http.Request) *agent {
	t := r.Header.Get("api_access_token")
	if t == "" {
		return nil
	}
	return m.users[t]
}

type profileAccount struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

type profileBody struct {
	ID          int64            `json:"id"`
	Name        string           `json:"name"`
	Email       string           `json:"email"`
	AccountID   int64            `json:"account_id"`
	PubsubToken string           `json:"pubsub_token"`
	AccessToken string           `json:"access_token"`
	Accounts    []profileAccount `json:"accounts"`
}

func (s *Server) profile(w http.ResponseWriter, r *http.Request, _ route, _ params) {
	m := s.model
	m.mu.Lock()
	ag := m.userLocked(r)
	var body profileBody
	if ag != nil {
		u := ag.user()
		body = profileBody{ID: u.ID, Name: u.Name, Email: fmt.Sprintf("user%d@example.com", u.ID),
			AccountID: u.AccountID, PubsubToken: u.PubsubToken, AccessToken: u.AccessToken,
			Accounts: []profileAccount{{ID: u.AccountID, Name: fmt.Sprintf("Account %d", u.AccountID), Role: u.Role}}}
	}
	m.mu.Unlock()
	if ag == nil {
		unauthorized(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// appPageSize is the Application API's conversations page.
const appPageSize = 25

// appTargetLocked authenticates r and checks the account in rt.
func (m *model) appTargetLocked(r *http.Request, rt route) (*agent, int64, bool) {
	ag := m.userLocked(r)
	acc, err := strconv.ParseInt(rt.inbox, 10, 64)
	if ag == nil || err != nil || ag.accountID != acc {
		return nil, 0, false
	}
	return ag, acc, true
}

// sees reports whether a user sees a conversation.
func (ag *agent) sees(cv *conversation) bool {
	return !cv.deleted() && (ag.admin || ag.inboxes[cv.inboxID])
}

// appConversations is GET /api/v1/accounts/{id}/conversations with
// status (default open, "all"), sort_by=last_activity_at_desc and page.
func (s *Server) appConversations(w http.ResponseWriter, r *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	ag, acc, ok := m.appTargetLocked(r, rt)
	if !ok {
		m.mu.Unlock()
		unauthorized(w)
		return
	}
	status := orDefault(p.get("status"), "open")
	var list []*conversation
	for _, cv := range m.conversations {
		if cv.accountID == acc && ag.sees(cv) && (status == "all" || cv.status == status) {
			list = append(list, cv)
		}
	}
	sortByActivity(list)
	page, _ := strconv.Atoi(p.get("page"))
	payload := []*conversationPush{}
	for i := max(page-1, 0) * appPageSize; i < len(list) && len(payload) < appPageSize; i++ {
		payload = append(payload, list[i].appPush())
	}
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"meta": map[string]int{"all_count": len(list)}, "payload": payload}})
}

// appPush is a conversation of the Application API listing: its last
// message is the last of any kind, private notes and activity messages
// included (the conversation partial's messages.last).
func (cv *conversation) appPush() *conversationPush {
	p := cv.data(nil).push(true)
	p.Messages = []*messagePush{}
	if n := len(cv.messages); n > 0 {
		m := cv.messages[n-1].data(nil)
		m.EchoID = ""
		p.Messages = append(p.Messages, m.push())
	}
	return p
}

// sortByActivity orders by last_activity_at, newest first (ties: newest id).
func sortByActivity(list []*conversation) {
	slices.SortFunc(list, func(a, b *conversation) int {
		if c := b.lastActivityAt.Compare(a.lastActivityAt); c != 0 {
			return c
		}
		return int(b.id - a.id)
	})
}

// appMessages is GET .../conversations/{display_id}/messages: oldest first,
// private notes and activity messages included; no cursor: the latest 20,
// before=ID: the 20 before, after=ID: up to 100 after, both: up to 1,000.
// after=0 is an after like any other (Rails' present?): the oldest 100.
func (s *Server) appMessages(w http.ResponseWriter, r *http.Request, rt route, p params) {
	before, _ := strconv.ParseInt(p.get("before"), 10, 64)
	after := int64(-1) // absent
	if v := strings.TrimSpace(p.get("after")); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	display, _ := strconv.ParseInt(rt.conv, 10, 64)
	m := s.model
	m.mu.Lock()
	ag, acc, ok := m.appTargetLocked(r, rt)
	if !ok {
		m.mu.Unlock()
		unauthorized(w)
		return
	}
	cv, err := m.accountConversationLocked(acc, display)
	if err == nil && !ag.sees(cv) {
		err = ErrNotFound
	}
	payload := []*messagePush{}
	if err == nil {
		for _, msg := range appPage(cv.messages, before, after) {
			payload = append(payload, msg.data(nil).push())
		}
	}
	m.mu.Unlock()
	respond(w, map[string]any{"meta": map[string]any{}, "payload": payload}, err)
}

// appPage is the agent MessageFinder, ascending; after is -1 when absent.
func appPage(all []*message, before, after int64) []*message {
	limit := pageSize
	switch {
	case before > 0 && after >= 0:
		limit = 1000
	case after >= 0:
		limit = 100
	}
	var out []*message
	if after >= 0 {
		for _, msg := range all {
			if msg.id > after && (before <= 0 || msg.id < before) && len(out) < limit {
				out = append(out, msg)
			}
		}
		return out
	}
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		if msg := all[i]; before <= 0 || msg.id < before {
			out = append(out, msg)
		}
	}
	slices.Reverse(out)
	return out
}

// subscribeUser confirms a user identifier and streams its token and the
// account; an unknown user, or one not matching the token or the account,
// leaves the subscription unconfirmed, as Chatwoot's raise does.
func (c *conn) subscribeUser(id string, p identifierParams) {
	s := c.srv
	account, ok := s.model.userSubscription(p.token, p.userID, p.accountID)
	if !ok {
		s.log.Info("could not find user; subscription left unconfirmed", "conn", c.id, "sub", tokenID(p.token))
		c.addBroken(id, p.token)
		return
	}
	sub := newSubscription(c, id, p.token, true)
	sub.account = account
	sub.stream = newSubscription(c, id, accountStream(account), true)
	c.confirm(sub)
}
