package chatwoottest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// pageSize is MessageFinder's page: the latest 20 messages.
const pageSize = 20

// route is a matched request.
type route struct {
	name    string
	inbox   string
	source  string // contact source_id
	conv    string // conversation display_id
	message string // message id
	handle  func(s *Server, w http.ResponseWriter, r *http.Request, rt route, p params)
}

func (s *Server) routes() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rt, cable := matchRoute(r)
	if !s.rest.admit(rt.name, r) {
		retryLater(w)
		return
	}
	if f, ok := s.rest.takeFault(rt.name); ok {
		if f.AfterHandling && !cable {
			s.handleThenFault(w, r, rt, f)
			return
		}
		if s.applyFault(w, r, f) {
			return
		}
	}
	if cable {
		s.serveCable(w, r)
		return
	}
	s.serveAPI(w, r, rt)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rt route) {
	if cors(w, r) {
		return
	}
	if rt.handle == nil {
		notFound(w)
		return
	}
	p, err := parseParams(r, func(name string) string { return fileURL(r, s.model, name) })
	if err != nil {
		writeJSON(w, http.StatusBadRequest, railsError{Status: http.StatusBadRequest, Error: "Bad Request"})
		return
	}
	rt.handle(s, w, r, rt, p)
}

// cors answers preflights for /public/api/*, which Chatwoot opens to any
// origin; it reports whether the request was a preflight.
func cors(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Origin") == "" {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD")
	h.Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
	w.WriteHeader(http.StatusOK)
	return true
}

func fileURL(r *http.Request, m *model, name string) string {
	m.mu.Lock()
	key := m.secureToken()
	m.mu.Unlock()
	return fmt.Sprintf("http://%s/rails/active_storage/blobs/redirect/%s/%s", r.Host, key, url.PathEscape(name))
}

// matchRoute maps a request to a route; cable reports /cable. Like Rails,
// it ignores a trailing slash and a ".json" format suffix.
func matchRoute(r *http.Request) (rt route, cable bool) {
	p := strings.TrimSuffix(strings.TrimSuffix(r.URL.Path, "/"), ".json")
	if p == "/cable" {
		return route{name: RouteCable}, true
	}
	if strings.HasPrefix(p, "/api/v1/") {
		return matchAppRoute(r.Method, p), false
	}
	rest, ok := strings.CutPrefix(p, "/public/api/v1/inboxes/")
	if !ok {
		return route{name: RouteNotFound}, false
	}
	return matchInboxRoute(r.Method, strings.Split(rest, "/")), false
}

func matchInboxRoute(method string, seg []string) route {
	get, post := method == http.MethodGet || method == http.MethodHead, method == http.MethodPost
	update := method == http.MethodPatch || method == http.MethodPut
	rt := route{name: RouteNotFound, inbox: seg[0]}
	n := len(seg)
	switch {
	case n == 1 && get:
		rt.name, rt.handle = RouteInboxShow, (*Server).inboxShow
	case n < 2 || seg[1] != "contacts":
	case n == 2 && post:
		rt.name, rt.handle = RouteContactCreate, (*Server).contactCreate
	case n == 3 && get:
		rt.name, rt.handle = RouteContactShow, (*Server).contactShow
	case n == 3 && update:
		rt.name, rt.handle = RouteContactUpdate, (*Server).contactUpdate
	case n >= 4 && seg[3] == "conversations":
		rt.source = seg[2]
		matchConversationRoute(&rt, get, post, update, seg[4:])
	}
	if rt.source == "" && n >= 3 {
		rt.source = seg[2]
	}
	return rt
}

func matchConversationRoute(rt *route, get, post, update bool, seg []string) {
	n := len(seg)
	if n >= 1 {
		rt.conv = seg[0]
	}
	switch {
	case n == 0 && get:
		rt.name, rt.handle = RouteConversationIndex, (*Server).conversationIndex
	case n == 0 && post:
		rt.name, rt.handle = RouteConversationCreate, (*Server).conversationCreate
	case n == 1 && get:
		rt.name, rt.handle = RouteConversationShow, (*Server).conversationShow
	case n == 2 && post && seg[1] == "toggle_status":
		rt.name, rt.handle = RouteToggleStatus, (*Server).toggleStatus
	case n == 2 && post && seg[1] == "toggle_typing":
		rt.name, rt.handle = RouteToggleTyping, (*Server).toggleTyping
	case n == 2 && post && seg[1] == "update_last_seen":
		rt.name, rt.handle = RouteUpdateLastSeen, (*Server).updateLastSeen
	case n == 2 && seg[1] == "messages" && get:
		rt.name, rt.handle = RouteMessageIndex, (*Server).messageIndex
	case n == 2 && seg[1] == "messages" && post:
		rt.name, rt.handle = RouteMessageCreate, (*Server).messageCreate
	case n == 3 && seg[1] == "messages" && update:
		rt.name, rt.message, rt.handle = RouteMessageUpdate, seg[2], (*Server).messageUpdate
	}
}

// writeError maps model errors to Chatwoot's answers.
func writeError(w http.ResponseWriter, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, validationBody{Message: ve.Message, Attributes: ve.Attributes})
	case errors.Is(err, ErrNotFound):
		notFound(w)
	default:
		writeJSON(w, http.StatusInternalServerError, railsError{Status: 500, Error: "Internal Server Error"})
	}
}

func writeEmpty(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }

// Handlers. Each locks the model, does one thing, unlocks, emits events and
// writes the response.

func (s *Server) inboxShow(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	in := m.inboxes[rt.inbox]
	var body restInbox
	if in != nil {
		body = in.rest()
	}
	m.mu.Unlock()
	if in == nil {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) contactCreate(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	in := m.inboxes[rt.inbox]
	var body restContactInbox
	err := ErrNotFound
	if in != nil {
		var ci *contactInbox
		if ci, err = m.createContactLocked(in, p.contact()); err == nil {
			body = ci.rest()
		}
	}
	m.mu.Unlock()
	respond(w, body, err)
}

func respond(w http.ResponseWriter, body any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) contactShow(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	var body restContactInbox
	ci, err := m.contactInboxLocked(rt.inbox, rt.source)
	if err == nil {
		if err = m.verifyLocked(ci, p.get("identifier"), p.get("identifier_hash")); err == nil {
			body = ci.rest()
		}
	}
	m.mu.Unlock()
	respond(w, body, err)
}

func (s *Server) contactUpdate(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	var body restContact
	ci, err := m.contactInboxLocked(rt.inbox, rt.source)
	if err == nil {
		var c *contact
		if c, err = m.updateContactLocked(ci, p.contact()); err == nil {
			body = c.rest()
		}
	}
	m.mu.Unlock()
	respond(w, body, err)
}

func (s *Server) conversationIndex(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	body := []restConversation{}
	ci, err := m.contactInboxLocked(rt.inbox, rt.source)
	if err == nil {
		for _, cv := range ci.visibleConversations() {
			body = append(body, cv.rest())
		}
	}
	m.mu.Unlock()
	respond(w, body, err)
}

func (s *Server) conversationCreate(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	var body restConversation
	var ev events
	ci, err := m.contactInboxLocked(rt.inbox, rt.source)
	if err == nil {
		var cv *conversation
		cv, ev = m.createConversationLocked(ci, p.object("custom_attributes"))
		body = cv.rest()
	}
	m.mu.Unlock()
	s.emit(ev)
	respond(w, body, err)
}

// memberConversation finds the route's conversation in the conversation
// scope of the contact inbox (all contact's when anyInbox or verified).
func (m *model) memberConversationLocked(rt route, anyInbox bool) (*conversation, error) {
	ci, err := m.contactInboxLocked(rt.inbox, rt.source)
	if err != nil {
		return nil, err
	}
	display, err := strconv.ParseInt(rt.conv, 10, 64)
	if err != nil {
		return nil, ErrNotFound
	}
	return m.conversationLocked(ci, display, anyInbox)
}

func (s *Server) conversationShow(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	var body restConversation
	cv, err := m.memberConversationLocked(rt, false)
	if err == nil {
		body = cv.rest()
	}
	m.mu.Unlock()
	respond(w, body, err)
}

func (s *Server) toggleStatus(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	var body restConversation
	var ev events
	cv, err := m.memberConversationLocked(rt, false)
	if err == nil {
		ev = m.setStatusLocked(cv, "resolved", nil)
		body = cv.rest()
	}
	m.mu.Unlock()
	s.emit(ev)
	respond(w, body, err)
}

// toggleTyping dispatches the contact's typing to agents only; the contact's
// own token is excluded, so no contact token receives anything.
func (s *Server) toggleTyping(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	_, err := m.memberConversationLocked(rt, false)
	m.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	writeEmpty(w)
}

func (s *Server) updateLastSeen(w http.ResponseWriter, _ *http.Request, rt route, _ params) {
	m := s.model
	m.mu.Lock()
	var ev events
	cv, err := m.memberConversationLocked(rt, false)
	if err == nil {
		ev = m.updateLastSeenLocked(cv)
	}
	m.mu.Unlock()
	s.emit(ev)
	if err != nil {
		writeError(w, err)
		return
	}
	writeEmpty(w)
}

func (s *Server) messageIndex(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	before, _ := strconv.ParseInt(p.get("before"), 10, 64)
	m := s.model
	m.mu.Lock()
	body := []restMessage{}
	cv, err := m.memberConversationLocked(rt, true)
	if err == nil {
		for _, msg := range pageMessages(cv.messages, before) {
			body = append(body, msg.rest())
		}
	}
	m.mu.Unlock()
	respond(w, body, err)
}

// pageMessages is MessageFinder: the 20 most recent listed messages (with
// id < before when before > 0), ascending.
func pageMessages(all []*message, before int64) []*message {
	var out []*message
	for i := len(all) - 1; i >= 0 && len(out) < pageSize; i-- {
		msg := all[i]
		if msg.listed() && (before <= 0 || msg.id < before) {
			out = append(out, msg)
		}
	}
	slices.Reverse(out)
	return out
}

func (s *Server) messageCreate(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	var body restMessage
	var ev events
	cv, err := m.memberConversationLocked(rt, true)
	if err == nil {
		var msg *message
		msg, ev, err = m.contactMessageLocked(cv, p.get("content"), p.get("echo_id"), p.attachments)
		if err == nil {
			body = msg.rest()
		}
	}
	m.mu.Unlock()
	s.emit(ev)
	respond(w, body, err)
}

// messageUpdate stores submitted_values (forms, CSAT) and broadcasts
// message.updated.
func (s *Server) messageUpdate(w http.ResponseWriter, _ *http.Request, rt route, p params) {
	m := s.model
	m.mu.Lock()
	var body restMessage
	var ev events
	msg, err := m.routeMessageLocked(rt)
	if err == nil {
		if msg.attrs == nil {
			msg.attrs = map[string]any{}
		}
		msg.attrs["submitted_values"] = p.values["submitted_values"]
		msg.updatedAt = now()
		ev.add(msg.tokens(), MessageUpdated(msg.data(nil)))
		body = msg.rest()
	}
	m.mu.Unlock()
	s.emit(ev)
	respond(w, body, err)
}

func (m *model) routeMessageLocked(rt route) (*message, error) {
	cv, err := m.memberConversationLocked(rt, true)
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(rt.message, 10, 64)
	if err != nil {
		return nil, ErrNotFound
	}
	msg, err := m.messageLocked(id)
	if err != nil || msg.conv != cv {
		return nil, ErrNotFound
	}
	return msg, nil
}
