package fanout

import (
	"bytes"
	"hash/crc64"

	"github.com/relayhq/relay/internal/jsonscan"
)

// Chatwoot puts two credentials of the contact inside event payloads: its
// pubsub_token (contact_inbox.pubsub_token of conversation payloads: anyone
// holding it can read the contact's stream) and its source_id
// (contact_inbox.source_id of conversation, message and typing payloads:
// with the inbox identifier it is the contact's key to the public API).
// Fanout blanks these values in place: the value becomes "" and every
// other byte stays as it was.
//
// Every "pubsub_token" string value is blanked, wherever it is. Only the
// "source_id" of contact_inbox objects is: a message's own source_id is an
// external message id, not a credential.

// secrets selects the values redaction blanks.
type secrets uint8

const (
	secretTokens    secrets = 1 << iota // every "pubsub_token" string value
	secretSourceIDs                     // "source_id" string values of contact_inbox objects
	allSecrets      = secretTokens | secretSourceIDs
)

// Key names without their opening quote: searching for a pattern that
// starts with a rare byte lets bytes.Index skip ahead with its vector
// search, where '"' would stop it at every key of the document.
const (
	tokenName        = `pubsub_token"`
	contactInboxName = `contact_inbox"`
)

// findKey finds the next key name (as above) at or after from and returns
// the position of its value's first byte.
func findKey(b []byte, from int, name string) (key, val int, ok bool) {
	for from < len(b) {
		j := bytes.Index(b[from:], []byte(name))
		if j < 0 {
			return 0, 0, false
		}
		k := from + j - 1 // the key's opening quote
		from += j + len(name)
		if k < 0 || b[k] != '"' || !keyPosition(b, k) {
			continue
		}
		i := skipSpace(b, from)
		if i >= len(b) || b[i] != ':' {
			continue
		}
		return k, skipSpace(b, i+1), true
	}
	return 0, 0, false
}

// keyFinder remembers the next occurrence of one key, so that two kinds of
// keys can be looked for in turn without searching any byte twice.
type keyFinder struct {
	name     string
	searched int  // where the remembered answer was searched from
	known    bool // an answer is remembered
	ok       bool
	key, val int
}

// next returns the next occurrence of the key at or after from.
func (f *keyFinder) next(b []byte, from int) (key, val int, ok bool) {
	if !f.known || from < f.searched || (f.ok && f.key < from) {
		f.key, f.val, f.ok = findKey(b, from, f.name)
		f.known, f.searched = true, from
	}
	return f.key, f.val, f.ok
}

// eachSecret calls fn with the content span (between the quotes) of every
// value of b that which selects, in document order. It stops at the first
// malformed string or contact_inbox object: fanout only redacts messages
// its scanner has already accepted.
func eachSecret(b []byte, which secrets, fn func(start, end int)) bool {
	tokens, inboxes := keyFinder{name: tokenName}, keyFinder{name: contactInboxName}
	for from := 0; ; {
		tk, tv, tok := 0, 0, false
		if which&secretTokens != 0 {
			tk, tv, tok = tokens.next(b, from)
		}
		ck, cv, ci := 0, 0, false
		if which&secretSourceIDs != 0 {
			ck, cv, ci = inboxes.next(b, from)
		}
		var ok bool
		switch {
		case tok && (!ci || tk < ck):
			from, ok = emitString(b, tv, fn)
		case ci:
			from, ok = contactInbox(b, cv, which, fn)
		default:
			return true
		}
		if !ok {
			return false
		}
	}
}

// emitString reports the string value at i, if it is one (null and other
// values have nothing to blank), and returns where scanning goes on.
func emitString(b []byte, i int, fn func(start, end int)) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, true
	}
	s := jsonscan.At(b, i)
	start, end, _, ok := s.Str()
	if !ok {
		return 0, false
	}
	fn(start, end)
	return end, true
}

// contactInbox reports the secrets of the contact_inbox value at i: its
// own source_id and pubsub_token, and those of nested values. It returns
// the end of the value when it is an object.
func contactInbox(b []byte, i int, which secrets, fn func(start, end int)) (int, bool) {
	if i >= len(b) || b[i] != '{' {
		return i, true
	}
	s := jsonscan.At(b, i+1)
	s.Space()
	if s.Consume('}') {
		return s.Pos(), true
	}
	for {
		s.Space()
		if !inboxMember(&s, b, which, fn) {
			return 0, false
		}
		if more, ok := s.More('}'); !more {
			return s.Pos(), ok
		}
	}
}

// inboxMember reports the secrets of one `"key": value` of a contact_inbox
// that s scans in b.
func inboxMember(s *jsonscan.Scanner, b []byte, which secrets, fn func(start, end int)) bool {
	key, esc, ok := s.Key()
	if !ok {
		return false
	}
	if esc {
		key = jsonscan.Unescape(key) // rare: allocates
	}
	start := s.Pos()
	if !s.Value() {
		return false
	}
	switch c := b[start]; {
	case c == '"' && (string(key) == "source_id" || string(key) == "pubsub_token" && which&secretTokens != 0):
		fn(start+1, s.Pos()-1)
	case c == '{' || c == '[':
		return eachSecret(b[start:s.Pos()], which, func(vs, ve int) { fn(start+vs, start+ve) })
	}
	return true
}

// keyPosition reports whether the quote at k opens an object key, i.e. the
// previous non-space byte is '{' or ','.
func keyPosition(b []byte, k int) bool {
	for k--; k >= 0; k-- {
		switch b[k] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', ',':
			return true
		}
		return false
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// redact blanks the values which selects in place and returns the
// shortened slice.
func redact(b []byte, which secrets) []byte {
	w, r := 0, 0 // write and read positions
	eachSecret(b, which, func(s, e int) {
		w += copy(b[w:], b[r:s])
		r = e // the closing quote of the value
	})
	if r == 0 {
		return b
	}
	w += copy(b[w:], b[r:])
	return b[:w]
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// bodyHash hashes b with every secret value skipped, so a redacted and an
// unredacted copy of one payload hash the same whatever is forwarded.
func bodyHash(b []byte) uint64 {
	var h uint64
	r := 0
	eachSecret(b, allSecrets, func(s, e int) {
		h = crc64.Update(h, crcTable, b[r:s])
		r = e
	})
	return crc64.Update(h, crcTable, b[r:])
}
