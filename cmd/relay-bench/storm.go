package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// StormResult is the reconnect storm: every connection dropped at once,
// time until every subscription is confirmed again, and the subscribe rate
// Chatwoot saw meanwhile.
type StormResult struct {
	Subscriptions    int     `json:"subscriptions"`
	Rate             float64 `json:"subscribe_rate"`
	Burst            int     `json:"subscribe_burst"`
	InitialSeconds   float64 `json:"initial_confirm_seconds"`
	InitialMaxIn1s   int     `json:"initial_max_subscribes_in_1s"`
	Dropped          int     `json:"connections_dropped"`
	ReconfirmSeconds float64 `json:"reconfirm_seconds"`
	BudgetSeconds    float64 `json:"budget_seconds"`
	Subscribes       int     `json:"subscribes_during_storm"`
	MaxIn1s          int     `json:"max_subscribes_in_1s"`
	// MaxIn5s shows the pacing over a window where delivery jitter
	// (subscribes are timed when the fake reads them) matters less.
	MaxIn5s int      `json:"max_subscribes_in_5s"`
	Targets []Target `json:"targets"`
}

func (r *StormResult) targets() []Target { return r.Targets }

func (r *StormResult) summary() string {
	return fmt.Sprintf("%d subscriptions re-confirmed in %.1fs (budget %.1fs) at %.0f/s burst %d, %d subscribes, at most %d in any 1 s (%d in any 5 s)",
		r.Subscriptions, r.ReconfirmSeconds, r.BudgetSeconds, r.Rate, r.Burst, r.Subscribes, r.MaxIn1s, r.MaxIn5s)
}

func (b *bench) storm(ctx context.Context) (*StormResult, error) {
	n := b.p.ScaleSubscriptions
	set, err := newTokenSet("strm", n, 0)
	if err != nil {
		return nil, err
	}
	b.addTokens(set)
	file := filepath.Join(b.tmp, "storm.tokens")
	if err := writeTokens(file, nil); err != nil {
		return nil, err
	}
	res := &StormResult{Subscriptions: n, Rate: b.p.StormRate, Burst: b.p.StormBurst}
	res.BudgetSeconds = round3(float64(n) / res.Rate * (1 + b.p.StormSlack))
	rp, err := b.startRelay(ctx, relayConfig{name: "strm", subsFile: file, subscribeRate: res.Rate, burst: res.Burst})
	if err != nil {
		return nil, err
	}
	defer rp.stop()
	// Registered after start (SIGHUP), like the scale scenario: the relay
	// stores each registration before subscribing it.
	if err := writeTokens(file, set.tokens); err != nil {
		return nil, err
	}
	initial := &chatwoottest.SubscribeLog{}
	b.subLog.Store(initial)
	start := time.Now()
	b.progress("storm: registering and subscribing %d subscriptions at up to %.0f/s", n, res.Rate)
	loaded, err := rp.reload()
	if err != nil {
		return nil, err
	}
	if err := rp.waitConfirmed(ctx, n, b.p.ConfirmTimeout.D()); err != nil {
		return nil, err
	}
	if err := loaded(ctx, b.p.ConfirmTimeout.D()); err != nil {
		return nil, fmt.Errorf("subscriptions file not loaded: %w", err)
	}
	res.InitialSeconds = round3(time.Since(start).Seconds())
	res.InitialMaxIn1s = initial.MaxInWindow(time.Second)
	if err := b.stormDrop(ctx, rp, res); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// stormDrop drops every connection the way a deploy does (no disconnect
// frame) and times the recovery.
func (b *bench) stormDrop(ctx context.Context, rp *relayProc, res *StormResult) error {
	log := &chatwoottest.SubscribeLog{}
	b.subLog.Store(log)
	defer b.subLog.Store(nil)
	b.progress("storm: dropping every connection")
	start := time.Now()
	res.Dropped = b.fake.DropAll(false)
	n := res.Subscriptions
	err := waitFor(ctx, time.Minute, 5*time.Millisecond, func() (bool, error) {
		c, err := rp.confirmed()
		return err == nil && c < n, nil
	})
	if err != nil {
		return fmt.Errorf("the relay did not notice the drop: %w", err)
	}
	if err := rp.waitConfirmed(ctx, n, b.p.ConfirmTimeout.D()); err != nil {
		return err
	}
	res.ReconfirmSeconds = round3(time.Since(start).Seconds())
	res.Subscribes, res.MaxIn1s, res.MaxIn5s = log.Len(), log.MaxInWindow(time.Second), log.MaxInWindow(5*time.Second)
	return nil
}

func (r *StormResult) finish() {
	r.Targets = []Target{
		atMost("re-confirm time (s)", r.ReconfirmSeconds, r.BudgetSeconds, "%.1f"),
		atMost("subscribes in any 1 s window", float64(r.MaxIn1s), r.Rate+float64(r.Burst), "%.0f"),
	}
}
