package fanout

import (
	"strings"
	"time"

	"github.com/relayhq/relay/internal/jsonscan"
)

// Hints are routing ids known from the subscription record. They are used
// when the payload does not carry the id; "" means unknown.
type Hints struct {
	AccountID string
	InboxID   string
	ContactID string
}

// Event is one broadcast received on a subscription: the raw `message`
// object of an ActionCable broadcast frame, {"event":"...","data":{...}}.
type Event struct {
	// SubID is the subscription id (stable hash of the token; never the token).
	SubID string
	// Sub is the subscription's record, for live events: the fan-out
	// learns into it and reports to its owner. Nil for replays and tests.
	Sub   *Sub
	Hints Hints
	// Message is the raw message object. Fanout keeps it and may edit it in
	// place (token redaction): the caller gives up ownership.
	Message []byte
	// Fields are the message's values the cable reader captured with the
	// table Fields (cable.Delivery.Fields), offsets relative to Message:
	// the fan-out routes by them without reading the message again. Without
	// them (a replay) it scans the message.
	Fields jsonscan.Fields
	// Borrowed: Message is the caller's buffer, valid only during Handle.
	// The fan-out copies it when it keeps the event past the call (when
	// it cannot publish it at once).
	Borrowed   bool
	ReceivedAt time.Time
	// Replayed marks events produced by catch-up through the REST API.
	Replayed bool
	// Feed marks events of an account feed (a Chatwoot user's
	// subscription): what agents see is published, private-note typing
	// included, instead of being filtered as for contacts.
	Feed bool
	// Done, if set, is called once with nil when the event is in NATS
	// (published, or not needed: a filtered one, or a duplicate whose first
	// copy is in NATS), and with why when it never will be: ErrBufferFull
	// (no room: it may fit later), ErrClosed (shutdown) or ErrRejected (it
	// never will: unroutable, too large, or refused by NATS). A duplicate
	// whose first copy was dropped gets that copy's reason. It runs on a
	// fanout goroutine or inside Handle and must not block.
	Done func(error)
}

// Kind is the class of a Chatwoot event; it is the fixed label set of the
// published metric.
type Kind uint8

// Event kinds.
const (
	KindOther        Kind = iota
	KindMessage           // message.*
	KindConversation      // conversation.* except typing
	KindTyping            // conversation.typing_on / typing_off
	KindPresence          // presence.*
	KindLifecycle         // <prefix>.relay.* events produced by the relay itself
	numKinds
)

var kindNames = [numKinds]string{"other", "message", "conversation", "typing", "presence", "lifecycle"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

func kindOf(event []byte) Kind {
	switch {
	case hasPrefix(event, "message."):
		return KindMessage
	case hasPrefix(event, "conversation.typing_"):
		return KindTyping
	case hasPrefix(event, "conversation."):
		return KindConversation
	case hasPrefix(event, "presence."):
		return KindPresence
	}
	return KindOther
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// MessageType is Chatwoot's message_type (sent as an integer or, by some
// versions, as its name).
type MessageType int8

// Message types.
const (
	MessageUnknown  MessageType = -1
	MessageIncoming MessageType = 0 // from the contact
	MessageOutgoing MessageType = 1 // from an agent or bot
	MessageActivity MessageType = 2
	MessageTemplate MessageType = 3
)

// Unknown is the subject token for an id that is not known.
const Unknown = "_"

// Route is what fanout learned from one event: where it goes and how it is
// deduplicated. String fields share one allocation.
type Route struct {
	Kind  Kind
	Event string // Chatwoot event name, e.g. "message.created"

	// Subject tokens; Unknown ("_") when not known.
	AccountID      string
	InboxID        string
	ContactID      string
	ConversationID string // display_id

	MessageID   string      // message events; "" otherwise
	MessageType MessageType // message events; MessageUnknown otherwise
	// Status is the conversation status for conversation and typing events
	// and the message status (sent, delivered, read, failed) for message events.
	Status  string
	Private bool // typing event for a private note
	// Visibility is the Chatwoot-Visibility header: VisibilityPrivate,
	// VisibilityActivity, VisibilityAgent, or "" for what a contact of the
	// conversation sees.
	Visibility string
	// EchoID is the echo_id of a message.created that carries one (the
	// contact's own message coming back), when it is a plain token.
	EchoID string

	// DedupKey is the relay's in-process dedup key; "" when the event is not
	// deduplicated. MsgID is the Nats-Msg-Id header: equal to DedupKey except
	// for typing/presence/other events, where a time bucket is appended.
	DedupKey string
	MsgID    string

	Replayed bool
}

// Subject returns <prefix>.<account>.<inbox>.<contact>.<conversation>.<event>.
func (r Route) Subject(prefix string) string {
	return strings.Join([]string{prefix, r.AccountID, r.InboxID, r.ContactID, r.ConversationID, r.Event}, ".")
}

// Observer is a package that learns from every routed event: an account
// feed's route table, the sends waiting for their echo. The fan-out calls
// it on the goroutine handling the event (the websocket reader for live
// events), so Routed must be cheap and never block.
type Observer interface {
	Routed(subID string, r Route)
}

// ObserverFunc adapts a function to an Observer.
type ObserverFunc func(subID string, r Route)

// Routed calls fn.
func (fn ObserverFunc) Routed(subID string, r Route) { fn(subID, r) }
