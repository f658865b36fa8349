package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CPUResult is the cpu scenario: per mode and rate, the CPU time its
// process alone spends per delivered event, and the ratios of relays to
// their floors, round by round.
type CPUResult struct {
	Subscriptions int        `json:"subscriptions"`
	MessageBytes  int        `json:"message_bytes"`
	RunSeconds    float64    `json:"run_seconds"`
	Rounds        int        `json:"rounds"`
	Rates         []int      `json:"rates"`
	RelayBefore   string     `json:"relay_before,omitempty"` // the -relay-before binary
	Modes         []*ModeCPU `json:"modes"`                  // by rate, then in round order
	Ratios        []CPURatio `json:"ratios"`
	Targets       []Target   `json:"targets"`
}

// ModeCPU is one mode's runs at one rate, with medians and ranges over
// the rounds.
type ModeCPU struct {
	Mode string `json:"mode"`
	Rate int    `json:"rate"`
	PID  int    `json:"pid"` // the process measured (never the bench's)
	// ProcessCPU is the process's CPU time from its start to the end of
	// the scenario, in seconds.
	ProcessCPU  float64  `json:"process_cpu_seconds"`
	Runs        []CPURun `json:"runs"`
	CPUPerEvent Spread   `json:"cpu_us_per_event"`
	Switches    Spread   `json:"switches_per_event"`
	Delivered   Spread   `json:"delivered_per_offered"`
}

// CPURun is one paced run of one mode.
type CPURun struct {
	Round            int     `json:"round"`
	Offered          int64   `json:"offered"`         // events the fake wrote to a subscriber
	OfferedRate      float64 `json:"offered_per_sec"` // as the pushers achieved it
	Delivered        int64   `json:"delivered"`       // events the consumer received
	DeliveredRatio   float64 `json:"delivered_per_offered"`
	CPUSeconds       float64 `json:"cpu_seconds"`      // the process's, 10 ms resolution
	CPUPerEvent      float64 `json:"cpu_us_per_event"` // per delivered event
	Voluntary        int64   `json:"voluntary_switches"`
	Involuntary      int64   `json:"involuntary_switches"`
	SwitchesPerEvent float64 `json:"switches_per_event"` // both kinds, per delivered event
	// Complete: everything offered was delivered and the pushers reached
	// 95 % of the rate. A run that is not says the machine (or the mode)
	// could not keep up; its CPU per event is not comparable.
	Complete bool `json:"complete"`
	// Drops is the growth of a relay's drop counters, by reason.
	Drops map[string]int64 `json:"relay_drops,omitempty"`
}

// Spread is a median with the range it was taken over.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// CPURatio is Of's CPU per event over To's at one rate, round by round.
// CompleteRounds counts the rounds in which both runs were complete.
type CPURatio struct {
	Of             string    `json:"of"`
	To             string    `json:"to"`
	Rate           int       `json:"rate"`
	PerRound       []float64 `json:"per_round"`
	CompleteRounds int       `json:"complete_rounds"`
	Spread
}

func newCPURun(round, rate int, st pushStats, got int64, a, z procSched) CPURun {
	r := CPURun{Round: round, Offered: st.pushed - st.unrouted, Delivered: got,
		CPUSeconds: round3(z.cpu - a.cpu), Voluntary: z.voluntary - a.voluntary, Involuntary: z.involuntary - a.involuntary}
	if secs := time.Duration(st.end - st.start).Seconds(); secs > 0 {
		r.OfferedRate = round3(float64(st.pushed) / secs)
	}
	if r.Offered > 0 {
		r.DeliveredRatio = round3(float64(got) / float64(r.Offered))
	}
	r.Complete = got == r.Offered && r.OfferedRate >= 0.95*float64(rate)
	if got > 0 {
		r.CPUPerEvent = round3((z.cpu - a.cpu) / float64(got) * 1e6)
		r.SwitchesPerEvent = round3(float64(r.Voluntary+r.Involuntary) / float64(got))
	}
	return r
}

func newCPUResult(p Params, before string, modes []*cpuMode) *CPUResult {
	r := &CPUResult{Subscriptions: p.Subscriptions, MessageBytes: p.MessageBytes, RunSeconds: p.CPURun.D().Seconds(),
		Rounds: p.Rounds, Rates: p.CPURates, RelayBefore: before}
	for _, rate := range p.CPURates {
		for _, m := range modes {
			r.Modes = append(r.Modes, &ModeCPU{Mode: m.name, Rate: rate, PID: m.pid()})
		}
	}
	return r
}

// get returns the entry of mode at rate.
func (r *CPUResult) get(mode string, rate int) *ModeCPU {
	for _, m := range r.Modes {
		if m.Mode == mode && m.Rate == rate {
			return m
		}
	}
	return nil
}

// cpuPairs are the ratios reported at every rate, when both modes ran.
var cpuPairs = [][2]string{
	{modeRelayCore, modeFloorB}, {modeRelayJS, modeFloorBJS},
	{modeRelayCoreBefore, modeFloorB}, {modeRelayJSBefore, modeFloorBJS},
	{modeRelayCore, modeRelayCoreBefore}, {modeRelayJS, modeRelayJSBefore},
}

// finish computes medians, ratios and targets; modes give each process's
// total CPU time.
func (r *CPUResult) finish(modes []*cpuMode) {
	for _, m := range r.Modes {
		m.summarize()
		for _, cm := range modes {
			if cm.name == m.Mode {
				if s, err := readSched(cm.pid()); err == nil {
					m.ProcessCPU = round3(s.cpu)
				}
			}
		}
	}
	r.compare()
}

// compare fills Ratios and Targets from the runs.
func (r *CPUResult) compare() {
	r.Ratios = nil
	for _, rate := range r.Rates {
		for _, p := range cpuPairs {
			if of, to := r.get(p[0], rate), r.get(p[1], rate); of != nil && to != nil {
				r.Ratios = append(r.Ratios, cpuRatio(of, to))
			}
		}
	}
	r.Targets = nil
	for _, t := range []struct {
		rate   int
		of, to string
		ratio  float64
	}{
		{10_000, modeRelayCore, modeFloorB, 1.2},
		{40_000, modeRelayCore, modeFloorB, 1.3},
		{40_000, modeRelayJS, modeFloorBJS, 1.8},
	} {
		if q := r.ratio(t.of, t.to, t.rate); q != nil {
			r.Targets = append(r.Targets, atMost(fmt.Sprintf("%s / %s CPU per event at %d/s", t.of, t.to, t.rate),
				q.Median, t.ratio, "%.2f"))
		}
	}
}

func (r *CPUResult) ratio(of, to string, rate int) *CPURatio {
	for i := range r.Ratios {
		if q := &r.Ratios[i]; q.Of == of && q.To == to && q.Rate == rate {
			return q
		}
	}
	return nil
}

// summarize takes medians and ranges over the runs.
func (m *ModeCPU) summarize() {
	var cpu, sw, del []float64
	for _, run := range m.Runs {
		cpu, sw, del = append(cpu, run.CPUPerEvent), append(sw, run.SwitchesPerEvent), append(del, run.DeliveredRatio)
	}
	m.CPUPerEvent, m.Switches, m.Delivered = spread(cpu), spread(sw), spread(del)
}

// cpuRatio divides of's CPU per event by to's, round by round.
func cpuRatio(of, to *ModeCPU) CPURatio {
	q := CPURatio{Of: of.Mode, To: to.Mode, Rate: of.Rate}
	for i := range min(len(of.Runs), len(to.Runs)) {
		if d := to.Runs[i].CPUPerEvent; d > 0 {
			q.PerRound = append(q.PerRound, round3(of.Runs[i].CPUPerEvent/d))
		}
		if of.Runs[i].Complete && to.Runs[i].Complete {
			q.CompleteRounds++
		}
	}
	q.Spread = spread(q.PerRound)
	return q
}

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	return Spread{Median: round3(median(xs)), Min: round3(slices.Min(xs)), Max: round3(slices.Max(xs))}
}

func (r *CPUResult) targets() []Target { return r.Targets }

func (r *CPUResult) summary() string {
	var s []string
	for _, m := range r.Modes {
		s = append(s, fmt.Sprintf("%s@%d %.2f µs/event", m.Mode, m.Rate, m.CPUPerEvent.Median))
	}
	for _, q := range r.Ratios {
		s = append(s, fmt.Sprintf("%s/%s@%d %.2f (%d complete rounds)", q.Of, q.To, q.Rate, q.Median, q.CompleteRounds))
	}
	return fmt.Sprintf("%s (%d subscriptions, %d B events, %.0fs runs, median of %d rounds)",
		strings.Join(s, ", "), r.Subscriptions, r.MessageBytes, r.RunSeconds, r.Rounds)
}
