package main

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/natsserver"
)

// coreCopies counts, per Nats-Msg-Id, the message.created events a plain
// core subscriber receives.
type coreCopies struct {
	mu  sync.Mutex
	nc  *nats.Conn
	ids map[string]int
}

func subscribeCore(t *testing.T, url string) *coreCopies {
	t.Helper()
	c := &coreCopies{ids: map[string]int{}}
	var err error
	if c.nc, err = nats.Connect(url, nats.MaxReconnects(-1)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	sub, err := c.nc.Subscribe("chatwoot.*.*.*.*.message.created", func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ids[m.Header.Get(fanout.HeaderMsgID)]++
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1) // never a slow consumer: a lost copy would hide a duplicate
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// counts returns the distinct ids and the extra copies received so far,
// after a round trip that lets everything sent before arrive.
func (c *coreCopies) counts(t *testing.T) (distinct, dups int) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.ids {
		dups += n - 1
	}
	return len(c.ids), dups
}

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
	core := subscribeCore(t, ns.ClientURL())
	httpAddr := freePort(t)
	p := &relayProcess{t: t, url: "http://" + httpAddr, env: []string{
		"RELAY_CHATWOOT_URL=" + c.url,
		"RELAY_HTTP_ADDR=" + httpAddr,
		"RELAY_NATS_URL=" + ns.ClientURL(),
		"RELAY_DATA_DIR=" + t.TempDir(),
		"RELAY_LOG_LEVEL=warn",
		"RELAY_CABLE_BACKOFF_MIN=200ms",
		"RELAY_CABLE_SUBSCRIBE_RATE=1000",
		"RELAY_CHATWOOT_RATE_PER_MINUTE=600000",
		"RELAY_CATCHUP_CONCURRENCY=8",
	}}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.stop(syscall.SIGKILL)
		}
	})
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
