package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// ScaleResult is the scale scenario: the relay holding many confirmed
// subscriptions, measured against itself with none.
type ScaleResult struct {
	Subscriptions  int      `json:"subscriptions"`
	ConfirmSeconds float64  `json:"register_and_confirm_seconds"`
	Baseline       snapshot `json:"baseline"`
	Loaded         snapshot `json:"loaded"`
	RSSPerSub      float64  `json:"rss_bytes_per_subscription"`
	AnonPerSub     float64  `json:"rss_anon_bytes_per_subscription"`
	HeapPerSub     float64  `json:"heap_inuse_bytes_per_subscription"`
	IdleCPUPercent float64  `json:"idle_cpu_percent"`
	IdleSeconds    float64  `json:"idle_window_seconds"`
	GCObserved     bool     `json:"gc_after_load_observed"`
	// Burst is one event to every subscription at once, pushed as fast as
	// the fake writes them, after the memory readings.
	Burst   *BurstResult `json:"burst,omitempty"`
	Targets []Target     `json:"targets"`
}

// BurstResult counts what of a burst reached NATS.
type BurstResult struct {
	Events    int64   `json:"events"`
	Delivered int64   `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	// Drops are the relay's drop counters during the burst, by metric.
	Drops map[string]float64 `json:"relay_drops,omitempty"`
	// HeldBack counts live events that waited for buffer room.
	HeldBack float64 `json:"held_back"`
}

// snapshot is the relay's footprint at one moment.
type snapshot struct {
	procStats
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	// HeapRetained is heap memory the runtime holds from the OS beyond
	// what is in use: freed spans not yet returned (HeapIdle−HeapReleased).
	HeapRetained float64 `json:"heap_retained_free_bytes"`
	CableConns   float64 `json:"cable_connections"`
	Goroutines   float64 `json:"goroutines"`
	GCCycles     float64 `json:"gc_cycles"`
	Confirmed    float64 `json:"confirmed"`
	SubscribeQ   float64 `json:"subscribe_queue_depth"`
}

func (r *ScaleResult) targets() []Target { return r.Targets }

func (r *ScaleResult) summary() string {
	s := fmt.Sprintf("%d subscriptions: RSS %.0f B/sub (anon %.0f), heap %.0f B/sub, %d cable sockets (%d sockets, %d fds in all), idle CPU %.2f%%, confirmed in %.1fs",
		r.Subscriptions, r.RSSPerSub, r.AnonPerSub, r.HeapPerSub, int(r.Loaded.CableConns), r.Loaded.Sockets, r.Loaded.FDs,
		r.IdleCPUPercent, r.ConfirmSeconds)
	if b := r.Burst; b != nil {
		s += fmt.Sprintf("; burst: %d of %d events in NATS in %.1fs (%.0f held back)", b.Delivered, b.Events, b.Seconds, b.HeldBack)
	}
	return s
}

func (b *bench) scale(ctx context.Context) (*ScaleResult, error) {
	n := b.p.ScaleSubscriptions
	set, err := newTokenSet("scal", n, b.p.MessageBytes)
	if err != nil {
		return nil, err
	}
	b.addTokens(set)
	file := filepath.Join(b.tmp, "scale.tokens")
	if err := writeTokens(file, nil); err != nil {
		return nil, err
	}
	rp, err := b.startRelay(ctx, relayConfig{name: "scal", subsFile: file,
		subscribeRate: float64(b.p.FastSubscribe), burst: 1000})
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	res := &ScaleResult{Subscriptions: n}
	if err := b.scaleMeasure(ctx, rp, set, file, res); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

func (b *bench) scaleMeasure(ctx context.Context, rp *relayProc, set *tokenSet, file string, res *ScaleResult) error {
	sleepCtx(ctx, 2*time.Second) // let start-up garbage settle
	var err error
	if res.Baseline, err = takeSnapshot(rp); err != nil {
		return err
	}
	if err := writeTokens(file, set.tokens); err != nil {
		return err
	}
	b.progress("scale: registering %d subscriptions (SIGHUP)", len(set.tokens))
	start := time.Now()
	loaded, err := rp.reload()
	if err != nil {
		return err
	}
	if err := rp.waitConfirmed(ctx, len(set.tokens), b.p.ConfirmTimeout.D()); err != nil {
		return err
	}
	if err := loaded(ctx, b.p.ConfirmTimeout.D()); err != nil {
		return fmt.Errorf("subscriptions file not loaded: %w", err)
	}
	res.ConfirmSeconds = round3(time.Since(start).Seconds())
	sleepCtx(ctx, 2*time.Second) // the last confirms' lifecycle events, then quiet
	b.progress("scale: %d confirmed in %.1fs; idle CPU over %s", len(set.tokens), res.ConfirmSeconds, b.p.IdleWindow.D())
	if res.IdleCPUPercent, err = idleCPU(ctx, rp, b.p.IdleWindow.D()); err != nil {
		return err
	}
	res.IdleSeconds = b.p.IdleWindow.D().Seconds()
	res.GCObserved = b.awaitGC(ctx, rp)
	if res.Loaded, err = takeSnapshot(rp); err != nil {
		return err
	}
	res.Burst, err = b.burst(ctx, rp, set)
	return err
}

// burstDrops are the relay's counters of events it did not publish.
var burstDrops = []string{
	`relay_cable_dropped_total{reason="queue_full"}`,
	`relay_fanout_events_dropped_total{reason="buffer_full"}`,
}

// burst sends one event to every subscription of set at once and counts
// what reaches NATS.
func (b *bench) burst(ctx context.Context, rp *relayProc, set *tokenSet) (*BurstResult, error) {
	k, err := b.cons.count(set.name + ".*.*.*.*.message.created")
	if err != nil {
		return nil, err
	}
	defer k.sub.Unsubscribe()
	before, err := rp.metrics()
	if err != nil {
		return nil, err
	}
	n := len(set.tokens)
	b.progress("scale: a burst of one event to each of %d subscriptions", n)
	st := b.push(ctx, set, n, 8, 0)
	got := k.settle(ctx, int64(n), 5*time.Second)
	after, err := rp.metrics()
	if err != nil {
		return nil, err
	}
	r := &BurstResult{Events: st.pushed - st.unrouted, Delivered: got, Seconds: round3(time.Duration(k.last.Load() - int64(st.start)).Seconds()),
		HeldBack: after["relay_fanout_held_back_total"] - before["relay_fanout_held_back_total"], Drops: map[string]float64{}}
	for _, m := range burstDrops {
		if d := after[m] - before[m]; d > 0 {
			r.Drops[m] = d
		}
	}
	return r, nil
}

// idleCPU is the relay's CPU use over d, in percent of one core.
func idleCPU(ctx context.Context, rp *relayProc, d time.Duration) (float64, error) {
	a, err := readProc(rp.pid())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	sleepCtx(ctx, d)
	z, err := readProc(rp.pid())
	if err != nil {
		return 0, err
	}
	secs := float64(z.CPUTicks-a.CPUTicks) / clockTicks
	return round3(100 * secs / time.Since(start).Seconds()), nil
}

// awaitGC waits for one more completed GC cycle than seen since the load
// finished, so the heap reading is not inflated by registration garbage.
// The runtime forces a cycle at least every two minutes.
func (b *bench) awaitGC(ctx context.Context, rp *relayProc) bool {
	if b.p.WaitGC <= 0 {
		return false
	}
	first, err := takeSnapshot(rp)
	if err != nil {
		return false
	}
	b.progress("scale: waiting up to %s for the relay's next GC cycle", b.p.WaitGC.D())
	err = waitFor(ctx, b.p.WaitGC.D(), time.Second, func() (bool, error) {
		s, err := takeSnapshot(rp)
		return err == nil && s.GCCycles > first.GCCycles, nil
	})
	return err == nil
}

func takeSnapshot(rp *relayProc) (snapshot, error) {
	st, err := readProc(rp.pid())
	if err != nil {
		return snapshot{}, err
	}
	m, err := rp.metrics()
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{procStats: st, HeapInuse: m["go_memstats_heap_inuse_bytes"],
		StackInuse:   m["go_memstats_stack_inuse_bytes"],
		HeapRetained: m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"],
		CableConns:   m[`relay_cable_connections{state="connected"}`], Goroutines: m["go_goroutines"],
		GCCycles: m["go_gc_duration_seconds_count"], Confirmed: m[confirmedSeries],
		SubscribeQ: m["relay_cable_subscribe_queue_depth"]}, nil
}

func (r *ScaleResult) finish() {
	n := float64(r.Subscriptions)
	r.RSSPerSub = round3(float64(r.Loaded.RSS-r.Baseline.RSS) / n)
	r.AnonPerSub = round3(float64(r.Loaded.RSSAnon-r.Baseline.RSSAnon) / n)
	r.HeapPerSub = round3((r.Loaded.HeapInuse - r.Baseline.HeapInuse) / n)
	r.Targets = []Target{
		atMost("resident memory per subscription (B)", r.RSSPerSub, 1024, "%.0f"),
		atMost("websockets to Chatwoot", r.Loaded.CableConns, 500, "%.0f"),
	}
	if b := r.Burst; b != nil {
		r.Targets = append(r.Targets, atLeast("burst of one event per subscription reaching NATS", float64(b.Delivered), float64(b.Events), "%.0f"))
	}
}
