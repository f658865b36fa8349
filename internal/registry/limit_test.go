package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/store"
)

// Past the limit new subscriptions are refused with api.ErrLimit, one by
// one and in batches, and nothing is stored or subscribed for them; a
// re-registration of a held subscription is never refused.
func TestLimit(t *testing.T) {
	r, p, st := newTestRegistry(t)
	reg := prometheus.NewRegistry()
	if err := r.SetLimit(2, reg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tok := range []string{"tok-1", "tok-2"} {
		if _, _, err := r.Register(ctx, api.Registration{Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := r.Register(ctx, api.Registration{Token: "tok-3"})
	if !errors.Is(err, api.ErrLimit) || errors.Is(err, api.ErrInvalid) {
		t.Fatalf("third subscription: %v, want ErrLimit", err)
	}
	if _, err := st.GetSubscription(ctx, cable.SubscriptionID("tok-3")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused subscription stored: %v", err)
	}
	if _, _, err := r.Register(ctx, api.Registration{Token: "tok-1", InboxIdentifier: "inbox", SourceID: "src"}); err != nil {
		t.Fatalf("re-registration at the limit: %v", err)
	}

	results, err := r.RegisterBatch(ctx, []api.Registration{{Token: "tok-2"}, {Token: "tok-4"}, {Token: "tok-4"}, {Token: "tok-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Outcome{Unchanged, NotRegistered, NotRegistered, Unchanged} {
		if results[i].Outcome != want {
			t.Errorf("batch result %d: %v (%v), want %v", i, results[i].Outcome, results[i].Err, want)
		}
	}
	if !errors.Is(results[1].Err, api.ErrLimit) || !errors.Is(results[2].Err, api.ErrLimit) {
		t.Errorf("batch errors: %v / %v, want ErrLimit", results[1].Err, results[2].Err)
	}
	if n := p.Len(); n != 2 {
		t.Errorf("pool holds %d subscriptions, want 2", n)
	}
	if got := testutil.ToFloat64(r.limit.refused); got != 2 {
		t.Errorf("refusals counted %v, want 2 (one per subscription refused)", got)
	}
	if n, err := testutil.GatherAndCount(reg, "relay_subscriptions_limit", "relay_subscriptions_refused_total"); err != nil || n != 2 {
		t.Errorf("metrics exported: %d (%v), want 2", n, err)
	}

	// Room again after a removal.
	if err := r.Remove(ctx, cable.SubscriptionID("tok-2")); err != nil {
		t.Fatal(err)
	}
	if _, created, err := r.Register(ctx, api.Registration{Token: "tok-3"}); err != nil || !created {
		t.Fatalf("after a removal: %v %v", created, err)
	}
}

// A limit of 0 is no limit.
func TestNoLimit(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	if err := r.SetLimit(0, nil); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tok-1", "tok-2", "tok-3"} {
		if _, _, err := r.Register(context.Background(), api.Registration{Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
}

// A parked subscription is listed as parked, and found by its state.
func TestListParked(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	ctx := context.Background()
	parked, _, _ := r.Register(ctx, api.Registration{Token: "tok-parked"})
	r.Register(ctx, api.Registration{Token: "tok-pending"})
	p.SetState(parked.ID, cable.StateParked)
	page, _, err := r.List(ctx, api.StateParked, "", 10)
	if err != nil || len(page) != 1 || page[0].ID != parked.ID || page[0].State != "parked" {
		t.Fatalf("state=parked: %+v %v", page, err)
	}
}
