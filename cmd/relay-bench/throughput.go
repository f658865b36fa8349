package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// ThroughputResult is the throughput scenario: every mode pushed as fast as
// it takes events, in interleaved rounds.
type ThroughputResult struct {
	Subscriptions int               `json:"subscriptions"`
	Connections   int               `json:"connections"`
	MessageBytes  int               `json:"message_bytes"`
	EventsPerRun  int               `json:"events_per_run"`
	Rounds        int               `json:"rounds"`
	Modes         []*ModeThroughput `json:"modes"`
	Ratios        []Ratio           `json:"ratios"`
	Targets       []Target          `json:"targets"`
}

// ModeThroughput is one mode's runs. EventsPerSec is the median of the
// runs' effective rates: the firehose rate, or for a relay that lost events
// under the firehose the highest paced rate it delivered without loss.
type ModeThroughput struct {
	Mode         string  `json:"mode"`
	Runs         []Run   `json:"runs"`
	EventsPerSec float64 `json:"median_events_per_sec"`
	Firehose     float64 `json:"median_firehose_events_per_sec"`
	// CPUPerEvent is the relay process's CPU time per delivered event
	// under the firehose (median), in microseconds; 0 for floors, which
	// share the bench process.
	CPUPerEvent float64 `json:"median_relay_cpu_us_per_event,omitempty"`
	// SustainedCPU is the same at the sustained rate (no events dropped).
	SustainedCPU float64 `json:"median_sustained_relay_cpu_us_per_event,omitempty"`
	// TotalCPU is the CPU time of the whole machine per event (relay plus
	// bench process) at the effective rate: the difference between a relay
	// and a floor is what the relay's work costs beyond the floor's.
	TotalCPU float64 `json:"median_total_cpu_us_per_event"`
}

// Run is one throughput run: a firehose (Events pushed as fast as the fake
// can write them) and, for a relay that lost events, paced probes.
type Run struct {
	Round        int              `json:"round"`
	Sent         int64            `json:"sent"`
	Received     int64            `json:"received"`
	Seconds      float64          `json:"seconds"`
	EventsPerSec float64          `json:"firehose_events_per_sec"`
	RelayCPU     float64          `json:"relay_cpu_seconds,omitempty"`
	TotalCPU     float64          `json:"total_cpu_us_per_event"`
	Drops        map[string]int64 `json:"relay_drops,omitempty"`
	Probes       []Probe          `json:"probes,omitempty"`
	Sustained    float64          `json:"sustained_events_per_sec,omitempty"`
	SustainedCPU float64          `json:"sustained_relay_cpu_us_per_event,omitempty"`
	Effective    float64          `json:"effective_events_per_sec"`
}

// Probe is one paced run: Rate offered, Achieved at the consumer, and
// the relay's CPU time per delivered event (µs), which is less sensitive
// to other load on the machine than the rates are.
type Probe struct {
	Rate        float64 `json:"rate"`
	Achieved    float64 `json:"achieved"`
	Sent        int64   `json:"sent"`
	Received    int64   `json:"received"`
	CPUPerEvent float64 `json:"relay_cpu_us_per_event"`
	TotalCPU    float64 `json:"total_cpu_us_per_event"`
	Pass        bool    `json:"pass"`
}

// Ratio compares two modes round by round; Median is over the rounds.
type Ratio struct {
	Of       string    `json:"of"`
	To       string    `json:"to"`
	Median   float64   `json:"median"`
	PerRound []float64 `json:"per_round"`
}

func (r *ThroughputResult) targets() []Target { return r.Targets }

func (r *ThroughputResult) summary() string {
	s := ""
	for _, m := range r.Modes {
		s += fmt.Sprintf("%s %.0f/s (%.1f µs CPU/event), ", m.Mode, m.EventsPerSec, m.TotalCPU)
	}
	for _, q := range r.Ratios {
		s += fmt.Sprintf("%s/%s %.2f, ", q.Of, q.To, q.Median)
	}
	return fmt.Sprintf("%s(%d subscriptions, %d B events, median of %d rounds)", s, r.Subscriptions, r.MessageBytes, r.Rounds)
}

func (b *bench) throughput(ctx context.Context) (*ThroughputResult, error) {
	ms, err := b.getModes(ctx)
	if err != nil {
		return nil, err
	}
	p := b.p
	res := &ThroughputResult{Subscriptions: p.Subscriptions, Connections: (p.Subscriptions + p.PerConn - 1) / p.PerConn,
		MessageBytes: p.MessageBytes, EventsPerRun: p.Events, Rounds: p.Rounds}
	for _, m := range ms.list {
		res.Modes = append(res.Modes, &ModeThroughput{Mode: m.name})
	}
	for round := 1; round <= p.Rounds; round++ {
		for i, m := range ms.list {
			run, err := b.throughputRun(ctx, m, round)
			if err != nil {
				return nil, err
			}
			b.between(ctx, m)
			res.Modes[i].Runs = append(res.Modes[i].Runs, run)
			b.progress("throughput round %d %-17s %8.0f events/s (firehose %.0f/s, %d/%d in %.2fs)", round, m.name,
				run.Effective, run.EventsPerSec, run.Received, run.Sent, run.Seconds)
		}
	}
	res.finish()
	return res, nil
}

// throughputRun pushes Events events to one mode as fast as the fake
// writes them and measures events/s at the consumer, from the first send to
// the last arrival. The relay reads without waiting for NATS and drops what
// it cannot buffer (by design: it must keep reading pings), so when it lost
// events the run also searches for the highest rate it sustains without loss.
func (b *bench) throughputRun(ctx context.Context, m *mode, round int) (Run, error) {
	before, err := m.sample()
	if err != nil {
		return Run{}, err
	}
	m.counter.reset(false, 0)
	st := b.pushAll(ctx, m.set, b.p.Events)
	got := m.counter.settle(ctx, st.pushed-st.unrouted, b.p.SettleQuiet.D())
	if err := ctx.Err(); err != nil {
		return Run{}, err
	}
	after, err := m.sample()
	if err != nil {
		return Run{}, err
	}
	secs := time.Duration(m.counter.last.Load() - st.start).Seconds()
	run := Run{Round: round, Sent: st.pushed, Received: got, Seconds: round3(secs),
		RelayCPU: round3(after.cpu - before.cpu), TotalCPU: total(before, after, got),
		Drops: dropsBetween(before.metrics, after.metrics)}
	if secs > 0 {
		run.EventsPerSec = round3(float64(got) / secs)
	}
	run.Effective = run.EventsPerSec
	if m.relay != nil && got < st.pushed {
		b.progress("throughput round %d %-17s firehose lost %d of %d; searching the sustained rate", round, m.name, st.pushed-got, st.pushed)
		b.between(ctx, m)
		run.Sustained, run.SustainedCPU, run.TotalCPU, run.Probes = b.sustained(ctx, m, run.EventsPerSec)
		run.Effective = run.Sustained
	}
	return run, ctx.Err()
}

// sustained searches the highest paced rate the mode delivers completely
// and on time (searchRate), starting from hint.
func (b *bench) sustained(ctx context.Context, m *mode, hint float64) (best, bestCPU, bestTotal float64, probes []Probe) {
	searchRate(hint, func(rate float64) bool {
		if ctx.Err() != nil {
			return false
		}
		p := b.probe(ctx, m, rate)
		probes = append(probes, p)
		if p.Pass && p.Achieved > best {
			best, bestCPU, bestTotal = p.Achieved, p.CPUPerEvent, p.TotalCPU
		}
		return p.Pass
	})
	return round3(best), bestCPU, bestTotal, probes
}

// searchRate finds the highest rate try passes: up by half while probes
// pass (a firehose that lost events says little about the sustained rate,
// which may be many times higher), down by 30 % while they fail, then
// three bisections between the best pass and the lowest fail. It returns
// the best passing rate, 0 if none passed.
func searchRate(hint float64, try func(rate float64) bool) float64 {
	const maxSteps = 12
	pass, fail := 0.0, 0.0
	rate := math.Max(hint, 1000)
	for i := 0; i < maxSteps && fail == 0; i++ {
		if try(rate) {
			pass, rate = rate, rate*1.5
		} else {
			fail = rate
		}
	}
	for i := 0; i < maxSteps && pass == 0 && fail > 0; i++ {
		rate *= 0.7
		if try(rate) {
			pass = rate
		} else {
			fail = rate
		}
	}
	for i := 0; i < 3 && pass > 0 && fail > pass; i++ {
		mid := (pass + fail) / 2
		if try(mid) {
			pass = mid
		} else {
			fail = mid
		}
	}
	return pass
}

// probe pushes at rate for ProbeRun; it passes when nothing was lost and
// the consumer kept up (95 % of the rate, measured to the last arrival).
func (b *bench) probe(ctx context.Context, m *mode, rate float64) Probe {
	m.counter.reset(false, 0)
	before, _ := m.sample()
	st := b.pushPaced(ctx, m.set, rate, b.p.ProbeRun.D(), b.p.Pushers)
	got := m.counter.settle(ctx, st.pushed-st.unrouted, b.p.SettleQuiet.D())
	after, _ := m.sample()
	p := Probe{Rate: round3(rate), Sent: st.pushed, Received: got}
	if got > 0 {
		p.CPUPerEvent = round3((after.cpu - before.cpu) / float64(got) * 1e6)
	}
	p.TotalCPU = total(before, after, got)
	if secs := time.Duration(m.counter.last.Load() - st.start).Seconds(); secs > 0 {
		p.Achieved = round3(float64(got) / secs)
	}
	p.Pass = got == st.pushed && p.Achieved >= 0.95*rate
	b.between(ctx, m)
	b.progress("  probe %-17s %8.0f/s offered: %8.0f/s delivered, %d lost, %.1f µs CPU/event", m.name, rate, p.Achieved,
		st.pushed-got, p.CPUPerEvent)
	return p
}

// sample is a relay's CPU time and metrics (zero for floors).
type sample struct {
	cpu     float64 // the relay's CPU seconds
	bench   float64 // this process's: fake, nats-server, consumer (and the floors)
	metrics metricSet
}

func (m *mode) sample() (sample, error) {
	self, err := readProc(os.Getpid())
	if err != nil {
		return sample{}, err
	}
	s := sample{bench: float64(self.CPUTicks) / clockTicks}
	if m.relay == nil {
		return s, nil
	}
	st, err := readProc(m.relay.pid())
	if err != nil {
		return s, err
	}
	s.cpu = float64(st.CPUTicks) / clockTicks
	s.metrics, err = m.relay.metrics()
	return s, err
}

// total is the machine's CPU time per event in microseconds: the relay's
// and this process's (which hosts the fake, NATS, the consumer and, for
// floors, the floor itself).
func total(a, z sample, events int64) float64 {
	if events <= 0 {
		return 0
	}
	return round3((z.cpu - a.cpu + z.bench - a.bench) / float64(events) * 1e6)
}

// dropsBetween is the growth of the relay's drop counters, by reason.
func dropsBetween(a, z metricSet) map[string]int64 {
	out := map[string]int64{}
	for k, v := range z {
		if !strings.HasPrefix(k, "relay_cable_dropped_total{") && !strings.HasPrefix(k, "relay_fanout_events_dropped_total{") {
			continue
		}
		if d := int64(v - a[k]); d > 0 {
			out[strings.TrimPrefix(strings.TrimPrefix(k, "relay_"), "fanout_events_")] = d
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func (r *ThroughputResult) finish() {
	byName := map[string]*ModeThroughput{}
	for _, m := range r.Modes {
		byName[m.Mode] = m
		var eps, fire, cpu, scpu, tot []float64
		for _, run := range m.Runs {
			eps, fire, tot = append(eps, run.Effective), append(fire, run.EventsPerSec), append(tot, run.TotalCPU)
			if run.SustainedCPU > 0 {
				scpu = append(scpu, run.SustainedCPU)
			}
			if run.Received > 0 && run.RelayCPU > 0 {
				cpu = append(cpu, run.RelayCPU/float64(run.Received)*1e6)
			}
		}
		m.EventsPerSec, m.Firehose = round3(median(eps)), round3(median(fire))
		m.CPUPerEvent, m.SustainedCPU, m.TotalCPU = round3(median(cpu)), round3(median(scpu)), round3(median(tot))
	}
	r.Ratios = []Ratio{
		ratio(byName, modeRelayCore, modeFloorA),
		ratio(byName, modeRelayCore, modeFloorB),
		ratio(byName, modeRelayJS, modeFloorBJS),
	}
	r.Targets = []Target{
		atLeast("relay core events/s", byName[modeRelayCore].EventsPerSec, 100_000, "%.0f"),
		atLeast("relay JetStream events/s", byName[modeRelayJS].EventsPerSec, 50_000, "%.0f"),
		atLeast("relay core / floor (b)", r.Ratios[1].Median, 0.8, "%.2f"),
		atLeast("relay core / floor (a)", r.Ratios[0].Median, 0.4, "%.2f"),
	}
}

// ratio divides of's runs by to's runs round by round.
func ratio(byName map[string]*ModeThroughput, of, to string) Ratio {
	q := Ratio{Of: of, To: to}
	a, b := byName[of], byName[to]
	for i := range min(len(a.Runs), len(b.Runs)) {
		if d := b.Runs[i].Effective; d > 0 {
			q.PerRound = append(q.PerRound, round3(a.Runs[i].Effective/d))
		}
	}
	q.Median = round3(median(q.PerRound))
	return q
}
