// Command relay-bench measures the relay binary end to end against the
// fake Chatwoot and an in-process nats-server: throughput, latency, memory
// and sockets at scale, and a reconnect storm, each next to the physical
// limit of the same machine (simple pass-through clients run in the same
// process, interleaved with the relay's rounds).
//
//	go run ./cmd/relay-bench [-scenario all|throughput|latency|scale|storm|soak|cpu|cluster] [-quick] [-out DIR]
//
// The soak (-scenario soak, never part of all) runs the relay in JetStream
// mode for -duration under steady agent replies, drops every websocket and
// restarts NATS at fixed intervals, tracks the relay's RSS, goroutines and
// open files, and checks at the end that the stream holds every reply
// exactly once.
//
// The cpu scenario (-scenario cpu, never part of all) paces the same events
// at fixed rates (-cpu-rates) through the relay and through floors b and
// b-jetstream run as processes of their own, and compares the CPU time
// each process spends per delivered event; -relay-before adds a second
// relay binary to the same rounds.
//
// The cluster scenario (-scenario cluster, never part of all) runs
// -replicas relays on one redis-server (from PATH) holding -subscriptions
// between them (default 1,000,000 on 5), seeded straight into the store:
// the time to every subscription confirmed at the deployment-wide
// -cluster-rate, each replica's memory per subscription, and the
// rebalance when one replica leaves with SIGTERM.
//
// Every scenario prints a one-line summary and its JSON result; all
// results go to DIR/relay-bench-results.json and a plot to DIR/relay-bench.png.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if args, ok := childArgs(os.Args[1:]); ok {
		os.Exit(floorChild(ctx, args, os.Stdout, os.Stderr))
	}
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "relay-bench:", err)
			os.Exit(1)
		}
	}
}

// Scenario names.
const (
	scenarioAll        = "all"
	scenarioThroughput = "throughput"
	scenarioLatency    = "latency"
	scenarioScale      = "scale"
	scenarioStorm      = "storm"
	scenarioSoak       = "soak"
	scenarioCPU        = "cpu"
	scenarioCluster    = "cluster"
)

// scenarios run with -scenario all; the soak (half an hour by default)
// and the cluster (a redis-server and a million subscriptions by default)
// run only when named.
var scenarios = []string{scenarioThroughput, scenarioLatency, scenarioScale, scenarioStorm}

// options are the command-line flags.
type options struct {
	scenario string
	quick    bool
	out      string
	relayBin string
	rounds   int
	events   int
	subs     int
	verbose  bool
	relayLog bool
	replot   string
	relayEnv envList // extra KEY=VALUE for every relay, e.g. RELAY_PPROF_ADDR
	soak     soakFlags
	cpu      cpuFlags
	replicas int           // cluster: relay replicas
	rate     float64       // cluster: deployment-wide subscribe rate
	confirm  time.Duration // how long confirms may take (scale, storm, cluster)
}

// soakFlags are the soak's flags; zero keeps the default.
type soakFlags struct {
	duration, dropEvery, natsEvery, natsDown, sampleEvery, warmUp time.Duration
	contacts, rate                                                int
}

func (s *soakFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&s.duration, "duration", 0, "soak: how long agents reply (default 30m)")
	fs.IntVar(&s.contacts, "contacts", 0, "soak: contacts, each with one conversation (default 200)")
	fs.IntVar(&s.rate, "rate", 0, "soak: agent replies per second, all contacts together (default 2000)")
	fs.DurationVar(&s.dropEvery, "drop-every", 0, "soak: drop every websocket this often (default 1m)")
	fs.DurationVar(&s.natsEvery, "nats-every", 0, "soak: restart NATS this often (default 10m)")
	fs.DurationVar(&s.natsDown, "nats-down", 0, "soak: how long NATS stays down at each restart (default 5s)")
	fs.DurationVar(&s.sampleEvery, "sample-every", 0, "soak: read the relay's RSS, goroutines and fds this often (default 10s)")
	fs.DurationVar(&s.warmUp, "warm-up", 0, "soak: leave the samples of this first stretch out of the slopes (default 2m)")
}

func (s soakFlags) validate() error {
	for _, d := range []time.Duration{s.duration, s.dropEvery, s.natsEvery, s.natsDown, s.sampleEvery, s.warmUp} {
		if d < 0 {
			return errors.New("soak durations must not be negative")
		}
	}
	if s.contacts < 0 || s.rate < 0 {
		return errors.New("-contacts and -rate must not be negative")
	}
	return nil
}

// envList is a repeatable -relay-env flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("relay-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.scenario, "scenario", scenarioAll, "all (throughput, latency, scale, storm), one of them, soak, cpu or cluster")
	fs.BoolVar(&o.quick, "quick", false, "small sizes and short rounds (a smoke test, not a measurement)")
	fs.StringVar(&o.out, "out", "bench-results", "directory for the results file and the plot")
	fs.StringVar(&o.relayBin, "relay", "", "relay binary to run (default: go build ./cmd/relay)")
	fs.IntVar(&o.rounds, "rounds", 0, "interleaved rounds for throughput, latency and cpu (0 = default)")
	fs.IntVar(&o.events, "events", 0, "events per throughput run (0 = default)")
	fs.IntVar(&o.subs, "subscriptions", 0, "subscriptions held in the scale, storm and cluster scenarios (0 = default)")
	fs.IntVar(&o.replicas, "replicas", 0, "cluster: relay replicas sharing one Redis, at least 2 (0 = default 5)")
	fs.Float64Var(&o.rate, "cluster-rate", 0, "cluster: the deployment's RELAY_CABLE_SUBSCRIBE_RATE (0 = default 10000)")
	fs.DurationVar(&o.confirm, "confirm-timeout", 0, "how long confirming every subscription may take in scale, storm and cluster (0 = default 10m, 2m with -quick)")
	fs.BoolVar(&o.verbose, "v", false, "copy the relays' warnings and errors to stderr")
	fs.BoolVar(&o.relayLog, "relay-log", false, "copy the relays' whole stderr (log, GODEBUG output) to stderr")
	fs.Var(&o.relayEnv, "relay-env", "KEY=VALUE added to every relay's environment (repeatable), e.g. RELAY_PPROF_ADDR=127.0.0.1:6060 with -scenario scale")
	fs.StringVar(&o.replot, "replot", "", "draw the plot of an existing results file into -out and exit")
	o.soak.register(fs)
	o.cpu.register(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.scenario != scenarioAll && o.scenario != scenarioSoak && o.scenario != scenarioCPU && o.scenario != scenarioCluster && !slices.Contains(scenarios, o.scenario) {
		return o, fmt.Errorf("unknown scenario %q (want %s, %s, %s, %s or %s)", o.scenario, scenarioAll, strings.Join(scenarios, ", "), scenarioSoak, scenarioCPU, scenarioCluster)
	}
	if err := o.soak.validate(); err != nil {
		return o, err
	}
	if err := o.cpu.validate(); err != nil {
		return o, err
	}
	if o.rounds < 0 || o.events < 0 || o.subs < 0 {
		return o, errors.New("-rounds, -events and -subscriptions must not be negative")
	}
	if o.replicas < 0 || o.replicas == 1 || o.rate < 0 || o.confirm < 0 {
		return o, errors.New("-replicas must be at least 2 (a rebalance needs a replica to leave) and -cluster-rate and -confirm-timeout not negative")
	}
	return o, nil
}

// run is the whole command; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.replot != "" {
		return replot(o.replot, o.out, stdout)
	}
	p := defaultParams(o.quick)
	p.override(o.rounds, o.events, o.subs)
	p.overrideSoak(o.soak)
	p.overrideCPU(o.cpu)
	p.overrideCluster(o.replicas, o.rate)
	setDur(&p.ConfirmTimeout, o.confirm)
	b, err := newBench(ctx, p, o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	res := &Results{Machine: describeMachine(), Started: time.Now().UTC(), Quick: o.quick, Params: p}
	for _, name := range selected(o.scenario) {
		if err := b.runScenario(ctx, name, res, stdout); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	res.Machine.LoadAvgEnd = loadAvg()
	return writeOutputs(o.out, res, stdout)
}

func selected(s string) []string {
	if s == scenarioAll {
		return scenarios
	}
	return []string{s}
}

// runScenario runs one scenario, prints its summary line and JSON, and
// stores the result.
func (b *bench) runScenario(ctx context.Context, name string, res *Results, stdout io.Writer) error {
	b.progress("scenario %s", name)
	if name == scenarioScale || name == scenarioStorm || name == scenarioSoak || name == scenarioCPU || name == scenarioCluster {
		b.releaseModes() // measure on a quiet machine
	}
	var r summarizer
	var err error
	switch name {
	case scenarioThroughput:
		res.Throughput, err = b.throughput(ctx)
		r = res.Throughput
	case scenarioLatency:
		res.Latency, err = b.latency(ctx)
		r = res.Latency
	case scenarioScale:
		res.Scale, err = b.scale(ctx)
		r = res.Scale
	case scenarioStorm:
		res.Storm, err = b.storm(ctx)
		r = res.Storm
	case scenarioSoak:
		res.Soak, err = b.soak(ctx)
		r = res.Soak
	case scenarioCPU:
		res.CPU, err = b.cpu(ctx)
		r = res.CPU
	case scenarioCluster:
		res.Cluster, err = b.cluster(ctx)
		r = res.Cluster
	}
	if err != nil {
		return err
	}
	return printResult(stdout, name, r)
}

// replot draws the plot of a results file written earlier.
func replot(file, dir string, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	png := filepath.Join(dir, "relay-bench.png")
	if err := writePlot(png, &res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "plot: %s\n", png)
	return nil
}

// writeOutputs writes the results file and the plot.
func writeOutputs(dir string, res *Results, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, "relay-bench-results.json")
	if err := writeJSON(file, res); err != nil {
		return err
	}
	png := filepath.Join(dir, "relay-bench.png")
	if err := writePlot(png, res); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	fmt.Fprintf(stdout, "results: %s\nplot: %s\n", file, png)
	if res.Soak != nil {
		tsv := filepath.Join(dir, "relay-bench-soak.tsv")
		if err := writeSoakTable(tsv, res.Soak); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "soak samples: %s\n", tsv)
	}
	return nil
}
