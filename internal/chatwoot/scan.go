package chatwoot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The REST conversation embeds every message of the conversation, so a
// contact's conversations list grows with its whole history, and catch-up
// reads it after every reconnect. Decoding it through encoding/json with a
// custom UnmarshalJSON per level scanned each message six times; the
// scanner below walks a conversation once, and hands each member's raw
// value to a small decoder. encoding/json has already checked that the
// input is valid JSON when it calls UnmarshalJSON; on malformed input
// (a direct call) the scanner returns errMalformed and never panics.

// errMalformed: the input is not well-formed JSON.
var errMalformed = errors.New("chatwoot: malformed JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errMalformed
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		return nestedEnd(b, i)
	}
	j := i
	for j < len(b) && !endsLiteral(b[j]) {
		j++
	}
	if j == i {
		return 0, errMalformed
	}
	return j, nil
}

func endsLiteral(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			break
		}
		j += q
		escapes := 0 // a quote after an odd run of backslashes is escaped
		for k := j - 1; k > i && b[k] == '\\'; k-- {
			escapes++
		}
		if escapes%2 == 0 {
			return j + 1, nil
		}
		j++
	}
	return 0, errMalformed
}

// nestedEnd returns the index just past the object or array at b[i].
func nestedEnd(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, err := stringEnd(b, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, errMalformed
}

// eachMember calls fn with the key (still quoted-escaped, without its
// quotes) and the raw value of every member of the object b, in order.
func eachMember(b []byte, fn func(key, val []byte) error) error {
	return eachMemberAt(b, func(key []byte, start, end int) error { return fn(key, b[start:end]) })
}

// ReplaceMember returns a copy of the JSON object raw with the value of its
// top-level member name replaced by val, the rest byte for byte; raw itself
// when it is not an object or has no such member.
func ReplaceMember(raw []byte, name string, val []byte) []byte {
	start, end := -1, -1
	err := eachMemberAt(raw, func(key []byte, s, e int) error {
		if start < 0 && keyIs(key, name) {
			start, end = s, e
		}
		return nil
	})
	if err != nil || start < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)-(end-start)+len(val))
	out = append(out, raw[:start]...)
	out = append(out, val...)
	return append(out, raw[end:]...)
}

// eachMemberAt is eachMember with each value given as its span in b.
func eachMemberAt(b []byte, fn func(key []byte, start, end int) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errMalformed
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return trailing(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return errMalformed
		}
		kEnd, err := stringEnd(b, i)
		if err != nil {
			return err
		}
		key := b[i+1 : kEnd-1]
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return errMalformed
		}
		i = skipSpace(b, i+1)
		vEnd, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, i, vEnd); err != nil {
			return err
		}
		i = skipSpace(b, vEnd)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == '}':
			return trailing(b, i+1)
		default:
			return errMalformed
		}
	}
}

// eachElement calls fn with every element of the array b, in order.
func eachElement(b []byte, fn func(val []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return errMalformed
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return trailing(b, i+1)
	}
	for {
		vEnd, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:vEnd]); err != nil {
			return err
		}
		i = skipSpace(b, vEnd)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == ']':
			return trailing(b, i+1)
		default:
			return errMalformed
		}
	}
}

func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errMalformed
	}
	return nil
}

// keyIs reports whether a member key matches name as encoding/json
// matches a field: exactly, else without regard to case.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		var k string
		if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) != nil {
			return false
		}
		key = []byte(k)
	}
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

func isNull(v []byte) bool { return string(v) == "null" }

// decodeInt sets *dst from a JSON integer; null leaves it as it is.
func decodeInt(v []byte, dst *int64, field string) error {
	if isNull(v) {
		return nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return fmt.Errorf("chatwoot: %s: want an integer, got %.20q", field, v)
	}
	*dst = n
	return nil
}

// decodeString sets *dst from a JSON string; null leaves it as it is.
func decodeString(v []byte, dst *string, field string) error {
	switch {
	case isNull(v):
		return nil
	case len(v) < 2 || v[0] != '"':
		return fmt.Errorf("chatwoot: %s: want a string, got %.20q", field, v)
	case bytes.IndexByte(v, '\\') < 0 && isPlainText(v[1:len(v)-1]):
		*dst = string(v[1 : len(v)-1])
		return nil
	}
	return json.Unmarshal(v, dst)
}

// isPlainText reports whether s needs no unquoting: printable ASCII only
// (encoding/json replaces invalid UTF-8, so anything else goes through it).
func isPlainText(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

// decodeMessage fills m from the message object b, whose bytes it keeps:
// Raw and the raw fields are slices of b.
func decodeMessage(b []byte, m *Message) error {
	*m = Message{Raw: b}
	if isNull(bytes.TrimSpace(b)) {
		return nil
	}
	return eachMember(b, func(key, v []byte) error {
		switch {
		case keyIs(key, "id"):
			return decodeInt(v, &m.ID, "message id")
		case keyIs(key, "content"):
			if isNull(v) {
				m.Content = nil
				return nil
			}
			var s string
			if err := decodeString(v, &s, "message content"); err != nil {
				return err
			}
			m.Content = &s
		case keyIs(key, "message_type"):
			return m.MessageType.UnmarshalJSON(v)
		case keyIs(key, "content_type"):
			return decodeString(v, &m.ContentType, "message content_type")
		case keyIs(key, "content_attributes"):
			m.ContentAttributes = v
		case keyIs(key, "created_at"):
			var t unixTime
			if err := t.UnmarshalJSON(v); err != nil {
				return err
			}
			m.CreatedAt = int64(t)
		case keyIs(key, "conversation_id"):
			return decodeInt(v, &m.ConversationID, "message conversation_id")
		case keyIs(key, "attachments"):
			m.Attachments = v
		case keyIs(key, "sender"):
			m.Sender = v
		}
		return nil
	})
}

// decodeConversation fills c from the conversation object b, whose bytes
// it keeps: Raw, and the messages' Raw, are slices of b.
func decodeConversation(b []byte, c *Conversation) error {
	*c = Conversation{Raw: b}
	if isNull(bytes.TrimSpace(b)) {
		return nil
	}
	return eachMember(b, func(key, v []byte) error {
		switch {
		case keyIs(key, "id"):
			return decodeInt(v, &c.ID, "conversation id")
		case keyIs(key, "uuid"):
			return decodeString(v, &c.UUID, "conversation uuid")
		case keyIs(key, "inbox_id"):
			return decodeInt(v, &c.InboxID, "conversation inbox_id")
		case keyIs(key, "status"):
			return decodeString(v, &c.Status, "conversation status")
		case keyIs(key, "contact_last_seen_at"), keyIs(key, "agent_last_seen_at"):
			var t unixTime
			if err := t.UnmarshalJSON(v); err != nil {
				return err
			}
			if keyIs(key, "contact_last_seen_at") {
				c.ContactLastSeenAt = int64(t)
			} else {
				c.AgentLastSeenAt = int64(t)
			}
		case keyIs(key, "messages"):
			return decodeMessages(v, c)
		case keyIs(key, "contact"):
			return json.Unmarshal(v, &c.Contact)
		}
		return nil
	})
}

func decodeMessages(v []byte, c *Conversation) error {
	if isNull(v) {
		c.Messages = nil
		return nil
	}
	if v[0] != '[' {
		return fmt.Errorf("chatwoot: conversation messages: want an array, got %.20q", v)
	}
	c.Messages = []Message{} // grown by append: a count taken from the bytes could be inflated by string values
	return eachElement(v, func(e []byte) error {
		c.Messages = append(c.Messages, Message{})
		return decodeMessage(e, &c.Messages[len(c.Messages)-1])
	})
}
