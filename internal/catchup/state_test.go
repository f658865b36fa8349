package catchup

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// A live event that arrives after the subscription was forgotten (its
// record removed) is not resurrected: the Catchup keeps nothing of it and
// nothing is written. The same record added again starts as new.
func TestForgottenNotResurrected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{FlushInterval: time.Second}, "a")
		e.caughtUpOpen("a")
		st := e.state("a")

		e.c.Forget(e.target("a"))
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 9)) // in flight when the record went
		time.Sleep(3 * time.Second)                          // several flush intervals
		synctest.Wait()
		if c := e.cursor("a", "1"); c.LastMessageID != 2 {
			t.Fatalf("a forgotten subscription's cursor was written: %+v", c)
		}
		if f, n, j := e.look(st); f&thawed != 0 || n != 0 || j {
			t.Fatalf("forgotten state: flags %b, %d cursors, job %v", f, n, j)
		}
		e.c.dirtyMu.Lock()
		n := len(e.c.dirty)
		e.c.dirtyMu.Unlock()
		if n != 0 {
			t.Fatalf("%d states left with the flusher", n)
		}

		// Added again: the cursors are read from the store again, and the
		// catch-up ends the freeze.
		e.src.add(1, 3, 4, time.Now().Unix())
		if done := e.run(e.meta("a", time.Now())); done.Replayed != 2 {
			t.Fatalf("replayed %d after the record was added again, want 2", done.Replayed)
		}
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 10))
		if c := e.memCursor("a", "1"); c.lastID != 10 {
			t.Fatalf("live events do not move the cursor after a new catch-up: %+v", c)
		}
	})
}

// A subscription forgotten while it is being caught up: the attempt ends
// without effect, its State stays as new and nothing is announced.
func TestForgetDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3, time.Now().Unix())
		release := make(chan struct{})
		e.src.onList = func(context.Context, string) error {
			<-release
			return nil
		}
		st := e.state("a")
		e.c.Trigger(e.meta("a", time.Now().Add(-time.Hour)), time.Now())
		synctest.Wait() // the attempt waits in ListConversations
		e.c.Forget(e.target("a"))
		close(release)
		synctest.Wait()
		if e.runs(resultGone) != 1 || len(e.sink.life) != 0 {
			t.Fatalf("gone %d, lifecycle %v", e.runs(resultGone), e.sink.life)
		}
		for _, conv := range []string{"1", SyncMarker} {
			if _, err := e.st.GetCursor(context.Background(), "a", conv); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("cursor %s written by a forgotten subscription's attempt: %v", conv, err)
			}
		}
		if f, n, j := e.look(st); f&^queued != 0 || n != 0 || j {
			t.Fatalf("state after the attempt: flags %b, %d cursors, job %v", f, n, j)
		}
	})
}

// A flush that fails on one subscription keeps the cursors of the others
// it did not get to dirty, as well as the failed one: the next flush
// writes them all.
func TestFlushKeepsTheRestDirty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		subs := []string{"a", "b", "c"}
		e := newEnv(t, Options{FlushInterval: time.Hour}, subs...)
		e.src.conv(1, "open")
		for _, id := range subs {
			e.synced(id, "1", 2, "open")
			e.run(e.meta(id, time.Now()))
		}
		fc := &failingCursors{Cursors: e.st}
		e.c.opts.Cursors = fc
		fc.fail.Store(true)
		for _, id := range subs {
			e.c.ObserveLive(e.target(id), liveMessage(t, 1, 5))
		}
		if err := e.c.flush(context.Background()); !errors.Is(err, errStoreDown) {
			t.Fatalf("flush = %v", err)
		}
		fc.fail.Store(false)
		if err := e.c.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, id := range subs {
			if c := e.cursor(id, "1"); c.LastMessageID != 5 {
				t.Errorf("%s: cursor = %+v after the second flush", id, c)
			}
		}
	})
}

// A cursor changed while it is being written stays dirty: the next flush
// writes the newer value.
func TestFlushStaleWriteStaysDirty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{FlushInterval: time.Hour}, "a")
		e.caughtUpOpen("a")
		hook := &hookCursors{Cursors: e.st, before: func() {
			e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 6)) // arrives during the write of 5
		}}
		e.c.opts.Cursors = hook
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 5))
		if err := e.c.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 5 {
			t.Fatalf("first flush wrote %+v", c)
		}
		hook.before = nil
		if err := e.c.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 6 {
			t.Fatalf("the change made during a write was not flushed: %+v", c)
		}
	})
}

// look returns a State's flags, how many cursors it holds and whether it
// has a job.
func (e *env) look(st *State) (flags, int, bool) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.flags, len(st.cursors), st.job != nil
}

// hookCursors runs before, once, ahead of the next cursor write.
type hookCursors struct {
	Cursors
	before func()
}

func (h *hookCursors) PutCursor(ctx context.Context, c store.Cursor) (store.Cursor, error) {
	if f := h.before; f != nil {
		h.before = nil
		f()
	}
	return h.Cursors.PutCursor(ctx, c)
}
