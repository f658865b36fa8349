package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/registry/registrytest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// listFails is a store whose registry scans fail while down is set.
type listFails struct {
	store.Store
	down atomic.Bool
}

func (l *listFails) ListSubscriptions(ctx context.Context, after string, limit int) ([]store.Subscription, string, error) {
	if l.down.Load() {
		return nil, "", errors.New("connection refused")
	}
	return l.Store.ListSubscriptions(ctx, after, limit)
}

// TestClaimedBucketsLoadAfterAStoreFailure: when the scan that subscribes
// claimed buckets fails (Redis went away meanwhile), it is tried again as
// soon as the store answers, not at the next resync minutes later.
func TestClaimedBucketsLoadAfterAStoreFailure(t *testing.T) {
	mr := miniredis.RunT(t)
	rs, err := redisstore.Open("redis://"+mr.Addr(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	st := &listFails{Store: rs}
	for _, tok := range []string{"token-a", "token-b", "token-c"} {
		if _, _, err := st.PutSubscription(t.Context(), store.Subscription{ID: cable.SubscriptionID(tok), Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
	reg := registry.New(st, nil)
	t.Cleanup(reg.Close)
	pool := registrytest.NewPool()
	reg.Attach(pool)
	m := &clusterMode{rdb: rs.Client(), channel: rs.Key(noticeChannel), registry: reg, log: slog.New(slog.DiscardHandler),
		loads: make(chan map[int]bool, 64), notices: make(chan string, 16)}
	c, err := cluster.New(t.Context(), cluster.Config{Store: st, Member: "only", Buckets: 8, Poll: 20 * time.Millisecond,
		OnAcquire: m.acquired, OnRelease: m.released})
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	reg.SetSharding(registry.Sharding{Owns: c.OwnsID, Elsewhere: m.elsewhere})
	st.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	m.wg.Add(1)
	go m.load(ctx)
	c.Start()
	waitFor(t, 10*time.Second, "every bucket claimed", func() bool { return c.Held() == 8 })
	time.Sleep(50 * time.Millisecond) // the first scan fails
	if pool.Len() != 0 {
		t.Fatalf("%d subscribed while the store refused scans", pool.Len())
	}
	st.down.Store(false)
	waitFor(t, 10*time.Second, "the claimed subscriptions loaded once the store answers", func() bool { return pool.Len() == 3 })
	c.Close()
	cancel()
	m.wg.Wait()
}
