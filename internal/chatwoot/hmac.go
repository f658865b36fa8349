package chatwoot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// IdentifierHash returns the identifier_hash Chatwoot expects next to a
// contact identifier when identity validation is on: the lowercase hex
// HMAC-SHA256 of identifier keyed with the inbox's hmac_token. Chatwoot
// compares it as a string, so uppercase hex would fail.
func IdentifierHash(hmacToken, identifier string) string {
	mac := hmac.New(sha256.New, []byte(hmacToken))
	mac.Write([]byte(identifier))
	return hex.EncodeToString(mac.Sum(nil))
}
