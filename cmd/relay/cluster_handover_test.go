package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/registry/registrytest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

// removalClock is a fake pool that notes when its last subscription was
// removed.
type removalClock struct {
	*registrytest.Pool
	last time.Time
}

func (p *removalClock) Remove(id string) bool {
	p.last = time.Now()
	return p.Pool.Remove(id)
}

// TestHandoverReleasesOnlyAfterTheUnsubscribesSettle: a replica handing
// buckets over returns from OnRelease (after which the leases go to the
// new owner) only handoverSettle after it unsubscribed their
// subscriptions. The pool writes an unsubscribe asynchronously and
// Chatwoot runs it on its worker pool: releasing at once would let the new
// owner's subscribe of the same token overtake it, and the token be held
// by two sockets.
func TestHandoverReleasesOnlyAfterTheUnsubscribesSettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		for _, tok := range []string{"token-a", "token-b", "token-c"} {
			if _, _, err := st.PutSubscription(ctx, store.Subscription{ID: cable.SubscriptionID(tok), Token: tok}); err != nil {
				t.Fatal(err)
			}
		}
		reg := registry.New(st, nil)
		defer reg.Close()
		pool := &removalClock{Pool: registrytest.NewPool()}
		reg.Attach(pool)
		reg.SetSharding(registry.Sharding{Owns: func(string) bool { return true }, Elsewhere: func(string, bool) {}})
		m := &clusterMode{registry: reg, log: slog.New(slog.DiscardHandler)}
		if m.c, err = cluster.New(ctx, cluster.Config{Store: st, Member: "a", Buckets: 8}); err != nil {
			t.Fatal(err)
		}
		if n, err := reg.LoadOwned(ctx, func(string) bool { return true }); err != nil || n != 3 {
			t.Fatalf("loaded %d, %v", n, err)
		}
		m.released([]int{0, 1, 2, 3, 4, 5, 6, 7})
		if pool.Len() != 0 {
			t.Fatalf("%d subscriptions left after the handover", pool.Len())
		}
		if d := time.Since(pool.last); d < handoverSettle {
			t.Fatalf("released %v after the last unsubscribe, want %v", d, handoverSettle)
		}
	})
}
