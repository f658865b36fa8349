package chatwoottest

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestSubscribeStorm subscribes many tokens over several connections, paced
// like a client's token bucket, then checks the per-connection bookkeeping
// tests rely on.
func TestSubscribeStorm(t *testing.T) {
	const conns, perConn = 20, 500
	var log SubscribeLog
	bubble(t, Options{OnSubscribe: log.Record}, func(t *testing.T, fake *Server, ln *MemListener) {
		for i := range conns * perConn {
			fake.AddToken(fmt.Sprintf("tok%05d", i), 1)
		}
		clients := make([]*testClient, conns)
		for i := range clients {
			clients[i] = memClient(t, ln)
		}
		for j := range perConn {
			for i, c := range clients {
				c.send(subscribeFrame(identifier(fmt.Sprintf("tok%05d", i*perConn+j))))
			}
			time.Sleep(10 * time.Millisecond) // 2000 subscribes/s
		}
		synctest.Wait()
		for _, c := range clients {
			n := 0
			for _, f := range c.drain() {
				if !strings.HasPrefix(f, `{"type":"ping"`) {
					n++
				}
			}
			if n != 1+2*perConn { // welcome, then confirm + presence per token
				t.Fatalf("client got %d frames, want %d", n, 1+2*perConn)
			}
		}
		for _, ci := range fake.Conns() {
			if len(ci.Subscriptions) != perConn || len(ci.Confirms) != perConn {
				t.Fatalf("conn %d: %d subscriptions, %d confirmed identifiers", ci.ID, len(ci.Subscriptions), len(ci.Confirms))
			}
			for id, n := range ci.Confirms {
				if n != 1 {
					t.Fatalf("conn %d: %s confirmed %d times", ci.ID, id, n)
				}
			}
		}
		if got := log.MaxInWindow(time.Second); got != 2000 {
			t.Errorf("max subscribes per second = %d, want 2000", got)
		}
		st := fake.Stats()
		if st.Confirms != conns*perConn || st.DuplicateSubscribes != 0 {
			t.Errorf("stats %+v", st)
		}
		for _, c := range clients {
			c.close()
		}
	})
}
