package fanout

import (
	"strconv"
	"testing"
	"time"
)

func TestWindowDuplicateAndAge(t *testing.T) {
	w := newWindow(10)
	const ttl = int64(time.Minute)
	if !w.admit("k", 0, ttl) {
		t.Fatal("first admit refused")
	}
	if w.admit("k", int64(time.Second), ttl) {
		t.Fatal("duplicate admitted within ttl")
	}
	if !w.seen("k", int64(time.Second)) {
		t.Fatal("seen = false within ttl")
	}
	if w.seen("k", ttl) {
		t.Fatal("seen = true after ttl")
	}
	if !w.admit("k", ttl, ttl) {
		t.Fatal("expired key refused")
	}
	if w.len() != 1 {
		t.Fatalf("len = %d after expiry, want 1", w.len())
	}
}

func TestWindowEvictsBySize(t *testing.T) {
	w := newWindow(3)
	const ttl = int64(time.Hour)
	for i := range 4 {
		w.admit(strconv.Itoa(i), int64(i), ttl)
	}
	if w.len() != 3 {
		t.Fatalf("len = %d, want 3", w.len())
	}
	if w.seen("0", 10) {
		t.Fatal("oldest key not evicted")
	}
	for _, k := range []string{"1", "2", "3"} {
		if !w.seen(k, 10) {
			t.Fatalf("key %s evicted too early", k)
		}
	}
}

func TestWindowMixedTTL(t *testing.T) {
	w := newWindow(4)
	w.admit("long", 0, int64(time.Hour))
	w.admit("short", 0, int64(time.Second))
	// The short entry expires behind the long one: it must read as absent.
	if w.seen("short", int64(2*time.Second)) {
		t.Fatal("expired short entry still seen")
	}
	if !w.admit("short", int64(2*time.Second), int64(time.Second)) {
		t.Fatal("expired short entry refused")
	}
	// Re-admission must survive the old slot's eviction.
	for i := range 3 {
		w.admit("x"+strconv.Itoa(i), int64(2500*time.Millisecond), int64(time.Hour))
	}
	if !w.seen("short", int64(2600*time.Millisecond)) {
		t.Fatal("re-admitted key lost when its old slot was evicted")
	}
}

func TestWindowForget(t *testing.T) {
	w := newWindow(4)
	w.admit("k", 0, int64(time.Hour))
	w.forget("k")
	if !w.admit("k", 1, int64(time.Hour)) {
		t.Fatal("forgotten key refused")
	}
}

func TestWindowDisabled(t *testing.T) {
	var w *window = newWindow(-1)
	if !w.admit("k", 0, 1) || !w.admit("k", 0, 1) || w.seen("k", 0) {
		t.Fatal("disabled window deduplicates")
	}
}
