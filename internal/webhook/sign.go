package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Standard Webhooks and Chatwoot signature headers.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"

	HeaderChatwootSignature = "X-Chatwoot-Signature"
	HeaderChatwootTimestamp = "X-Chatwoot-Timestamp"
	HeaderChatwootDelivery  = "X-Chatwoot-Delivery"

	// SecretPrefix starts every Standard Webhooks secret.
	SecretPrefix = "whsec_"
)

// ErrSecret reports a secret that is not "whsec_" followed by base64 of
// 24 to 64 bytes.
var ErrSecret = errors.New(`webhook: a secret is "whsec_" followed by base64 of 24 to 64 random bytes`)

// Secret is a Standard Webhooks signing secret ("whsec_<base64>"). It
// prints as REDACTED so it never reaches a log line.
type Secret string

// String implements fmt.Stringer without revealing the secret.
func (Secret) String() string { return "REDACTED" }

// LogValue implements slog.LogValuer without revealing the secret.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// GoString keeps %#v from revealing the secret.
func (Secret) GoString() string { return `"REDACTED"` }

// key decodes the HMAC key of s.
func (s Secret) key() ([]byte, error) {
	raw, ok := strings.CutPrefix(string(s), SecretPrefix)
	if !ok {
		return nil, ErrSecret
	}
	k, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, ErrSecret
	}
	return k, nil
}

// NewSecret returns a fresh secret of 32 random bytes.
func NewSecret() Secret {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return Secret(SecretPrefix + base64.StdEncoding.EncodeToString(b))
}

// signer signs deliveries of one endpoint. Built once per endpoint
// configuration, it holds decoded keys only.
type signer struct {
	keys     [][]byte     // Standard Webhooks keys; all sign during a rotation
	chatwoot []byte       // key of the Chatwoot scheme (the first secret's text), nil when off
	macs     []*sync.Pool // per key: keyed HMAC-SHA256 states, reset between uses
}

// newSigner checks and decodes secrets (one, or two during a rotation).
func newSigner(secrets []Secret, chatwoot bool) (*signer, error) {
	if len(secrets) == 0 || len(secrets) > 2 {
		return nil, fmt.Errorf("%w: one secret, or two while rotating", ErrSecret)
	}
	s := &signer{}
	for _, sec := range secrets {
		k, err := sec.key()
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
		s.macs = append(s.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }})
	}
	if chatwoot {
		s.chatwoot = []byte(secrets[0])
	}
	return s, nil
}

// Sign returns the Standard Webhooks signature header value for one key:
// "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)).
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// apply sets the signature headers of one attempt made at now.
func (s *signer) apply(h http.Header, id string, now time.Time, body []byte) {
	ts := now.Unix()
	tsText := strconv.FormatInt(ts, 10)
	var buf [2 * 48]byte // "v1," + 44 base64 characters, twice, and a space
	sig := buf[:0]
	for i := range s.keys {
		if i > 0 {
			sig = append(sig, ' ')
		}
		sig = s.sign(sig, i, id, tsText, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, tsText)
	h.Set(HeaderSignature, string(sig))
	if s.chatwoot != nil {
		h.Set(HeaderChatwootSignature, "sha256="+chatwootMAC(s.chatwoot, tsText, body))
		h.Set(HeaderChatwootTimestamp, tsText)
		h.Set(HeaderChatwootDelivery, id)
	}
}

// sign appends Sign(keys[i], id, ts, body) to dst, with a pooled HMAC.
func (s *signer) sign(dst []byte, i int, id, ts string, body []byte) []byte {
	m := s.macs[i].Get().(hash.Hash)
	defer s.macs[i].Put(m)
	m.Reset()
	_, _ = io.WriteString(m, id)
	m.Write([]byte{'.'})
	_, _ = io.WriteString(m, ts)
	m.Write([]byte{'.'})
	m.Write(body)
	var sum [sha256.Size]byte
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, m.Sum(sum[:0]))
}

// chatwootMAC is Chatwoot's webhook signature: hex HMAC-SHA256 of
// "timestamp.body" keyed with the secret's text.
func chatwootMAC(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a Standard Webhooks delivery against secret the way a
// receiver does: one of the space-separated "v1," signatures must match
// and the timestamp must be within tolerance of now. Receivers and tests
// use it; the relay itself only signs.
func Verify(secret Secret, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := secret.key()
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return errors.New("webhook: missing or malformed webhook-timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside tolerance")
	}
	want := Sign(key, h.Get(HeaderID), ts, body)
	for _, got := range strings.Fields(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(got), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: no matching signature")
}
