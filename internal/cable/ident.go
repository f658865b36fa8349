package cable

import "strings"

// A contact's identifier on the wire (a JSON string's body, as commands
// embed it and Chatwoot echoes it) is contactPrefix, its token escaped
// twice, and contactSuffix. The pool keeps only the escaped token, the
// token itself for all but tokens holding '"', '\\', '<', '>' or '&', and
// builds the identifier when it writes a command.
const (
	contactPrefix = `{\"channel\":\"RoomChannel\",\"pubsub_token\":\"`
	contactSuffix = `\"}`
)

// contactKey is the route key of a contact's token: the part of its
// identifier between contactPrefix and contactSuffix. It shares the
// token's memory when they are equal.
func contactKey(token string) string {
	k := NewIdentifier(token).Key
	mid := k[len(contactPrefix) : len(k)-len(contactSuffix)]
	if mid == token {
		return token
	}
	return strings.Clone(mid)
}

// routeKey returns what an identifier from the wire is routed by: the
// escaped token of a contact's identifier, else the whole identifier (a
// user's subscription is keyed by its whole identifier). No escaped token
// is ever mistaken for a whole identifier: one starts with `{\"`, a quote
// after one backslash, which a token escaped twice never holds.
func routeKey(wire []byte) []byte {
	if len(wire) >= len(contactPrefix)+len(contactSuffix) &&
		string(wire[:len(contactPrefix)]) == contactPrefix &&
		string(wire[len(wire)-len(contactSuffix):]) == contactSuffix {
		return wire[len(contactPrefix) : len(wire)-len(contactSuffix)]
	}
	return wire
}

// ident builds the subscription's identifier, for a command.
func (s *sub[M]) ident() Identifier {
	if s.user {
		return Identifier{Key: s.key}
	}
	return Identifier{Key: contactPrefix + s.key + contactSuffix}
}
