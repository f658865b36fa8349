package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// maxControlBody bounds a control request's JSON body.
const maxControlBody = 64 << 10

// maxLoad bounds the replies one load call sends.
const maxLoad = 100000

// control is the HTTP control API under /fake/ (README.md documents it).
type control struct {
	fake   *chatwoottest.Server
	agents *agents

	mu    sync.Mutex // guards setup.Contacts
	setup *setup
}

func (c *control) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fake/setup", c.getSetup)
	mux.HandleFunc("GET /fake/stats", func(w http.ResponseWriter, _ *http.Request) { reply(w, c.fake.Stats(), nil) })
	mux.HandleFunc("GET /fake/conversations", func(w http.ResponseWriter, _ *http.Request) { reply(w, c.fake.Conversations(), nil) })
	mux.HandleFunc("POST /fake/contacts", c.addContact)
	mux.HandleFunc("POST /fake/reply", c.agentReply)
	mux.HandleFunc("POST /fake/typing", c.agentTyping)
	mux.HandleFunc("POST /fake/status", c.setStatus)
	mux.HandleFunc("POST /fake/agents", c.setAgentRate)
	mux.HandleFunc("POST /fake/load", c.load)
	mux.HandleFunc("POST /fake/drop", c.drop)
	mux.HandleFunc("POST /fake/disconnect", c.disconnect)
	mux.HandleFunc("POST /fake/stall", c.stall)
	mux.HandleFunc("POST /fake/faults", c.setFault)
	mux.HandleFunc("DELETE /fake/faults", func(w http.ResponseWriter, _ *http.Request) { c.fake.ClearFaults(); reply(w, done{}, nil) })
	mux.HandleFunc("POST /fake/rate-limit", c.setRateLimit)
	mux.HandleFunc("/fake/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, fmt.Errorf("no control call %s %s; see cmd/chatwoot-fake/README.md", r.Method, r.URL.Path))
	})
	return mux
}

// done is the answer of calls that return nothing else.
type done struct {
	OK bool `json:"ok"`
}

func (c *control) getSetup(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reply(w, c.setup, nil)
}

// addContact seeds one more contact with an open conversation.
func (c *control) addContact(w http.ResponseWriter, r *http.Request) {
	var req struct {
		InboxIdentifier string `json:"inbox_identifier"` // "" = the first inbox
		Name            string `json:"name"`
	}
	if !decode(w, r, &req) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.setup.Inboxes[0], true
	if req.InboxIdentifier != "" {
		i := slices.IndexFunc(c.setup.Inboxes, func(in inboxInfo) bool { return in.Identifier == req.InboxIdentifier })
		if ok = i >= 0; ok {
			in = c.setup.Inboxes[i]
		}
	}
	if !ok {
		fail(w, http.StatusNotFound, errors.New("inbox_identifier: no such inbox"))
		return
	}
	if req.Name == "" {
		req.Name = fmt.Sprintf("Customer %d", len(c.setup.Contacts)+1)
	}
	ci, err := addContact(c.fake, in, req.Name)
	if err == nil {
		c.setup.Contacts = append(c.setup.Contacts, ci)
	}
	reply(w, ci, err)
}

// conversationRef names a conversation as agents see it.
type conversationRef struct {
	AccountID      int64 `json:"account_id"` // 0 = 1
	ConversationID int64 `json:"conversation_id"`
}

func (ref *conversationRef) account() int64 {
	if ref.AccountID == 0 {
		return 1
	}
	return ref.AccountID
}

func (c *control) agentReply(w http.ResponseWriter, r *http.Request) {
	var req struct {
		conversationRef
		Content string `json:"content"`
		Private bool   `json:"private"`
	}
	if !decode(w, r, &req) {
		return
	}
	send := c.fake.AgentReply
	if req.Private {
		send = c.fake.AgentNote
	}
	msg, err := send(req.account(), req.ConversationID, req.Content)
	reply(w, toJSONMessage(msg), err)
}

func (c *control) agentTyping(w http.ResponseWriter, r *http.Request) {
	var req struct {
		conversationRef
		On bool `json:"on"`
	}
	if decode(w, r, &req) {
		reply(w, done{true}, c.fake.AgentTyping(req.account(), req.ConversationID, req.On, false))
	}
}

func (c *control) setStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		conversationRef
		Status string `json:"status"`
	}
	if decode(w, r, &req) {
		reply(w, done{true}, c.fake.SetConversationStatus(req.account(), req.ConversationID, req.Status))
	}
}

func (c *control) setAgentRate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RepliesPerSecond float64 `json:"replies_per_second"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !(req.RepliesPerSecond >= 0 && req.RepliesPerSecond <= maxAgentRate) {
		fail(w, http.StatusBadRequest, fmt.Errorf("replies_per_second: want 0 to %d", maxAgentRate))
		return
	}
	c.agents.setRate(req.RepliesPerSecond)
	reply(w, req, nil)
}

// load sends a burst of agent replies and says how long the fake took.
func (c *control) load(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Replies int `json:"replies"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Replies < 1 || req.Replies > maxLoad {
		fail(w, http.StatusBadRequest, fmt.Errorf("replies: want 1 to %d", maxLoad))
		return
	}
	start := time.Now()
	sent, err := c.agents.load(req.Replies)
	reply(w, map[string]any{"sent": sent, "took": time.Since(start).String()}, err)
}

func (c *control) drop(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DisconnectFrame bool `json:"disconnect_frame"`
	}
	if decode(w, r, &req) {
		reply(w, map[string]int{"dropped": c.fake.DropAll(req.DisconnectFrame)}, nil)
	}
}

func (c *control) disconnect(w http.ResponseWriter, r *http.Request) {
	req := struct {
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
	}{Reason: "server_restart", Reconnect: true}
	if decode(w, r, &req) {
		reply(w, map[string]int{"disconnected": c.fake.Disconnect(req.Reason, req.Reconnect)}, nil)
	}
}

func (c *control) stall(w http.ResponseWriter, r *http.Request) {
	var req struct {
		On bool `json:"on"`
	}
	if decode(w, r, &req) {
		c.fake.Stall(req.On)
		reply(w, req, nil)
	}
}

func (c *control) setRateLimit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PerMinute int `json:"per_minute"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.PerMinute < 0 {
		fail(w, http.StatusBadRequest, errors.New("per_minute: must not be negative (0 = unlimited)"))
		return
	}
	c.fake.SetRateLimit(req.PerMinute)
	reply(w, req, nil)
}
