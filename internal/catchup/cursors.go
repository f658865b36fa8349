package catchup

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// sub is what catch-up knows of one subscription. Guarded by Catchup.mu.
type sub struct {
	epoch     uint64 // bumped by Lost: a gap began
	frozen    bool   // live events do not move cursors (initially true)
	noCatchUp bool   // the latest Trigger had no catch-up data
	loaded    bool   // cursors read from the store
	synced    bool   // caught up at least once (the SyncMarker cursor exists)
	cursors   map[string]*cursor
	pending   map[string]*seen // live events observed while frozen
	job       *job
}

// cursor is the in-memory progress of one conversation.
type cursor struct {
	lastID int64
	status string
	gen    uint64 // bumped on every change; a write of an older gen is stale
}

// seen sums up the live events of one conversation observed while frozen.
type seen struct {
	maxID   int64
	status  string             // latest conversation status, "" none
	statusE uint64             // the subscription's epoch when status was seen
	created bool               // conversation.created was published live
	ids     map[int64]struct{} // message ids published live, at most maxSeenIDs
}

// maxSeenIDs bounds the live message ids remembered per conversation while
// frozen; messages beyond it are replayed (and left to fanout's dedup).
const maxSeenIDs = 512

type cursorKey struct{ sub, conv string }

// observation is what a live event tells about a conversation.
type observation struct {
	conv    string
	msgID   int64
	status  string
	created bool
}

func (c *Catchup) subLocked(id string) *sub {
	st := c.subs[id]
	if st == nil {
		st = &sub{frozen: true} // cursors made on first use: most subscriptions idle
		c.subs[id] = st
	}
	return st
}

// ObserveLive records a routed live event of a subscription once NATS holds
// it: hook it to fanout's Published. It is cheap and never blocks on I/O. While the
// subscription is not frozen the event moves its cursors (written to the
// store every FlushInterval); while frozen it is only remembered for the
// end of the next catch-up. Replayed events are ignored.
func (c *Catchup) ObserveLive(subID string, r fanout.Route) {
	o, ok := observe(r)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.subLocked(subID)
	switch {
	case st.noCatchUp:
	case st.frozen:
		st.remember(o, st.epoch)
	default:
		c.applyLocked(subID, st, o)
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

func (st *sub) remember(o observation, epoch uint64) {
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

// applyLocked moves a cursor by a live observation.
func (c *Catchup) applyLocked(subID string, st *sub, o observation) {
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
		cur.gen++
		c.dirty[cursorKey{subID, o.conv}] = struct{}{}
	}
}

func (st *sub) cursorLocked(conv string) *cursor {
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
// A status seen before the latest loss is older than the REST one.
func (c *Catchup) mergePendingLocked(subID string, st *sub) {
	for conv, s := range st.pending {
		o := observation{conv: conv, msgID: s.maxID}
		if s.statusE == st.epoch {
			o.status = s.status
		}
		c.applyLocked(subID, st, o)
	}
	st.pending = nil
}

// pendingOf returns what was seen live of a conversation while frozen,
// and the messages of ms that were not published live.
func (c *Catchup) pendingOf(st *sub, conv string, ms []chatwoot.Message) (seen, []chatwoot.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
func (c *Catchup) load(ctx context.Context, id string, st *sub) error {
	c.mu.Lock()
	loaded := st.loaded
	c.mu.Unlock()
	if loaded {
		return nil
	}
	stored, err := c.opts.Cursors.ListCursors(ctx, id)
	if err != nil {
		c.m.storeErrors[opLoad].Inc()
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.loaded {
		return nil
	}
	for _, sc := range stored {
		if sc.ConversationID == SyncMarker {
			st.synced = true
			continue
		}
		cur := st.cursorLocked(sc.ConversationID)
		cur.lastID = max(cur.lastID, sc.LastMessageID)
		if cur.status == "" {
			cur.status = sc.Status
		}
	}
	st.loaded = true
	return nil
}

// persist writes one in-memory cursor to the store. A write that turns out
// to be stale (the cursor changed meanwhile) leaves the cursor dirty for
// the next flush.
func (c *Catchup) persist(ctx context.Context, k cursorKey) error {
	c.mu.Lock()
	st := c.subs[k.sub]
	var cur cursor
	if st != nil && st.cursors[k.conv] != nil {
		cur = *st.cursors[k.conv]
	}
	c.mu.Unlock()
	if st == nil {
		return errRemoved
	}
	_, err := c.opts.Cursors.PutCursor(ctx, store.Cursor{
		SubscriptionID: k.sub, ConversationID: k.conv, LastMessageID: cur.lastID, Status: cur.status,
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	live := c.subs[k.sub] == st && st.cursors[k.conv] != nil
	switch {
	case errors.Is(err, store.ErrNotFound):
		delete(c.dirty, k)
		return errRemoved
	case err != nil:
		return err
	case live && st.cursors[k.conv].gen == cur.gen:
		delete(c.dirty, k)
	case live:
		c.dirty[k] = struct{}{}
	}
	return nil
}

// flushLoop writes dirty cursors every FlushInterval until Close.
func (c *Catchup) flushLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.flush(c.ctx)
		case <-c.done:
			return
		}
	}
}

// flush writes every dirty cursor. It stops at the first store error other
// than a removed subscription; what is left stays dirty.
func (c *Catchup) flush(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	keys := make([]cursorKey, 0, len(c.dirty))
	for k := range c.dirty {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		err := c.persistTimeout(ctx, k)
		switch {
		case err == nil:
			c.m.flushed.Inc()
		case errors.Is(err, errRemoved):
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			c.m.storeErrors[opFlush].Inc()
			c.log.Warn("catchup: cursor flush failed", "subscription", k.sub, "err", err)
			return err
		}
	}
	return nil
}

func (c *Catchup) persistTimeout(ctx context.Context, k cursorKey) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StoreTimeout)
	defer cancel()
	return c.persist(ctx, k)
}
