package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/group"
)

// registerGroup runs concurrent single registrations (POST
// /v1/subscriptions) as shared Registry.RegisterBatch calls, so that many
// clients registering at once share the store's reads and writes instead
// of taking turns. Like the store's group commit (package group), it adds
// no delay: a registration that finds no batch under way runs at once,
// alone; registrations that arrive meanwhile queue, and the next batch
// takes them (up to MaxBatchRegistrations).
type registerGroup struct {
	reg     Registry
	timeout time.Duration // bounds one batch (RequestTimeout)
	log     *slog.Logger
	q       *group.Queue[*registerOp]
}

func newRegisterGroup(reg Registry, timeout time.Duration, log *slog.Logger) *registerGroup {
	g := &registerGroup{reg: reg, timeout: timeout, log: log}
	g.q = group.New(MaxBatchRegistrations, g.run)
	return g
}

// registerOp is one queued registration and, once done is closed, its
// outcome.
type registerOp struct {
	ctx     context.Context
	reg     Registration
	sub     Subscription
	created bool
	err     error
	done    chan struct{}
}

// register registers reg with the next batch and returns what Register
// would. It returns early with ctx's error when ctx ends first; the
// registration may still complete.
func (g *registerGroup) register(ctx context.Context, reg Registration) (Subscription, bool, error) {
	op := &registerOp{ctx: ctx, reg: reg, done: make(chan struct{})}
	g.q.Add(op)
	select {
	case <-op.done:
		return op.sub, op.created, op.err
	case <-ctx.Done():
		return Subscription{}, false, ctx.Err()
	}
}

// run registers ops in one RegisterBatch call. When the batch fails as a
// whole (the store), each registration is tried alone, so each gets its own
// answer, as if it had never been grouped.
func (g *registerGroup) run(ops []*registerOp) {
	settled := 0
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("registration panic", "panic", fmt.Sprint(p))
			for _, op := range ops[settled:] {
				op.err = errRegisterPanic
				close(op.done)
			}
		}
	}()
	// The batch is everyone's: no single client's cancellation stops it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ops[0].ctx), g.timeout)
	defer cancel()
	regs := make([]Registration, len(ops))
	for i, op := range ops {
		regs[i] = op.reg
	}
	results, err := g.reg.RegisterBatch(ctx, regs)
	for i, op := range ops {
		if err != nil || i >= len(results) {
			op.sub, op.created, op.err = g.reg.Register(op.ctx, op.reg)
		} else {
			op.settle(results[i], g.log)
		}
		close(op.done)
		settled++
	}
}

// errRegisterPanic answers the registrations of a batch that panicked
// (500), rather than leaving them waiting.
var errRegisterPanic = errors.New("api: registration failed")

// settle takes op's outcome from its batch result; the error loses the
// batch's index, which means nothing to the client.
func (op *registerOp) settle(res BatchResult, log *slog.Logger) {
	if res.Err != nil {
		if op.err = errors.Unwrap(res.Err); op.err == nil {
			op.err = res.Err
		}
		return
	}
	op.sub, op.created = res.Subscription, res.Outcome == Created
	if op.created {
		log.Info("subscription registered", "subscription", res.ID, "origin", op.reg.Origin, "catch_up", op.sub.CatchUp)
	}
}
