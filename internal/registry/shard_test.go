package registry

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
)

// halves shards by the first hex digit of the id: this replica owns ids
// starting 0-7 while mine is set.
type halves struct {
	mu        sync.Mutex
	lost      bool // the low half went to another replica
	elsewhere []string
}

func (h *halves) owns(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return id[0] < '8' && !h.lost
}

func (h *halves) tell(id string, removed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.elsewhere = append(h.elsewhere, fmt.Sprintf("%s:%v", id, removed))
}

func tokens(n int) (owned, other []string) {
	for i := 0; len(owned) < n || len(other) < n; i++ {
		tok := fmt.Sprintf("token-%d", i)
		if cable.SubscriptionID(tok)[0] < '8' {
			owned = append(owned, tok)
		} else {
			other = append(other, tok)
		}
	}
	return owned[:n], other[:n]
}

func TestShardedRegistrySubscribesOnlyWhatItOwns(t *testing.T) {
	r, p, st := newTestRegistry(t)
	h := &halves{}
	r.SetSharding(Sharding{Owns: h.owns, Elsewhere: h.tell})
	mine, theirs := tokens(3)
	for _, tok := range append(slices.Clone(mine), theirs...) {
		if _, _, err := r.Register(t.Context(), api.Registration{Token: tok, Origin: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := st.CountSubscriptions(t.Context()); n != 6 {
		t.Fatalf("%d stored, want every registration stored", n)
	}
	for _, tok := range mine {
		if !p.Has(cable.SubscriptionID(tok)) {
			t.Error("an owned subscription was not subscribed")
		}
	}
	for _, tok := range theirs {
		id := cable.SubscriptionID(tok)
		if p.Has(id) || r.Entry(id) != nil {
			t.Error("a subscription owned elsewhere was subscribed here")
		}
		if !slices.Contains(h.elsewhere, id+":false") {
			t.Errorf("the owner was not told of %s: %v", id, h.elsewhere)
		}
	}
	if _, _, err := r.Register(t.Context(), api.Registration{Token: "bad\x00token"}); err == nil {
		t.Error("an invalid token was accepted")
	}
	// Removal through this replica of another's subscription tells it.
	gone := cable.SubscriptionID(theirs[0])
	if err := r.Remove(t.Context(), gone); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.elsewhere, gone+":true") {
		t.Errorf("the owner was not told of the removal: %v", h.elsewhere)
	}
}

func TestShardedRegistryHandsOverAndRefreshes(t *testing.T) {
	r, p, st := newTestRegistry(t)
	h := &halves{}
	r.SetSharding(Sharding{Owns: h.owns, Elsewhere: h.tell})
	mine, theirs := tokens(3)
	for _, tok := range append(slices.Clone(mine), theirs...) {
		if _, _, err := r.Register(t.Context(), api.Registration{Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
	// The low half goes away: unloaded, marked as handed over, still stored.
	entry := r.Entry(cable.SubscriptionID(mine[0]))
	h.mu.Lock()
	h.lost = true
	h.mu.Unlock()
	if n := r.Unload(func(id string) bool { return id[0] < '8' }); n != 3 {
		t.Fatalf("Unload dropped %d, want 3", n)
	}
	if p.Len() != 0 || !entry.HandedOver() {
		t.Fatalf("pool holds %d after the handover; handed over = %v", p.Len(), entry.HandedOver())
	}
	if n, _ := st.CountSubscriptions(t.Context()); n != 6 {
		t.Fatalf("a handover deleted records: %d stored", n)
	}
	// It comes back: LoadOwned subscribes exactly the selected owned ones.
	h.mu.Lock()
	h.lost = false
	h.mu.Unlock()
	n, err := r.LoadOwned(t.Context(), func(id string) bool { return id != cable.SubscriptionID(mine[2]) })
	if err != nil || n != 2 || p.Len() != 2 {
		t.Fatalf("LoadOwned = %d, %v; pool %d; want 2", n, err, p.Len())
	}
	// Refresh subscribes a record another replica stored, and drops one
	// another replica removed.
	if err := r.Refresh(t.Context(), cable.SubscriptionID(mine[2])); err != nil || p.Len() != 3 {
		t.Fatalf("Refresh of a stored owned record: %v; pool %d", err, p.Len())
	}
	if err := st.DeleteSubscription(t.Context(), cable.SubscriptionID(mine[1])); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(t.Context(), cable.SubscriptionID(mine[1])); err != nil || p.Has(cable.SubscriptionID(mine[1])) {
		t.Fatalf("Refresh of a removed record: %v; still subscribed", err)
	}
	if err := r.Refresh(t.Context(), cable.SubscriptionID(theirs[0])); err != nil || p.Has(cable.SubscriptionID(theirs[0])) {
		t.Fatalf("Refresh subscribed a record owned elsewhere: %v", err)
	}
}
