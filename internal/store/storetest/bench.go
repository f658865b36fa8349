package storetest

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

// RunBenchmarks measures the hot paths of a backend: a subscription put and
// get, a batch of 1,000 subscription puts, 32 concurrent subscription puts,
// and a cursor advance. open returns a fresh, empty store.
func RunBenchmarks(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("SubscriptionPutGet", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sub := sampleSubscription("bench-" + strconv.Itoa(i%1000))
			if _, _, err := s.PutSubscription(b.Context(), sub); err != nil {
				b.Fatal(err)
			}
			if _, err := s.GetSubscription(b.Context(), sub.ID); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("SubscriptionPutBatch1000", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		subs := make([]store.Subscription, 1000)
		for i := range subs {
			subs[i] = sampleSubscription("bench-" + strconv.Itoa(i))
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.PutSubscriptions(b.Context(), subs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(subs)), "ns/record")
	})
	b.Run("SubscriptionPutConcurrent32", func(b *testing.B) {
		// 32 registrations at once, each its own call, as the API makes
		// them: a backend may group concurrent writes into one commit.
		s := open(b)
		defer s.Close()
		b.SetParallelism(32 / max(1, runtime.GOMAXPROCS(0)))
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sub := sampleSubscription("bench-" + strconv.FormatInt(n.Add(1), 10))
				if _, _, err := s.PutSubscription(b.Context(), sub); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("CursorPut", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		if _, _, err := s.PutSubscription(b.Context(), sampleSubscription("bench")); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		var i int64
		for b.Loop() {
			c := store.Cursor{SubscriptionID: "bench", ConversationID: strconv.FormatInt(i%50, 10),
				LastMessageID: i, Status: "open", UpdatedAt: strconv.FormatInt(1700000000+i, 10)}
			if _, err := s.PutCursor(b.Context(), c); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
