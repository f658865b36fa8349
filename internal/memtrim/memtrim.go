// Package memtrim returns the heap memory a burst left free to the
// operating system.
//
// # Why
//
// Go's background scavenger keeps free heap memory mapped up to about the
// next GC's heap goal: with GOGC=100 that is twice the live heap. A
// registration burst (100,000 subscriptions from a file or a batch) makes
// as much garbage as it keeps, so once it is collected the process stays
// at nearly twice its working set until the heap grows again, which an
// idle relay never does.
//
// # How
//
// A Trimmer looks at the runtime's heap figures every Interval (a read of
// two runtime/metrics samples, microseconds). When the free-but-retained
// heap is above MinFree and a quarter of the live heap, it calls
// debug.FreeOSMemory: one forced GC and the free pages returned. Not while
// the live heap grows (by more than an eighth since the last look): a
// burst under way would fault the pages in again at once, and pay for a GC
// it does not need. A relay whose steady traffic keeps the heap churning
// would find free memory at every look: each trim that is needed again at
// the next look doubles the wait before the next (up to 64 Intervals), so
// the cost stays at one forced GC every five minutes at most; a look that
// finds nothing to return resets it.
//
// # Headroom
//
// Between two trims the heap grows back to its goal: with GOGC=100, twice
// the live heap, 100 MB of garbage for a relay holding 100,000
// subscriptions in 100 MB. The Trimmer also sets the GC percentage at each
// look so that the goal is the live heap plus Headroom (32 MiB by
// default), between 25 % and Go's default of 100 %: a small relay keeps
// Go's default, a large one collects more often, each collection costing a
// mark of its live heap (tens of milliseconds at 100,000 subscriptions,
// every few seconds under load). An operator's GOGC wins (Headroom < 0).
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults.
const (
	DefaultInterval = 5 * time.Second
	DefaultMinFree  = 16 << 20
	DefaultHeadroom = 32 << 20
	minPercent      = 25 // a goal at least a quarter above the live heap
	maxPercent      = 100
	maxBackoff      = 64 // most Intervals between two trims
)

// Heap is what a Trimmer reads of the runtime's heap.
type Heap struct {
	Free uint64 // free heap memory still held from the OS
	Live uint64 // heap marked live by the last GC
}

// Trimmer returns free heap memory to the OS after bursts.
type Trimmer struct {
	Interval time.Duration // between looks; default DefaultInterval
	MinFree  uint64        // least free memory worth a trim; default DefaultMinFree
	// Headroom is the garbage the heap may gather past its live size
	// before the next collection; 0 means DefaultHeadroom, negative
	// leaves the GC percentage alone.
	Headroom int64
	Logger   *slog.Logger
	// Read, Free and SetGCPercent replace the runtime (tests).
	Read         func() Heap
	Free         func()
	SetGCPercent func(int) int

	wait, left int    // Intervals between trims now, and until the next may run
	lastLive   uint64 // Heap.Live at the previous look
	percent    int    // GC percentage last set; 0 none
}

// Run looks every Interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context) {
	t.defaults()
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.look()
		}
	}
}

func (t *Trimmer) defaults() {
	if t.Interval <= 0 {
		t.Interval = DefaultInterval
	}
	if t.MinFree == 0 {
		t.MinFree = DefaultMinFree
	}
	if t.Logger == nil {
		t.Logger = slog.New(slog.DiscardHandler)
	}
	if t.Read == nil {
		t.Read = readHeap
	}
	if t.Free == nil {
		t.Free = debug.FreeOSMemory
	}
	if t.SetGCPercent == nil {
		t.SetGCPercent = debug.SetGCPercent
	}
	if t.Headroom == 0 {
		t.Headroom = DefaultHeadroom
	}
	t.wait = 1
}

// look trims when enough memory is free, the heap stopped growing and the
// backoff allows it.
func (t *Trimmer) look() {
	h := t.Read()
	t.tune(h.Live)
	growing := h.Live > t.lastLive+t.lastLive/8
	t.lastLive = h.Live
	if growing {
		return // a burst under way: what it frees now it needs again soon
	}
	if h.Free < t.MinFree || h.Free < h.Live/4 {
		t.wait, t.left = 1, 0
		return
	}
	if t.left > 0 {
		t.left--
		return
	}
	start := time.Now()
	t.Free()
	t.Logger.Info("free heap memory returned to the OS", "free_bytes", h.Free, "live_bytes", h.Live,
		"took", time.Since(start).String())
	t.left = t.wait
	t.wait = min(2*t.wait, maxBackoff)
}

// tune sets the GC percentage for a heap goal of live plus Headroom.
func (t *Trimmer) tune(live uint64) {
	if t.Headroom < 0 || live == 0 {
		return
	}
	if p := gcPercent(live, uint64(t.Headroom)); p != t.percent {
		t.SetGCPercent(p)
		t.percent = p
	}
}

// gcPercent is the GC percentage that lets the heap grow by headroom past
// live, within [minPercent, maxPercent].
func gcPercent(live, headroom uint64) int {
	p := headroom * 100 / live
	return int(min(max(p, minPercent), maxPercent))
}

// readHeap reads the runtime's figures.
func readHeap() Heap {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	return Heap{Free: value(samples[0]), Live: value(samples[1])}
}

func value(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}
