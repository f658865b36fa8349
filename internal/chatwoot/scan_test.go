package chatwoot

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/relayhq/relay/internal/fixtures"
)

// refMessage and refConversation decode through encoding/json alone: the
// behaviour the one-pass decoders must match.
type refMessage Message

func (m *refMessage) UnmarshalJSON(b []byte) error {
	type plain Message
	var v struct {
		plain
		CreatedAt unixTime `json:"created_at"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = refMessage(v.plain)
	m.CreatedAt = int64(v.CreatedAt)
	m.Raw = bytes.Clone(b)
	return nil
}

type refConversation struct {
	Conversation
	Messages []refMessage `json:"messages"`
}

func (c *refConversation) UnmarshalJSON(b []byte) error {
	type plain Conversation
	var v struct {
		plain
		ContactLastSeenAt unixTime     `json:"contact_last_seen_at"`
		AgentLastSeenAt   unixTime     `json:"agent_last_seen_at"`
		Messages          []refMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	c.Conversation = Conversation(v.plain)
	c.ContactLastSeenAt, c.AgentLastSeenAt = int64(v.ContactLastSeenAt), int64(v.AgentLastSeenAt)
	c.Raw = bytes.Clone(b)
	c.Messages = v.Messages
	return nil
}

func (c *refConversation) conversation() Conversation {
	out := c.Conversation
	out.Messages = nil
	if c.Messages != nil {
		out.Messages = make([]Message, len(c.Messages))
		for i := range c.Messages {
			out.Messages[i] = Message(c.Messages[i])
		}
	}
	return out
}

// checkSameAsEncodingJSON decodes b as a conversations index, a
// conversation and a message, through the one-pass decoders and through
// encoding/json, and fails on any difference.
func checkSameAsEncodingJSON(t *testing.T, b []byte) {
	t.Helper()
	var list []Conversation
	errList := conversationList(&list)(b)
	var refList []refConversation
	errRefList := decodeAs(b, '[', &refList)
	if (errList == nil) != (errRefList == nil) {
		t.Fatalf("list: one-pass %v, encoding/json %v", errList, errRefList)
	}
	if errList == nil {
		if len(list) != len(refList) {
			t.Fatalf("list: %d conversations, encoding/json %d", len(list), len(refList))
		}
		for i := range list {
			if want := refList[i].conversation(); !reflect.DeepEqual(list[i], want) {
				t.Fatalf("conversation %d:\n one-pass %+v\n encoding/json %+v", i, list[i], want)
			}
		}
	}
	var c Conversation
	errC := json.Unmarshal(b, &c)
	var refC refConversation
	errRefC := json.Unmarshal(b, &refC)
	if (errC == nil) != (errRefC == nil) {
		t.Fatalf("conversation: one-pass %v, encoding/json %v", errC, errRefC)
	}
	if want := refC.conversation(); errC == nil && !reflect.DeepEqual(c, want) {
		t.Fatalf("conversation:\n one-pass %+v\n encoding/json %+v", c, want)
	}
	var m Message
	errM := json.Unmarshal(b, &m)
	var refM refMessage
	errRefM := json.Unmarshal(b, &refM)
	if (errM == nil) != (errRefM == nil) {
		t.Fatalf("message: one-pass %v, encoding/json %v", errM, errRefM)
	}
	if errM == nil && !reflect.DeepEqual(m, Message(refM)) {
		t.Fatalf("message:\n one-pass %+v\n encoding/json %+v", m, Message(refM))
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, name := range []string{"conversations_index.json", "messages_index.json", "conversation_create.json", "message_create.json"} {
		b := fixtures.Read(t, "api/"+name)
		t.Run(name, func(t *testing.T) { checkSameAsEncodingJSON(t, b) })
	}
	for _, in := range decodeSeeds {
		t.Run(in, func(t *testing.T) { checkSameAsEncodingJSON(t, []byte(in)) })
	}
}

var decodeSeeds = []string{
	`[]`, `{}`, `null`, `[null]`, `[{"messages":null}]`, `[{"messages":[null,{}]}]`,
	`[{"id":1,"ID":2,"Status":"open","messages":[{"id":3,"Content":"a\"b\\","message_type":"outgoing","created_at":"2026-01-01T00:00:00Z"}]}]`,
	`{"id":1.5}`, `{"id":"1"}`, `{"\u0069d":7,"content":null,"content_type":null,"sender":null}`,
	`{"content":"caf\u00e9 \ud83d\ude00","content_attributes":{"a":[1,{"b":"}"}]},"attachments":[{"x":"]"}]}`,
	`[{"messages":{}}]`, `[{"contact":{"id":"x"}}]`, `[{"contact_last_seen_at":"bad"}]`, `[1]`, `[{"messages":[1]}]`,
	" [ { \"id\" : 1 , \"messages\" : [ { \"id\" : 2 } ] } ] ",
	`{"content":"\u017fnowman"}`, `{"ſtatus":"x","status":"open"}`, "{\"content\":\"\xff\"}",
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, in := range decodeSeeds {
		f.Add([]byte(in))
	}
	for _, name := range []string{"conversations_index.json", "messages_index.json"} {
		f.Add(fixtures.Read(f, "api/"+name))
	}
	f.Fuzz(checkSameAsEncodingJSON)
}
