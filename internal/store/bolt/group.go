package bolt

import (
	"errors"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/group"
)

// groupCommit runs concurrent writes in shared transactions, without the
// fixed delay of bbolt's Batch: a write that finds no commit under way
// commits at once, alone; writes that arrive while a commit is under way
// queue, and the next commit takes them all (package group). A lone write
// pays nothing extra; many writes at once share one fsync per commit.
type groupCommit struct {
	db *bbolt.DB
	q  *group.Queue[*groupOp]
}

func newGroupCommit(db *bbolt.DB) *groupCommit {
	g := &groupCommit{db: db}
	g.q = group.New(0, g.commit)
	return g
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
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	op := &groupOp{fn: fn, done: make(chan struct{})}
	g.q.Add(op)
	<-op.done
	return op.err
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
