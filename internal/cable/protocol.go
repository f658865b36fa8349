package cable

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/relayhq/relay/internal/jsonscan"
)

// Protocol is the ActionCable subprotocol the client offers and accepts.
const Protocol = "actioncable-v1-json"

// FrameType is the kind of a frame sent by an ActionCable server.
type FrameType uint8

// The frames an ActionCable server sends (rails actioncable/lib/action_cable.rb).
const (
	FrameInvalid    FrameType = iota
	FrameWelcome              // {"type":"welcome"}
	FramePing                 // {"type":"ping","message":<unix seconds>}
	FrameConfirm              // {"identifier":"...","type":"confirm_subscription"}
	FrameReject               // {"identifier":"...","type":"reject_subscription"}
	FrameDisconnect           // {"type":"disconnect","reason":"...","reconnect":bool}
	FrameBroadcast            // {"identifier":"...","message":{...}}
)

var frameTypeNames = [...]string{"invalid", "welcome", "ping", "confirm", "reject", "disconnect", "broadcast"}

func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return "invalid"
}

// Frame is one decoded server frame. Its byte slices alias the buffer given
// to Decode: copy them before the buffer is reused.
type Frame struct {
	Type FrameType
	// Identifier is the identifier as it appears on the wire, still
	// JSON-escaped and without its quotes. Compare it with Identifier.Key.
	Identifier []byte
	// Message is the raw JSON value of "message": the broadcast payload, or
	// the ping's timestamp.
	Message []byte
	// Reason and Reconnect are set for FrameDisconnect.
	Reason    []byte
	Reconnect bool
	// Fields are the values of Message that DecodeFields was asked for,
	// captured while the frame was read; offsets are relative to Message.
	Fields jsonscan.Fields
}

// Decode errors. Callers count them; none is fatal to a connection.
var (
	ErrMalformed   = errors.New("cable: malformed frame")
	ErrUnknownType = errors.New("cable: unknown frame type")
)

// Decode parses one server frame into f, reusing f. It validates the JSON
// structure of the whole frame, keeps raw slices of the fields a client
// needs and allocates nothing.
func Decode(b []byte, f *Frame) error { return DecodeFields(b, f, nil) }

// DecodeFields is Decode that also captures, in the same pass, the values
// of the message that t names into f.Fields (nil t: none).
func DecodeFields(b []byte, f *Frame, t *jsonscan.Table) error {
	*f = Frame{}
	var typ []byte
	hasMessage := false
	s := jsonscan.At(b, 0)
	s.Space()
	if !s.Consume('{') {
		return ErrMalformed
	}
	s.Space()
	if s.Consume('}') {
		return fmt.Errorf("%w: empty object", ErrMalformed)
	}
	for more := true; more; {
		s.Space()
		key, esc, ok := s.Key()
		if !ok {
			return ErrMalformed
		}
		if esc {
			key = jsonscan.Unescape(key) // rare: allocates
		}
		start := s.Pos()
		if string(key) == "message" && t != nil {
			ok = s.Capture(t, &f.Fields)
		} else {
			ok = s.Value()
		}
		if !ok {
			return ErrMalformed
		}
		if err := f.member(key, b[start:s.Pos()], &typ, &hasMessage); err != nil {
			return err
		}
		if more, ok = s.More('}'); !ok {
			return ErrMalformed
		}
	}
	s.Space()
	if !s.Done() {
		return fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return f.classify(typ, hasMessage)
}

// member keeps the value val of the frame's member key.
func (f *Frame) member(key, val []byte, typ *[]byte, hasMessage *bool) error {
	var ok bool
	switch string(key) {
	case "type":
		if *typ, ok = unquote(val); !ok {
			return fmt.Errorf("%w: type is not a string", ErrMalformed)
		}
	case "identifier":
		if f.Identifier, ok = unquote(val); !ok {
			return fmt.Errorf("%w: identifier is not a string", ErrMalformed)
		}
	case "message":
		f.Message, *hasMessage = val, true
	case "reason":
		f.Reason, _ = unquote(val)
	case "reconnect":
		f.Reconnect = string(val) == "true"
	}
	return nil
}

func (f *Frame) classify(typ []byte, hasMessage bool) error {
	switch {
	case typ == nil && hasMessage && f.Identifier != nil:
		f.Type = FrameBroadcast
		return nil
	case typ == nil:
		return fmt.Errorf("%w: no type", ErrMalformed)
	}
	switch string(typ) {
	case "welcome":
		f.Type = FrameWelcome
	case "ping":
		f.Type = FramePing
	case "confirm_subscription":
		f.Type = FrameConfirm
	case "reject_subscription":
		f.Type = FrameReject
	case "disconnect":
		f.Type = FrameDisconnect
	default:
		return ErrUnknownType
	}
	if (f.Type == FrameConfirm || f.Type == FrameReject) && f.Identifier == nil {
		return fmt.Errorf("%w: %s without identifier", ErrMalformed, f.Type)
	}
	return nil
}

// unquote strips the quotes of a JSON string value without unescaping it.
func unquote(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// Identifier is a RoomChannel identifier for one pubsub token, built once:
// every command for the token embeds the same bytes, because Chatwoot keys
// subscriptions by the exact identifier string (chatwoot-protocol.md §1.5,
// §7.4).
type Identifier struct {
	// Key is the identifier as a JSON string body (escaped, unquoted): what
	// commands embed and servers echo in confirm and broadcast frames.
	Key string
}

// NewIdentifier builds the identifier for a pubsub token.
func NewIdentifier(token string) Identifier {
	q := quote(`{"channel":"RoomChannel","pubsub_token":` + quote(token) + `}`)
	return Identifier{Key: q[1 : len(q)-1]}
}

// NewUserIdentifier builds the identifier of a Chatwoot user's
// subscription to one account: the dashboard's
// {"channel":"RoomChannel","pubsub_token":"…","account_id":N,"user_id":M}.
func NewUserIdentifier(token string, accountID, userID int64) Identifier {
	q := quote(`{"channel":"RoomChannel","pubsub_token":` + quote(token) +
		`,"account_id":` + strconv.FormatInt(accountID, 10) + `,"user_id":` + strconv.FormatInt(userID, 10) + `}`)
	return Identifier{Key: q[1 : len(q)-1]}
}

// Subscribe returns the subscribe command.
func (id Identifier) Subscribe() []byte { return id.command("subscribe", "") }

// Unsubscribe returns the unsubscribe command.
func (id Identifier) Unsubscribe() []byte { return id.command("unsubscribe", "") }

// UpdatePresence returns the RoomChannel update_presence command.
func (id Identifier) UpdatePresence() []byte {
	return id.command("message", `"{\"action\":\"update_presence\"}"`)
}

func (id Identifier) command(cmd, quotedData string) []byte {
	return []byte(commandString(cmd, `"`+id.Key+`"`, quotedData))
}

// EncodeCommand builds a client command. identifier is the plain identifier
// JSON; data, when not empty, is the plain JSON object for a "message"
// command. Both are sent as JSON strings, as ActionCable requires.
func EncodeCommand(command, identifier, data string) []byte {
	d := ""
	if data != "" {
		d = quote(data)
	}
	return []byte(commandString(command, quote(identifier), d))
}

func commandString(cmd, quotedIdentifier, quotedData string) string {
	s := `{"command":"` + cmd + `","identifier":` + quotedIdentifier
	if quotedData != "" {
		s += `,"data":` + quotedData
	}
	return s + "}"
}

// quote returns s as a JSON string literal.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// canonicalKey turns an identifier as echoed by a server into the key the
// client built, for servers that escape differently (\u0022, \/ ...).
func canonicalKey(wire []byte) (string, bool) {
	var plain string
	buf := make([]byte, 0, len(wire)+2)
	buf = append(append(append(buf, '"'), wire...), '"')
	if err := json.Unmarshal(buf, &plain); err != nil {
		return "", false
	}
	q := quote(plain)
	return q[1 : len(q)-1], true
}
