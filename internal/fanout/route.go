package fanout

import (
	"errors"
	"strconv"
)

// Routing errors. A *RoutingError wraps ErrRouting and names the field.
var (
	ErrRouting = errors.New("fanout: invalid routing id")
	ErrNoEvent = errors.New("fanout: message has no valid event name")
)

// RoutingError reports which routing field was unusable. It never carries
// the field's value.
type RoutingError struct{ Field string }

func (e *RoutingError) Error() string { return "fanout: invalid routing id " + e.Field }
func (e *RoutingError) Unwrap() error { return ErrRouting }

// Limits on what becomes a subject token or a header value.
const (
	maxTokenLen = 64
	maxEventLen = 128
	maxStampLen = 64
)

// tok is a routing token taken from the payload (b) or from a hint (s).
// The zero tok is Unknown.
type tok struct {
	b []byte
	s string
}

func (t tok) set() bool { return len(t.b) > 0 || t.s != "" }

func (t tok) appendTo(dst []byte) []byte {
	switch {
	case len(t.b) > 0:
		return append(dst, t.b...)
	case t.s != "":
		return append(dst, t.s...)
	}
	return append(dst, Unknown...)
}

// route is the byte-level routing result; it points into the message.
type route struct {
	kind    Kind
	event   []byte
	account tok
	inbox   tok
	contact tok
	conv    tok
	msgID   []byte
	msgType MessageType
	status  []byte
	stamp   []byte // updated_at (or timestamp for conversation events), raw text
	echo    []byte // echo_id of a message.created, when it is a safe token
	private bool   // typing for a private note
	// visibility marks what a contact's subscription never carries (see
	// Visibility); "" for what a contact of the conversation sees.
	visibility string
}

// Values of the Chatwoot-Visibility header: what a contact would not see.
const (
	// VisibilityPrivate: a private note, or an agent typing one.
	VisibilityPrivate = "private"
	// VisibilityActivity: an activity message (message_type 2: "assigned
	// to", "resolved by", ...).
	VisibilityActivity = "activity"
	// VisibilityAgent: an event Chatwoot sends to agents only
	// (conversation.read, assignee.changed, contact.*, notification.*, ...).
	VisibilityAgent = "agent"
)

// agentOnlyConversationEvents are the conversation.* events contacts never
// receive (chatwoot-protocol.md §3.2).
var agentOnlyConversationEvents = []string{"conversation.read", "conversation.mentioned", "conversation.contact_changed"}

// resolveRoute applies the routing rules: payload first, then hints, then Unknown.
func resolveRoute(f *fields, h Hints, r *route) error {
	ev := f[slotEvent]
	if ev.kind != kindString || !validEvent(ev.raw) {
		return ErrNoEvent
	}
	*r = route{event: ev.raw, kind: kindOf(ev.raw), msgType: MessageUnknown}
	var err error
	if r.account, err = pick(f, h.AccountID, "account_id", slotAccount); err != nil {
		return err
	}
	if string(r.account.b) == "relay" || r.account.s == "relay" {
		return &RoutingError{Field: "account_id"} // <prefix>.relay.> is reserved for lifecycle events
	}
	if r.inbox, err = pick(f, h.InboxID, "inbox_id", slotInbox, slotConvObjInbox, slotCIInbox); err != nil {
		return err
	}
	if r.kind == KindMessage {
		r.msgType = parseMessageType(f[slotMessageType])
	}
	if hasPrefix(ev.raw, "contact.") {
		r.contact, err = pick(f, h.ContactID, "id", slotID) // the contact itself
	} else {
		r.contact, err = pickContact(f, h, r.msgType)
	}
	if err != nil {
		return err
	}
	if r.conv, err = pickConversation(f, r.kind); err != nil {
		return err
	}
	r.details(f)
	r.visibility = visibilityOf(f, r)
	return nil
}

// visibilityOf tells what a contact would not see, from the event alone,
// so every copy of an event (contact token or account feed) gets the same.
func visibilityOf(f *fields, r *route) string {
	switch r.kind {
	case KindMessage:
		if p := f[slotMsgPrivate]; p.kind == kindBool && string(p.raw) == "true" {
			return VisibilityPrivate
		}
		if r.msgType == MessageActivity {
			return VisibilityActivity
		}
	case KindTyping:
		if r.private {
			return VisibilityPrivate
		}
	case KindConversation:
		for _, e := range agentOnlyConversationEvents {
			if string(r.event) == e {
				return VisibilityAgent
			}
		}
	case KindOther:
		return VisibilityAgent
	}
	return ""
}

// details fills the fields used for dedup, filtering and observation.
func (r *route) details(f *fields) {
	switch r.kind {
	case KindMessage:
		if id := f[slotID]; id.kind == kindNumber || id.kind == kindString {
			if validToken(id.raw) {
				r.msgID = id.raw
			}
		}
		r.status = safeWord(f[slotStatus])
		r.stamp = safeStamp(f[slotUpdatedAt])
		if e := f[slotEchoID]; e.kind == kindString && validToken(e.raw) {
			r.echo = e.raw
		}
	case KindConversation:
		r.status = safeWord(f[slotStatus])
		if r.stamp = safeStamp(f[slotUpdatedAt]); r.stamp == nil {
			r.stamp = safeStamp(f[slotTimestamp])
		}
	case KindTyping:
		r.status = safeWord(f[slotConvObjStatus])
		p := f[slotPrivate]
		r.private = p.kind == kindBool && string(p.raw) == "true"
	}
}

// pick returns the first usable value among slots, else the hint, else Unknown.
// A value that is present but not a valid token is an error (no fallback).
func pick(f *fields, hint, field string, slots ...slot) (tok, error) {
	for _, s := range slots {
		v := f[s]
		switch v.kind {
		case kindAbsent, kindNull:
			continue
		case kindBool, kindNested:
			return tok{}, &RoutingError{Field: field}
		}
		t := v.text()
		if len(t) == 0 && v.kind != kindEscaped {
			continue
		}
		if !validToken(t) {
			return tok{}, &RoutingError{Field: field}
		}
		return tok{b: t}, nil
	}
	if hint == "" {
		return tok{}, nil
	}
	if !validToken(hint) {
		return tok{}, &RoutingError{Field: field + " hint"}
	}
	return tok{s: hint}, nil
}

// pickContact: contact_inbox.contact_id, conversation.contact_inbox.contact_id,
// meta.sender.id, conversation.meta.sender.id, the sender of an incoming
// message, then the hint.
func pickContact(f *fields, h Hints, mt MessageType) (tok, error) {
	t, err := pick(f, "", "contact_id", slotCIContact, slotConvCIContact, slotMetaSender, slotConvMetaSender)
	if err != nil || t.set() {
		return t, err
	}
	if mt != MessageOutgoing && textIs(f[slotSenderObjType], "contact") {
		if t, err = pick(f, "", "sender.id", slotSenderObjID); err != nil || t.set() {
			return t, err
		}
	}
	if mt != MessageOutgoing && textIs(f[slotSenderType], "Contact") {
		if t, err = pick(f, "", "sender_id", slotSenderID); err != nil || t.set() {
			return t, err
		}
	}
	return pick(f, h.ContactID, "contact_id")
}

// pickConversation returns the conversation display_id for the event kind.
func pickConversation(f *fields, k Kind) (tok, error) {
	switch k {
	case KindMessage:
		return pick(f, "", "conversation_id", slotConversationID)
	case KindTyping:
		return pick(f, "", "conversation.id", slotConvObjID)
	case KindConversation:
		return pick(f, "", "id", slotID)
	case KindPresence:
		return tok{}, nil
	}
	return pick(f, "", "conversation_id", slotConversationID, slotConvObjID)
}

func textIs(v value, s string) bool {
	return v.kind == kindString && string(v.raw) == s
}

func parseMessageType(v value) MessageType {
	switch v.kind {
	case kindNumber:
		if len(v.raw) == 1 && v.raw[0] >= '0' && v.raw[0] <= '3' {
			return MessageType(v.raw[0] - '0')
		}
	case kindString:
		switch string(v.raw) {
		case "incoming":
			return MessageIncoming
		case "outgoing":
			return MessageOutgoing
		case "activity":
			return MessageActivity
		case "template":
			return MessageTemplate
		}
	}
	return MessageUnknown
}

// validToken reports whether b is a subject token: 1-64 of [A-Za-z0-9_-].
func validToken[T ~string | ~[]byte](b T) bool {
	if len(b) == 0 || len(b) > maxTokenLen {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !isTokenByte(b[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// validEvent reports whether b is 1-4 valid tokens joined by dots.
func validEvent[T ~string | ~[]byte](b T) bool {
	if len(b) == 0 || len(b) > maxEventLen {
		return false
	}
	tokens, start := 0, 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && b[i] != '.' {
			if !isTokenByte(b[i]) {
				return false
			}
			continue
		}
		if i == start {
			return false // empty token
		}
		tokens++
		start = i + 1
	}
	return tokens <= 4
}

// validPrefix reports whether p is one or more valid tokens joined by dots.
func validPrefix(p string) bool {
	if p == "" || len(p) > maxEventLen {
		return false
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '.' {
			if !isTokenByte(p[i]) {
				return false
			}
			continue
		}
		if i == start {
			return false
		}
		start = i + 1
	}
	return true
}

// safeStamp returns the raw text of a timestamp if it is short and made of
// [0-9A-Za-z.:+_-] (ISO 8601 strings, unix seconds, float seconds).
func safeStamp(v value) []byte {
	if (v.kind != kindString && v.kind != kindNumber) || len(v.raw) == 0 || len(v.raw) > maxStampLen {
		return nil
	}
	for _, c := range v.raw {
		if !isTokenByte(c) && c != '.' && c != ':' && c != '+' {
			return nil
		}
	}
	return v.raw
}

// safeWord returns a short status word, or nil.
func safeWord(v value) []byte {
	if v.kind != kindString || !validToken(v.raw) || len(v.raw) > 32 {
		return nil
	}
	return v.raw
}

// headerSafe reports whether s can be a NATS header value: printable ASCII
// without spaces, at most 128 bytes.
func headerSafe(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// appendDedupKey appends the dedup key for r, or nothing when the event is
// not deduplicated by content. Instant kinds (typing, presence, other) are
// handled by appendInstantKey.
func appendDedupKey(dst []byte, r *route) []byte {
	switch r.kind {
	case KindMessage:
		if r.msgID == nil {
			return dst
		}
		suffix := r.event[len("message."):]
		switch {
		case string(suffix) == "created":
			dst = appendKeyHead(dst, 'm', r.account, r.msgID)
			return append(dst, ":created"...)
		case r.stamp == nil:
			return dst
		case string(suffix) == "updated":
			dst = appendKeyHead(dst, 'm', r.account, r.msgID)
		default:
			dst = appendKeyHead(dst, 'm', r.account, r.msgID)
			dst = append(append(dst, ':'), suffix...)
		}
		return append(append(dst, ':'), r.stamp...)
	case KindConversation:
		if r.conv.b == nil {
			return dst
		}
		if string(r.event) == "conversation.created" {
			// A conversation is created once; the REST conversation its
			// catch-up replay carries has no updated_at, so the key has no
			// stamp: the live event and its replay share it.
			dst = appendKeyHead(dst, 'c', r.account, r.conv.b)
			return append(dst, ":conversation.created"...)
		}
		if r.stamp == nil {
			return dst
		}
		dst = appendKeyHead(dst, 'c', r.account, r.conv.b)
		dst = append(append(dst, ':'), r.event...)
		return append(append(dst, ':'), r.stamp...)
	}
	return dst
}

func appendKeyHead(dst []byte, class byte, account tok, id []byte) []byte {
	dst = append(dst, class, ':')
	dst = account.appendTo(dst)
	dst = append(dst, ':')
	return append(dst, id...)
}

// appendInstantKey appends the key of an event that is deduplicated only
// against copies received at the same instant through other tokens of the
// same contact: i:<account>:<inbox>:<contact>:<conversation>:<event>:<hash>,
// where hash covers the body with pubsub_token values skipped. Without a
// known contact the subscription id is appended, so events of different
// (unknown) contacts never collapse.
func appendInstantKey(dst []byte, r *route, hash uint64, subID string) []byte {
	dst = append(dst, 'i', ':')
	dst = r.account.appendTo(dst)
	dst = append(dst, ':')
	dst = r.inbox.appendTo(dst)
	dst = append(dst, ':')
	dst = r.contact.appendTo(dst)
	dst = append(dst, ':')
	dst = r.conv.appendTo(dst)
	dst = append(append(dst, ':'), r.event...)
	dst = append(dst, ':')
	dst = appendHex16(dst, hash)
	if !r.contact.set() && subID != "" {
		dst = append(append(dst, ':'), subID...)
	}
	return dst
}

func appendHex16(dst []byte, v uint64) []byte {
	const hexDigits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

func appendBucket(dst []byte, unixNano int64, window int64) []byte {
	if window <= 0 {
		window = 1
	}
	return strconv.AppendInt(append(dst, ':'), unixNano/window, 10)
}
