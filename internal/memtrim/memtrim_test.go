package memtrim

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeHeap is a heap whose figures the test sets; a trim empties it.
type fakeHeap struct {
	mu    sync.Mutex
	h     Heap
	trims int
}

func (f *fakeHeap) trimmer() *Trimmer {
	t := &Trimmer{Interval: time.Second, MinFree: 100, Headroom: -1, Read: f.read, Free: f.free}
	t.defaults()
	return t
}

func (f *fakeHeap) read() Heap {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

func (f *fakeHeap) free() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trims++
	f.h.Free = 0
}

func (f *fakeHeap) set(h Heap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h = h
}

func (f *fakeHeap) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.trims
}

func TestTrimsAfterBurstOnce(t *testing.T) {
	f := &fakeHeap{h: Heap{Free: 1000, Live: 2000}}
	tr := f.trimmer()
	for range 5 {
		tr.look()
	}
	if f.trims != 1 {
		t.Fatalf("trims = %d, want 1: a burst's free memory is returned once", f.trims)
	}
}

func TestKeepsSmallOrRelativelySmallFree(t *testing.T) {
	for _, h := range []Heap{{Free: 99, Live: 10}, {Free: 1000, Live: 4004}} {
		f := &fakeHeap{h: h}
		tr := f.trimmer()
		for range 5 {
			tr.look()
		}
		if f.trims != 0 {
			t.Errorf("%+v: trims = %d, want 0", h, f.trims)
		}
	}
}

// A heap that churns is free again at every look: trims back off, and a
// quiet look resets the backoff.
func TestChurnBacksOff(t *testing.T) {
	f := &fakeHeap{}
	tr := f.trimmer()
	var at []int
	for look := range 20 {
		f.h = Heap{Free: 1000, Live: 1000}
		if look == 13 {
			f.h.Free = 0
		}
		before := f.trims
		if tr.look(); f.trims > before {
			at = append(at, look)
		}
	}
	if want := []int{1, 3, 6, 11, 14, 16, 19}; !slices.Equal(at, want) {
		t.Fatalf("trims at looks %v, want %v", at, want)
	}
}

func TestRunLooksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeHeap{}
		tr := &Trimmer{Interval: time.Minute, MinFree: 100, Read: f.read, Free: f.free}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { tr.Run(ctx); close(done) }()
		synctest.Wait()
		f.set(Heap{Free: 1000})
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if n := f.count(); n != 0 {
			t.Fatalf("trimmed %d times before the first Interval", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := f.count(); n != 1 {
			t.Fatalf("trims after one Interval = %d, want 1", n)
		}
		cancel()
		<-done
	})
}

// A heap that grows is a burst under way: its free memory is left until
// the heap stops growing.
func TestGrowingHeapWaits(t *testing.T) {
	f := &fakeHeap{}
	tr := f.trimmer()
	for _, live := range []uint64{1000, 1200, 1400, 1700} {
		f.h = Heap{Free: 1000, Live: live}
		tr.look()
	}
	if f.trims != 0 {
		t.Fatalf("trimmed %d times while the heap grew", f.trims)
	}
	f.h = Heap{Free: 1000, Live: 1750}
	if tr.look(); f.trims != 1 {
		t.Fatalf("trims once the heap stopped growing = %d, want 1", f.trims)
	}
}

// The GC percentage follows the live heap: Go's default for a small heap,
// a goal of live plus the headroom for a large one, never under 25 %; it
// is set only when it changes, and never with a negative headroom (the
// operator's GOGC).
func TestHeadroomSetsGCPercent(t *testing.T) {
	const mb = 1 << 20
	var set []int
	tr := &Trimmer{Headroom: 32 * mb, Read: func() Heap { return Heap{} }, Free: func() {},
		SetGCPercent: func(p int) int { set = append(set, p); return 100 }}
	tr.defaults()
	for _, live := range []uint64{8 * mb, 8 * mb, 64 * mb, 64 * mb, 128 * mb, 1024 * mb, 16 * mb} {
		tr.tune(live)
	}
	if want := []int{100, 50, 25, 100}; !slices.Equal(set, want) {
		t.Fatalf("GC percentages set %v, want %v", set, want)
	}
	set = nil
	tr = &Trimmer{Headroom: -1, SetGCPercent: func(p int) int { set = append(set, p); return 100 }}
	tr.defaults()
	tr.tune(1024 * mb)
	if len(set) != 0 {
		t.Fatalf("GC percentage set to %v against the operator's GOGC", set)
	}
}
