package fanout

import (
	"bytes"
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/jsonscan"
)

// messageFirst rewrites a broadcast frame with its "message" before its
// "identifier", which ActionCable never does but JSON allows.
func messageFirst(tb testing.TB, frame []byte) []byte {
	tb.Helper()
	var f struct {
		Identifier string          `json:"identifier"`
		Message    json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(frame, &f); err != nil {
		tb.Fatal(err)
	}
	id, _ := json.Marshal(f.Identifier)
	return []byte(`{ "message" : ` + string(f.Message) + ` , "identifier":` + string(id) + `}`)
}

// FuzzFrameFields checks the one pass over a frame against encoding/json:
// the identifier, the message bytes and every routing field the reader
// captures, and that the fan-out's own scan of the message (replays) finds
// the same fields.
func FuzzFrameFields(f *testing.F) {
	for _, name := range fixtures.Names(f, "cable") {
		frame := fixtures.Read(f, "cable/"+name)
		f.Add(frame)
		if fixtureMessage(f, name) != nil {
			f.Add(messageFirst(f, frame))
		}
	}
	f.Add([]byte(`{"identifier":"x","message":{"event":"a.b","data":{"id":1}},"message":{"event":"c.d","data":{"inbox_id":2}}}`))
	f.Add([]byte(`{"m\u0065ssage":{"\u0065vent":"a.b","data":{"i\u0064":"\u0031"}},"identifier":"\u0078"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr cable.Frame
		err := cable.DecodeFields(b, &fr, Fields)
		if err == nil && !json.Valid(b) {
			t.Fatalf("invalid JSON accepted: %q", b)
		}
		var top map[string]json.RawMessage
		if err != nil || json.Unmarshal(b, &top) != nil {
			return
		}
		checkIdentifier(t, fr.Identifier, top["identifier"])
		if !bytes.Equal(fr.Message, top["message"]) {
			t.Fatalf("message %q, encoding/json has %q", fr.Message, top["message"])
		}
		if fr.Type != cable.FrameBroadcast || fr.Message[0] != '{' || hasDuplicateKeys(fr.Message) {
			return
		}
		if !fr.Fields.Of(Fields) {
			t.Fatal("broadcast without its captured fields")
		}
		var captured, scanned fields
		if err := captured.load(fr.Message, &fr.Fields); err != nil {
			t.Fatal(err)
		}
		compareWithReference(t, fr.Message, &captured)
		if err := scanMessage(fr.Message, &scanned); err != nil || !sameFields(&scanned, &captured) {
			t.Fatalf("scanning the message alone: %v, or other fields: %v, captured %v", err, scanned, captured)
		}
	})
}

func sameFields(a, b *fields) bool {
	for i := range a {
		if a[i].kind != b[i].kind || !bytes.Equal(a[i].raw, b[i].raw) {
			return false
		}
	}
	return true
}

func checkIdentifier(t *testing.T, got []byte, ref json.RawMessage) {
	t.Helper()
	var want, have string
	if ref == nil {
		if got != nil {
			t.Fatalf("identifier %q, encoding/json has none", got)
		}
		return
	}
	if json.Unmarshal(ref, &want) != nil || json.Unmarshal(append(append([]byte{'"'}, got...), '"'), &have) != nil || have != want {
		t.Fatalf("identifier %q, encoding/json has %s", got, ref)
	}
}

// A live broadcast is read once: the fan-out routes it by what the cable
// reader captured, wherever its "message" stands in the frame, and does not
// read the message again. (The marker: a byte the scanner refuses, written
// into the content after the frame was decoded, which a second scan would
// reject.) Redaction still blanks the contact's source_id.
func TestLiveBroadcastReadOnce(t *testing.T) {
	for _, order := range []string{"identifier first", "message first"} {
		t.Run(order, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				frame := fixtures.Read(t, "cable/03_message.created.agent_reply.json")
				if order == "message first" {
					frame = messageFirst(t, frame)
				}
				var fr cable.Frame
				if err := cable.DecodeFields(frame, &fr, Fields); err != nil {
					t.Fatal(err)
				}
				content := bytes.Index(fr.Message, []byte(`Hi Jane`))
				fr.Message[content] = 0x01 // a control character: malformed JSON
				p := newFakePub(true)
				f := newTestFanout(t, p, Options{})
				s := NewSub("a", &recOwner{}, Hints{ContactID: "7"})
				f.Deliver(cable.Delivery[*Sub]{ID: "a", Meta: s, Message: fr.Message, Fields: fr.Fields, Borrowed: true, ReceivedAt: time.Unix(100, 0)})
				synctest.Wait()
				msgs := p.storedMsgs()
				if len(msgs) != 1 {
					t.Fatalf("%d events published, want 1 (dropped: invalid %d)", len(msgs), dropped(f, dropInvalid))
				}
				if want := "chatwoot.1.1.7.1.message.created"; msgs[0].Subject != want {
					t.Fatalf("subject %s, want %s", msgs[0].Subject, want)
				}
				if bytes.Contains(msgs[0].Data, []byte(fixtureSourceID)) {
					t.Fatal("source_id not redacted")
				}
				_ = closeNow(f)
			})
		})
	}
}

// Captured offsets are checked against the message they are given with:
// fields of other bytes are refused, not read out of bounds.
func TestCapturedFieldsOfOtherBytes(t *testing.T) {
	frame := fixtures.Read(t, "cable/03_message.created.agent_reply.json")
	var fr cable.Frame
	if err := cable.DecodeFields(frame, &fr, Fields); err != nil {
		t.Fatal(err)
	}
	ev := Event{SubID: "a", Message: []byte(`{"event":"x.y"}`), Fields: fr.Fields}
	b := builder{prefix: DefaultPrefix, instant: time.Second}
	if _, _, err := b.build(&ev); err == nil {
		t.Fatal("fields captured from a longer message accepted")
	}
	var other jsonscan.Fields // captured with no table: the message is scanned
	ev = Event{SubID: "a", Message: msgCreated(5), Fields: other}
	if _, r, err := b.build(&ev); err != nil || r.MessageID != "5" {
		t.Fatalf("build = %v, %v", r, err)
	}
}
