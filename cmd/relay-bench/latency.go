package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// LatencyResult is the latency scenario: a fixed event rate, latency from
// the moment the fake is handed an event to the consumer's receipt.
type LatencyResult struct {
	Rate       int            `json:"rate"`
	RunSeconds float64        `json:"run_seconds"`
	Rounds     int            `json:"rounds"`
	Modes      []*ModeLatency `json:"modes"`
	// AddedP99 is relay-core p99 minus floor-a p99, median over rounds (µs).
	AddedP99 float64  `json:"added_p99_us_vs_floor_a"`
	Targets  []Target `json:"targets"`
}

// ModeLatency is one mode's latency runs (all times in microseconds).
type ModeLatency struct {
	Mode      string       `json:"mode"`
	Runs      []LatencyRun `json:"runs"`
	P50       float64      `json:"median_p50_us"`
	P99       float64      `json:"median_p99_us"`
	P999      float64      `json:"median_p999_us"`
	Quantiles []Quantile   `json:"quantiles"` // all rounds pooled, for the plot
}

// LatencyRun is one run's distribution.
type LatencyRun struct {
	Round    int     `json:"round"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	SendRate float64 `json:"achieved_send_rate"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
	Max      float64 `json:"max_us"`
	LoadAvg  string  `json:"load_average"` // at the end of the run
	RelayCPU float64 `json:"relay_cpu_us_per_event,omitempty"`
	TotalCPU float64 `json:"total_cpu_us_per_event"`
}

// Quantile is one point of a distribution.
type Quantile struct {
	Q  float64 `json:"q"`
	US float64 `json:"us"`
}

func (r *LatencyResult) targets() []Target { return r.Targets }

func (r *LatencyResult) summary() string {
	s := ""
	for _, m := range r.Modes {
		s += fmt.Sprintf("%s p50/p99/p99.9 %.0f/%.0f/%.0f µs, ", m.Mode, m.P50, m.P99, m.P999)
	}
	return fmt.Sprintf("%sadded p99 vs floor-a %.0f µs (%d events/s, median of %d rounds)", s, r.AddedP99, r.Rate, r.Rounds)
}

func (b *bench) latency(ctx context.Context) (*LatencyResult, error) {
	ms, err := b.getModes(ctx)
	if err != nil {
		return nil, err
	}
	p := b.p
	res := &LatencyResult{Rate: p.LatencyRate, RunSeconds: p.LatencyRun.D().Seconds(), Rounds: p.Rounds}
	pooled := make([][]int64, len(ms.list))
	for _, m := range ms.list {
		res.Modes = append(res.Modes, &ModeLatency{Mode: m.name})
	}
	for round := 1; round <= p.Rounds; round++ {
		for i, m := range ms.list {
			run, samples, err := b.latencyRun(ctx, m, round)
			if err != nil {
				return nil, err
			}
			b.between(ctx, m)
			res.Modes[i].Runs = append(res.Modes[i].Runs, run)
			pooled[i] = append(pooled[i], samples...)
			b.progress("latency round %d %-17s p50 %6.0f µs  p99 %6.0f µs  p99.9 %6.0f µs (%d/%d)", round, m.name,
				run.P50, run.P99, run.P999, run.Received, run.Sent)
		}
	}
	res.finish(pooled)
	return res, nil
}

func (b *bench) latencyRun(ctx context.Context, m *mode, round int) (LatencyRun, []int64, error) {
	expect := int(float64(b.p.LatencyRate) * b.p.LatencyRun.D().Seconds())
	m.counter.reset(true, expect)
	before, err := m.sample()
	if err != nil {
		return LatencyRun{}, nil, err
	}
	st := b.pushPaced(ctx, m.set, float64(b.p.LatencyRate), b.p.LatencyRun.D(), 1)
	got := m.counter.settle(ctx, st.pushed-st.unrouted, b.p.SettleQuiet.D())
	if err := ctx.Err(); err != nil {
		return LatencyRun{}, nil, err
	}
	after, err := m.sample()
	if err != nil {
		return LatencyRun{}, nil, err
	}
	samples, _ := m.counter.take()
	slices.Sort(samples)
	run := LatencyRun{Round: round, Sent: st.pushed, Received: got,
		P50: round3(quantile(samples, 0.50)), P99: round3(quantile(samples, 0.99)),
		P999: round3(quantile(samples, 0.999)), Max: round3(quantile(samples, 1)), LoadAvg: loadAvg()}
	if secs := time.Duration(st.end - st.start).Seconds(); secs > 0 {
		run.SendRate = round3(float64(st.pushed) / secs)
	}
	if got > 0 {
		run.RelayCPU = round3((after.cpu - before.cpu) / float64(got) * 1e6)
	}
	run.TotalCPU = total(before, after, got)
	return run, samples, nil
}

// quantilePoints are the points kept for the plot.
var quantilePoints = func() []float64 {
	var qs []float64
	for i := 0; i <= 100; i++ {
		qs = append(qs, float64(i)/100)
	}
	return append(qs, 0.995, 0.999, 0.9999)
}()

func (r *LatencyResult) finish(pooled [][]int64) {
	byName := map[string]*ModeLatency{}
	for i, m := range r.Modes {
		byName[m.Mode] = m
		var p50, p99, p999 []float64
		for _, run := range m.Runs {
			p50, p99, p999 = append(p50, run.P50), append(p99, run.P99), append(p999, run.P999)
		}
		m.P50, m.P99, m.P999 = round3(median(p50)), round3(median(p99)), round3(median(p999))
		slices.Sort(pooled[i])
		for _, q := range quantilePoints {
			m.Quantiles = append(m.Quantiles, Quantile{Q: q, US: round3(quantile(pooled[i], q))})
		}
		slices.SortFunc(m.Quantiles, func(a, b Quantile) int { return cmpFloat(a.Q, b.Q) })
	}
	relay, floor := byName[modeRelayCore], byName[modeFloorA]
	var added []float64
	for i := range min(len(relay.Runs), len(floor.Runs)) {
		added = append(added, relay.Runs[i].P99-floor.Runs[i].P99)
	}
	r.AddedP99 = round3(median(added))
	r.Targets = []Target{
		atMost("relay core p99, fake send to consumer (µs)", relay.P99, 1000, "%.0f"),
		atMost("relay core p99 minus floor (a) p99 (µs)", r.AddedP99, 1000, "%.0f"),
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
