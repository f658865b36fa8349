package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQuickThroughput runs the real command: it builds the relay, starts
// two relays and three floors against the fake and pushes a few thousand
// events through each.
func TestQuickThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-scenario", "throughput", "-quick", "-rounds", "1", "-events", "4000", "-out", out}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "throughput: relay-core ") {
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
	checkThroughput(t, res.Throughput)
	checkPNG(t, filepath.Join(out, "relay-bench.png"))

	again := t.TempDir()
	if err := run(ctx, []string{"-replot", filepath.Join(out, "relay-bench-results.json"), "-out", again}, &stdout, &stderr); err != nil {
		t.Fatalf("replot: %v", err)
	}
	checkPNG(t, filepath.Join(again, "relay-bench.png"))
}

func checkThroughput(t *testing.T, r *ThroughputResult) {
	t.Helper()
	if r == nil || len(r.Modes) != 5 || len(r.Ratios) != 3 || len(r.Targets) != 4 {
		t.Fatalf("incomplete result: %+v", r)
	}
	for _, m := range r.Modes {
		if len(m.Runs) != 1 {
			t.Fatalf("%s: %d runs, want 1", m.Mode, len(m.Runs))
		}
		run := m.Runs[0]
		// A few thousand events fit every buffer: nothing may be lost.
		if run.Sent != 4000 || run.Received != run.Sent || run.EventsPerSec <= 0 || m.EventsPerSec <= 0 {
			t.Errorf("%s: %+v", m.Mode, run)
		}
		if strings.HasPrefix(m.Mode, "relay") != (run.RelayCPU > 0) {
			t.Errorf("%s: relay CPU %v", m.Mode, run.RelayCPU)
		}
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Fatalf("plot is %v", b)
	}
}

func TestTemplateStampsAndIDs(t *testing.T) {
	set, err := newTokenSet("test", 3, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.tokens[2]) != 24 || set.tokens[0] == set.tokens[1] {
		t.Fatalf("tokens %q", set.tokens)
	}
	buf := set.tmpl[2].fill(nil, idBase+42, 123456789)
	if len(buf) != 1024 {
		t.Fatalf("message is %d bytes, want 1024", len(buf))
	}
	var m struct {
		Event string `json:"event"`
		Data  struct {
			ID             int64  `json:"id"`
			ConversationID int64  `json:"conversation_id"`
			Content        string `json:"content"`
		} `json:"data"`
	}
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	if m.Event != "message.created" || m.Data.ID != idBase+42 || m.Data.ConversationID != convBase+2 ||
		!strings.HasPrefix(m.Data.Content, "T0000000000123456789x") {
		t.Fatalf("patched message: %+v", m)
	}
	if ts, ok := sentAt(buf); !ok || ts != 123456789 {
		t.Fatalf("sentAt = %d, %v", ts, ok)
	}
	frame := append(append([]byte(`{"identifier":"x","message":`), buf...), '}')
	if ts, ok := sentAt(frame); !ok || ts != 123456789 {
		t.Fatalf("sentAt(frame) = %d, %v", ts, ok)
	}
	if _, ok := sentAt(set.tmpl[0].msg); ok {
		t.Fatal("unstamped template has a send time")
	}
}

func TestStatistics(t *testing.T) {
	if got := median([]float64{5, 1, 3}); got != 3 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	sorted := make([]int64, 1000)
	for i := range sorted {
		sorted[i] = int64(i+1) * 1000 // 1..1000 µs
	}
	for _, tt := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}} {
		if got := quantile(sorted, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want float64 }{{0.9, 1}, {1.2, 1.5}, {2100, 3000}, {87_000, 100_000}, {9.9, 10}} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP relay_cable_subscriptions Subscriptions by state.
# TYPE relay_cable_subscriptions gauge
relay_cable_subscriptions{state="confirmed"} 99999
relay_cable_subscriptions{state="pending"} 1
go_memstats_heap_inuse_bytes 1.2345e+07
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if m[confirmedSeries] != 99999 || m["go_memstats_heap_inuse_bytes"] != 12345000 || len(m) != 3 {
		t.Fatalf("parsed %v", m)
	}
	drops := dropsBetween(metricSet{`relay_cable_dropped_total{reason="queue_full"}`: 5},
		metricSet{`relay_cable_dropped_total{reason="queue_full"}`: 12, `relay_fanout_events_dropped_total{reason="duplicate"}`: 0})
	if len(drops) != 1 || drops[`cable_dropped_total{reason="queue_full"}`] != 7 {
		t.Fatalf("drops %v", drops)
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseFlags([]string{"-scenario", "nope"}, &stderr); err == nil {
		t.Fatal("unknown scenario accepted")
	}
	o, err := parseFlags([]string{"-scenario", "storm", "-quick"}, &stderr)
	if err != nil || o.scenario != scenarioStorm || !o.quick {
		t.Fatalf("parsed %+v, %v", o, err)
	}
	p := defaultParams(true)
	p.override(3, 777, 0)
	if p.Rounds != 3 || p.Events != 777 || p.ScaleSubscriptions != 10_000 {
		t.Fatalf("quick params %+v", p)
	}
	if full := defaultParams(false); full.ScaleSubscriptions != 100_000 || full.Subscriptions != 1000 || full.LatencyRate != 10_000 {
		t.Fatalf("full params %+v", full)
	}
}

// TestQuickCluster runs the cluster scenario at a small size: 20,000
// subscriptions seeded into a real redis-server, three relay replicas
// confirming them at a shared rate, then one leaving with SIGTERM.
func TestQuickCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("SKIP: redis-server not on PATH (run .ci/redis.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-scenario", "cluster", "-quick", "-subscriptions", "20000", "-replicas", "3", "-cluster-rate", "10000", "-out", out}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var res Results
	b, err := os.ReadFile(filepath.Join(out, "relay-bench-results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	checkCluster(t, res.Cluster)
}

func checkCluster(t *testing.T, r *ClusterResult) {
	t.Helper()
	if r == nil {
		t.Fatal("no cluster result")
	}
	t.Log(r.summary())
	if r.Subscriptions != 20000 || r.Replicas != 3 || len(r.Members) != 3 || r.ConfirmSeconds <= 0 {
		t.Fatalf("result %+v", r)
	}
	confirmed, buckets := 0, 0
	for _, m := range r.Members {
		confirmed += m.Confirmed
		buckets += m.Buckets
		if m.Confirmed == 0 || m.Loaded.RSS <= r.Baseline.RSS {
			t.Errorf("replica %+v", m)
		}
	}
	if confirmed != 20000 || buckets != 1024 || r.RedisRSS <= 0 {
		t.Errorf("%d confirmed, %d buckets held, Redis RSS %d", confirmed, buckets, r.RedisRSS)
	}
	rb := r.Rebalance
	if rb.Left != "clus2" || rb.Moved <= 0 || rb.BucketsSeconds <= 0 || rb.ConfirmSeconds < rb.BucketsSeconds || rb.StopSeconds <= 0 {
		t.Errorf("rebalance %+v", rb)
	}
	if len(r.Targets) != 3 {
		t.Errorf("targets %+v", r.Targets)
	}
}

func TestClusterFlags(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseFlags([]string{"-scenario", "cluster", "-replicas", "4", "-cluster-rate", "500", "-subscriptions", "30000", "-confirm-timeout", "40m"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	p := defaultParams(false)
	p.override(o.rounds, o.events, o.subs)
	p.overrideCluster(o.replicas, o.rate)
	setDur(&p.ConfirmTimeout, o.confirm)
	if p.ClusterReplicas != 4 || p.ClusterRate != 500 || p.ClusterSubscriptions != 30000 || p.ConfirmTimeout.D() != 40*time.Minute {
		t.Fatalf("cluster params %+v", p)
	}
	if q := defaultParams(true); q.ClusterSubscriptions != 20_000 || q.ClusterReplicas != 3 {
		t.Fatalf("quick cluster params %+v", q)
	}
	if full := defaultParams(false); full.ClusterSubscriptions != 1_000_000 || full.ClusterReplicas != 5 {
		t.Fatalf("full cluster params %+v", full)
	}
	for _, bad := range [][]string{{"-replicas", "1"}, {"-replicas", "-2"}, {"-cluster-rate", "-1"}, {"-confirm-timeout", "-1s"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if slices.Contains(selected(scenarioAll), scenarioCluster) {
		t.Error("the cluster scenario runs with -scenario all")
	}
}

// TestQuickSoak runs the soak end to end in a few seconds: the relay in
// JetStream mode, agents replying, every websocket dropped and NATS
// restarted during the run, and the stream checked against the fake.
func TestQuickSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-scenario", "soak", "-duration", "6s", "-contacts", "20", "-rate", "200",
		"-drop-every", "2s", "-nats-every", "4s", "-nats-down", "500ms", "-sample-every", "500ms", "-warm-up", "1s", "-out", out}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "soak: ") {
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
	checkSoak(t, res.Soak)
	checkPNG(t, filepath.Join(out, "relay-bench.png"))
	if tsv, err := os.ReadFile(filepath.Join(out, "relay-bench-soak.tsv")); err != nil || bytes.Count(tsv, []byte("\n")) != len(res.Soak.Samples)+1 {
		t.Fatalf("sample table: %v\n%s", err, tsv)
	}
}

func checkSoak(t *testing.T, r *SoakResult) {
	t.Helper()
	if r == nil {
		t.Fatal("no soak result")
	}
	t.Log(r.summary())
	if r.Replies < 600 || r.Expected != int(r.Replies)+20 || r.InStream != r.Expected {
		t.Errorf("replies %d, expected %d, in the stream %d", r.Replies, r.Expected, r.InStream)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.Unknown != 0 {
		t.Errorf("lost %d, duplicated %d, unknown %d", r.Lost, r.Duplicated, r.Unknown)
	}
	if r.Drops < 2 || len(r.Restarts) < 1 {
		t.Errorf("%d drops, %d NATS restarts", r.Drops, len(r.Restarts))
	}
	for _, x := range r.Restarts {
		if x.Down < 0.5 || x.Ready <= 0 || x.CaughtUp <= 0 {
			t.Errorf("NATS restart %+v", x)
		}
	}
	if len(r.Samples) < 8 || r.SlopeSamples < 6 || r.SlopeSamples >= len(r.Samples) {
		t.Errorf("%d samples, %d in the slopes", len(r.Samples), r.SlopeSamples)
	}
	for _, x := range r.Samples {
		if x.RSSKiB <= 0 || x.Goroutines <= 0 || x.FDs <= 0 {
			t.Errorf("sample %+v", x)
		}
	}
	// The last target, the agents' rate, depends on the machine's load.
	for _, tg := range r.Targets[:len(r.Targets)-1] {
		if !tg.Pass {
			t.Errorf("target %+v", tg)
		}
	}
}

func TestSoakSlopesAndFlags(t *testing.T) {
	x := []float64{0, 1, 2, 3}
	if got := slope(x, []float64{10, 12, 14, 16}); got != 2 {
		t.Errorf("slope of a line = %v, want 2", got)
	}
	if got := slope(x, []float64{5, 7, 5, 7}); got != 0.4 {
		t.Errorf("least-squares slope = %v, want 0.4", got)
	}
	if got := slope([]float64{1}, []float64{9}); got != 0 {
		t.Errorf("slope of one sample = %v, want 0", got)
	}
	// Samples before the warm-up are left out; per minute, RSS in KiB.
	r := &SoakResult{WarmUpSeconds: 60, Samples: []SoakSample{
		{Seconds: 0, RSSKiB: 1, Goroutines: 900, FDs: 900},
		{Seconds: 60, RSSKiB: 1000, Goroutines: 30, FDs: 20},
		{Seconds: 120, RSSKiB: 1100, Goroutines: 30, FDs: 21},
		{Seconds: 180, RSSKiB: 1200, Goroutines: 30, FDs: 22},
	}, Lost: 1}
	r.finish()
	if r.SlopeSamples != 3 || r.RSSSlope != 100 || r.GoroutineSlope != 0 || r.FDSlope != 1 {
		t.Errorf("slopes %+v", r)
	}
	if r.Targets[0].Pass || !r.Targets[1].Pass {
		t.Errorf("targets %+v", r.Targets)
	}

	var stderr bytes.Buffer
	o, err := parseFlags([]string{"-scenario", "soak", "-duration", "5s", "-rate", "100", "-nats-down", "1s"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	p := defaultParams(false)
	p.overrideSoak(o.soak)
	if p.Soak.Duration.D() != 5*time.Second || p.Soak.Rate != 100 || p.Soak.NATSDown.D() != time.Second ||
		p.Soak.Contacts != 200 || p.Soak.NATSEvery.D() != 10*time.Minute || p.Soak.WarmUp.D() != 2*time.Minute {
		t.Fatalf("soak params %+v", p.Soak)
	}
	for _, bad := range [][]string{{"-duration", "-1s"}, {"-rate", "-5"}, {"-contacts", "-1"}} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if slices.Contains(selected(scenarioAll), scenarioSoak) {
		t.Error("the soak runs with -scenario all")
	}
}
