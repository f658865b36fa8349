package cable

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// TestIntegrationDropsOverRealSockets runs 2,000 subscriptions over
// loopback TCP; the server drops every connection three times (with and
// without a disconnect frame) and every token must end confirmed, once per
// connection, with no duplicate subscription anywhere.
func TestIntegrationDropsOverRealSockets(t *testing.T) {
	const n = 2000
	srv := chatwoottest.New(chatwoottest.Options{PingInterval: time.Second})
	defer srv.Close()
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var confirms atomic.Int64
	confirmed := make(chan struct{}, 1)
	p, err := New[any](Config[any]{
		URL:            fmt.Sprintf("ws://%s/cable", addr),
		SubscribeRate:  4000,
		SubscribeBurst: 100,
		BackoffMin:     100 * time.Millisecond,
		BackoffMax:     time.Second,
		OnState: func(c StateChange[any]) {
			if c.Change == ChangeConfirmed {
				confirms.Add(1)
				select {
				case confirmed <- struct{}{}:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		srv.AddToken(token(i), 1)
		if _, err := p.Add(token(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitConfirms := func(want int64) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for confirms.Load() < want {
			select {
			case <-confirmed:
			case <-deadline:
				t.Fatalf("confirms = %d, want %d; stats %+v", confirms.Load(), want, p.Stats())
			}
		}
	}
	waitConfirms(n)
	for round := 1; round <= 3; round++ {
		if dropped := srv.DropAll(round == 2); dropped != n/DefaultPerConn {
			t.Fatalf("round %d: dropped %d connections, want %d", round, dropped, n/DefaultPerConn)
		}
		waitConfirms(int64(n * (round + 1)))
	}
	if confirms.Load() != 4*n {
		t.Fatalf("confirms = %d, want %d", confirms.Load(), 4*n)
	}
	for _, in := range p.List() {
		if in.State != StateConfirmed || in.Confirms != 4 {
			t.Fatalf("%+v", in)
		}
	}
	st := srv.Stats()
	if st.DuplicateSubscribes != 0 || st.BrokenSubscribes != 0 {
		t.Fatalf("server stats %+v", st)
	}
	seen := map[string]bool{}
	conns := srv.Conns()
	for _, c := range conns {
		for _, s := range c.Subscriptions {
			if seen[s.Identifier] || !s.Confirmed {
				t.Fatalf("identifier duplicated or unconfirmed on connection %d", c.ID)
			}
			seen[s.Identifier] = true
		}
		for ident, k := range c.Confirms {
			if k != 1 {
				t.Fatalf("identifier confirmed %d times on connection %d: %s", k, c.ID, ident)
			}
		}
	}
	if len(seen) != n || len(conns) != n/DefaultPerConn {
		t.Fatalf("%d identifiers on %d connections, want %d on %d", len(seen), len(conns), n, n/DefaultPerConn)
	}
}
