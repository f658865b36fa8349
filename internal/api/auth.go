package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/relayhq/relay/internal/chatwoot"
)

// Scope is a part of the API a token may use.
type Scope string

const (
	// ScopeAdmin: the /v1 API (list, register and delete subscriptions).
	ScopeAdmin Scope = "admin"
	// ScopeProxy: Chatwoot's public client API under /public/api/v1,
	// including identifier_hash computation and the registration of the
	// contacts it creates or shows.
	ScopeProxy Scope = "proxy"
)

// Token is an accepted bearer token and what it may use.
type Token struct {
	// Value is the bearer token itself.
	Value string
	// Scopes are the parts of the API the token may use; at least one.
	Scopes []Scope
	// Inboxes, when not empty, restricts ScopeProxy to
	// /public/api/v1/inboxes/<one of these identifiers>[/...].
	Inboxes []string
}

// LogValue keeps the token's value out of logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("value", "REDACTED"), slog.Any("scopes", t.Scopes), slog.Int("inboxes", len(t.Inboxes)))
}

// Validate reports what is wrong with a token, without quoting it or its
// inboxes (inbox identifiers are the public API's credentials).
func (t Token) Validate() error {
	var errs []error
	if strings.TrimSpace(t.Value) != t.Value || t.Value == "" {
		errs = append(errs, errors.New("token is empty or starts or ends with white space"))
	}
	if len(t.Scopes) == 0 {
		errs = append(errs, fmt.Errorf("no scope: give %q, %q or both", ScopeAdmin, ScopeProxy))
	}
	proxy := false
	for i, s := range t.Scopes {
		switch s {
		case ScopeProxy:
			proxy = true
		case ScopeAdmin:
		default:
			errs = append(errs, fmt.Errorf("scope %d is unknown: want %q or %q", i+1, ScopeAdmin, ScopeProxy))
		}
	}
	if len(t.Inboxes) > 0 && !proxy {
		errs = append(errs, fmt.Errorf("inboxes restrict the %q scope, which the token does not have", ScopeProxy))
	}
	for i, in := range t.Inboxes {
		if !validInboxIdentifier(in) {
			errs = append(errs, fmt.Errorf("inbox %d is not an inbox identifier (letters, digits, '_' and '-')", i+1))
		}
	}
	return errors.Join(errs...)
}

// validInboxIdentifier accepts what Chatwoot generates for API inboxes. The
// restriction matters: Rails would read "inboxes/abc.json" as inbox "abc".
func validInboxIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// auth checks bearer tokens and their scopes, or, when none are
// configured, that the request comes straight from this host (see local).
type auth struct {
	grants []grant // one per accepted token
}

// grant is what one token may use.
type grant struct {
	digest  [sha256.Size]byte
	admin   bool
	proxy   bool
	inboxes map[string]bool // nil: every inbox
}

// newAuth accepts every plain token with full access and every scoped
// token with its scopes. Empty plain tokens are dropped; the same token
// given twice is an error unless both are plain.
func newAuth(plain []string, scoped []Token) (auth, error) {
	var a auth
	seen := map[[sha256.Size]byte]struct{}{}
	var errs []error
	for _, t := range plain {
		d := sha256.Sum256([]byte(t))
		if _, dup := seen[d]; t == "" || dup {
			continue
		}
		seen[d] = struct{}{}
		a.grants = append(a.grants, grant{digest: d, admin: true, proxy: true})
	}
	for i, t := range scoped {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("api: scoped token %d: %w", i+1, err))
			continue
		}
		d := sha256.Sum256([]byte(t.Value))
		if _, dup := seen[d]; dup {
			errs = append(errs, fmt.Errorf("api: scoped token %d: the same token is given twice, or also as a full-access token", i+1))
			continue
		}
		seen[d] = struct{}{}
		a.grants = append(a.grants, newGrant(d, t))
	}
	return a, errors.Join(errs...)
}

func newGrant(d [sha256.Size]byte, t Token) grant {
	g := grant{digest: d}
	for _, s := range t.Scopes {
		g.admin = g.admin || s == ScopeAdmin
		g.proxy = g.proxy || s == ScopeProxy
	}
	if len(t.Inboxes) > 0 {
		g.inboxes = make(map[string]bool, len(t.Inboxes))
		for _, in := range t.Inboxes {
			g.inboxes[in] = true
		}
	}
	return g
}

// check returns nil when r may use a route that needs scope.
func (a auth) check(r *http.Request, scope Scope) error {
	if len(a.grants) == 0 {
		return local(r)
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	}
	g := a.lookup(token)
	if g == nil {
		return fmt.Errorf("%w: invalid bearer token", ErrUnauthorized)
	}
	return g.allows(r, scope)
}

// lookup compares token with every accepted token in constant time (over
// fixed-size digests, so the length of a token is not leaked either) and
// returns its grant, nil when none matches.
func (a auth) lookup(token string) *grant {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range a.grants {
		eq := subtle.ConstantTimeCompare(d[:], a.grants[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return nil
	}
	return &a.grants[found]
}

// allows checks a known token's scope, and its inboxes on the proxy.
func (g *grant) allows(r *http.Request, scope Scope) error {
	switch {
	case scope == ScopeAdmin && !g.admin, scope == ScopeProxy && !g.proxy:
		return fmt.Errorf("%w: this token lacks the %s scope", ErrForbidden, scope)
	case scope == ScopeProxy && g.inboxes != nil && !g.inboxes[requestInbox(r)]:
		return fmt.Errorf("%w: this token may use only %s/inboxes/<one of its inboxes>/... and this is not one of them",
			ErrForbidden, chatwoot.APIPrefix)
	}
	return nil
}

// requestInbox is the unescaped inbox identifier of a proxied path
// /public/api/v1/inboxes/<inbox>[/...], "" for any other path. The path
// has passed checkPath, so no segment is empty, a dot segment or holds an
// encoded slash.
func requestInbox(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), chatwoot.APIPrefix+"/inboxes/")
	if !ok {
		return ""
	}
	seg, _, _ := strings.Cut(rest, "/")
	inbox, err := url.PathUnescape(seg)
	if err != nil {
		return ""
	}
	return inbox
}

// routeScope is the scope a route's pattern needs: the proxy's routes need
// ScopeProxy, every other route that is not open needs ScopeAdmin.
func routeScope(pattern string) Scope {
	_, path, _ := strings.Cut(pattern, " ")
	if strings.HasPrefix(path, chatwoot.APIPrefix+"/") {
		return ScopeProxy
	}
	return ScopeAdmin
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
