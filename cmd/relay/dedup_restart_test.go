package main

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/natsserver"
)

// TestNoCoreDuplicatesAfterKill: a relay publishing into an external
// JetStream server is killed (SIGKILL) while agents reply at 100/s, and
// started again. Its catch-up replays what it had published but not yet
// recorded in its cursors; the stream drops those replays, and a plain core
// subscriber must not see them either.
func TestNoCoreDuplicatesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 10 s")
	}
	c := newChat(t)
	ns := startNATS(t, natsserver.RandomPort, t.TempDir())
	core := countCore(t, ns.ClientURL())
	httpAddr := freePort(t)
	p := c.startRelayProcess(t, httpAddr, "RELAY_NATS_URL="+ns.ClientURL())
	c.createContacts(p.url, 40)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 100) }) // agents() sends rate/100 every 10 ms
	time.Sleep(3 * time.Second)          // load, not a measured duration
	t.Logf("SIGKILL at message id %d", c.lastID())
	p.stop(syscall.SIGKILL)
	time.Sleep(time.Second) // agents keep replying while the relay is down
	p.start()
	time.Sleep(3 * time.Second)
	cancel()
	wg.Wait()
	want := c.created()
	got := streamIDs(t, ns.ClientURL(), want)
	compare(t, want, got) // the stream: every message once
	distinct, dups := core.counts(t)
	t.Logf("core subscriber: %d messages, %d duplicates (agent replies %d)", distinct, dups, c.sent.Load())
	if dups != 0 {
		t.Fatalf("a core subscriber saw %d messages twice across the restart", dups)
	}
	p.stop(syscall.SIGTERM)
}
