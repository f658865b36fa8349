package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for relay-bench when the cpu
// scenario re-executes itself as a floor child.
func TestMain(m *testing.M) {
	if args, ok := childArgs(os.Args[1:]); ok {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := floorChild(ctx, args, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestQuickCPU runs the cpu scenario at a tiny size, with the same relay
// binary as "before": six processes, each read from /proc.
func TestQuickCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	relay := filepath.Join(t.TempDir(), "relay")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", relay, "github.com/relayhq/relay/cmd/relay").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-scenario", "cpu", "-quick", "-rounds", "1", "-cpu-rates", "1000", "-cpu-run", "400ms",
		"-relay", relay, "-relay-before", relay, "-out", out}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "cpu: relay-core@1000 ") {
		t.Fatalf("no summary line:\n%s", stdout.String())
	}
	var res Results
	b, err := os.ReadFile(filepath.Join(out, "relay-bench-results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	checkCPU(t, res.CPU, relay)
	checkPNG(t, filepath.Join(out, "relay-bench.png"))
}

func checkCPU(t *testing.T, r *CPUResult, before string) {
	t.Helper()
	want := []string{modeRelayCore, modeFloorB, modeRelayCoreBefore, modeRelayJS, modeFloorBJS, modeRelayJSBefore}
	if r == nil || len(r.Modes) != len(want) || len(r.Ratios) != len(cpuPairs) || r.RelayBefore != before {
		t.Fatalf("incomplete result: %+v", r)
	}
	pids := map[int]bool{os.Getpid(): true}
	for i, m := range r.Modes {
		if m.Mode != want[i] || m.Rate != 1000 || len(m.Runs) != 1 {
			t.Fatalf("mode %d: %+v", i, m)
		}
		if pids[m.PID] {
			t.Errorf("%s: pid %d is the bench's or another mode's", m.Mode, m.PID)
		}
		pids[m.PID] = true
		// A few hundred events fit every buffer: nothing may be lost.
		run := m.Runs[0]
		if run.Offered != 400 || run.Delivered != 400 || run.DeliveredRatio != 1 || m.Delivered.Median != 1 || run.Drops != nil {
			t.Errorf("%s: %+v", m.Mode, run)
		}
		// Every process woke up for its events and spent CPU time since it started.
		if run.Voluntary+run.Involuntary <= 0 || run.SwitchesPerEvent <= 0 || m.ProcessCPU <= 0 {
			t.Errorf("%s: CPU not read: %+v, process %v s", m.Mode, run, m.ProcessCPU)
		}
	}
	for _, q := range r.Ratios {
		if q.Rate != 1000 || len(q.PerRound) > 1 || q.CompleteRounds > 1 {
			t.Errorf("ratio %+v", q)
		}
	}
}

// TestCPURatiosAndTargets checks the ratios and targets on made-up runs.
func TestCPURatiosAndTargets(t *testing.T) {
	runs := func(us ...float64) []CPURun {
		var out []CPURun
		for i, v := range us {
			out = append(out, CPURun{Round: i + 1, CPUPerEvent: v, SwitchesPerEvent: v / 10, DeliveredRatio: 1, Complete: v != 30})
		}
		return out
	}
	r := &CPUResult{Rates: []int{10_000, 40_000}, Modes: []*ModeCPU{
		{Mode: modeRelayCore, Rate: 10_000, Runs: runs(24, 30, 22)},
		{Mode: modeFloorB, Rate: 10_000, Runs: runs(20, 20, 20)},
		{Mode: modeRelayCore, Rate: 40_000, Runs: runs(13, 12, 14)},
		{Mode: modeFloorB, Rate: 40_000, Runs: runs(10, 10, 10)},
		{Mode: modeRelayJS, Rate: 40_000, Runs: runs(16, 18, 17)},
		{Mode: modeFloorBJS, Rate: 40_000, Runs: runs(10, 0, 10)}, // a run that delivered nothing
	}}
	r.finish(nil)
	if m := r.get(modeRelayCore, 10_000); m.CPUPerEvent != (Spread{Median: 24, Min: 22, Max: 30}) || m.Switches.Median != 2.4 {
		t.Errorf("relay-core at 10k: %+v", m)
	}
	core10 := r.ratio(modeRelayCore, modeFloorB, 10_000)
	if core10 == nil || !slices.Equal(core10.PerRound, []float64{1.2, 1.5, 1.1}) || core10.Spread != (Spread{Median: 1.2, Min: 1.1, Max: 1.5}) ||
		core10.CompleteRounds != 2 {
		t.Errorf("relay-core / floor-b at 10k: %+v", core10)
	}
	if js := r.ratio(modeRelayJS, modeFloorBJS, 40_000); js == nil || !slices.Equal(js.PerRound, []float64{1.6, 1.7}) {
		t.Errorf("relay-jetstream / floor-b-jetstream at 40k: %+v", js)
	}
	if len(r.Ratios) != 3 || r.ratio(modeRelayJS, modeFloorBJS, 10_000) != nil {
		t.Errorf("ratios %+v", r.Ratios)
	}
	pass := []bool{true, true, true} // 1.2 ≤ 1.2, 1.3 ≤ 1.3, 1.65 ≤ 1.8
	if len(r.Targets) != 3 {
		t.Fatalf("targets %+v", r.Targets)
	}
	for i, tg := range r.Targets {
		if tg.Pass != pass[i] {
			t.Errorf("target %+v", tg)
		}
	}
	r.get(modeRelayCore, 40_000).Runs[1].CPUPerEvent = 14
	r.finish(nil)
	if tg := r.Targets[1]; tg.Pass || tg.Got != "1.40" {
		t.Errorf("relay-core at 40k over its target: %+v", tg)
	}
}

func TestCPUFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"-scenario", "cpu", "-cpu-rates", "5000, 20000,80000", "-cpu-run", "3s"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	p := defaultParams(false)
	if !slices.Equal(p.CPURates, []int{10_000, 40_000}) || p.CPURun.D() != 10*time.Second {
		t.Fatalf("defaults %v %v", p.CPURates, p.CPURun)
	}
	p.overrideCPU(o.cpu)
	if o.scenario != scenarioCPU || !slices.Equal(p.CPURates, []int{5000, 20_000, 80_000}) || p.CPURun.D() != 3*time.Second {
		t.Fatalf("parsed %+v into %v %v", o, p.CPURates, p.CPURun)
	}
	for _, bad := range [][]string{{"-cpu-rates", "10000,x"}, {"-cpu-rates", "0"}, {"-cpu-rates", ""},
		{"-cpu-run", "-1s"}, {"-relay-before", filepath.Join(t.TempDir(), "missing")}, {"-relay-before", t.TempDir()}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if slices.Contains(selected(scenarioAll), scenarioCPU) {
		t.Error("the cpu scenario runs with -scenario all")
	}
}

// TestFloorChildArgs: a floor child told too little says what it needs
// and exits before connecting anywhere.
func TestFloorChildArgs(t *testing.T) {
	if _, ok := childArgs([]string{"-scenario", "cpu"}); ok {
		t.Fatal("an ordinary command line taken for a floor child")
	}
	args, ok := childArgs([]string{floorChildArg, "-kind", "c"})
	if !ok {
		t.Fatal("floor child not recognised")
	}
	var stdout, stderr bytes.Buffer
	if code := floorChild(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-kind a|b|b-jetstream") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout %q", stdout.String())
	}
}

func TestAddSwitches(t *testing.T) {
	var s procSched
	addSwitches(&s, "Name:\trelay\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
	addSwitches(&s, "voluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t1")
	if s.voluntary != 123 || s.involuntary != 8 {
		t.Fatalf("%+v", s)
	}
	got, err := readSched(os.Getpid())
	if err != nil || got.voluntary+got.involuntary <= 0 {
		t.Fatalf("this process: %+v, %v", got, err)
	}
}

// TestCPURunComplete: a run is complete only when nothing was lost and the
// pushers kept the rate.
func TestCPURunComplete(t *testing.T) {
	sec := int64(time.Second)
	a, z := procSched{cpu: 1, voluntary: 10}, procSched{cpu: 1.5, voluntary: 110, involuntary: 10}
	for _, tt := range []struct {
		pushed, got, nanos int64
		want               bool
	}{
		{10_000, 10_000, sec, true},
		{10_000, 9_999, sec, false},             // one lost
		{10_000, 10_000, 2 * sec, false},        // pushers at half the rate
		{10_000, 10_000, sec * 105 / 100, true}, // within 5 %
	} {
		r := newCPURun(1, 10_000, pushStats{pushed: tt.pushed, end: tt.nanos}, tt.got, a, z)
		if r.Complete != tt.want {
			t.Errorf("%+v: complete %v", tt, r.Complete)
		}
		if r.Voluntary != 100 || r.Involuntary != 10 || r.CPUSeconds != 0.5 {
			t.Errorf("%+v: %+v", tt, r)
		}
	}
	if r := newCPURun(1, 10_000, pushStats{pushed: 10_000, end: sec}, 10_000, a, z); r.CPUPerEvent != 50 || r.SwitchesPerEvent != 0.011 {
		t.Errorf("per event: %+v", r)
	}
}

// The sustained-rate search finds a limit far above its starting hint
// (a firehose that lost most of its events starts it low) and below a
// limit under the hint, within one bisection step's precision.
func TestSearchRate(t *testing.T) {
	for _, tc := range []struct{ hint, limit float64 }{
		{3014, 27803}, {3014, 150000}, {30000, 6000}, {500, 900}, {20000, 20000},
	} {
		probes := 0
		got := searchRate(tc.hint, func(rate float64) bool { probes++; return rate <= tc.limit })
		if got > tc.limit || got < 0.9*tc.limit {
			t.Errorf("hint %.0f, limit %.0f: found %.0f after %d probes", tc.hint, tc.limit, got, probes)
		}
		if probes > 20 {
			t.Errorf("hint %.0f, limit %.0f: %d probes", tc.hint, tc.limit, probes)
		}
	}
}
