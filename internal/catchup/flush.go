package catchup

import (
	"context"
	"errors"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// dirtyState is a State handed to the flusher, with its subscription id.
type dirtyState struct {
	id string
	st *State
}

// write is one cursor to store, as it was when the write was decided.
type write struct {
	id, conv string
	cur      *cursor // the live cursor
	snap     cursor  // its value to store
}

// persist writes one cursor to the store. A write that turns out to be
// stale (the cursor changed meanwhile) leaves the cursor dirty for the next
// flush, and so does a failed one.
func (c *Catchup) persist(ctx context.Context, st *State, w write) error {
	_, err := c.opts.Cursors.PutCursor(ctx, store.Cursor{
		SubscriptionID: w.id, ConversationID: w.conv, LastMessageID: w.snap.lastID, Status: w.snap.status,
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	live := st.cursors[w.conv] == w.cur // not forgotten meanwhile
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.cur.dirty = false
		return errRemoved
	case err != nil:
		if live {
			c.queueLocked(w.id, st)
		}
		return err
	case live && w.cur.gen == w.snap.gen:
		w.cur.dirty = false
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

// flush writes every dirty cursor of the States handed to the flusher. It
// stops at the first store error other than a removed subscription; what is
// left stays dirty and handed over.
func (c *Catchup) flush(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.dirtyMu.Lock()
	states := c.dirty
	c.dirty = nil
	c.dirtyMu.Unlock()
	for i, d := range states {
		err := c.flushState(ctx, d)
		if err == nil {
			continue
		}
		c.requeue(states[i+1:])
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.storeErrors[opFlush].Inc()
		c.log.Warn("catchup: cursor flush failed", "subscription", d.id, "err", err)
		return err
	}
	return nil
}

// flushState writes the dirty cursors of one State. Changes made meanwhile
// hand it to the flusher again.
func (c *Catchup) flushState(ctx context.Context, d dirtyState) error {
	st := d.st
	st.mu.Lock()
	st.set(queued, false)
	var ws []write
	for conv, cur := range st.cursors {
		if cur.dirty {
			ws = append(ws, write{id: d.id, conv: conv, cur: cur, snap: *cur})
		}
	}
	st.mu.Unlock()
	for _, w := range ws {
		err := c.persistTimeout(ctx, st, w)
		switch {
		case err == nil:
			c.m.flushed.Inc()
		case errors.Is(err, errRemoved):
		default:
			return err
		}
	}
	return nil
}

// requeue hands States back to the flusher that it took but did not get
// to; they are still marked queued.
func (c *Catchup) requeue(states []dirtyState) {
	if len(states) == 0 {
		return
	}
	c.dirtyMu.Lock()
	c.dirty = append(c.dirty, states...)
	c.dirtyMu.Unlock()
}

func (c *Catchup) persistTimeout(ctx context.Context, st *State, w write) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.StoreTimeout)
	defer cancel()
	return c.persist(ctx, st, w)
}
