package feeds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
)

// syncBuffer collects logs written from the catch-up goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// paged answers as Chatwoot does: 25 conversations a page, 100 messages a
// call, oldest first.
type paged struct{ *source }

func (p paged) ListAccountConversations(_ context.Context, _ chatwoot.AccessToken, _ int64, page int) ([]chatwoot.AccountConversation, int, error) {
	if p.onList != nil {
		p.onList(page)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lists++; p.listMax > 0 && p.lists > p.listMax {
		return nil, 0, &chatwoot.APIError{Status: 502, Kind: chatwoot.KindStatus}
	}
	lo := (page - 1) * 25
	if lo >= len(p.convs) {
		return nil, len(p.convs), nil
	}
	return slices.Clone(p.convs[lo:min(lo+25, len(p.convs))]), len(p.convs), nil
}

func (p paged) ListAccountMessages(_ context.Context, _ chatwoot.AccessToken, _, conv, after int64) ([]chatwoot.AccountMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.failAt > 0 && p.calls >= p.failAt {
		return nil, &chatwoot.APIError{Status: 502, Kind: chatwoot.KindStatus}
	}
	var out []chatwoot.AccountMessage
	for _, id := range p.msgs[conv] {
		if id > after && len(out) < 100 {
			out = append(out, chatwoot.AccountMessage{ID: id, Raw: json.RawMessage(fmt.Sprintf(`{"id":%d,"conversation_id":%d,"message_type":0}`, id, conv))})
		}
	}
	return out, nil
}

// newPagedEnv is newEnv on a paged source, caught up at message 10 of
// conversation 1 and disconnected.
func newPagedEnv(t *testing.T) *env {
	e := newEnv(t)
	e.m.opts.Source = paged{e.src}
	e.src.add(1, 10)
	e.m.Confirmed(e.subID())
	synctest.Wait()
	e.m.Lost(e.subID())
	return e
}

// addConversation adds a conversation at the top, with message id.
func (e *env) addConversation(conv, id int64) {
	e.src.mu.Lock()
	e.src.convs = append(e.src.convs, chatwoot.AccountConversation{ID: conv, InboxID: 2})
	e.src.mu.Unlock()
	e.src.add(conv, id)
}

// replayedIDs are the message ids of the replayed events, sorted, once each.
func (e *env) replayedIDs() []int64 {
	var ids []int64
	for _, ev := range e.sink.replayed() {
		var v struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		json.Unmarshal(ev.Message, &v)
		ids = append(ids, v.Data.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// An outage in which more conversations got a message than one run may
// read: the walk is split and goes on until every message is replayed, and
// only then does the cursor move.
func TestCatchUpPastTheRunBoundsLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		var logs syncBuffer
		e.m.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		for c := int64(3); c <= 1012; c++ { // ids 11..1020
			e.addConversation(c, c+8)
		}
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if l := logs.String(); !strings.Contains(l, "feed catch-up split") || strings.Contains(l, "access-secret") || strings.Contains(l, "pubsub-A") {
			t.Errorf("logs without the split, or with a token:\n%s", l)
		}
		ids := e.replayedIDs()
		if len(ids) != 1010 || ids[0] != 11 || ids[len(ids)-1] != 1020 {
			t.Fatalf("%d of the 1010 missed messages replayed", len(ids))
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 1020 {
			t.Fatalf("cursor %d, want 1020", c)
		}
		if n := testutil.ToFloat64(e.m.m.splits); n < 1 {
			t.Errorf("splits counted: %v", n)
		}
		if !e.sub().clean {
			t.Error("not caught up after the split walk")
		}
	})
}

// A conversation with more messages than one run may read, below one
// with a newer message: the cursor does not pass its unread messages.
func TestCatchUpLongConversationSplits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		const long = runCalls*100 + 50
		for id := int64(11); id < 11+long; id++ {
			e.src.add(2, id)
		}
		e.addConversation(3, 11+long)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); len(ids) != long+1 {
			t.Fatalf("%d of %d missed messages replayed", len(ids), long+1)
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 11+long {
			t.Fatalf("cursor %d", c)
		}
	})
}

// addUnlisted creates message id in conv without the listing showing it
// yet: Chatwoot sets last_activity_at after the message is committed.
func (s *source) addUnlisted(conv, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs[conv] = append(s.msgs[conv], id)
}

// once runs f the first time page is listed.
func once(page int, f func()) func(int) {
	done := false
	return func(p int) {
		if p == page && !done {
			done = true
			f()
		}
	}
}

// Chatwoot lists conversations by last activity: one that gets a message
// while the walk is further down jumps to page 1, over the walk. Its
// messages from the outage are replayed all the same.
func TestCatchUpConversationJumpingOverTheWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 62; c++ { // ids 11..70, three pages
			e.addConversation(c, c+8)
		}
		e.src.onList = once(2, func() { e.src.add(3, 1000) }) // 11's conversation, on page 3
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Contains(ids, 11) || len(ids) < 60 {
			t.Fatalf("replayed %v: message 11 of the conversation that jumped to page 1 is missing", ids)
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 70 {
			t.Fatalf("cursor %d, want 70 (1000 was created during the walk)", c)
		}
	})
}

// Conversations created without a message (through the API) are more
// active than an older one with a missed message: the walk goes past them.
func TestCatchUpPassesConversationsWithoutMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		e.src.add(2, 11)
		for c := int64(20); c < 20+10; c++ {
			e.src.create(c)
		}
		e.addConversation(3, 12)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Equal(ids, []int64{11, 12}) {
			t.Fatalf("replayed %v, want [11 12]", ids)
		}
	})
}

// The connection drops during a walk, while a message (500) is created in
// a conversation the walk already read: its broadcast is lost. The cursor
// must not pass it because the walk read a younger one (501) further down.
func TestCatchUpCursorDoesNotPassMessagesCreatedDuringTheWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 32; c++ { // ids 11..40, two pages
			e.addConversation(c, c+8)
		}
		e.src.onList = once(2, func() {
			e.m.Lost(e.subID())
			e.src.addUnlisted(32, 500) // on page 1, read already
			e.m.Confirmed(e.subID())
			e.src.addUnlisted(3, 501) // on page 2
		})
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Contains(ids, 500) {
			t.Fatalf("replayed %v: 500 lost", ids)
		}
	})
}

// Chatwoot answers messages by created_at: two messages committed in the
// other order come with the higher id first. Both are replayed.
func TestCatchUpMessagesOutOfIDOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		e.src.add(2, 12)
		e.src.add(2, 11)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Equal(ids, []int64{11, 12}) {
			t.Fatalf("replayed %v, want [11 12]", ids)
		}
	})
}

// A new feed starts at the account's newest message even when the most
// active conversation has more than 100 (after=0 gives the oldest 100).
func TestNewFeedStartsAtTheNewestMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		for id := int64(1); id <= 150; id++ {
			e.src.add(1, id)
		}
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if c, _ := e.st.cursor(e.feedID, 1); c != 150 {
			t.Fatalf("new feed's cursor %d, want 150: the next catch-up replays history", c)
		}
	})
}

// A relay stopped in the middle of a walk (Chatwoot failing) has not moved
// the cursor; the next relay replays everything.
func TestRestartInTheMiddleOfAWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 1012; c++ {
			e.addConversation(c, c+8)
		}
		e.src.mu.Lock()
		e.src.failAt = e.src.calls + runCalls + 5
		e.src.mu.Unlock()
		e.m.Confirmed(e.subID())
		synctest.Wait() // split once, then failing and waiting to retry
		if err := e.m.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 10 {
			t.Fatalf("cursor %d after a walk that did not end, want 10", c)
		}
		e.src.mu.Lock()
		e.src.failAt = 0
		e.src.mu.Unlock()
		e.m = New(Options{Store: e.st, Source: paged{e.src}, Pool: e.pool, Sink: e.sink, Registerer: prometheus.NewRegistry()})
		if _, err := e.m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); len(ids) != 1010 {
			t.Fatalf("%d of 1010 replayed after the restart", len(ids))
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 1020 {
			t.Fatalf("cursor %d, want 1020", c)
		}
	})
}

// More conversations jump over the walk than one run may read again: the
// repass goes on across runs and ends.
func TestCatchUpLargeRepassEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 1202; c++ { // ids 11..1210
			e.addConversation(c, c+8)
		}
		e.src.listMax = 500 // a walk that never ends fails instead of spinning
		e.src.onList = once(2, func() {
			for c := int64(3); c <= 1152; c++ { // not read yet: 1150 jump over the walk
				e.src.add(c, 10_000+c)
			}
		})
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Contains(ids, 11) || !slices.Contains(ids, 1160) {
			t.Fatalf("%d replayed; 11 or 1160 missing", len(ids))
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 1210 {
			t.Fatalf("cursor %d, want 1210", c)
		}
	})
}

// A conversation deleted above the walk moves the rest up a place: the
// one that moves from page 2 to page 1 while the walk reads page 2 is not
// skipped (Chatwoot's all_count drops).
func TestCatchUpConversationDeletedDuringTheWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 52; c++ { // ids 11..60, two pages and more
			e.addConversation(c, c+8)
		}
		e.src.onList = once(2, func() {
			e.src.mu.Lock()
			e.src.convs = slices.Delete(e.src.convs, 0, 1) // conversation 52, message 60
			e.src.mu.Unlock()
		})
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Contains(ids, 35) || len(ids) != 50 {
			t.Fatalf("replayed %v: 35, first of page 2, moved to page 1 and was skipped", ids)
		}
	})
}

// liveMessage has a live message.created of conv in NATS, as the fan-out
// reports it.
func (e *env) liveMessage(conv, id int64) {
	e.src.add(conv, id)
	e.m.Published(e.subID(), fanout.Route{Kind: fanout.KindMessage, MessageID: fmt.Sprint(id),
		AccountID: "1", InboxID: "2", ConversationID: fmt.Sprint(conv), ContactID: fanout.Unknown})
}

// A conversation jumps over the first pass, conversations the walk read
// already get messages and move above it, and it jumps again while the
// repass goes down over them: the repass finds nothing it had not read.
// Its live messages name it: it is read all the same.
func TestCatchUpConversationJumpingTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newPagedEnv(t)
		for c := int64(3); c <= 62; c++ { // ids 11..70, three pages
			e.addConversation(c, c+8)
		}
		firsts := 0 // listings of page 1: the first pass's, then the repass's
		e.src.onList = func(page int) {
			if page == 1 {
				firsts++
			}
			switch {
			case page == 2 && firsts == 1:
				e.liveMessage(3, 1000) // message 11's conversation, on page 3
			case page == 3 && firsts == 1:
				for c := int64(62); c > 32; c-- {
					e.liveMessage(c, 1000+c) // read already: above it now
				}
			case page == 2 && firsts == 2:
				e.liveMessage(3, 2000) // over the repass
			}
		}
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if ids := e.replayedIDs(); !slices.Contains(ids, 11) {
			t.Fatalf("replayed %v: message 11 of the conversation that jumped twice is missing", ids)
		}
	})
}
