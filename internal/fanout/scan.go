package fanout

import (
	"errors"

	"github.com/relayhq/relay/internal/jsonscan"
)

// The fan-out routes, filters and deduplicates by a few values of a
// message, listed in the field tree below. The cable client captures them
// while it decodes a live broadcast frame (Fields is the table it is
// given), so the message is read once; a message that comes without them
// (a replay, a test) is scanned here by the same scanner. Captured values
// are sub-slices of the message: no maps, no reflection, no allocation.

// slot names one captured value.
type slot int8

const (
	slotEvent          slot = iota // event
	slotAccount                    // data.account_id
	slotInbox                      // data.inbox_id
	slotConversationID             // data.conversation_id (messages)
	slotID                         // data.id (message id / conversation display_id)
	slotUpdatedAt                  // data.updated_at
	slotTimestamp                  // data.timestamp
	slotMessageType                // data.message_type
	slotPrivate                    // data.is_private (typing)
	slotStatus                     // data.status
	slotSenderType                 // data.sender_type ("Contact", "User", ...)
	slotSenderID                   // data.sender_id
	slotCIContact                  // data.contact_inbox.contact_id
	slotCIInbox                    // data.contact_inbox.inbox_id
	slotMetaSender                 // data.meta.sender.id
	slotSenderObjID                // data.sender.id
	slotSenderObjType              // data.sender.type ("contact", "user", ...)
	slotConvObjID                  // data.conversation.id (typing)
	slotConvObjInbox               // data.conversation.inbox_id
	slotConvObjStatus              // data.conversation.status
	slotConvCIContact              // data.conversation.contact_inbox.contact_id
	slotConvMetaSender             // data.conversation.meta.sender.id
	slotEchoID                     // data.echo_id (a contact's own message, echoed)
	slotMsgPrivate                 // data.private (a message that is a private note)
	numSlots
	noSlot slot = -1
)

// Value kinds.
const (
	kindAbsent  = jsonscan.Absent
	kindString  = jsonscan.String  // raw holds the content between the quotes, no escapes
	kindEscaped = jsonscan.Escaped // string content containing backslash escapes
	kindNumber  = jsonscan.Number
	kindBool    = jsonscan.Bool
	kindNull    = jsonscan.Null
	kindNested  = jsonscan.Nested // object or array where a scalar was expected; raw is nil
)

type value struct {
	raw  []byte
	kind jsonscan.Kind
}

// present reports whether the value carries something other than null.
func (v value) present() bool { return v.kind != kindAbsent && v.kind != kindNull }

// text returns the value as text: string content (unescaped if needed) or
// the literal. Only escaped strings allocate.
func (v value) text() []byte {
	if v.kind != kindEscaped {
		return v.raw
	}
	return jsonscan.Unescape(v.raw)
}

type fields [numSlots]value

// Fields is the table of the values the fan-out reads in a message: give
// it to cable.Config.Fields, and Deliver routes live broadcasts by what
// the cable reader captured instead of reading their messages again.
var Fields = jsonscan.Compile(rootNode)

// The capacity of jsonscan.Fields holds every slot.
var _ [jsonscan.MaxFields - int(numSlots)]struct{}

type node = jsonscan.Node

func leaf(s slot) jsonscan.Entry { return jsonscan.Leaf(int(s)) }
func sub(n node) jsonscan.Entry  { return jsonscan.Object(n) }
func senderNode(s slot) node     { return node{"id": leaf(s)} }

var rootNode = node{
	"event": leaf(slotEvent),
	"data": sub(node{
		"account_id":      leaf(slotAccount),
		"inbox_id":        leaf(slotInbox),
		"conversation_id": leaf(slotConversationID),
		"id":              leaf(slotID),
		"updated_at":      leaf(slotUpdatedAt),
		"timestamp":       leaf(slotTimestamp),
		"message_type":    leaf(slotMessageType),
		"is_private":      leaf(slotPrivate),
		"status":          leaf(slotStatus),
		"sender_type":     leaf(slotSenderType),
		"sender_id":       leaf(slotSenderID),
		"echo_id":         leaf(slotEchoID),
		"private":         leaf(slotMsgPrivate),
		"contact_inbox":   sub(node{"contact_id": leaf(slotCIContact), "inbox_id": leaf(slotCIInbox)}),
		"meta":            sub(node{"sender": sub(senderNode(slotMetaSender))}),
		"sender":          sub(node{"id": leaf(slotSenderObjID), "type": leaf(slotSenderObjType)}),
		"conversation": sub(node{
			"id":            leaf(slotConvObjID),
			"inbox_id":      leaf(slotConvObjInbox),
			"status":        leaf(slotConvObjStatus),
			"contact_inbox": sub(node{"contact_id": leaf(slotConvCIContact)}),
			"meta":          sub(node{"sender": sub(senderNode(slotConvMetaSender))}),
		}),
	}),
}

// Scanner errors.
var (
	errNotObject = errors.New("fanout: message is not a JSON object")
	errSyntax    = errors.New("fanout: malformed JSON")
)

// read fills f from ev's message: from what the cable reader captured with
// Fields, or else by scanning the message.
func (f *fields) read(ev *Event) error {
	if !ev.Fields.Of(Fields) {
		return scanMessage(ev.Message, f)
	}
	if len(ev.Message) == 0 || ev.Message[0] != '{' {
		return errNotObject
	}
	return f.load(ev.Message, &ev.Fields)
}

// scanMessage validates the message object b and fills f from it.
func scanMessage(b []byte, f *fields) error {
	s := jsonscan.At(b, 0)
	s.Space()
	start := s.Pos()
	if s.Peek() != '{' {
		return errNotObject
	}
	var c jsonscan.Fields
	if !s.Capture(Fields, &c) {
		return errSyntax
	}
	s.Space()
	if !s.Done() {
		return errSyntax
	}
	return f.load(b[start:], &c)
}

// load fills f with the values c captured from msg.
func (f *fields) load(msg []byte, c *jsonscan.Fields) error {
	for i := range f {
		v := c.Get(i)
		switch {
		case v.Kind == kindAbsent:
			f[i] = value{}
		case v.End > uint32(len(msg)) || v.Start > v.End:
			return errSyntax // captured from other bytes than these
		case v.Kind == kindNested:
			f[i] = value{kind: kindNested}
		default:
			f[i] = value{raw: msg[v.Start:v.End], kind: v.Kind}
		}
	}
	return nil
}
