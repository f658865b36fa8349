package fanout

import (
	"bytes"
	"hash/crc64"
)

// Chatwoot puts the contact's pubsub_token inside conversation payloads
// (contact_inbox.pubsub_token). Anyone holding it can read that contact's
// stream, so fanout blanks every "pubsub_token":"<value>" value in place:
// the value becomes "" and every other byte stays as it was.

// tokenName is the key without its opening quote: searching for a
// pattern that starts with a rare byte lets bytes.Index skip ahead with
// its vector search, where '"' would stop it at every key of the document.
const tokenName = `pubsub_token"`

// nextToken finds the next pubsub_token string value at or after from and
// returns the span of its content (between the quotes).
func nextToken(b []byte, from int) (start, end int, ok bool) {
	for from < len(b) {
		j := bytes.Index(b[from:], []byte(tokenName))
		if j < 0 {
			return 0, 0, false
		}
		k := from + j - 1 // the key's opening quote
		from += j + len(tokenName)
		if k < 0 || b[k] != '"' || !keyPosition(b, k) {
			continue
		}
		i := skipSpace(b, from)
		if i >= len(b) || b[i] != ':' {
			continue
		}
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] != '"' {
			continue // null or not a string: nothing to blank
		}
		s := scanner{b: b, i: i}
		cs, ce, _, err := s.str()
		if err != nil {
			return 0, 0, false
		}
		return cs, ce, true
	}
	return 0, 0, false
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

// redactTokens blanks every pubsub_token value of b in place and returns the
// shortened slice. It does not allocate.
func redactTokens(b []byte) []byte {
	start, end, ok := nextToken(b, 0)
	if !ok {
		return b
	}
	w := start // write position
	r := end   // read position: the closing quote of the current value
	for {
		s, e, ok := nextToken(b, r)
		if !ok {
			w += copy(b[w:], b[r:])
			return b[:w]
		}
		w += copy(b[w:], b[r:s])
		r = e
	}
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// bodyHash hashes b with every pubsub_token value skipped, so a redacted and
// an unredacted copy of one payload hash the same.
func bodyHash(b []byte) uint64 {
	var h uint64
	r := 0
	for {
		s, e, ok := nextToken(b, r)
		if !ok {
			return crc64.Update(h, crcTable, b[r:])
		}
		h = crc64.Update(h, crcTable, b[r:s])
		r = e
	}
}
