package cable

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/jsonscan"
)

const fixtureToken = "os7FhRoFVZEMeCwQpWaJFUxv"

func TestDecodeFixtures(t *testing.T) {
	key := NewIdentifier(fixtureToken).Key
	files := fixtures.Names(t, "cable")
	if len(files) < 16 {
		t.Fatalf("%d fixtures", len(files))
	}
	want := map[string]FrameType{
		"00_welcome.json":                     FrameWelcome,
		"00_ping.json":                        FramePing,
		"00_confirm_subscription.json":        FrameConfirm,
		"00_reject_subscription.json":         FrameReject,
		"00_disconnect_server_restart.json":   FrameDisconnect,
		"00_presence.update.json":             FrameBroadcast,
		"03_message.created.agent_reply.json": FrameBroadcast,
	}
	for _, file := range files {
		b := []byte(strings.TrimSpace(string(fixtures.Read(t, "cable/"+file))))
		var f Frame
		if err := Decode(b, &f); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		name := file
		if w, ok := want[name]; ok && f.Type != w {
			t.Errorf("%s: type %v, want %v", name, f.Type, w)
		}
		if !strings.HasPrefix(name, "00_") && f.Type != FrameBroadcast {
			t.Errorf("%s: type %v, want broadcast", name, f.Type)
		}
		if f.Identifier != nil && string(f.Identifier) != key {
			t.Errorf("%s: identifier %q does not match the built key %q", name, f.Identifier, key)
		}
		if f.Type == FrameBroadcast {
			var env struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(f.Message, &env); err != nil || env.Event == "" || len(env.Data) == 0 {
				t.Errorf("%s: message is not the event envelope: %v", name, err)
			}
		}
	}
}

func TestDecodeTable(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		typ       FrameType
		err       error
		ident     string
		message   string
		reason    string
		reconnect bool
	}{
		{name: "welcome", in: `{"type":"welcome"}`, typ: FrameWelcome},
		{name: "welcome with sid", in: `{"type":"welcome","sid":"abc"}`, typ: FrameWelcome},
		{name: "ping", in: `{"type":"ping","message":1795248781}`, typ: FramePing, message: "1795248781"},
		{name: "spaces", in: " {\n \"type\" : \"ping\" , \"message\" : 1 } \n", typ: FramePing, message: "1"},
		{name: "confirm", in: `{"identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"x\"}","type":"confirm_subscription"}`,
			typ: FrameConfirm, ident: `{\"channel\":\"RoomChannel\",\"pubsub_token\":\"x\"}`},
		{name: "reject", in: `{"type":"reject_subscription","identifier":"i"}`, typ: FrameReject, ident: "i"},
		{name: "disconnect", in: `{"type":"disconnect","reason":"server_restart","reconnect":true}`,
			typ: FrameDisconnect, reason: "server_restart", reconnect: true},
		{name: "disconnect no reconnect", in: `{"type":"disconnect","reason":"unauthorized","reconnect":false}`,
			typ: FrameDisconnect, reason: "unauthorized"},
		{name: "broadcast", in: `{"identifier":"i","message":{"event":"e","data":{"a":[1,2.5e-3,"\u00e9",null,true,false,{}]}}}`,
			typ: FrameBroadcast, ident: "i", message: `{"event":"e","data":{"a":[1,2.5e-3,"\u00e9",null,true,false,{}]}}`},
		{name: "broadcast message first", in: `{"message":{"x":1},"identifier":"i"}`, typ: FrameBroadcast, ident: "i", message: `{"x":1}`},
		{name: "unknown type", in: `{"type":"hello"}`, err: ErrUnknownType},
		{name: "confirm without identifier", in: `{"type":"confirm_subscription"}`, err: ErrMalformed},
		{name: "no type", in: `{"message":1}`, err: ErrMalformed},
		{name: "identifier only", in: `{"identifier":"i"}`, err: ErrMalformed},
		{name: "empty object", in: `{}`, err: ErrMalformed},
		{name: "empty", in: ``, err: ErrMalformed},
		{name: "array", in: `[{"type":"welcome"}]`, err: ErrMalformed},
		{name: "type number", in: `{"type":1}`, err: ErrMalformed},
		{name: "identifier object", in: `{"identifier":{"a":1},"message":{}}`, err: ErrMalformed},
		{name: "truncated", in: `{"identifier":"i","message":{"event":"e"`, err: ErrMalformed},
		{name: "trailing", in: `{"type":"welcome"}x`, err: ErrMalformed},
		{name: "two objects", in: `{"type":"welcome"}{"type":"welcome"}`, err: ErrMalformed},
		{name: "bad literal", in: `{"identifier":"i","message":tru}`, err: ErrMalformed},
		{name: "bad number", in: `{"identifier":"i","message":01}`, err: ErrMalformed},
		{name: "bad exponent", in: `{"identifier":"i","message":1e}`, err: ErrMalformed},
		{name: "bad escape", in: `{"identifier":"\x","message":1}`, err: ErrMalformed},
		{name: "short unicode escape", in: `{"identifier":"\u12","message":1}`, err: ErrMalformed},
		{name: "control char in string", in: "{\"identifier\":\"a\nb\",\"message\":1}", err: ErrMalformed},
		{name: "missing colon", in: `{"type" "welcome"}`, err: ErrMalformed},
		{name: "missing comma", in: `{"type":"welcome" "a":1}`, err: ErrMalformed},
		{name: "trailing comma", in: `{"type":"welcome",}`, err: ErrMalformed},
		{name: "array trailing comma", in: `{"identifier":"i","message":[1,]}`, err: ErrMalformed},
		{name: "unquoted key", in: `{type:"welcome"}`, err: ErrMalformed},
		{name: "deep nesting", in: `{"identifier":"i","message":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, err: ErrMalformed},
		{name: "garbage", in: "\x00\xff", err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			err := Decode([]byte(tt.in), &f)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != tt.typ || string(f.Identifier) != tt.ident || string(f.Message) != tt.message ||
				string(f.Reason) != tt.reason || f.Reconnect != tt.reconnect {
				t.Fatalf("got %+v (ident %q message %q reason %q)", f, f.Identifier, f.Message, f.Reason)
			}
		})
	}
}

func TestIdentifierCommands(t *testing.T) {
	id := NewIdentifier(fixtureToken)
	wantIdent := `{"channel":"RoomChannel","pubsub_token":"os7FhRoFVZEMeCwQpWaJFUxv"}`
	for _, tt := range []struct {
		cmd  []byte
		name string
		data string
	}{
		{id.Subscribe(), "subscribe", ""},
		{id.Unsubscribe(), "unsubscribe", ""},
		{id.UpdatePresence(), "message", `{"action":"update_presence"}`},
	} {
		var c struct {
			Command    string  `json:"command"`
			Identifier string  `json:"identifier"`
			Data       *string `json:"data"`
		}
		if err := json.Unmarshal(tt.cmd, &c); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Command != tt.name || c.Identifier != wantIdent {
			t.Errorf("%s: got %+v", tt.name, c)
		}
		if (tt.data == "") != (c.Data == nil) || (c.Data != nil && *c.Data != tt.data) {
			t.Errorf("%s: data %v, want %q", tt.name, c.Data, tt.data)
		}
	}
	// Built once, reused byte for byte: the same token gives the same bytes.
	if string(NewIdentifier(fixtureToken).Subscribe()) != string(id.Subscribe()) {
		t.Error("identifier is not stable")
	}
	if got := string(EncodeCommand("subscribe", wantIdent, "")); got != string(id.Subscribe()) {
		t.Errorf("EncodeCommand = %s, want %s", got, id.Subscribe())
	}
}

func TestIdentifierEscapesToken(t *testing.T) {
	id := NewIdentifier(`we"ird\<tok>`)
	var c struct{ Identifier string }
	if err := json.Unmarshal(id.Subscribe(), &c); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Channel string `json:"channel"`
		Token   string `json:"pubsub_token"`
	}
	if err := json.Unmarshal([]byte(c.Identifier), &p); err != nil || p.Token != `we"ird\<tok>` || p.Channel != "RoomChannel" {
		t.Fatalf("identifier %q decodes to %+v, %v", c.Identifier, p, err)
	}
}

func TestCanonicalKey(t *testing.T) {
	id := NewIdentifier(fixtureToken)
	// The same identifier escaped another way by a server.
	alt := `{\u0022channel\u0022:\u0022RoomChannel\u0022,\u0022pubsub_token\u0022:\u0022os7FhRoFVZEMeCwQpWaJFUxv\u0022}`
	got, ok := canonicalKey([]byte(alt))
	if !ok || got != id.Key {
		t.Fatalf("canonicalKey = %q, %v; want %q", got, ok, id.Key)
	}
	if _, ok := canonicalKey([]byte(`\q`)); ok {
		t.Fatal("bad escape accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range fixtures.Names(f, "cable") {
		f.Add(fixtures.Read(f, "cable/"+name))
	}
	f.Add([]byte(`{"type":"ping","message":-0.5E+3}`))
	f.Add([]byte(`{"identifier":"\u0041","message":[{},[],""]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		err := Decode(b, &fr)
		valid := json.Valid(b)
		if err == nil && !valid {
			t.Fatalf("Decode accepted invalid JSON %q", b)
		}
		if err != nil {
			return
		}
		if fr.Message != nil && !json.Valid(fr.Message) {
			t.Fatalf("message slice %q is not valid JSON", fr.Message)
		}
		if fr.Type == FrameBroadcast && fr.Identifier == nil {
			t.Fatal("broadcast without identifier")
		}
	})
}

func TestUserIdentifier(t *testing.T) {
	id := NewUserIdentifier(`tok"1`, 3, 42)
	var c struct{ Identifier string }
	if err := json.Unmarshal(id.Subscribe(), &c); err != nil {
		t.Fatal(err)
	}
	if want := `{"channel":"RoomChannel","pubsub_token":"tok\"1","account_id":3,"user_id":42}`; c.Identifier != want {
		t.Fatalf("identifier %s, want %s", c.Identifier, want)
	}
	ids := map[string]bool{SubscriptionID("t"): true, UserSubscriptionID("t", 1): true, UserSubscriptionID("t", 2): true}
	if len(ids) != 3 || UserSubscriptionID("t", 1) != UserSubscriptionID("t", 1) {
		t.Errorf("subscription ids not distinct and stable: %v", ids)
	}
}

// testFields is a capture table like the fan-out's: slot 0 event, 1
// data.id, 2 data.sender.type.
var testFields = jsonscan.Compile(jsonscan.Node{
	"event": jsonscan.Leaf(0),
	"data":  jsonscan.Object(jsonscan.Node{"id": jsonscan.Leaf(1), "sender": jsonscan.Object(jsonscan.Node{"type": jsonscan.Leaf(2)})}),
})

// captured returns the text of slot i of f.Fields, read in f.Message.
func captured(f *Frame, i int) string {
	v := f.Fields.Get(i)
	return string(v.Kind) + ":" + string(f.Message[v.Start:v.End])
}

// The message's fields are captured in the frame's one pass, wherever the
// message stands and whatever surrounds it; a repeated "message" counts
// by its last value, fields included.
func TestDecodeFields(t *testing.T) {
	msg := `{"data":{"sender":{"type":"user","id":9},"x":[{"id":0}],"id":42},"event":"message.created"}`
	for _, in := range []string{
		`{"identifier":"k","message":` + msg + `}`,
		`{"message":` + msg + `,"identifier":"k"}`,
		` { "message" : ` + msg + ` , "identifier" : "k" } `,
		`{"message":{"event":"old","data":{"id":1}},"identifier":"k","message":` + msg + `}`,
	} {
		var f Frame
		if err := DecodeFields([]byte(in), &f, testFields); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if f.Type != FrameBroadcast || string(f.Message) != msg || string(f.Identifier) != "k" || !f.Fields.Of(testFields) {
			t.Fatalf("%s: %+v", in, f)
		}
		if got := captured(&f, 0) + " " + captured(&f, 1) + " " + captured(&f, 2); got != "s:message.created n:42 s:user" {
			t.Fatalf("%s: captured %s", in, got)
		}
	}
	var f Frame
	in := `{"message":{"event":"old","data":{"sender":{"type":"bot"}}},"identifier":"k","message":{"event":"message.created"}}`
	if err := DecodeFields([]byte(in), &f, testFields); err != nil || f.Fields.Get(2).Kind != jsonscan.Absent {
		t.Fatalf("a field of the first message kept: %v, %+v", err, f.Fields.Get(2))
	}
	if err := DecodeFields([]byte(`{"type":"ping","message":1795248781}`), &f, testFields); err != nil || f.Fields.Get(0).Kind != jsonscan.Absent {
		t.Fatalf("ping: %v, %+v", err, f.Fields.Get(0))
	}
}

// Hostile broadcasts are refused whole, with the frame's decode error:
// the capture of the message validates as strictly as the rest.
func TestDecodeFieldsRefusesHostile(t *testing.T) {
	deep := strings.Repeat(`{"data":`, jsonscan.MaxDepth+1) + "1" + strings.Repeat("}", jsonscan.MaxDepth+1)
	for _, msg := range []string{
		deep,
		`{"event":"a.b","data":{"id":"\x"}}`,
		`{"event":"a.b","data":{"id":"\u12"}}`,
		"{\"event\":\"a\x01.b\"}",
		`{"event":"a.b","data":{"id":01}}`,
		`{"event":"a.b","data":{"id":1,}}`,
		`{"event":"a.b","data":{"id":1}`,
		`{"event":"a.b"} x`,
	} {
		for _, in := range []string{`{"identifier":"k","message":` + msg + `}`, `{"message":` + msg + `,"identifier":"k"}`} {
			var f Frame
			if err := DecodeFields([]byte(in), &f, testFields); !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: err %v, want ErrMalformed", in, err)
			}
		}
	}
	if err := DecodeFields([]byte(`{"identifier":"k","message":{}} {}`), new(Frame), testFields); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing data: %v", err)
	}
}
