package feeds

import (
	"context"

	"github.com/relayhq/relay/internal/chatwoot"
)

// walk is a catch-up from one cursor: every message after it, read
// conversation by conversation. It stays on its subscription across runs
// (Sub.walk), so a walk split by the run bounds, or stopped by a Chatwoot
// error, goes on where it stopped; a relay restarted in the middle of one
// starts a new walk from the stored cursor, which has not moved.
//
// Chatwoot lists conversations by last_activity_at, which every message
// sets to its created_at. The walk makes two kinds of pass:
//
//   - the first pass goes down the list until a conversation less active
//     than stopBelow: once a conversation whose last message is at or
//     under the cursor is found, nothing after the cursor can be much
//     less active than it;
//   - a conversation that gets a message while the walk goes down jumps
//     to the top, over the walk. Repasses read again, from the top, the
//     conversations active since the walk began, until one replays no
//     message listed when the walk began.
//
// A conversation met again (pushed down a page by one that jumped up) is
// read again only when the listing shows a message the walk has not read.
// A conversation that leaves the listing moves the rest up: the pass goes
// back as many pages as the listing's count dropped. A conversation can
// jump over the last repass too (conversations the walk read got messages
// and sit above it): the walk ends by reading the conversations that live
// messages came from since it began (Sub.touched) and it has not read.
// The cursor then moves to newest, the newest message listed when the walk
// began: a message created during the walk may be in a conversation read
// before it, and comes live or in the next catch-up. Only the catch-up
// goroutine of the subscription uses its walk.
type walk struct {
	from      int64 // the cursor the walk replays after
	newest    int64 // highest last message id of the first page, when it was first read
	since     int64 // last_activity_at of the most active conversation then (unix seconds)
	began     bool  // the first page was read
	stopBelow int64 // the first pass ends at a conversation less active; 0: not known yet

	pass  int // 0: the first pass; then repasses
	page  int // next page of the pass
	fresh int // messages listed when the walk began that the repass replayed
	total int // conversations in the listing at the last page read (meta.all_count)
	size  int // conversations a page shows

	read map[int64]int64 // by conversation: highest message id read
	done map[int64]bool  // conversations read to their last message

	upTo int64 // highest message id replayed
	sent int   // messages replayed
}

func newWalk(cursor int64) *walk {
	return &walk{from: cursor, page: 1, read: make(map[int64]int64), done: make(map[int64]bool)}
}

// after is the id after which the messages of a conversation are still to
// read.
func (w *walk) after(conv int64) int64 {
	if id, ok := w.read[conv]; ok {
		return id
	}
	return w.from
}

// begin notes where the account stood when the walk's first page was read.
func (w *walk) begin(convs []chatwoot.AccountConversation) {
	w.began = true
	for _, c := range convs {
		w.newest = max(w.newest, c.LastMessageID())
		w.since = max(w.since, c.LastActivityAt)
	}
}

// floor is the last_activity_at under which the pass ends; 0: none known.
func (w *walk) floor() int64 {
	if w.pass == 0 {
		return w.stopBelow
	}
	return w.since - activitySlack
}

// target is where the cursor may move once the walk ended: every message
// up to it is in NATS.
func (w *walk) target() int64 {
	if w.newest > 0 {
		return min(w.upTo, w.newest)
	}
	return w.upTo
}

// walk runs the walk within the run bounds; ended reports that it is over:
// a repass replayed no message listed when the walk began.
func (r *replay) walk(ctx context.Context) (ended bool, err error) {
	w := r.w
	for {
		if ok, err := r.pass(ctx); !ok || err != nil {
			return false, err
		}
		if w.pass > 0 && w.fresh == 0 {
			ok, again, err := r.readTouched(ctx)
			if !ok || err != nil {
				return false, err
			}
			if !again {
				return true, nil
			}
		}
		w.pass, w.page, w.fresh = w.pass+1, 1, 0
	}
}

// pass goes down the conversations from the pass's page to its floor; ok
// is false when the run bounds stopped it.
func (r *replay) pass(ctx context.Context) (ok bool, err error) {
	w := r.w
	for {
		convs, total, ok, err := r.list(ctx, w.page)
		if !ok || err != nil {
			return false, err
		}
		if back := w.shifted(total, len(convs)); back > 0 {
			w.page = max(1, w.page-back)
			continue
		}
		if !w.began {
			w.begin(convs)
		}
		for _, c := range convs {
			if f := w.floor(); f > 0 && c.LastActivityAt < f {
				return true, nil
			}
			n, ok, err := r.conversation(ctx, c)
			if w.pass > 0 {
				w.fresh += n
			}
			if !ok || err != nil {
				return false, err
			}
			if w.pass == 0 && w.stopBelow == 0 && c.LastMessageID() > 0 && w.after(c.ID) <= w.from {
				w.stopBelow = c.LastActivityAt - activitySlack
			}
		}
		if len(convs) == 0 {
			return true, nil
		}
		w.page++
	}
}

// shifted notes how many conversations the listing holds and how many a
// page shows, and returns how many pages the pass must go back. A new
// conversation goes to the top and a message moves its conversation up:
// both push the rest down, which only shows some conversations twice. A
// conversation that leaves the listing (deleted, or no longer in the
// user's inboxes) moves the rest up, over the pass: the count drops.
func (w *walk) shifted(total, size int) int {
	prev := w.total
	w.total, w.size = total, max(w.size, size)
	if prev == 0 || total >= prev || w.page == 1 {
		return 0
	}
	size = max(w.size, 1)
	return (prev - total + size - 1) / size
}

// readTouched reads the conversations that live messages came from during
// the walk and that it has not read to their end: one may have jumped over
// every pass. ok is false when the run bounds stopped it (the rest is kept
// for the next run); again reports that there were more than maxTouched:
// another repass is needed.
func (r *replay) readTouched(ctx context.Context) (ok, again bool, err error) {
	r.m.mu.Lock()
	touched := r.s.touched
	again = len(touched) >= maxTouched
	r.s.touched = nil
	r.m.mu.Unlock()
	for id, c := range touched {
		if !r.w.done[id] {
			if _, ok, err := r.conversation(ctx, c); !ok || err != nil {
				r.retouch(touched)
				return false, false, err
			}
		}
		delete(touched, id)
	}
	return true, again, nil
}

// retouch gives back to the subscription the conversations readTouched did
// not read.
func (r *replay) retouch(touched map[int64]chatwoot.AccountConversation) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.s.touched == nil {
		r.s.touched = touched
		return
	}
	for id, c := range touched {
		r.s.touched[id] = c
	}
}
