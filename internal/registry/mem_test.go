package registry

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store/bolt"
)

// heapPerSubscriptionMax bounds the live heap one subscription registered
// by token costs in the registry and the cable pool: the entry, the pool's
// record and its two index entries, the token and the ids. It was 588
// bytes while the pool kept each identifier and a 160-byte record, and
// the registry catch-up facts and routing ids even when empty; 348 since.
const heapPerSubscriptionMax = 420

// TestHeapPerSubscription registers 10,000 subscriptions into a registry
// over a real pool (whose sockets never connect) and bounds the live heap
// they hold, so a per-subscription regression shows. The figure is
// logged: go test -run HeapPerSubscription -v ./internal/registry/.
func TestHeapPerSubscription(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measures the heap; the race detector's shadow memory blurs it")
	}
	const n = 10_000
	st, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := New(st, nil)
	defer r.Close()
	pool, err := cable.New(cable.Config[*fanout.Sub]{
		URL: "ws://chatwoot.invalid/cable", Handler: func(cable.Delivery[*fanout.Sub]) {}, OnState: fanout.OnState,
		Registerer: prometheus.NewRegistry(),
		NetDialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no network in this test")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	r.Attach(pool)
	regs := batchOf("mem-token-abcdefghijklmnop", n)
	before := liveHeap()
	for i := range regs { // tokens as a request would bring them: counted if kept
		regs[i].Token = strings.Clone(regs[i].Token)
	}
	if _, err := r.RegisterBatch(context.Background(), regs); err != nil {
		t.Fatal(err)
	}
	per := (liveHeap() - before) / n
	runtime.KeepAlive(regs)
	t.Logf("%.0f bytes of live heap per subscription (bound %d)", per, heapPerSubscriptionMax)
	if per > heapPerSubscriptionMax {
		t.Errorf("%.0f bytes of live heap per subscription, want at most %d", per, heapPerSubscriptionMax)
	}
}

// liveHeap collects garbage and returns the bytes of live heap objects.
func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}
