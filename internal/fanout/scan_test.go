package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/jsonscan"
)

var slotPaths = map[slot][]string{
	slotEvent:          {"event"},
	slotAccount:        {"data", "account_id"},
	slotInbox:          {"data", "inbox_id"},
	slotConversationID: {"data", "conversation_id"},
	slotID:             {"data", "id"},
	slotUpdatedAt:      {"data", "updated_at"},
	slotTimestamp:      {"data", "timestamp"},
	slotMessageType:    {"data", "message_type"},
	slotPrivate:        {"data", "is_private"},
	slotStatus:         {"data", "status"},
	slotSenderType:     {"data", "sender_type"},
	slotSenderID:       {"data", "sender_id"},
	slotCIContact:      {"data", "contact_inbox", "contact_id"},
	slotCIInbox:        {"data", "contact_inbox", "inbox_id"},
	slotMetaSender:     {"data", "meta", "sender", "id"},
	slotSenderObjID:    {"data", "sender", "id"},
	slotSenderObjType:  {"data", "sender", "type"},
	slotConvObjID:      {"data", "conversation", "id"},
	slotConvObjInbox:   {"data", "conversation", "inbox_id"},
	slotConvObjStatus:  {"data", "conversation", "status"},
	slotConvCIContact:  {"data", "conversation", "contact_inbox", "contact_id"},
	slotConvMetaSender: {"data", "conversation", "meta", "sender", "id"},
	slotEchoID:         {"data", "echo_id"},
	slotMsgPrivate:     {"data", "private"},
}

func TestSlotPathsComplete(t *testing.T) {
	if len(slotPaths) != int(numSlots) {
		t.Fatalf("slotPaths has %d entries, want %d", len(slotPaths), numSlots)
	}
}

func TestScanFixtures(t *testing.T) {
	for _, name := range fixtures.Names(t, "cable") {
		msg := fixtureMessage(t, name)
		if msg == nil {
			continue
		}
		var f fields
		if err := scanMessage(msg, &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		compareWithReference(t, msg, &f)
	}
}

func TestScanGarbage(t *testing.T) {
	for _, in := range []string{"", "{", "}", `{"a"`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":tru}`, `{"a":"x}`,
		`{"data":{"conversation":{"meta":{"sender":{"id":`, `{"a":[1,2}`, `{} x`, `nul`,
		`{"event":"a.b","data":{"id":01}}`, `{"event":"a\x.b"}`, "{\"event\":\"a\x01.b\"}",
		`{"event":"a.b","data":` + strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1) + `}`} {
		var f fields
		if err := scanMessage([]byte(in), &f); err == nil {
			t.Errorf("scanMessage(%q) accepted garbage", in)
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, name := range fixtures.Names(f, "cable") {
		if msg := fixtureMessage(f, name); msg != nil {
			f.Add(msg)
		}
	}
	f.Add([]byte(`{"event":"m.c","data":{"id":"\u0031","\u0069d":2,"sender":{"type":"contact","id":3}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fl fields
		err := scanMessage(b, &fl) // must not panic on anything
		if !json.Valid(b) || hasDuplicateKeys(b) || nesting(b) > jsonscan.MaxDepth {
			return
		}
		if bytes.TrimSpace(b)[0] != '{' {
			if err == nil {
				t.Fatalf("non-object accepted: %q", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid JSON %q rejected: %v", b, err)
		}
		compareWithReference(t, b, &fl)
	})
}

// compareWithReference checks every captured slot against encoding/json.
func compareWithReference(t *testing.T, b []byte, f *fields) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for s, path := range slotPaths {
		want, ok := lookup(doc, path)
		got := f[s]
		if !ok {
			if got.kind != kindAbsent {
				t.Fatalf("%v: scanner found %q (%c), reference has nothing", path, got.raw, got.kind)
			}
			continue
		}
		checkValue(t, path, got, want)
	}
}

func checkValue(t *testing.T, path []string, got value, want any) {
	t.Helper()
	switch w := want.(type) {
	case string:
		if got.kind != kindString && got.kind != kindEscaped {
			t.Fatalf("%v: kind %c, want string", path, got.kind)
		}
		if utf8.Valid(got.raw) && string(got.text()) != w {
			t.Fatalf("%v: %q, want %q", path, got.text(), w)
		}
	case json.Number:
		if got.kind != kindNumber || string(got.raw) != w.String() {
			t.Fatalf("%v: %q (%c), want number %s", path, got.raw, got.kind, w)
		}
	case bool:
		if got.kind != kindBool || string(got.raw) != map[bool]string{true: "true", false: "false"}[w] {
			t.Fatalf("%v: %q (%c), want %v", path, got.raw, got.kind, w)
		}
	case nil:
		if got.kind != kindNull {
			t.Fatalf("%v: kind %c, want null", path, got.kind)
		}
	default:
		if got.kind != kindNested {
			t.Fatalf("%v: kind %c, want nested", path, got.kind)
		}
	}
}

func lookup(doc any, path []string) (any, bool) {
	for _, k := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[k]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// nesting returns how deep the objects and arrays of the valid JSON b
// nest. The scanner refuses what nests deeper than jsonscan.MaxDepth.
func nesting(b []byte) int {
	d := json.NewDecoder(bytes.NewReader(b))
	depth, most := 0, 0
	for {
		tk, err := d.Token()
		if err != nil {
			return most
		}
		switch tk {
		case json.Delim('{'), json.Delim('['):
			depth++
			most = max(most, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// hasDuplicateKeys reports whether any object of b repeats a key (the
// scanner merges repeated objects where encoding/json keeps the last).
func hasDuplicateKeys(b []byte) bool {
	type frame struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	for {
		tk, err := d.Token()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			return true
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if k, ok := tk.(string); ok {
				if stack[n-1].keys[k] {
					return true
				}
				stack[n-1].keys[k] = true
				stack[n-1].wantKey = false
				continue
			}
		}
		switch tk {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

func TestRedactTokens(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{`{"pubsub_token":"abc"}`, `{"pubsub_token":""}`},
		{`{"x":{"pubsub_token":"a"},"y":[{"pubsub_token":"bb"}],"pubsub_token":"ccc"}`,
			`{"x":{"pubsub_token":""},"y":[{"pubsub_token":""}],"pubsub_token":""}`},
		{`{ "pubsub_token" : "a\"b\\" , "z":"pubsub_token"}`, `{ "pubsub_token" : "" , "z":"pubsub_token"}`},
		{`{"pubsub_token":null,"n":"\"pubsub_token\":\"keep\""}`, `{"pubsub_token":null,"n":"\"pubsub_token\":\"keep\""}`},
		{`{"s":"x","pubsub_token":""}`, `{"s":"x","pubsub_token":""}`},
		{`{"x\"pubsub_token":"keep"}`, `{"x\"pubsub_token":"keep"}`},
		{`{"pubsub_token":"unterminated`, `{"pubsub_token":"unterminated`},
	}
	for _, tt := range tests {
		if got := string(redact([]byte(tt.in), secretTokens)); got != tt.want {
			t.Errorf("redact(%s) = %s, want %s", tt.in, got, tt.want)
		}
		if a, b := bodyHash([]byte(tt.in)), bodyHash([]byte(tt.want)); a != b {
			t.Errorf("bodyHash differs between %s and its redaction", tt.in)
		}
	}
	if bodyHash([]byte(`{"a":1}`)) == bodyHash([]byte(`{"a":2}`)) {
		t.Error("bodyHash ignores content")
	}
}

// TestRedactSourceIDs: the source_id of a contact_inbox object is blanked,
// a message's own source_id is not.
func TestRedactSourceIDs(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"contact_inbox":{"source_id":"abc"}}`, `{"contact_inbox":{"source_id":""}}`},
		{`{"source_id":"ext-1","conversation":{"contact_inbox":{"source_id":"abc"}}}`,
			`{"source_id":"ext-1","conversation":{"contact_inbox":{"source_id":""}}}`},
		{`{"contact_inbox" : { "id":1, "source_id" : "a\"b", "pubsub_token":"t", "x":{"source_id":"keep"}}}`,
			`{"contact_inbox" : { "id":1, "source_id" : "", "pubsub_token":"", "x":{"source_id":"keep"}}}`},
		{`{"contact_inbox":{"source_id":null},"pubsub_token":"t"}`, `{"contact_inbox":{"source_id":null},"pubsub_token":""}`},
		{`{"contact_inbox":[{"source_id":"keep"}],"n":"\"contact_inbox\":{\"source_id\":\"keep\"}"}`,
			`{"contact_inbox":[{"source_id":"keep"}],"n":"\"contact_inbox\":{\"source_id\":\"keep\"}"}`},
		{`{"pubsub_token":"t","contact_inbox":{"a":[{"contact_inbox":{"source_id":"in"}}],"source_id":"out"},"z":{"pubsub_token":"u"}}`,
			`{"pubsub_token":"","contact_inbox":{"a":[{"contact_inbox":{"source_id":""}}],"source_id":""},"z":{"pubsub_token":""}}`},
		{`{"contact_inbox":{"sourc\u0065_id":"abc"}}`, `{"contact_inbox":{"sourc\u0065_id":""}}`},
		{`{"contact_inbox":{}, "contact_inbox":{"source_id":"abc"}}`, `{"contact_inbox":{}, "contact_inbox":{"source_id":""}}`},
		{`{"contact_inbox":{"source_id":"unterminated`, `{"contact_inbox":{"source_id":"unterminated`},
	}
	for _, tt := range tests {
		if got := string(redact([]byte(tt.in), allSecrets)); got != tt.want {
			t.Errorf("redact(%s) = %s, want %s", tt.in, got, tt.want)
		}
		if a, b := bodyHash([]byte(tt.in)), bodyHash([]byte(tt.want)); a != b {
			t.Errorf("bodyHash differs between %s and its redaction", tt.in)
		}
	}
	in := `{"pubsub_token":"t","contact_inbox":{"source_id":"s","pubsub_token":"u"}}`
	if got := string(redact([]byte(in), secretSourceIDs)); got != `{"pubsub_token":"t","contact_inbox":{"source_id":"","pubsub_token":"u"}}` {
		t.Errorf("source_ids only: %s", got)
	}
}

func FuzzRedact(f *testing.F) {
	for _, name := range fixtures.Names(f, "cable") {
		if msg := fixtureMessage(f, name); msg != nil {
			f.Add(msg, uint8(0))
		}
	}
	f.Add([]byte(`{"pubsub_token":"a\"b","x":[{"pubsub_token" : "c"}]}`), uint8(0))
	f.Add([]byte(`{"contact_inbox":{"source_id":"a","y":{"contact_inbox":{"source_id":"b"}}},"source_id":"c"}`), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		which := secrets(mode%3 + 1) // tokens, source_ids, both
		in := append([]byte(nil), b...)
		out := redact(b, which)
		if !json.Valid(in) || bytes.Contains(in, []byte(`\u`)) || nesting(in) > jsonscan.MaxDepth {
			return // fanout redacts only messages its scanner accepted
		}
		if !json.Valid(out) {
			t.Fatalf("redaction broke JSON: %q -> %q", in, out)
		}
		var want, got any
		_ = json.Unmarshal(in, &want)
		_ = json.Unmarshal(out, &got)
		blankSecrets(want, which)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("redact(%q, %d) = %q", in, which, out)
		}
		if bodyHash(in) != bodyHash(out) {
			t.Fatalf("hash changed by redaction: %q", in)
		}
	})
}

// blankSecrets is the model of redact on decoded JSON.
func blankSecrets(v any, which secrets) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if _, isStr := e.(string); isStr && k == "pubsub_token" && which&secretTokens != 0 {
				x[k] = ""
				continue
			}
			if ci, isObj := e.(map[string]any); isObj && k == "contact_inbox" && which&secretSourceIDs != 0 {
				if _, isStr := ci["source_id"].(string); isStr {
					ci["source_id"] = ""
				}
			}
			blankSecrets(e, which)
		}
	case []any:
		for _, e := range x {
			blankSecrets(e, which)
		}
	}
}
