package chatwoot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestIdentifierHash(t *testing.T) {
	tests := []struct{ key, identifier, want string }{
		// printf '%s' 'jane@example.com' | openssl dgst -sha256 -hmac 'ZsmJaF1hLRd2Zw8QbYc7UqRt'
		{"ZsmJaF1hLRd2Zw8QbYc7UqRt", "jane@example.com", "0f57cbf0c282fd21477fd3b83319164f0ea9c5107488fb776edab59ff08f3710"},
		// RFC 4231-style public vector (also on Wikipedia's HMAC page).
		{"key", "The quick brown fox jumps over the lazy dog", "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
	}
	for _, tt := range tests {
		if got := IdentifierHash(tt.key, tt.identifier); got != tt.want {
			t.Errorf("IdentifierHash(%q, %q) = %s, want %s", tt.key, tt.identifier, got, tt.want)
		}
	}
}

func TestMessageType(t *testing.T) {
	tests := map[string]MessageType{
		`0`: MessageIncoming, `1`: MessageOutgoing, `2`: MessageActivity, `3`: MessageTemplate,
		`"incoming"`: MessageIncoming, `"outgoing"`: MessageOutgoing, `"activity"`: MessageActivity,
		`"template"`: MessageTemplate, `"1"`: MessageOutgoing, `"voice"`: MessageUnknown, `null`: MessageUnknown,
	}
	for in, want := range tests {
		var m Message
		if err := json.Unmarshal([]byte(`{"id":1,"message_type":`+in+`}`), &m); err != nil || m.MessageType != want {
			t.Errorf("message_type %s = %v (%v), want %v", in, m.MessageType, err, want)
		}
	}
	var m Message
	if err := json.Unmarshal([]byte(`{"message_type":{}}`), &m); err == nil {
		t.Error("object message_type accepted")
	}
	if b, _ := json.Marshal(MessageOutgoing); string(b) != "1" {
		t.Errorf("MessageOutgoing marshals to %s", b)
	}
	if MessageTemplate.String() != "template" || MessageType(9).String() != "unknown" {
		t.Error("String names")
	}
}

func TestTimestampsTolerated(t *testing.T) {
	tests := map[string]int64{
		`1795248781`:                 1795248781,
		`1795248781.75`:              1795248781,
		`"1795248781"`:               1795248781,
		`"2026-11-21T08:13:01.658Z"`: 1795248781,
		`null`:                       0,
		`""`:                         0,
	}
	for in, want := range tests {
		var c Conversation
		doc := `{"id":1,"contact_last_seen_at":` + in + `,"agent_last_seen_at":` + in + `,"messages":[{"id":2,"created_at":` + in + `}]}`
		if err := json.Unmarshal([]byte(doc), &c); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if c.ContactLastSeenAt != want || c.AgentLastSeenAt != want || c.Messages[0].CreatedAt != want {
			t.Errorf("%s decoded as %d/%d/%d, want %d", in, c.ContactLastSeenAt, c.AgentLastSeenAt, c.Messages[0].CreatedAt, want)
		}
	}
	var m Message
	if err := json.Unmarshal([]byte(`{"created_at":"yesterday"}`), &m); err == nil {
		t.Error("nonsense timestamp accepted")
	}
}

func TestUnknownFieldsTolerated(t *testing.T) {
	doc := `{"id":5,"future_field":{"a":[1,2]},"content":null,"message_type":1,"status":"read","echo_id":"e"}`
	var m Message
	if err := json.Unmarshal([]byte(doc), &m); err != nil || m.ID != 5 || m.Content != nil {
		t.Fatalf("%+v, %v", m, err)
	}
	if string(m.Raw) != doc {
		t.Errorf("Raw = %s", m.Raw)
	}
}

func TestSecretsRedacted(t *testing.T) {
	c := Contact{ID: 1, SourceID: testSourceID, PubsubToken: "tok-os7FhRoFVZEM", Name: "Jane"}
	p := ContactParams{SourceID: testSourceID, IdentifierHash: "hash-0f57cbf0c282", Name: "Jane"}
	wrapper := struct {
		C  Contact
		CI ContactInbox
		P  *ContactParams
	}{c, testCI, &p}
	secrets := []string{testSourceID, "tok-os7FhRoFVZEM", "hash-0f57cbf0c282", testInbox}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, testCI),
			fmt.Sprintf(verb, p), fmt.Sprintf(verb, wrapper))
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "contact", c, "ci", testCI, "params", p)
	log.Info("x", "contact", &c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "contact", c, "ci", testCI)
	outs = append(outs, buf.String())

	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%q leaks %q", out, s)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(c), "PubsubToken:REDACTED") || !strings.Contains(buf.String(), `"pubsub_token":"REDACTED"`) {
		t.Errorf("redaction markers missing: %v / %s", c, buf.String())
	}
	// encoding/json keeps the token: it is handed to its owner.
	if b, _ := json.Marshal(c); !bytes.Contains(b, []byte("tok-os7FhRoFVZEM")) {
		t.Errorf("json lost the token: %s", b)
	}
}

func FuzzMessageUnmarshal(f *testing.F) {
	f.Add([]byte(`{"id":1,"content":"hi","message_type":"outgoing","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"message_type":null,"created_at":1.5e9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if json.Unmarshal(b, &m) == nil && !json.Valid(m.Raw) {
			t.Errorf("Raw %q is not JSON", m.Raw)
		}
	})
}
