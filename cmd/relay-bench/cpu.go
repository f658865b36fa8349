package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The cpu scenario paces the throughput scenario's events (1 KiB
// message.created, one token per subscription) at fixed rates through
// relays and through floors b and b-jetstream that run as processes of
// their own, and reads each process's CPU time and context switches from
// /proc around every run. Rounds interleave the modes, so load from
// elsewhere on the machine falls on all of them alike.

// Modes of the cpu scenario that only it runs.
const (
	modeRelayCoreBefore = "relay-core-before"
	modeRelayJSBefore   = "relay-jetstream-before"
)

// cpuMode is one process measured by the cpu scenario: a relay or a floor
// child.
type cpuMode struct {
	*mode
	floor *floorProc // floors; relays are in mode.relay
}

func (m *cpuMode) pid() int {
	if m.floor != nil {
		return m.floor.pid()
	}
	return m.relay.pid()
}

// stop stops the process and reports a floor child that failed.
func (m *cpuMode) stop() error {
	m.mode.stop()
	if m.floor != nil {
		return m.floor.stop()
	}
	return nil
}

// cpuSpec is one mode of the cpu scenario: name, subject prefix (the
// first four bytes name its tokens) and how it starts.
type cpuSpec struct {
	name, prefix, stream string
	start                func(context.Context, *cpuMode) error
}

// cpuSpecs lists the modes in the order every round runs them: each relay
// next to its floor, the "before" relays (with -relay-before) after them.
func (b *bench) cpuSpecs() []cpuSpec {
	relay := func(bin string, js bool) func(context.Context, *cpuMode) error {
		start := b.relayStarterBin(bin, js)
		return func(ctx context.Context, m *cpuMode) error { return start(ctx, m.mode, m.set.name) }
	}
	specs := []cpuSpec{
		{modeRelayCore, "ccor", "", relay("", false)},
		{modeFloorB, "cflb", "", b.floorChildStarter("b")},
	}
	before := b.o.cpu.relayBefore
	if before != "" {
		specs = append(specs, cpuSpec{modeRelayCoreBefore, "bcor", "", relay(before, false)})
	}
	specs = append(specs,
		cpuSpec{modeRelayJS, "cjet", "CJET", relay("", true)},
		cpuSpec{modeFloorBJS, "cfbj", "CFBJ", b.floorChildStarter("b-jetstream")})
	if before != "" {
		specs = append(specs, cpuSpec{modeRelayJSBefore, "bjet", "BJET", relay(before, true)})
	}
	return specs
}

func (b *bench) floorChildStarter(kind string) func(context.Context, *cpuMode) error {
	return func(ctx context.Context, m *cpuMode) error {
		var err error
		m.floor, err = b.startFloorProc(ctx, m.name, kind, m.stream, m.set)
		return err
	}
}

// startCPUModes starts every mode; on error it returns those it started.
func (b *bench) startCPUModes(ctx context.Context) ([]*cpuMode, error) {
	var list []*cpuMode
	for _, s := range b.cpuSpecs() {
		b.progress("starting %s (%d subscriptions)", s.name, b.p.Subscriptions)
		m, err := b.newMode(s.name, s.prefix, s.prefix+".*.*.*.*.message.created")
		if err != nil {
			return list, err
		}
		m.stream = s.stream
		cm := &cpuMode{mode: m}
		list = append(list, cm)
		if err := s.start(ctx, cm); err != nil {
			return list, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return list, nil
}

// cpu runs the cpu scenario: after a warm-up, Rounds rounds, each running
// every rate through every mode in turn.
func (b *bench) cpu(ctx context.Context) (_ *CPUResult, err error) {
	modes, err := b.startCPUModes(ctx)
	defer func() {
		for _, m := range modes {
			if e := m.stop(); e != nil && err == nil {
				err = e
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	ms := &modeSet{}
	for _, m := range modes {
		ms.list = append(ms.list, m.mode)
	}
	if err := b.warmUp(ctx, ms); err != nil {
		return nil, err
	}
	res := newCPUResult(b.p, b.o.cpu.relayBefore, modes)
	for round := 1; round <= b.p.Rounds; round++ {
		for _, rate := range b.p.CPURates {
			if err := b.cpuRound(ctx, res, modes, rate, round); err != nil {
				return nil, err
			}
		}
	}
	res.finish(modes)
	return res, nil
}

// cpuRound runs one rate through every mode.
func (b *bench) cpuRound(ctx context.Context, res *CPUResult, modes []*cpuMode, rate, round int) error {
	for _, m := range modes {
		run, err := b.cpuRun(ctx, m, rate, round)
		if err != nil {
			return fmt.Errorf("%s at %d/s: %w", m.name, rate, err)
		}
		b.between(ctx, m.mode)
		mc := res.get(m.name, rate)
		mc.Runs = append(mc.Runs, run)
		b.progress("cpu round %d %6d/s %-22s %6.2f µs CPU/event  %5.2f switches/event  %d/%d delivered (offered at %.0f/s) %v",
			round, rate, m.name, run.CPUPerEvent, run.SwitchesPerEvent, run.Delivered, run.Offered, run.OfferedRate, run.Drops)
	}
	return nil
}

// cpuRun paces rate events/s through one mode for CPURun and reads the
// mode's process before and after: the process alone, not this one. A
// relay's drop counters are scraped outside that window.
func (b *bench) cpuRun(ctx context.Context, m *cpuMode, rate, round int) (CPURun, error) {
	pid := m.pid()
	m0 := m.relayMetrics()
	before, err := readSched(pid)
	if err != nil {
		return CPURun{}, err
	}
	m.counter.reset(false, 0)
	st := b.pushPaced(ctx, m.set, float64(rate), b.p.CPURun.D(), b.p.Pushers)
	got := m.counter.settle(ctx, st.pushed-st.unrouted, b.p.SettleQuiet.D())
	if err := ctx.Err(); err != nil {
		return CPURun{}, err
	}
	after, err := readSched(pid)
	if err != nil {
		return CPURun{}, err
	}
	run := newCPURun(round, rate, st, got, before, after)
	run.Drops = dropsBetween(m0, m.relayMetrics())
	return run, nil
}

// relayMetrics scrapes a relay's metrics; nil for floors or on error.
func (m *cpuMode) relayMetrics() metricSet {
	if m.relay == nil {
		return nil
	}
	ms, _ := m.relay.metrics()
	return ms
}

// procSched is a process's CPU time and context switches so far.
type procSched struct {
	cpu         float64 // seconds, utime + stime of every thread, living or not
	voluntary   int64   // summed over the living threads
	involuntary int64
}

// readSched reads /proc/<pid>/stat and every /proc/<pid>/task/*/status.
// A thread that exits takes its switches with it; Go's threads live as
// long as the process.
func readSched(pid int) (procSched, error) {
	var st procStats
	if err := readCPU(pid, &st); err != nil {
		return procSched{}, err
	}
	s := procSched{cpu: float64(st.CPUTicks) / clockTicks}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return s, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		addSwitches(&s, string(b))
	}
	return s, nil
}

// addSwitches adds the context switches of one status file to s.
func addSwitches(s *procSched, status string) {
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "voluntary_ctxt_switches":
			s.voluntary += n
		case "nonvoluntary_ctxt_switches":
			s.involuntary += n
		}
	}
}
