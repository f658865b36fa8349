package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// TestSharedRateIsOneBucketForEveryReplica: three replicas' limiters on
// one Redis admit the deployment's burst, then nothing more until the
// bucket refills, whichever replica asks.
func TestSharedRateIsOneBucketForEveryReplica(t *testing.T) {
	mr := miniredis.RunT(t)
	var rates []*SharedRate
	for range 3 {
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { rdb.Close() })
		rates = append(rates, NewSharedRate(rdb, RateOptions{Key: "relay:subscribe", PerSecond: 1, Burst: 5, Name: "subscribe"}))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	admitted := 0
	for i := range 30 {
		if rates[i%3].Wait(ctx) == nil {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("%d events admitted at once across three replicas, want the burst of 5", admitted)
	}
	if testutil.ToFloat64(rates[0].denied)+testutil.ToFloat64(rates[1].denied)+testutil.ToFloat64(rates[2].denied) == 0 {
		t.Error("no wait counted")
	}
}

// TestSharedRateFallsBackToTheLocalShare: with Redis gone each replica
// paces at its share of the rate instead of stopping, and does not ask
// Redis again for every event.
func TestSharedRateFallsBackToTheLocalShare(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	s := NewSharedRate(rdb, RateOptions{Key: "k", PerSecond: 300, Burst: 6, Members: func() int { return 3 }, Name: "subscribe"})
	mr.Close()
	for range 3 {
		if err := s.Wait(t.Context()); err != nil {
			t.Fatalf("Wait with Redis down: %v", err)
		}
	}
	if got := testutil.ToFloat64(s.offline); got != 3 {
		t.Errorf("%v events paced locally, want 3", got)
	}
	if l := s.local.Load(); l == nil || l.Limit() != 100 || l.Burst() != 2 {
		t.Fatalf("local share = %v, want 100/s with a burst of 2 (a third)", l)
	}
}
