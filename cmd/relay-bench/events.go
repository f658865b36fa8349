package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// Every event is a message.created from an agent with a unique message id
// (so no dedup window ever drops one) and its send time in the content, at
// fixed offsets so the bench patches a template instead of encoding JSON.
const (
	accountID = 1
	inboxID   = 1
	convBase  = 100_000           // conversation display_id of token i: convBase+i (fixed width)
	idBase    = 1_000_000_000_000 // message ids are idBase+n: 13 digits, fixed width
	stampLen  = 20                // "T" + 19 digits of nanoseconds since the bench started
)

var (
	idPattern    = []byte(`"id":` + strconv.Itoa(idBase) + `,`)
	stampPattern = []byte(`"content":"`)
	templateTime = time.Date(2026, 11, 21, 8, 13, 1, 0, time.UTC)
)

// tokenSet is the pubsub tokens of one relay or floor, with one message
// template per token.
type tokenSet struct {
	name   string
	tokens []string
	tmpl   []template
}

// template is a sized message.created with the offsets of its id digits
// and of its content's first bytes.
type template struct {
	msg          []byte
	idOff, tsOff int
}

// tokenName builds a 24-character token (Chatwoot's are 24 too).
func tokenName(set string, i int) string { return fmt.Sprintf("%-4.4s%020d", set, i) }

// newTokenSet makes n tokens; with size > 0 each gets a message template.
func newTokenSet(name string, n, size int) (*tokenSet, error) {
	s := &tokenSet{name: name, tokens: make([]string, n)}
	for i := range n {
		s.tokens[i] = tokenName(name, i)
	}
	if size == 0 {
		return s, nil
	}
	s.tmpl = make([]template, n)
	for i := range n {
		t, err := newTemplate(i, size)
		if err != nil {
			return nil, err
		}
		s.tmpl[i] = t
	}
	return s, nil
}

func newTemplate(i, size int) (template, error) {
	msg, err := chatwoottest.MessageCreatedSized(chatwoottest.MessageData{
		ID: idBase, AccountID: accountID, InboxID: inboxID, ConversationID: convBase + int64(i),
		MessageType: chatwoottest.MessageOutgoing, SenderAgent: &chatwoottest.AgentData{ID: 1, Name: "Agent 1"},
		CreatedAt: templateTime, UpdatedAt: templateTime, LastActivityAt: templateTime,
	}, size)
	if err != nil {
		return template{}, err
	}
	t := template{msg: msg, idOff: bytes.Index(msg, idPattern), tsOff: bytes.Index(msg, stampPattern)}
	if t.idOff < 0 || t.tsOff < 0 || !bytes.HasPrefix(msg[t.tsOff+len(stampPattern):], bytes.Repeat([]byte("x"), stampLen)) {
		return template{}, fmt.Errorf("message template: id or content not where expected (size %d too small?)", size)
	}
	t.idOff += len(`"id":`)
	t.tsOff += len(stampPattern)
	return t, nil
}

// fill copies the template into buf with message id and send time set.
func (t *template) fill(buf []byte, id, sentAt int64) []byte {
	buf = append(buf[:0], t.msg...)
	putDigits(buf[t.idOff:t.idOff+13], id)
	buf[t.tsOff] = 'T'
	putDigits(buf[t.tsOff+1:t.tsOff+stampLen], sentAt)
	return buf
}

// putDigits writes v into dst as zero-padded decimal.
func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// sentAt extracts the send time from a published body (or a whole frame).
func sentAt(body []byte) (int64, bool) {
	i := bytes.Index(body, stampPattern)
	if i < 0 || len(body) < i+len(stampPattern)+stampLen {
		return 0, false
	}
	d := body[i+len(stampPattern):][:stampLen]
	if d[0] != 'T' {
		return 0, false
	}
	var v int64
	for _, c := range d[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// writeTokens writes a subscriptions file, one token a line.
func writeTokens(path string, tokens []string) error {
	return os.WriteFile(path, []byte(strings.Join(tokens, "\n")+"\n"), 0o600)
}

// pushStats counts what a push did.
type pushStats struct {
	pushed   int64 // Broadcast calls
	unrouted int64 // broadcasts nobody was subscribed to (lost at the fake)
	start    int64 // since-base of the first send
	end      int64 // since-base after the last send
}

// pushAll broadcasts total events over the set's tokens as fast as the
// fake's backpressure allows, from several goroutines. Goroutine g owns the
// tokens i with i%pushers == g, so each token's events go out in id order.
func (b *bench) pushAll(ctx context.Context, set *tokenSet, total int) pushStats {
	return b.push(ctx, set, total, min(b.p.Pushers, len(set.tokens)), 0)
}

// pushPaced broadcasts at a fixed total rate for d from the given number of
// goroutines (each owning every pushers-th token), round-robin over their
// tokens. A goroutine sleeps only when it is ahead of its schedule, so
// short stalls are caught up. Each event carries the time it was handed
// to the fake.
func (b *bench) pushPaced(ctx context.Context, set *tokenSet, rate float64, d time.Duration, pushers int) pushStats {
	pushers = max(1, min(pushers, len(set.tokens)))
	interval := time.Duration(float64(time.Second) * float64(pushers) / rate)
	return b.push(ctx, set, int(rate*d.Seconds()), pushers, interval)
}

// push splits total events over pushers goroutines, each sending its share
// one interval apart (0: as fast as the fake takes them).
func (b *bench) push(ctx context.Context, set *tokenSet, total, pushers int, interval time.Duration) pushStats {
	st := pushStats{start: b.since()}
	var unrouted atomic.Int64
	var wg sync.WaitGroup
	for g := range pushers {
		share := total / pushers
		if g < total%pushers {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			unrouted.Add(b.pushOnSchedule(ctx, set, g, pushers, share, interval))
		}()
	}
	wg.Wait()
	st.pushed, st.unrouted, st.end = int64(total), unrouted.Load(), b.since()
	return st
}

// pacingSlack is how far ahead of its schedule a pusher may get before it
// sleeps: sleeping for less is not precise anyway.
const pacingSlack = 50 * time.Microsecond

// pushOnSchedule sends count events round-robin over tokens g, g+step, ...
func (b *bench) pushOnSchedule(ctx context.Context, set *tokenSet, g, step, count int, interval time.Duration) (unrouted int64) {
	buf := make([]byte, 0, b.p.MessageBytes)
	begin := time.Now()
	i := g
	for k := range count {
		if interval > 0 {
			if ahead := time.Until(begin.Add(time.Duration(k) * interval)); ahead > pacingSlack {
				time.Sleep(ahead)
			}
		}
		if k%1024 == 0 && ctx.Err() != nil {
			return unrouted
		}
		buf = set.tmpl[i].fill(buf, b.nextID(), b.since())
		if b.fake.Broadcast(set.tokens[i], buf) == 0 {
			unrouted++
		}
		if i += step; i >= len(set.tokens) {
			i = g
		}
	}
	return unrouted
}
