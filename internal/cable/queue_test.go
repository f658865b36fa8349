package cable

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestDeliveryQueueOrderAndBound(t *testing.T) {
	q := newDeliveryQueue[any](3)
	for i, id := range []string{"a", "b", "c", "d"} {
		if got := q.push(Delivery[any]{ID: id}, 0); got != (i < 3) {
			t.Fatalf("push %s = %v", id, got)
		}
	}
	batch, ok := q.take()
	if !ok || len(batch) != 3 || batch[0].ID != "a" || batch[2].ID != "c" {
		t.Fatalf("take = %v, %v", batch, ok)
	}
	q.recycle(batch)
	if !q.push(Delivery[any]{ID: "e"}, 0) {
		t.Fatal("push after take refused")
	}
}

// An empty queue gives back the arrays a burst grew when trimmed, and
// keeps small ones (which steady traffic reuses); a queue with broadcasts
// waiting keeps what it holds.
func TestDeliveryQueueTrim(t *testing.T) {
	for _, tt := range []struct {
		burst, waiting int
		wantKept       bool
	}{{3, 0, true}, {500, 0, false}, {500, 1, true}} {
		q := newDeliveryQueue[any](1000)
		for range tt.burst {
			q.push(Delivery[any]{ID: "x"}, 0)
		}
		batch, _ := q.take()
		q.recycle(batch)
		for range tt.waiting {
			q.push(Delivery[any]{ID: "y"}, 0)
		}
		q.trim()
		if kept := cap(q.items) > 0; kept != tt.wantKept || cap(q.spare) > idleKeep {
			t.Fatalf("burst %d, %d waiting: trimmed queue holds arrays of %d and %d", tt.burst, tt.waiting, cap(q.items), cap(q.spare))
		}
		if q.len() != tt.waiting {
			t.Fatalf("trim lost broadcasts: %d waiting, want %d", q.len(), tt.waiting)
		}
	}
}

// A ping makes the reader trim its connection's queue.
func TestPingTrimsDeliveryQueue(t *testing.T) {
	c := newTestConn(fixtureToken)
	for range 100 {
		c.deliveries.push(Delivery[any]{ID: "x"}, 0)
	}
	batch, _ := c.deliveries.take()
	c.deliveries.recycle(batch)
	var f Frame
	var res sessionResult
	if err := c.handle([]byte(`{"type":"ping","message":1795248781}`), &f, 1, &res); err != nil {
		t.Fatal(err)
	}
	if n := cap(c.deliveries.items); n > idleKeep {
		t.Fatalf("queue keeps an array of %d after a ping", n)
	}
}

// A full queue holds the reader back up to hold for the delivery goroutine;
// once a wait ran out, pushes fail at once until the queue was emptied.
func TestDeliveryQueueHoldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newDeliveryQueue[any](2)
		q.push(Delivery[any]{ID: "a"}, time.Second)
		q.push(Delivery[any]{ID: "b"}, time.Second)
		go func() {
			time.Sleep(500 * time.Millisecond)
			q.take()
		}()
		start := time.Now()
		if !q.push(Delivery[any]{ID: "c"}, time.Second) || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("the push did not wait for the taker (%v)", time.Since(start))
		}
		q.push(Delivery[any]{ID: "d"}, time.Second)
		start = time.Now()
		if q.push(Delivery[any]{ID: "e"}, time.Second) || time.Since(start) != time.Second {
			t.Fatalf("a push to a stuck queue: waited %v", time.Since(start))
		}
		start = time.Now()
		if q.push(Delivery[any]{ID: "f"}, time.Second) || time.Since(start) != 0 {
			t.Fatalf("a second push waited %v after a wait ran out", time.Since(start))
		}
		if b, _ := q.take(); len(b) != 2 || b[0].ID != "c" {
			t.Fatalf("took %v", b)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			q.take()
		}()
		q.push(Delivery[any]{ID: "g"}, time.Second)
		q.push(Delivery[any]{ID: "h"}, time.Second)
		if !q.push(Delivery[any]{ID: "i"}, time.Second) {
			t.Fatal("the queue was emptied, yet a push did not wait again")
		}
	})
}
