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
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Pool is what the registry needs of the cable pool.
type Pool interface {
	Add(token string, meta any) (string, error)
	Remove(id string) bool
	Get(id string) (cable.Info, bool)
}

// Meta is what the relay knows about a subscription besides its token. It
// rides along with every delivery and state change of the pool (as the
// *Entry holding it). SourceID is a credential: LogValue leaves it out.
type Meta struct {
	ID              string
	InboxIdentifier string
	SourceID        string
	ContactID       string
	InboxID         string
	AccountID       string
	CreatedAt       time.Time
}

// CatchUp reports whether the subscription can be caught up and verified
// through the public API.
func (m *Meta) CatchUp() bool { return m.InboxIdentifier != "" && m.SourceID != "" }

// Hints are the routing ids of the record.
func (m *Meta) Hints() fanout.Hints {
	return fanout.Hints{AccountID: m.AccountID, InboxID: m.InboxID, ContactID: m.ContactID}
}

// LogValue implements slog.LogValuer without the source_id.
func (m *Meta) LogValue() slog.Value {
	return slog.GroupValue(slog.String("subscription", m.ID), slog.String("contact", m.ContactID),
		slog.String("account", m.AccountID))
}

// Entry is the pool's meta for one subscription: the current Meta, swapped
// atomically when ids are learned.
type Entry struct{ meta atomic.Pointer[Meta] }

// Meta returns the current facts.
func (e *Entry) Meta() *Meta { return e.meta.Load() }

// MetaOf returns the Meta carried by a pool delivery or state change, or nil.
func MetaOf(v any) *Meta {
	if e, ok := v.(*Entry); ok {
		return e.Meta()
	}
	return nil
}

// Registry implements api.Registry over a store and a cable pool.
type Registry struct {
	store store.Store
	log   *slog.Logger

	pool Pool // set by Attach before use

	// writeMu serialises read-modify-write of records (Register, learned ids).
	writeMu sync.Mutex

	learned chan string // subscription ids with newly learned ids
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	entries map[string]*Entry
}

var _ api.Registry = (*Registry)(nil)

// New returns a registry over st. Attach a pool before use.
func New(st store.Store, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{store: st, log: log, entries: make(map[string]*Entry),
		learned: make(chan string, 4096), cancel: cancel, done: make(chan struct{})}
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
// kept; new non-empty ones are added.
func (r *Registry) Register(ctx context.Context, reg api.Registration) (api.Subscription, bool, error) {
	if reg.Token == "" {
		return api.Subscription{}, false, fmt.Errorf("%w: pubsub_token is required", api.ErrInvalid)
	}
	if !cable.ValidToken(reg.Token) {
		return api.Subscription{}, false, fmt.Errorf("%w: %v", api.ErrInvalid, cable.ErrBadToken)
	}
	id := cable.SubscriptionID(reg.Token)
	rec := store.Subscription{ID: id, Token: reg.Token, Origin: reg.Origin}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if old, err := r.store.GetSubscription(ctx, id); err == nil {
		rec = old
	} else if !errors.Is(err, store.ErrNotFound) {
		return api.Subscription{}, false, err
	}
	fill(&rec.InboxIdentifier, reg.InboxIdentifier)
	fill(&rec.SourceID, reg.SourceID)
	fill(&rec.ContactID, reg.ContactID)
	if e := r.Entry(id); e != nil { // ids learned from events, maybe not written yet
		m := e.Meta()
		fillEmpty(&rec.AccountID, m.AccountID)
		fillEmpty(&rec.InboxID, m.InboxID)
		fillEmpty(&rec.ContactID, m.ContactID)
	}
	stored, created, err := r.store.PutSubscription(ctx, rec)
	if err != nil {
		return api.Subscription{}, false, err
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

func fill(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// subscribe hands the record to the pool with fresh meta.
func (r *Registry) subscribe(rec store.Subscription) error {
	m := metaOf(rec)
	r.mu.Lock()
	e := r.entries[rec.ID]
	if e == nil {
		e = &Entry{}
		r.entries[rec.ID] = e
	}
	e.meta.Store(m)
	r.mu.Unlock()
	_, err := r.pool.Add(rec.Token, e)
	return err
}

func metaOf(rec store.Subscription) *Meta {
	return &Meta{ID: rec.ID, InboxIdentifier: rec.InboxIdentifier, SourceID: rec.SourceID,
		ContactID: rec.ContactID, InboxID: rec.InboxID, AccountID: rec.AccountID, CreatedAt: rec.CreatedAt}
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
	if err := r.store.DeleteSubscription(ctx, id); err != nil {
		return err
	}
	r.pool.Remove(id)
	r.mu.Lock()
	delete(r.entries, id)
	r.mu.Unlock()
	r.log.Info("subscription removed", "subscription", id)
	return nil
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
			return n, nil
		}
		cursor = next
	}
}

// Learn records routing ids seen in a live event for subscription id, when
// the record lacks them. It runs for every event, on the delivery path: the
// live Meta is updated at once (only empty fields are filled, so nothing a
// registration set is lost), and the record is written by a background
// worker, so a slow store never stalls delivery.
func (r *Registry) Learn(id string, h fanout.Hints) {
	r.mu.Lock()
	e := r.entries[id]
	r.mu.Unlock()
	if e == nil {
		return
	}
	for {
		old := e.Meta()
		if !(news(old.AccountID, h.AccountID) || news(old.InboxID, h.InboxID) || news(old.ContactID, h.ContactID)) {
			return
		}
		m := *old
		fillEmpty(&m.AccountID, known(h.AccountID))
		fillEmpty(&m.InboxID, known(h.InboxID))
		fillEmpty(&m.ContactID, known(h.ContactID))
		if e.meta.CompareAndSwap(old, &m) {
			break
		}
	}
	select {
	case r.learned <- id:
	default: // the worker is behind; the ids stay in memory and are written with the next fact
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
		case id := <-r.learned:
			// Not derived from ctx: a write under way at Close completes.
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := r.storeLearned(wctx, id); err != nil {
				r.log.Warn("learned ids not stored", "subscription", id, "err", err)
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
		case id := <-r.learned:
			if err := r.storeLearned(ctx, id); err != nil {
				return
			}
		default:
			return
		}
	}
}

// storeLearned fills the record's empty ids from the live Meta. It holds
// writeMu so a concurrent Register cannot be overwritten.
func (r *Registry) storeLearned(ctx context.Context, id string) error {
	e := r.Entry(id)
	if e == nil {
		return nil
	}
	m := e.Meta()
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
	fillEmpty(&rec.AccountID, m.AccountID)
	fillEmpty(&rec.InboxID, m.InboxID)
	fillEmpty(&rec.ContactID, m.ContactID)
	_, _, err = r.store.PutSubscription(ctx, rec)
	return err
}

func fillEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// news reports whether v is a known id the record does not have yet.
func news(have, v string) bool { return have == "" && known(v) != "" }

func known(v string) string {
	if v == fanout.Unknown {
		return ""
	}
	return v
}

// Entry returns the live entry of a subscription, or nil.
func (r *Registry) Entry(id string) *Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[id]
}

func (r *Registry) view(rec store.Subscription) api.Subscription {
	v := api.Subscription{
		ID: rec.ID, State: api.StatePending, InboxIdentifier: rec.InboxIdentifier, ContactID: rec.ContactID,
		InboxID: rec.InboxID, AccountID: rec.AccountID, CatchUp: rec.InboxIdentifier != "" && rec.SourceID != "",
		Origin: rec.Origin, CreatedAt: rec.CreatedAt,
	}
	if e := r.Entry(rec.ID); e != nil {
		m := e.Meta()
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
