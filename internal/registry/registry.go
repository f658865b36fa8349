// Package registry provides the relay's subscription registry: the one
// place that keeps the persistent record (store), the live subscription
// (cable pool) and the routing facts learned from events in step.
//
// Every registered token is written to the store before it is subscribed,
// so a restart resubscribes everything (Load). Ids the relay learns from
// live events (account, inbox, contact) are written back to the record so
// that routing and catch-up keep working for subscriptions registered by
// token only.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/catchup"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Pool is what the registry needs of the cable pool.
type Pool interface {
	Add(token string, sub *fanout.Sub) (string, error)
	Remove(id string) bool
	Invalidate(id, reason string) bool
	Get(id string) (cable.Info[*fanout.Sub], bool)
	Lookup(id string) (*fanout.Sub, bool)
	Len() int
	Each(fn func(id string, sub *fanout.Sub))
}

// Meta is what catch-up and the verifier need of a subscription besides
// its token. SourceID is a credential: LogValue leaves it out.
type Meta = catchup.Target

// Registry implements api.Registry over a store and a cable pool.
type Registry struct {
	store store.Store
	log   *slog.Logger

	pool  Pool   // set by Attach before use
	limit *limit // set by SetLimit; nil: no cap
	shard *shard // set by SetSharding; nil: every subscription is subscribed here

	// writeMu serialises read-modify-write of records (Register, learned ids).
	writeMu sync.Mutex

	learned chan *Entry // subscriptions with newly learned ids
	cancel  context.CancelFunc

	// Set by Wire; no-ops until then.
	events   Events
	catchup  CatchUp
	sessions SessionVerifier
	done     chan struct{}

	// mu serialises creating an entry and adding it to the pool, whose
	// index is the registry's: an entry is found through its record.
	mu sync.Mutex
}

var _ api.Registry = (*Registry)(nil)

// New returns a registry over st. Attach a pool before use.
func New(st store.Store, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{store: st, log: log,
		learned: make(chan *Entry, 4096), cancel: cancel, done: make(chan struct{}),
		events: noEvents{}, catchup: noCatchUp{}}
	go r.persistLearned(ctx)
	return r
}

// Close stops the background writer.
func (r *Registry) Close() {
	r.cancel()
	<-r.done
}

// Attach sets the pool. The pool's callbacks usually need the registry,
// hence the two steps.
func (r *Registry) Attach(p Pool) { r.pool = p }

// Register persists and subscribes a token, idempotently. Known facts are
// kept; new non-empty ones are added. A registration that changes nothing
// does not write the store: the stored record is subscribed again as it is.
func (r *Registry) Register(ctx context.Context, reg api.Registration) (api.Subscription, bool, error) {
	if err := validate(reg); err != nil {
		return api.Subscription{}, false, err
	}
	id := cable.SubscriptionID(reg.Token)
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old, err := r.store.GetSubscription(ctx, id)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.Subscription{}, false, r.storeFailed(err)
	}
	if !found {
		if err := r.admit(1); err != nil {
			return api.Subscription{}, false, err
		}
		old = store.Subscription{ID: id, Token: reg.Token, Origin: reg.Origin}
	}
	stored, created := old, false
	if rec := r.merge(old, reg); !found || rec != old {
		if stored, created, err = r.store.PutSubscription(ctx, rec); err != nil {
			return api.Subscription{}, false, r.storeFailed(err)
		}
	}
	if err := r.subscribe(stored); err != nil {
		if errors.Is(err, cable.ErrBadToken) {
			err = fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		return api.Subscription{}, false, err
	}
	if created {
		r.log.Info("subscription registered", "subscription", id, "origin", stored.Origin, "catch_up", stored.InboxIdentifier != "" && stored.SourceID != "")
	}
	return r.view(stored), created, nil
}

// storeFailed turns a store failure during a registration into the API's
// 503 with a message the client can act on; the cause is logged, not
// answered. Errors the API maps itself (invalid, closed, deadlines) pass.
func (r *Registry) storeFailed(err error) error {
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	r.log.Error("subscription not stored", "err", err)
	msg := "the relay cannot store subscriptions now: its state store is unavailable"
	if errors.Is(err, syscall.ENOSPC) {
		msg = "the relay cannot store subscriptions now: the disk of its state file is full"
	}
	return &storeError{msg: msg, cause: err}
}

// storeError is api.ErrUnavailable with a client-facing message; its cause
// (file paths, addresses) stays out of the text but in the chain.
type storeError struct {
	msg   string
	cause error
}

func (e *storeError) Error() string   { return e.msg }
func (e *storeError) Unwrap() []error { return []error{api.ErrUnavailable, e.cause} }

// validate checks a registration before anything is stored. The error
// never holds the token.
func validate(reg api.Registration) error {
	if reg.Token == "" {
		return fmt.Errorf("%w: pubsub_token is required", api.ErrInvalid)
	}
	if !cable.ValidToken(reg.Token) {
		return fmt.Errorf("%w: %v", api.ErrInvalid, cable.ErrBadToken)
	}
	return nil
}

// merge returns rec with what reg and the live entry add: non-empty facts
// of reg replace the record's, ids learned from events (maybe not written
// yet) fill empty ones. The caller holds writeMu.
func (r *Registry) merge(rec store.Subscription, reg api.Registration) store.Subscription {
	fill(&rec.InboxIdentifier, reg.InboxIdentifier)
	fill(&rec.SourceID, reg.SourceID)
	fill(&rec.ContactID, reg.ContactID)
	if e := r.Entry(rec.ID); e != nil {
		m := e.sub.Hints()
		fillEmpty(&rec.AccountID, m.AccountID)
		fillEmpty(&rec.InboxID, m.InboxID)
		fillEmpty(&rec.ContactID, m.ContactID)
	}
	return rec
}

// BatchChunk is how many registrations RegisterBatch reads and writes per
// store transaction.
const BatchChunk = 1000

// Outcome says what RegisterBatch did with one registration.
type Outcome = api.Outcome

// Outcomes of a registration in a batch.
const (
	NotRegistered = api.NotRegistered
	Created       = api.Created
	Updated       = api.Updated
	Unchanged     = api.Unchanged
)

// BatchResult is the outcome of one registration of RegisterBatch.
type BatchResult = api.BatchResult

// BatchSummary counts the outcomes of a batch.
type BatchSummary struct{ Created, Updated, Unchanged, Failed int }

// Summarize counts results by outcome; Failed counts those not registered.
func Summarize(results []BatchResult) BatchSummary {
	var s BatchSummary
	for _, res := range results {
		switch res.Outcome {
		case Created:
			s.Created++
		case Updated:
			s.Updated++
		case Unchanged:
			s.Unchanged++
		default:
			s.Failed++
		}
	}
	return s
}

// RegisterBatch registers many tokens like Register, in order, but reads
// and writes the store BatchChunk registrations at a time: records that
// would not change are not written, the others are written in one
// transaction per chunk, then all are subscribed. results[i] is the
// outcome of regs[i]. An invalid registration fails alone (its result's
// Err names its index); the valid ones are registered. A store failure
// stops the batch and is returned: chunks before it are registered, the
// registrations of the failed chunk and after it are NotRegistered.
// Nothing is logged per registration.
func (r *Registry) RegisterBatch(ctx context.Context, regs []api.Registration) ([]BatchResult, error) {
	results := make([]BatchResult, len(regs))
	valid := make([]int, 0, len(regs))
	for i, reg := range regs {
		if err := validate(reg); err != nil {
			results[i].Err = fmt.Errorf("registration %d: %w", i, err)
			continue
		}
		results[i].ID = cable.SubscriptionID(reg.Token)
		valid = append(valid, i)
	}
	for start := 0; start < len(valid); start += BatchChunk {
		chunk := valid[start:min(start+BatchChunk, len(valid))]
		if err := r.registerChunk(ctx, regs, chunk, results); err != nil {
			return results, fmt.Errorf("registering a batch stopped after %d of %d registrations: %w", start, len(valid), err)
		}
	}
	return results, nil
}

// registerChunk registers regs[i] for i in idx, filling results.
func (r *Registry) registerChunk(ctx context.Context, regs []api.Registration, idx []int, results []BatchResult) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	ids := make([]string, 0, len(idx))
	recs := make(map[string]*pending, len(idx))
	for _, i := range idx {
		if id := results[i].ID; recs[id] == nil {
			ids = append(ids, id)
			recs[id] = &pending{}
		}
	}
	stored, err := r.store.GetSubscriptions(ctx, ids)
	if err != nil {
		return r.storeFailed(err)
	}
	for _, rec := range stored {
		if p := recs[rec.ID]; p != nil {
			p.rec, p.found = rec, true
		}
	}
	// Merge in order, as Register one after the other would: a repeated id
	// sees what the earlier registration added.
	admitted := 0
	for _, i := range idx {
		p, reg := recs[results[i].ID], regs[i]
		isNew := !p.found && !p.seen
		if isNew && p.err == nil {
			if p.err = r.admit(admitted + 1); p.err == nil {
				admitted++
			}
		}
		if p.err != nil {
			continue // refused by the limit: nothing written, not subscribed
		}
		if isNew {
			p.rec = store.Subscription{ID: results[i].ID, Token: reg.Token, Origin: reg.Origin}
		}
		p.seen = true
		rec := r.merge(p.rec, reg)
		switch {
		case isNew:
			results[i].Outcome, p.dirty = Created, true
		case rec != p.rec:
			results[i].Outcome, p.dirty = Updated, true
		default:
			results[i].Outcome = Unchanged
		}
		p.rec = rec
	}
	var writes []store.Subscription
	for _, id := range ids {
		if p := recs[id]; p.dirty {
			writes = append(writes, p.rec)
		}
	}
	if len(writes) > 0 {
		put, err := r.store.PutSubscriptions(ctx, writes)
		if err != nil {
			for _, i := range idx {
				results[i].Outcome = NotRegistered
			}
			return r.storeFailed(err)
		}
		for _, res := range put {
			recs[res.Stored.ID].rec = res.Stored
		}
	}
	for _, id := range ids {
		if recs[id].err == nil && recs[id].seen {
			recs[id].err = r.subscribe(recs[id].rec)
		}
	}
	for _, i := range idx {
		p := recs[results[i].ID]
		if p.err == nil {
			results[i].Subscription = r.view(p.rec)
			continue
		}
		err := p.err
		if errors.Is(err, cable.ErrBadToken) {
			err = fmt.Errorf("%w: %v", api.ErrInvalid, err)
		}
		results[i].Outcome, results[i].Err = NotRegistered, fmt.Errorf("registration %d: %w", i, err)
	}
	return nil
}

// pending is one subscription of a chunk being registered.
type pending struct {
	rec   store.Subscription
	found bool  // rec was read from the store
	seen  bool  // a registration of the chunk was merged into rec
	dirty bool  // rec must be written
	err   error // the limit or the pool refused it
}

func fill(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// subscribe hands the record to the pool with fresh meta, when this
// replica owns it.
func (r *Registry) subscribe(rec store.Subscription) error {
	if !r.owned(rec.ID, false) {
		if !cable.ValidToken(rec.Token) {
			return cable.ErrBadToken
		}
		return nil
	}
	return r.subscribeHere(rec)
}

func (r *Registry) subscribeHere(rec store.Subscription) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.Entry(rec.ID)
	if e == nil {
		e = &Entry{reg: r}
		e.sub.ID, e.sub.Owner = rec.ID, e
	}
	e.sub.SetHints(fanout.Hints{AccountID: intern(rec.AccountID), InboxID: intern(rec.InboxID), ContactID: rec.ContactID})
	e.meta.Store(e.metaOf(rec))
	if t := rec.LastActivityAt; !t.IsZero() {
		e.sub.SetActivity(t)
	}
	_, err := r.pool.Add(rec.Token, &e.sub)
	return err
}

// Get returns one subscription.
func (r *Registry) Get(ctx context.Context, id string) (api.Subscription, error) {
	rec, err := r.store.GetSubscription(ctx, id)
	if err != nil {
		return api.Subscription{}, err
	}
	return r.view(rec), nil
}

// List pages through the store, keeping those in state (all when empty).
func (r *Registry) List(ctx context.Context, state, cursor string, limit int) ([]api.Subscription, string, error) {
	if limit <= 0 || limit > store.MaxListLimit {
		limit = store.DefaultListLimit
	}
	var out []api.Subscription
	for {
		page, next, err := r.store.ListSubscriptions(ctx, cursor, limit)
		if err != nil {
			return nil, "", err
		}
		for i, rec := range page {
			v := r.view(rec)
			if state != "" && v.State != state {
				continue
			}
			out = append(out, v)
			if len(out) == limit {
				if i == len(page)-1 {
					return out, next, nil
				}
				return out, rec.ID, nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		cursor = next
	}
}

// Remove unsubscribes and forgets a subscription.
func (r *Registry) Remove(ctx context.Context, id string) error {
	// writeMu: a learned-ids write in flight would put the record back.
	r.writeMu.Lock()
	err := r.store.DeleteSubscription(ctx, id)
	r.writeMu.Unlock()
	if err != nil {
		return err
	}
	if r.owned(id, true) {
		r.pool.Remove(id)
	}
	r.log.Info("subscription removed", "subscription", id)
	return nil
}

// Prune removes the subscriptions registered with origin whose ids keep
// does not hold: those a source of registrations (the subscriptions file)
// no longer lists. It returns how many it removed.
func (r *Registry) Prune(ctx context.Context, origin string, keep map[string]bool) (int, error) {
	var stale []string
	for cursor := ""; ; {
		page, next, err := r.store.ListSubscriptions(ctx, cursor, store.MaxListLimit)
		if err != nil {
			return 0, err
		}
		for _, rec := range page {
			if rec.Origin == origin && !keep[rec.ID] {
				stale = append(stale, rec.ID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	for _, id := range stale {
		if err := r.Remove(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
	}
	return len(stale), nil
}

// Load subscribes every stored subscription (at start). The pool paces the
// subscribes; this only queues them.
func (r *Registry) Load(ctx context.Context) (int, error) {
	n, cursor := 0, ""
	for {
		page, next, err := r.store.ListSubscriptions(ctx, cursor, store.MaxListLimit)
		if err != nil {
			return n, err
		}
		for _, rec := range page {
			if err := r.subscribe(rec); err != nil {
				r.log.Warn("stored subscription not resubscribed", "subscription", rec.ID, "err", err)
				continue
			}
			n++
		}
		if next == "" {
			r.warnOverLimit(n)
			return n, nil
		}
		cursor = next
	}
}

// warnOverLimit tells that more subscriptions were restored than the limit
// allows (it was lowered): they are kept, new ones are refused.
func (r *Registry) warnOverLimit(n int) {
	if l := r.limit; l != nil && l.max > 0 && n > l.max {
		r.log.Warn("more stored subscriptions than the subscription limit: all restored, new ones refused until below it",
			"subscriptions", n, "limit", l.max)
	}
}

// persistLearned writes learned ids to the store until ctx ends.
func (r *Registry) persistLearned(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			r.drainLearned()
			return
		case e := <-r.learned:
			// Not derived from ctx: a write under way at Close completes.
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := r.storeLearned(wctx, e); err != nil {
				r.log.Warn("learned ids not stored", "subscription", e.sub.ID, "err", err)
			}
			cancel()
		}
	}
}

// drainLearned writes what is still queued at Close, briefly.
func (r *Registry) drainLearned() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		select {
		case e := <-r.learned:
			if err := r.storeLearned(ctx, e); err != nil {
				return
			}
		default:
			return
		}
	}
}

// storeLearned fills the stored record's empty ids from the live one. It
// holds writeMu so a concurrent Register cannot be overwritten.
func (r *Registry) storeLearned(ctx context.Context, e *Entry) error {
	id, m := e.sub.ID, e.sub.Hints()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	rec, err := r.store.GetSubscription(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil // removed meanwhile
		}
		return err
	}
	if rec.AccountID != "" && rec.InboxID != "" && rec.ContactID != "" {
		return nil
	}
	old := rec
	fillEmpty(&rec.AccountID, m.AccountID)
	fillEmpty(&rec.InboxID, m.InboxID)
	fillEmpty(&rec.ContactID, m.ContactID)
	if rec == old {
		return nil // the live meta has nothing the record lacks
	}
	_, _, err = r.store.PutSubscription(ctx, rec)
	return err
}

func fillEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// Entry returns the live entry of a subscription, or nil.
func (r *Registry) Entry(id string) *Entry {
	if r.pool == nil {
		return nil
	}
	s, _ := r.pool.Lookup(id)
	return entryOf(s)
}

func (r *Registry) view(rec store.Subscription) api.Subscription {
	v := api.Subscription{
		ID: rec.ID, State: api.StatePending, InboxIdentifier: rec.InboxIdentifier, ContactID: rec.ContactID,
		InboxID: rec.InboxID, AccountID: rec.AccountID, CatchUp: rec.InboxIdentifier != "" && rec.SourceID != "",
		Origin: rec.Origin, CreatedAt: rec.CreatedAt,
	}
	if e := r.Entry(rec.ID); e != nil {
		m := e.sub.Hints()
		fill(&v.AccountID, m.AccountID)
		fill(&v.InboxID, m.InboxID)
		fill(&v.ContactID, m.ContactID)
	}
	if r.pool == nil {
		return v
	}
	in, ok := r.pool.Get(rec.ID)
	if !ok {
		return v
	}
	v.State, v.Confirms, v.Events = in.State.String(), in.Confirms, in.Events
	if !in.ConfirmedAt.IsZero() {
		t := in.ConfirmedAt
		v.ConfirmedAt = &t
	}
	if !in.LastEventAt.IsZero() {
		t := in.LastEventAt
		v.LastEventAt = &t
	}
	return v
}
