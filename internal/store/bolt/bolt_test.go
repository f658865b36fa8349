package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
	"github.com/relayhq/relay/internal/store/storetest"
)

func openAt(t testing.TB, path string, clock *storetest.Clock) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{Now: clock.Now, SweepInterval: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *storetest.Backend {
		path := filepath.Join(t.TempDir(), "relay.db")
		clock := storetest.NewClock()
		return &storetest.Backend{
			Store:   openAt(t, path, clock),
			Advance: clock.Advance,
			Reopen:  func(t *testing.T) store.Store { return openAt(t, path, clock) },
		}
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store {
		return openAt(b, filepath.Join(b.TempDir(), "relay.db"), storetest.NewClock())
	})
}
