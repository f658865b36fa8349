package catchup

import (
	"context"
	"strconv"
	"sync"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// State is what catch-up knows of one subscription. The subscription's
// record owns it (registry.Entry embeds one) and every Target of the record
// points to it, so a live event reaches it without a lookup by id or a
// catch-up-wide lock. The zero value is ready: frozen, nothing loaded, and
// nothing allocated until the subscription is caught up or sees an event.
// A State belongs to one subscription id and to one Catchup; it does not
// hold the id (the Target does), to stay small.
type State struct {
	mu      sync.Mutex
	epoch   uint32 // bumped by Lost and Forget: a gap began
	flags   flags
	cursors map[string]*cursor // made on first use: most subscriptions idle
	pending map[string]*seen   // live events observed while frozen
	job     *job               // guarded by Catchup.mu, not mu
}

// flags are a State's yes/no facts, one bit each.
type flags uint8

const (
	thawed    flags = 1 << iota // live events move cursors (unset: frozen, as a new State)
	noCatchUp                   // the latest Trigger had no catch-up data
	loaded                      // cursors read from the store
	synced                      // caught up at least once (the SyncMarker cursor exists)
	queued                      // in Catchup.dirty: the flusher will look at its cursors
)

func (st *State) is(f flags) bool { return st.flags&f != 0 }

func (st *State) set(f flags, on bool) {
	if on {
		st.flags |= f
	} else {
		st.flags &^= f
	}
}

// cursor is the in-memory progress of one conversation.
type cursor struct {
	lastID int64
	status string
	gen    uint64 // bumped on every change; a write of an older gen is stale
	dirty  bool   // changed since it was last written to the store
}

// seen sums up the live events of one conversation observed while frozen.
type seen struct {
	maxID   int64
	status  string             // latest conversation status, "" none
	statusE uint32             // the subscription's epoch when status was seen
	created bool               // conversation.created was published live
	ids     map[int64]struct{} // message ids published live, at most maxSeenIDs
}

// maxSeenIDs bounds the live message ids remembered per conversation while
// frozen; messages beyond it are replayed (and left to fanout's dedup).
const maxSeenIDs = 512

// observation is what a live event tells about a conversation.
type observation struct {
	conv    string
	msgID   int64
	status  string
	created bool
}

// ObserveLive records a routed live event of a subscription once NATS holds
// it: hook it to fanout's Published with the record's Target. It is cheap,
// takes only the subscription's State lock and never blocks on I/O. While
// the subscription is not frozen the event moves its cursors (written to
// the store every FlushInterval); while frozen it is only remembered for
// the end of the next catch-up. Replayed events are ignored, and so is a
// Target without a State.
func (c *Catchup) ObserveLive(t *Target, r fanout.Route) {
	o, ok := observe(r)
	if !ok || t == nil || t.State == nil {
		return
	}
	st := t.State
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.is(noCatchUp):
	case !st.is(thawed):
		st.remember(o, st.epoch)
	default:
		c.applyLocked(t.ID, st, o)
	}
}

// observe extracts what cursors need: message.created ids and conversation
// statuses.
func observe(r fanout.Route) (observation, bool) {
	if r.Replayed || r.ConversationID == "" || r.ConversationID == fanout.Unknown {
		return observation{}, false
	}
	o := observation{conv: r.ConversationID}
	switch r.Kind {
	case fanout.KindMessage:
		if r.Event != evMessageCreated {
			return o, false
		}
		id, err := strconv.ParseInt(r.MessageID, 10, 64)
		if err != nil || id <= 0 || id > store.MaxMessageID {
			return o, false
		}
		o.msgID = id
	case fanout.KindConversation:
		o.status, o.created = r.Status, r.Event == evConversationCreated
		if o.status == "" && !o.created {
			return o, false
		}
	default:
		return o, false
	}
	return o, true
}

func (st *State) remember(o observation, epoch uint32) {
	if st.pending == nil {
		st.pending = make(map[string]*seen)
	}
	s := st.pending[o.conv]
	if s == nil {
		s = &seen{}
		st.pending[o.conv] = s
	}
	s.maxID = max(s.maxID, o.msgID)
	if o.msgID > 0 && len(s.ids) < maxSeenIDs {
		if s.ids == nil {
			s.ids = make(map[int64]struct{})
		}
		s.ids[o.msgID] = struct{}{}
	}
	if o.status != "" {
		s.status, s.statusE = o.status, epoch
	}
	s.created = s.created || o.created
}

// applyLocked moves a cursor of subscription id by a live observation.
// st.mu is held.
func (c *Catchup) applyLocked(id string, st *State, o observation) {
	cur, changed := st.cursors[o.conv], false
	if cur == nil { // a conversation first seen now
		cur, changed = st.cursorLocked(o.conv), true
	}
	if o.msgID > cur.lastID {
		cur.lastID, changed = o.msgID, true
	}
	if o.status != "" && o.status != cur.status {
		cur.status, changed = o.status, true
	}
	if changed {
		c.changedLocked(id, st, cur)
	}
}

// changedLocked marks a cursor changed and dirty, and hands its State to
// the flusher unless it has it already: the only catch-up-wide lock a live
// event may take, once per State and flush. st.mu is held.
func (c *Catchup) changedLocked(id string, st *State, cur *cursor) {
	cur.gen++
	cur.dirty = true
	c.queueLocked(id, st)
}

// queueLocked hands the State of subscription id to the flusher unless it
// has it already. st.mu is held.
func (c *Catchup) queueLocked(id string, st *State) {
	if st.is(queued) {
		return
	}
	st.set(queued, true)
	c.dirtyMu.Lock()
	c.dirty = append(c.dirty, dirtyState{id, st})
	c.dirtyMu.Unlock()
}

func (st *State) cursorLocked(conv string) *cursor {
	cur := st.cursors[conv]
	if cur == nil {
		if st.cursors == nil {
			st.cursors = make(map[string]*cursor)
		}
		cur = &cursor{}
		st.cursors[conv] = cur
	}
	return cur
}

// mergePendingLocked folds the live events seen during a completed
// catch-up into the cursors: catch-up covered everything up to its REST
// reads, live delivery everything after the confirm that preceded them.
// A status seen before the latest loss is older than the REST one. st.mu
// is held.
func (c *Catchup) mergePendingLocked(id string, st *State) {
	for conv, s := range st.pending {
		o := observation{conv: conv, msgID: s.maxID}
		if s.statusE == st.epoch {
			o.status = s.status
		}
		c.applyLocked(id, st, o)
	}
	st.pending = nil
}

// pendingOf returns what was seen live of a conversation while frozen,
// and the messages of ms that were not published live.
func (st *State) pendingOf(conv string, ms []chatwoot.Message) (seen, []chatwoot.Message) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.pending[conv]
	if s == nil {
		return seen{}, ms
	}
	out := ms[:0:0]
	for _, m := range ms {
		if _, ok := s.ids[m.ID]; !ok {
			out = append(out, m)
		}
	}
	return seen{maxID: s.maxID, status: s.status, statusE: s.statusE, created: s.created}, out
}

// load reads the subscription's cursors from the store once.
func (c *Catchup) load(ctx context.Context, id string, st *State) error {
	st.mu.Lock()
	done := st.is(loaded)
	st.mu.Unlock()
	if done {
		return nil
	}
	stored, err := c.opts.Cursors.ListCursors(ctx, id)
	if err != nil {
		c.m.storeErrors[opLoad].Inc()
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.is(loaded) {
		return nil
	}
	for _, sc := range stored {
		if sc.ConversationID == SyncMarker {
			st.set(synced, true)
			continue
		}
		cur := st.cursorLocked(sc.ConversationID)
		cur.lastID = max(cur.lastID, sc.LastMessageID)
		if cur.status == "" {
			cur.status = sc.Status
		}
	}
	st.set(loaded, true)
	return nil
}
