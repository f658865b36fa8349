package chatwoottest

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestTokenLogRecordsSubscriptionSpans: a token subscribed on two
// connections at once shows as an overlap from the second subscribe to the
// first connection's unsubscribe; a closed connection ends its spans.
func TestTokenLogRecordsSubscriptionSpans(t *testing.T) {
	var log TokenLog
	bubble(t, Options{OnToken: log.Record}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tok-a", 0)
		fake.AddToken("tok-b", 0)
		start := time.Now()
		first, second := memClient(t, ln), memClient(t, ln)
		first.send(subscribeFrame(identifier("tok-a")))
		first.send(subscribeFrame(identifier("tok-b")))
		first.send(subscribeFrame(identifier("never-known"))) // unconfirmed: not a span
		time.Sleep(time.Second)
		second.send(subscribeFrame(identifier("tok-a")))
		time.Sleep(2 * time.Second)
		first.send(unsubscribeFrame(identifier("tok-a")))
		time.Sleep(time.Second)
		second.close()
		first.close()
		synctest.Wait()
		end := time.Now()
		ov := log.Overlaps(start, end)
		if len(ov) != 1 || ov[0].Token != "tok-a" || ov[0].Duration != 2*time.Second {
			t.Fatalf("overlaps = %+v, want tok-a for 2s", ov)
		}
		if subs := log.Subscribed(); len(subs) != 0 {
			t.Fatalf("still subscribed after every connection closed: %v", subs)
		}
		if n := len(log.Events()); n != 6 {
			t.Fatalf("%d events, want 6 (3 subscribes, 3 ends)", n)
		}
	})
}
