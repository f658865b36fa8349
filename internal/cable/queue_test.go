package cable

import "testing"

func TestDeliveryQueueOrderAndBound(t *testing.T) {
	q := newDeliveryQueue[any](3)
	for i, id := range []string{"a", "b", "c", "d"} {
		if got := q.push(Delivery[any]{ID: id}); got != (i < 3) {
			t.Fatalf("push %s = %v", id, got)
		}
	}
	batch, ok := q.take()
	if !ok || len(batch) != 3 || batch[0].ID != "a" || batch[2].ID != "c" {
		t.Fatalf("take = %v, %v", batch, ok)
	}
	q.recycle(batch)
	if !q.push(Delivery[any]{ID: "e"}) {
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
			q.push(Delivery[any]{ID: "x"})
		}
		batch, _ := q.take()
		q.recycle(batch)
		for range tt.waiting {
			q.push(Delivery[any]{ID: "y"})
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
		c.deliveries.push(Delivery[any]{ID: "x"})
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
