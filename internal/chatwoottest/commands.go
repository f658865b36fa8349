package chatwoottest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

type cmdKind uint8

const (
	cmdSubscribe cmdKind = iota + 1
	cmdUnsubscribe
	cmdMessage
)

// command is a parsed client frame.
type command struct {
	kind       cmdKind
	identifier string
	data       string // message only
}

var errMalformed = errors.New("chatwoottest: malformed command")

// parseFrame decodes a client frame; malformed frames are counted, logged
// and skipped, as ActionCable only logs them.
func (s *Server) parseFrame(typ int, data []byte) (command, bool) {
	if typ != websocket.TextMessage {
		s.malformed("non-string message")
		return command{}, false
	}
	cmd, err := decodeCommand(data)
	if err != nil {
		s.malformed(err.Error())
		return command{}, false
	}
	if cmd.kind == cmdSubscribe && s.opts.OnSubscribe != nil {
		s.opts.OnSubscribe(cmd.identifier, time.Now())
	}
	return cmd, true
}

func (s *Server) malformed(reason string) {
	s.stats.malformed.Add(1)
	s.log.Debug("could not execute command", "reason", reason)
}

// decodeCommand parses {"command":..,"identifier":"..","data":".."} with exact
// key matching, as ActionCable reads the decoded hash.
func decodeCommand(data []byte) (command, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return command{}, errMalformed
	}
	var cmd command
	name, ok := rawString(fields["command"])
	if !ok {
		return cmd, errors.New("chatwoottest: unrecognized command")
	}
	switch name {
	case "subscribe":
		cmd.kind = cmdSubscribe
	case "unsubscribe":
		cmd.kind = cmdUnsubscribe
	case "message":
		cmd.kind = cmdMessage
	default:
		return cmd, errors.New("chatwoottest: unrecognized command")
	}
	if cmd.identifier, ok = rawString(fields["identifier"]); !ok {
		return cmd, errors.New("chatwoottest: identifier is not a string")
	}
	if cmd.kind == cmdMessage {
		if cmd.data, ok = rawString(fields["data"]); !ok {
			return cmd, errors.New("chatwoottest: data is not a string")
		}
	}
	return cmd, nil
}

func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// identifierParams are the RoomChannel params read from an identifier.
type identifierParams struct {
	channel   string
	token     string
	userBlank bool
	userID    string // raw text of user_id
	accountID int64
}

func parseIdentifier(id string) (identifierParams, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(id), &fields); err != nil || fields == nil {
		return identifierParams{}, errors.New("chatwoottest: identifier is not a JSON object")
	}
	var p identifierParams
	p.channel, _ = rawString(fields["channel"])
	p.token, _ = rawString(fields["pubsub_token"])
	p.userBlank = isBlank(fields["user_id"])
	p.userID = strings.Trim(string(fields["user_id"]), `"`)
	json.Unmarshal(fields["account_id"], &p.accountID)
	return p, nil
}

// isBlank is Ruby's blank? for a JSON value.
func isBlank(raw json.RawMessage) bool {
	v := bytes.TrimSpace(raw)
	switch {
	case len(v) == 0, string(v) == "null", string(v) == "false":
		return true
	case v[0] == '"':
		s, _ := rawString(v)
		return strings.TrimSpace(s) == ""
	case v[0] == '[' || v[0] == '{':
		var x any
		json.Unmarshal(v, &x)
		switch x := x.(type) {
		case []any:
			return len(x) == 0
		case map[string]any:
			return len(x) == 0
		}
	}
	return false
}

func (c *conn) execute(cmd command) {
	switch cmd.kind {
	case cmdSubscribe:
		c.subscribe(cmd.identifier)
	case cmdUnsubscribe:
		c.unsubscribe(cmd.identifier)
	case cmdMessage:
		c.message(cmd.identifier, cmd.data)
	}
}

func (c *conn) subscribe(id string) {
	s := c.srv
	s.stats.subscribes.Add(1)
	p, err := parseIdentifier(id)
	if err != nil {
		s.malformed(err.Error())
		return
	}
	if c.lookup(id) != nil {
		s.stats.duplicateSubscribes.Add(1)
		s.log.Debug("duplicate subscribe ignored", "conn", c.id, "sub", tokenID(p.token))
		return
	}
	if p.channel != "RoomChannel" {
		s.malformed("subscription class not found")
		return
	}
	c.subscribeRoom(id, p)
}

func (c *conn) subscribeRoom(id string, p identifierParams) {
	s := c.srv
	account, known, rejected := s.tokens.lookup(p.token)
	switch {
	case rejected:
		s.stats.rejects.Add(1)
		c.enqueue(outFrame{body: newSubscription(c, id, p.token, false).frame("reject_subscription")})
	case !p.userBlank:
		c.subscribeUser(id, p)
	case !known:
		s.log.Info("could not find contact inbox; subscription left unconfirmed", "conn", c.id, "sub", tokenID(p.token))
		c.addBroken(id, p.token)
	default:
		sub := newSubscription(c, id, p.token, true)
		sub.account = account
		c.confirm(sub)
	}
}

func (c *conn) addBroken(id, token string) {
	c.srv.stats.brokenSubscribes.Add(1)
	c.add(newSubscription(c, id, token, false))
}

// confirm registers sub on this connection and its token's stream, sends
// confirm_subscription and broadcasts presence to the token's stream.
func (c *conn) confirm(sub *subscription) {
	s := c.srv
	if !c.add(sub) {
		return
	}
	if !c.enqueue(outFrame{body: sub.frame("confirm_subscription")}) {
		return
	}
	s.stats.confirms.Add(1)
	s.broadcast(sub.token, s.model.presenceMessage(sub.account))
}

// add registers sub; confirmed subscriptions join the token stream. False
// means the connection is closed.
func (c *conn) add(sub *subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	old := c.subs[sub.identifier]
	c.subs[sub.identifier] = sub
	if sub.confirmed {
		c.confirms[sub.identifier]++
		c.srv.streams.add(sub)
		if old == nil || !old.confirmed {
			c.tokenEvent(sub, true)
		}
	}
	return true
}

func (c *conn) lookup(id string) *subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[id]
}

func (c *conn) unsubscribe(id string) {
	c.mu.Lock()
	sub := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if sub == nil {
		c.srv.stats.unknownUnsubscribes.Add(1)
		c.srv.log.Debug("unable to find subscription to remove", "conn", c.id)
		return
	}
	c.srv.stats.unsubscribes.Add(1)
	if sub.confirmed {
		c.srv.streams.remove(sub)
		c.tokenEvent(sub, false)
	}
}

// message performs a channel action; RoomChannel only has update_presence.
func (c *conn) message(id, data string) {
	s := c.srv
	var payload map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &payload); err != nil || payload == nil {
		s.malformed("message data is not a JSON object")
		return
	}
	sub := c.lookup(id)
	action, _ := rawString(payload["action"])
	if sub == nil || action != "update_presence" || !sub.confirmed {
		s.stats.ignoredMessages.Add(1)
		s.log.Debug("unable to process action", "conn", c.id, "known_subscription", sub != nil)
		return
	}
	s.stats.presenceUpdates.Add(1)
	s.tokens.countPresence(sub.token)
	s.broadcast(sub.token, s.model.presenceMessage(sub.account))
}

// tokenEvent reports a confirmed subscription starting or ending here.
func (c *conn) tokenEvent(sub *subscription, subscribed bool) {
	if f := c.srv.opts.OnToken; f != nil {
		f(TokenEvent{Token: sub.token, Conn: c.id, Subscribed: subscribed, At: time.Now()})
	}
}
