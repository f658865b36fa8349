package chatwoottest

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
)

// subscription is one registered identifier on one connection. Immutable.
type subscription struct {
	conn       *conn
	identifier string
	token      string
	account    int64
	confirmed  bool
	prefix     []byte // {"identifier":"<escaped identifier>","message":
	// stream is a user subscription's second stream, account_<id>,
	// registered and removed with it.
	stream *subscription
}

func newSubscription(c *conn, identifier, token string, confirmed bool) *subscription {
	sub := &subscription{conn: c, identifier: identifier, token: token, confirmed: confirmed}
	if confirmed {
		p := append([]byte(nil), `{"identifier":`...)
		p = appendJSONString(p, identifier)
		sub.prefix = append(p, `,"message":`...)
	}
	return sub
}

func (sub *subscription) frame(typ string) []byte {
	b := append([]byte(nil), `{"identifier":`...)
	b = appendJSONString(b, sub.identifier)
	b = append(b, `,"type":"`...)
	b = append(b, typ...)
	return append(b, `"}`...)
}

// streamTable maps a token to its confirmed subscriptions on all connections.
// Slices are copy-on-write so broadcasters iterate without the lock.
type streamTable struct {
	mu sync.RWMutex
	m  map[string][]*subscription
}

func (t *streamTable) init() { t.m = make(map[string][]*subscription) }

func (t *streamTable) get(token string) []*subscription {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[token]
}

func (t *streamTable) add(sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ; sub != nil; sub = sub.stream {
		old := t.m[sub.token]
		t.m[sub.token] = append(old[:len(old):len(old)], sub)
	}
}

func (t *streamTable) remove(sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ; sub != nil; sub = sub.stream {
		t.removeLocked(sub)
	}
}

func (t *streamTable) removeLocked(sub *subscription) {
	old := t.m[sub.token]
	i := slices.Index(old, sub)
	if i < 0 {
		return
	}
	if len(old) == 1 {
		delete(t.m, sub.token)
		return
	}
	t.m[sub.token] = slices.Delete(slices.Clone(old), i, i+1)
}

// tokenTable holds the pubsub tokens the cable side knows.
type tokenTable struct {
	mu       sync.RWMutex
	known    map[string]int64 // token -> account id
	rejected map[string]bool
	presence map[string]int64 // update_presence count per token
}

func (t *tokenTable) init() {
	t.known = make(map[string]int64)
	t.rejected = make(map[string]bool)
	t.presence = make(map[string]int64)
}

func (t *tokenTable) lookup(token string) (account int64, known, rejected bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	account, known = t.known[token]
	return account, known, t.rejected[token]
}

func (t *tokenTable) set(token string, account int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.known[token] = account
}

func (t *tokenTable) remove(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.known, token)
}

func (t *tokenTable) reject(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rejected[token] = true
}

func (t *tokenTable) countPresence(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.presence[token]++
}

func (t *tokenTable) presenceCount(token string) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.presence[token]
}

// AddToken makes token a valid contact pubsub token of accountID (0 means
// account 1) on the cable side only, for tests without the REST model.
func (s *Server) AddToken(token string, accountID int64) {
	if accountID == 0 {
		accountID = 1
	}
	s.model.ensureAccount(accountID)
	s.tokens.set(token, accountID)
}

// RemoveToken makes token unknown again: new subscribes get silence.
// Existing subscriptions keep streaming, as in Chatwoot.
func (s *Server) RemoveToken(token string) { s.tokens.remove(token) }

// RejectToken makes subscribes with token get reject_subscription (stock
// Chatwoot never rejects; this is for client tests).
func (s *Server) RejectToken(token string) { s.tokens.reject(token) }

// PresenceUpdates returns how many update_presence actions confirmed
// subscriptions of token performed.
func (s *Server) PresenceUpdates(token string) int64 { return s.tokens.presenceCount(token) }

// tokenID is a token's log form: a stable hash, never the token.
type tokenID string

func (t tokenID) LogValue() slog.Value {
	sum := sha256.Sum256([]byte(t))
	return slog.StringValue(hex.EncodeToString(sum[:6]))
}
