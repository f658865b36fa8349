package bolt

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/bbolt"
)

// groupCommit runs concurrent writes in shared transactions, without the
// fixed delay of bbolt's Batch: a write that finds no commit under way
// commits at once, alone; writes that arrive while a commit is under way
// queue, and the next commit takes them all. A lone write pays nothing
// extra; many writes at once share one fsync per commit.
type groupCommit struct {
	db *bbolt.DB

	mu      sync.Mutex
	running bool       // a commit is under way
	queue   []*groupOp // waiting for the next commit
}

type groupOp struct {
	fn      func(*bbolt.Tx) error
	err     error
	settled bool // touched only by the leader committing it
	done    chan struct{}
}

// errSolo marks a group whose transaction failed because of one of its
// writes: each is then run alone, so only the failing one fails.
var errSolo = errors.New("store/bolt: write failed in a group")

// do runs fn in a write transaction, perhaps shared with others; fn may
// run twice, so it must derive everything it sets from the transaction.
// The caller that finds no commit under way leads: it commits what is
// queued, its own write included, and leaves later batches to a goroutine,
// so no caller waits for more than the commit that holds its write.
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	op := &groupOp{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, op)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		g.lead()
	}
	<-op.done
	return op.err
}

// lead commits one batch of queued writes, then hands what queued meanwhile
// to a new leader.
func (g *groupCommit) lead() {
	g.mu.Lock()
	ops := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(ops)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.running = false
		return
	}
	go g.lead()
}

// errPanicked: a write, or bbolt under it, panicked; every write of the
// batch gets this error instead of hanging.
var errPanicked = errors.New("store/bolt: a write panicked")

// commit runs ops in one transaction; if one of them fails, the others are
// retried one transaction each, so every op gets its own outcome.
func (g *groupCommit) commit(ops []*groupOp) {
	defer func() {
		if r := recover(); r != nil {
			for _, op := range ops {
				op.finish(fmt.Errorf("%w: %v", errPanicked, r))
			}
		}
	}()
	failed := -1
	err := g.db.Update(func(tx *bbolt.Tx) error {
		for i, op := range ops {
			if err := op.fn(tx); err != nil {
				failed = i
				return errSolo
			}
		}
		return nil
	})
	if err != nil && (failed >= 0 || len(ops) > 1) {
		for _, op := range ops {
			op.finish(g.db.Update(op.fn))
		}
		return
	}
	for _, op := range ops {
		op.finish(err)
	}
}

// finish settles op once.
func (op *groupOp) finish(err error) {
	if op.settled {
		return
	}
	op.settled = true
	op.err = err
	close(op.done)
}
