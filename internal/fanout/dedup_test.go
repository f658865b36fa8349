package fanout

import (
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
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
	w := newWindow(2)
	w.admit("k", 0, int64(time.Hour))
	w.admit("other", 0, int64(time.Hour))
	w.forget("k")
	w.forget("absent")
	w.forget("")
	if w.seen("k", 1) {
		t.Fatal("forgotten key still seen")
	}
	if !w.seen("other", 1) {
		t.Fatal("forget removed another key")
	}
	if !w.admit("k", 1, int64(time.Hour)) {
		t.Fatal("forgotten key refused")
	}
	// The ring is full: this evicts k's old slot, which must not take the
	// re-admitted k out of the index.
	w.admit("x", 2, int64(time.Hour))
	if !w.seen("k", 3) {
		t.Fatal("re-admitted key lost when its forgotten slot was evicted")
	}
	if w.admit("k", 3, int64(time.Hour)) {
		t.Fatal("re-admitted key admitted twice")
	}
	if w.seen("other", 3) {
		t.Fatal("oldest key not evicted")
	}
}

func TestWindowEmptyKey(t *testing.T) {
	w := newWindow(4)
	if !w.admit("", 0, int64(time.Hour)) || !w.admit("", 0, int64(time.Hour)) {
		t.Fatal("empty key deduplicated")
	}
	if w.seen("", 0) || w.len() != 0 {
		t.Fatal("empty key recorded")
	}
}

// TestWindowSimilarKeys admits keys that differ only near the end (same
// length, long common prefix), as real keys do, and checks each one keeps
// its own entry.
func TestWindowSimilarKeys(t *testing.T) {
	const n = 2000
	const ttl = int64(time.Hour)
	keys := make([]string, 0, n+2)
	for i := range n {
		keys = append(keys, "m:1:"+strconv.Itoa(1_000_000+i)+":created")
	}
	keys = append(keys,
		"i:1:2:3:4:presence.update:0123456789abcdef",
		"i:1:2:3:4:presence.update:0123456789abcdee")
	w := newWindow(len(keys))
	hashes := make(map[wkey]string, len(keys))
	for _, k := range keys {
		if !w.admit(k, 0, ttl) {
			t.Fatalf("distinct key %q refused", k)
		}
		h := w.hash(k)
		if prev, ok := hashes[h]; ok {
			t.Fatalf("keys %q and %q hash alike", prev, k)
		}
		hashes[h] = k
	}
	if w.len() != len(keys) {
		t.Fatalf("len = %d, want %d", w.len(), len(keys))
	}
	for _, k := range keys {
		if w.admit(k, 1, ttl) {
			t.Fatalf("duplicate %q admitted", k)
		}
	}
	w.forget(keys[len(keys)-1])
	if !w.seen(keys[len(keys)-2], 1) {
		t.Fatal("forgetting a key removed a similar one")
	}
	if w.seen(keys[len(keys)-1], 1) {
		t.Fatal("forgotten key still seen")
	}
	// Another window hashes with other seeds but must agree on identity.
	w2 := newWindow(4)
	w2.admit(strings.Clone(keys[0]), 0, ttl)
	if !w2.seen(keys[0], 1) || w2.seen(keys[1], 1) {
		t.Fatal("second window confuses keys")
	}
}

// TestWindowStoresNoPointers fails if the window's index or ring starts
// holding pointers again (say, the key string): every key kept would pin
// the whole event string it was cut from, and the GC would scan the window.
func TestWindowStoresNoPointers(t *testing.T) {
	if !hasPointers(reflect.TypeFor[string]()) || hasPointers(reflect.TypeFor[[2]uint64]()) {
		t.Fatal("hasPointers is broken")
	}
	w := newWindow(1)
	idx := reflect.TypeOf(w.idx)
	for _, typ := range []reflect.Type{reflect.TypeFor[wslot](), idx.Key(), idx.Elem()} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers", typ)
		}
	}
	if got := unsafe.Sizeof(wslot{}); got != 24 {
		t.Errorf("slot is %d bytes, want 24", got)
	}
}

// hasPointers reports whether values of typ contain pointers the GC scans.
func hasPointers(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return typ.Len() > 0 && hasPointers(typ.Elem())
	case reflect.Struct:
		for i := range typ.NumField() {
			if hasPointers(typ.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true // pointer, string, slice, map, chan, func, interface
}

// TestWindowKeepsNoKeyString checks that an admitted key, cut from a larger
// string as build does, does not keep that string alive.
func TestWindowKeepsNoKeyString(t *testing.T) {
	w := newWindow(4)
	freed := make(chan struct{})
	admitCut(w, freed)
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-freed:
			if !w.seen("m:1:42:created", 1) {
				t.Fatal("admitted key not seen")
			}
			return
		case <-deadline:
			t.Fatal("the window keeps the string its key was cut from alive")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// admitCut admits a key cut from a fresh string and returns without keeping
// a reference to it; freed is closed once the string is collected.
//
//go:noinline
func admitCut(w *window, freed chan struct{}) {
	s := string(append([]byte("prefix.1.2.3.4.message.created"), "m:1:42:created|suffix........................................"...))
	runtime.AddCleanup(unsafe.StringData(s), func(c chan struct{}) { close(c) }, freed)
	const key = "m:1:42:created"
	i := strings.Index(s, key)
	if !w.admit(s[i:i+len(key)], 0, int64(time.Hour)) {
		panic("key refused")
	}
}

func TestWindowDisabled(t *testing.T) {
	var w *window = newWindow(-1)
	if !w.admit("k", 0, 1) || !w.admit("k", 0, 1) || w.seen("k", 0) {
		t.Fatal("disabled window deduplicates")
	}
}

func TestWindowLoad(t *testing.T) {
	w := newWindow(4)
	now := int64(time.Hour)
	w.load("expired", now, now)
	w.load("held", now, now+int64(time.Second))
	if w.len() != 1 || w.seen("expired", now) {
		t.Fatalf("expired key loaded (len %d)", w.len())
	}
	if w.admit("held", now, int64(time.Minute)) {
		t.Fatal("a loaded key admitted again")
	}
	if !w.admit("held", now+int64(time.Second), int64(time.Minute)) {
		t.Fatal("a loaded key outlived its expiry")
	}
}
