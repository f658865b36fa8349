package chatwoot

import (
	"context"
	"crypto/subtle"
	"errors"
)

// Session is what VerifySession learned about a subscription's contact
// session (a contact inbox and its pubsub_token).
type Session uint8

// Sessions.
const (
	// SessionUnknown: Chatwoot could not be asked (unreachable, 5xx, ...).
	SessionUnknown Session = iota
	// SessionValid: the contact inbox exists and its pubsub_token is the
	// one checked, or could not be read (identity validation enforced).
	SessionValid
	// SessionGone: 404, the contact inbox no longer exists.
	SessionGone
	// SessionMismatch: the contact inbox exists, but its pubsub_token is
	// another: the token checked never subscribes anything.
	SessionMismatch
)

var sessionNames = [...]string{"unknown", "valid", "gone", "mismatch"}

func (s Session) String() string {
	if int(s) < len(sessionNames) {
		return sessionNames[s]
	}
	return "unknown"
}

// VerifySession tells whether token is the pubsub_token of the contact
// inbox ci, for a subscription that keeps going unconfirmed (Chatwoot
// answers an unknown token with silence). The contact show returns the
// contact inbox's pubsub_token, compared in constant time. An inbox with
// identity validation enforced answers that call with 500 without an
// identifier_hash, and the relay does not keep contacts' identifiers: the
// conversations index, never checked for HMAC, then tells whether the
// contact inbox exists (404 when gone), without its token. The token is
// never part of an error.
func (c *Client) VerifySession(ctx context.Context, ci ContactInbox, token string) (Session, error) {
	contact, err := c.GetContact(ctx, ci, Identity{})
	if errors.Is(err, ErrUpstream) {
		_, err = c.ListConversations(ctx, ci)
		contact = Contact{}
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return SessionGone, nil
	case err != nil:
		return SessionUnknown, err
	case contact.PubsubToken == "":
		return SessionValid, nil // nothing to compare with
	case subtle.ConstantTimeCompare([]byte(contact.PubsubToken), []byte(token)) != 1:
		return SessionMismatch, nil
	}
	return SessionValid, nil
}
