package feeds

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoot"
)

// paged answers as Chatwoot does: 25 conversations a page, 100 messages a
// call, oldest first.
type paged struct{ *source }

func (p paged) ListAccountConversations(_ context.Context, _ chatwoot.AccessToken, _ int64, page int) ([]chatwoot.AccountConversation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lo := (page - 1) * 25
	if lo >= len(p.convs) {
		return nil, nil
	}
	return slices.Clone(p.convs[lo:min(lo+25, len(p.convs))]), nil
}

func (p paged) ListAccountMessages(_ context.Context, _ chatwoot.AccessToken, _, conv, after int64) ([]chatwoot.AccountMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
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
		for c := int64(3); c <= 1012; c++ { // ids 11..1020
			e.addConversation(c, c+8)
		}
		e.m.Confirmed(e.subID())
		synctest.Wait()
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
