package cable

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// The scale benchmark runs the fake Chatwoot in a child process (this test
// binary, re-executed) so that only the pool's memory is measured here.
const fakeChildEnv = "RELAY_CABLE_FAKE_CHILD_TOKENS"

func TestMain(m *testing.M) {
	if n := os.Getenv(fakeChildEnv); n != "" {
		runFakeChild(n)
		return
	}
	os.Exit(m.Run())
}

// runFakeChild serves a fake Chatwoot knowing n tokens on loopback, prints
// its address and exits when stdin closes.
func runFakeChild(n string) {
	count, err := strconv.Atoi(n)
	if err != nil {
		os.Exit(2)
	}
	srv := chatwoottest.New(chatwoottest.Options{})
	for i := range count {
		srv.AddToken(token(i), 1)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		os.Exit(2)
	}
	fmt.Println(addr)
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

func startFakeChild(tb testing.TB, tokens int) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fakeChildEnv+"="+strconv.Itoa(tokens))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("fake child: %v", err)
	}
	return strings.TrimSpace(line)
}

// rss returns this process's resident set size in bytes.
func rss(tb testing.TB) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	tb.Skip("no VmRSS")
	return 0
}

// heapInUse collects garbage, returns freed memory to the OS (so RSS shows
// the steady state rather than garbage awaiting the scavenger) and reports
// the heap in use.
func heapInUse() float64 {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}

// BenchmarkPoolScale holds 100,000 confirmed subscriptions and reports the
// resident memory and Go heap each one costs above the baseline, and the
// number of sockets. Run with -benchtime=1x.
func BenchmarkPoolScale(b *testing.B) {
	const n = 100_000
	addr := startFakeChild(b, n)
	for b.Loop() {
		baseRSS, baseHeap := rss(b), heapInUse()
		var confirms atomic.Int64
		done := make(chan struct{})
		p, err := New[any](Config[any]{
			URL:           "ws://" + addr + "/cable",
			SubscribeRate: 50_000, SubscribeBurst: 1000,
			OnState: func(c StateChange[any]) {
				if c.Change == ChangeConfirmed && confirms.Add(1) == n {
					close(done)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := range n {
			p.Add(token(i), nil)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("confirmed %d of %d", confirms.Load(), n)
		}
		elapsed := time.Since(start)
		// Steady state: one ping interval later every connection has
		// trimmed the delivery arrays the subscribe burst grew (Chatwoot
		// answers each subscribe with a presence.update).
		time.Sleep(chatwoottest.DefaultPingInterval + 500*time.Millisecond)
		heap := heapInUse() - baseHeap
		res := rss(b) - baseRSS
		st := p.Stats()
		b.ReportMetric(res/n, "rss-B/sub")
		b.ReportMetric(heap/n, "heap-B/sub")
		b.ReportMetric(float64(st.Connections), "sockets")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "confirms/s")
		p.Close()
	}
}
