package bolt

import (
	"errors"
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
	fn   func(*bbolt.Tx) error
	err  error
	done chan struct{}
}

// errSolo marks a group whose transaction failed because of one of its
// writes: each is then run alone, so only the failing one fails.
var errSolo = errors.New("store/bolt: write failed in a group")

// do runs fn in a write transaction, perhaps shared with others; fn may
// run twice, so it must derive everything it sets from the transaction.
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	op := &groupOp{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, op)
	if g.running {
		g.mu.Unlock()
		<-op.done
		return op.err
	}
	g.running = true
	for len(g.queue) > 0 {
		ops := g.queue
		g.queue = nil
		g.mu.Unlock()
		g.commit(ops)
		g.mu.Lock()
	}
	g.running = false
	g.mu.Unlock()
	<-op.done
	return op.err
}

// commit runs ops in one transaction; if one of them fails, the others are
// retried one transaction each, so every op gets its own outcome.
func (g *groupCommit) commit(ops []*groupOp) {
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
			op.err = g.db.Update(op.fn)
			close(op.done)
		}
		return
	}
	for _, op := range ops {
		op.err = err
		close(op.done)
	}
}
