package cable

import (
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
