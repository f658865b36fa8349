package registry

import (
	"context"
	"errors"
	"sync"

	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Sharding makes the registry subscribe only the subscriptions this
// replica owns when replicas split them (package cluster).
type Sharding struct {
	// Owns reports whether this replica subscribes subscription id now.
	Owns func(id string) bool
	// Elsewhere hears of a registration (removed false) or removal made
	// through this replica for a subscription another replica owns: it
	// tells the owner, which calls Refresh.
	Elsewhere func(id string, removed bool)
}

// shard is the sharding state of a Registry.
type shard struct {
	Sharding
	// mu orders subscribing an owned record against dropping a released
	// bucket, so that a record read before a release is not subscribed
	// after it.
	mu sync.Mutex
}

// SetSharding makes the registry subscribe only what s.Owns; set it before
// Load. Without it every subscription is subscribed.
func (r *Registry) SetSharding(s Sharding) { r.shard = &shard{Sharding: s} }

// owned reports whether id is subscribed here, and tells the owner when
// it is not. An unsharded registry owns everything.
func (r *Registry) owned(id string, removed bool) bool {
	if r.shard == nil || r.shard.Owns(id) {
		return true
	}
	r.shard.Elsewhere(id, removed)
	return false
}

// LoadOwned subscribes every stored subscription keep selects that this
// replica owns, e.g. the subscriptions of buckets just claimed. It reads
// the whole registry page by page.
func (r *Registry) LoadOwned(ctx context.Context, keep func(id string) bool) (int, error) {
	n, cursor := 0, ""
	for {
		page, next, err := r.store.ListSubscriptions(ctx, cursor, store.MaxListLimit)
		if err != nil {
			return n, err
		}
		n += r.subscribeOwned(page, keep)
		if next == "" {
			return n, nil
		}
		cursor = next
	}
}

func (r *Registry) subscribeOwned(page []store.Subscription, keep func(id string) bool) int {
	r.shard.mu.Lock()
	defer r.shard.mu.Unlock()
	n := 0
	for _, rec := range page {
		if !keep(rec.ID) || !r.shard.Owns(rec.ID) {
			continue
		}
		if err := r.subscribeHere(rec); err != nil {
			r.log.Warn("stored subscription not subscribed", "subscription", rec.ID, "err", err)
			continue
		}
		n++
	}
	return n
}

// Unload stops, without forgetting them, the subscriptions drop selects:
// their bucket went to another replica. Their removal is a handover, not a
// removal (Entry.HandedOver).
func (r *Registry) Unload(drop func(id string) bool) int {
	r.shard.mu.Lock()
	defer r.shard.mu.Unlock()
	var gone []*Entry
	r.pool.Each(func(id string, s *fanout.Sub) {
		if e := entryOf(s); e != nil && drop(id) {
			e.handedOver.Store(true)
			gone = append(gone, e)
		}
	})
	for _, e := range gone {
		r.pool.Remove(e.Meta().ID)
	}
	return len(gone)
}

// Refresh brings one subscription in line with the store after another
// replica registered or removed it: subscribed when stored and owned here,
// dropped when removed.
func (r *Registry) Refresh(ctx context.Context, id string) error {
	rec, err := r.store.GetSubscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if r.pool.Remove(id) {
			r.log.Info("subscription removed through another replica", "subscription", id)
		}
		return nil
	}
	if err != nil {
		return err
	}
	r.subscribeOwned([]store.Subscription{rec}, func(string) bool { return true })
	return nil
}
