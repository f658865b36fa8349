package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// auth checks bearer tokens, or, when none are configured, that the request
// comes straight from this host (see local).
type auth struct {
	digests [][sha256.Size]byte // of the accepted tokens
}

func newAuth(tokens []string) auth {
	var a auth
	for _, t := range tokens {
		if t != "" {
			a.digests = append(a.digests, sha256.Sum256([]byte(t)))
		}
	}
	return a
}

// check returns nil when r may use the API.
func (a auth) check(r *http.Request) error {
	if len(a.digests) == 0 {
		return local(r)
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
	}
	if !a.valid(token) {
		return fmt.Errorf("%w: invalid bearer token", ErrUnauthorized)
	}
	return nil
}

// valid compares token with every accepted token in constant time (over
// fixed-size digests, so the length of a token is not leaked either).
func (a auth) valid(token string) bool {
	d := sha256.Sum256([]byte(token))
	match := 0
	for i := range a.digests {
		match |= subtle.ConstantTimeCompare(d[:], a.digests[i][:])
	}
	return match == 1
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
