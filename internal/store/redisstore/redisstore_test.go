package redisstore_test

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
	"github.com/relayhq/relay/internal/store/storetest"
)

func openURL(t testing.TB, url, prefix string, clock *storetest.Clock) *redisstore.Store {
	t.Helper()
	opts := redisstore.Options{Prefix: prefix}
	if clock != nil {
		opts.Now = clock.Now
	}
	s, err := redisstore.Open(url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContractMiniredis(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *storetest.Backend {
		m := miniredis.RunT(t)
		url := "redis://" + m.Addr()
		clock := storetest.NewClock()
		return &storetest.Backend{
			Store: openURL(t, url, "", clock),
			Advance: func(d time.Duration) {
				clock.Advance(d)
				m.FastForward(d)
			},
			Reopen: func(t *testing.T) store.Store { return openURL(t, url, "", clock) },
		}
	})
}

func BenchmarkMiniredis(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store {
		m := miniredis.RunT(b)
		return openURL(b, "redis://"+m.Addr(), "", nil)
	})
}
