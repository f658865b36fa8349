package cable

import (
	"strings"
	"testing"
	"unsafe"
)

// A pool holds one sub per subscription: 100,000 of them at 160 bytes
// each were a fifth of the relay's heap.
func TestSubSize(t *testing.T) {
	if n := unsafe.Sizeof(sub[*int]{}); n > 128 {
		t.Fatalf("sub is %d bytes, want at most 128", n)
	}
}

// The route key of an identifier as the pool writes it is the key the
// subscription is stored under, whatever the token holds; a token that
// needs no escaping is its own key (no copy kept).
func TestRouteKeyMatchesContactKey(t *testing.T) {
	for _, tok := range []string{"plain-token_123", `quo"te`, `back\slash`, "<html>&amp;", "ünïcode", `"`, `\`} {
		wire := NewIdentifier(tok).Key
		if got, want := string(routeKey([]byte(wire))), contactKey(tok); got != want {
			t.Errorf("%q: routeKey = %q, contactKey = %q", tok, got, want)
		}
		s := &sub[any]{key: contactKey(tok)}
		if got := s.ident().Key; got != wire {
			t.Errorf("%q: ident = %q, want %q", tok, got, wire)
		}
	}
	tok := "plain-token_123"
	if k := contactKey(tok); unsafe.StringData(k) != unsafe.StringData(tok) {
		t.Error("a token that needs no escaping is copied")
	}
	user := NewUserIdentifier(tok, 1, 2).Key
	if got := string(routeKey([]byte(user))); got != user {
		t.Errorf("user identifier routed by %q, want the whole identifier", got)
	}
	s := &sub[any]{key: user, user: true}
	if s.ident().Key != user {
		t.Errorf("user ident = %q", s.ident().Key)
	}
}

// A connection routes the identifier it wrote, and the same identifier
// escaped otherwise, to the subscription; an identifier that only starts
// and ends like it (more keys, a user's identifier) to none.
func TestRouteEchoedIdentifiers(t *testing.T) {
	tok := `to"k\en`
	c := newTestConn(tok)
	defer c.cancel()
	want := NewIdentifier(tok).Key
	for _, wire := range []string{
		want,
		strings.Replace(want, `\"channel`, `\u0022channel`, 1),
	} {
		if s := c.route([]byte(wire)); s == nil || s.id != SubscriptionID(tok) {
			t.Errorf("%s: not routed", wire)
		}
	}
	for _, wire := range []string{
		contactPrefix + contactKey(tok) + `\",\"x\":\"y` + contactSuffix,
		NewUserIdentifier(tok, 1, 2).Key,
		contactPrefix + contactSuffix,
		`{\"channel\":\"RoomChannel\",\"pubsub_token\":\"` + tok + `\"}`,
	} {
		if s := c.route([]byte(wire)); s != nil {
			t.Errorf("%s: routed to %s", wire, s.id)
		}
	}
}
