package api

import (
	"encoding/json"
	"errors"
	"testing"
)

type jsonRaw = json.RawMessage

func unmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestObject(t *testing.T) {
	in := `{ "content" : "héllo \u003c", "n": 1.50, "nested": {"a": [1, 2]}, "content_attributes": {} }`
	o, err := parseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.text("content"); got != "héllo <" {
		t.Errorf("text(content) = %q", got)
	}
	out := string(o.set("echo_id", "e-1").encode())
	want := `{"content":"héllo \u003c","n":1.50,"nested":{"a": [1, 2]},"content_attributes":{},"echo_id":"e-1"}`
	if out != want {
		t.Errorf("encode =\n%s\nwant\n%s", out, want)
	}
	o, _ = parseObject([]byte(`{"echo_id":"old","x":1,"echo_id":""}`))
	if got := string(o.set("echo_id", "new").encode()); got != `{"echo_id":"old","x":1,"echo_id":"new"}` {
		t.Errorf("set on a duplicate key = %s (the last one counts)", got)
	}
	if got := string(object(nil).set("echo_id", "e").encode()); got != `{"echo_id":"e"}` {
		t.Errorf("empty object = %s", got)
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{"a":}`, `{"a":1`, `{"a":1}}`, `{"a":1} {}`, `{1:2}`} {
		if _, err := parseObject([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseObject(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestForm(t *testing.T) {
	f, err := parseForm([]byte("submitted_values[][name]=a&submitted_values[][value]=1&echo_id=x&echo_id="))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.text("echo_id"); got != "" {
		t.Errorf("last echo_id = %q, want the empty last value", got)
	}
	got := f.add("echo_id", "a b&c").raw
	if want := "submitted_values[][name]=a&submitted_values[][value]=1&echo_id=x&echo_id=&echo_id=a+b%26c"; got != want {
		t.Errorf("add = %q, want %q (pairs kept in order)", got, want)
	}
	if got := appendPair("", "k", "v"); got != "k=v" {
		t.Errorf("appendPair on empty = %q", got)
	}
	if got := appendPair("a=1&", "k", "v"); got != "a=1&k=v" {
		t.Errorf("appendPair after & = %q", got)
	}
}

func TestSplitQuery(t *testing.T) {
	fwd, relay := splitQuery("before=10&subscribe=false&x=%2Fy&wait=echo&&z")
	if fwd != "before=10&x=%2Fy&z" {
		t.Errorf("forwarded = %q", fwd)
	}
	if relay.Get("subscribe") != "false" || relay.Get("wait") != "echo" {
		t.Errorf("relay params = %v", relay)
	}
}

func TestMatchProxy(t *testing.T) {
	tests := []struct {
		method, path string
		kind         proxyKind
		tmpl         string
		inbox, src   string
	}{
		{"POST", "/inboxes/in%20x/contacts", proxyContactCreate, "/inboxes/{inbox}/contacts", "in x", ""},
		{"GET", "/inboxes/in/contacts/s-1", proxyContactShow, "/inboxes/{inbox}/contacts/{source_id}", "in", "s-1"},
		{"PATCH", "/inboxes/in/contacts/s-1", proxyContactUpdate, "/inboxes/{inbox}/contacts/{source_id}", "in", "s-1"},
		{"DELETE", "/inboxes/in/contacts/s-1", proxyPlain, "/inboxes/{inbox}/contacts/{source_id}", "in", "s-1"},
		{"POST", "/inboxes/in/contacts/s/conversations/3/messages", proxyMessageCreate, "/inboxes/{inbox}/contacts/{source_id}/conversations/{conversation}/messages", "in", "s"},
		{"GET", "/inboxes/in/contacts/s/conversations/3/messages", proxyPlain, "/inboxes/{inbox}/contacts/{source_id}/conversations/{conversation}/messages", "in", "s"},
		{"GET", "/api/v1/accounts", proxyPlain, "/other", "", ""},
		// Rails' format suffix names the same route.
		{"POST", "/inboxes/in/contacts.json", proxyContactCreate, "/inboxes/{inbox}/contacts", "in", ""},
		{"GET", "/inboxes/in/contacts/s-1.json", proxyContactShow, "/inboxes/{inbox}/contacts/{source_id}", "in", "s-1"},
		{"POST", "/inboxes/in/contacts/s/conversations/3/messages.json", proxyMessageCreate, "/inboxes/{inbox}/contacts/{source_id}/conversations/{conversation}/messages", "in", "s"},
	}
	for _, tt := range tests {
		pc := matchProxy(tt.method, tt.path)
		if pc.kind != tt.kind || pc.tmpl != tt.tmpl || pc.inbox != tt.inbox || pc.sourceID != tt.src {
			t.Errorf("matchProxy(%s %s) = %+v", tt.method, tt.path, pc)
		}
		if pc.path != tt.path {
			t.Errorf("matchProxy(%s %s) forwards %q, want the path as sent", tt.method, tt.path, pc.path)
		}
	}
	a := matchProxy("POST", "/inboxes/in/contacts/s/conversations/12%2D3/messages.json")
	b := matchProxy("POST", "/inboxes/in/contacts/s/conversations/12-3/messages")
	if a.route != b.route || a.route != "/inboxes/in/contacts/s/conversations/12-3/messages" {
		t.Errorf("routes %q and %q, want the same unescaped route", a.route, b.route)
	}
}
