package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/natsserver"
)

// The gap-free tests prove the relay's main promise: every message Chatwoot
// created reaches the JetStream stream exactly once, whatever happens to the
// websockets or to the relay itself.

const mainChildEnv = "RELAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainChildEnv) == "1" {
		// The test binary doubles as the relay binary for the restart and
		// image tests; the relay's own arguments follow "--".
		args := os.Args[:1]
		if i := slices.Index(os.Args, "--"); i > 0 {
			args = append(args, os.Args[i+1:]...)
		}
		os.Args = args
		main()
		return
	}
	os.Exit(m.Run())
}

// chat is the fake Chatwoot with contacts created through the relay, and
// agents replying at a fixed rate.
type chat struct {
	t     *testing.T
	fake  *chatwoottest.Server
	url   string
	inbox chatwoottest.Inbox
	convs []int64 // display ids, one per contact
	sent  atomic.Int64
}

func newChat(t *testing.T) *chat {
	c := &chat{t: t, fake: chatwoottest.New(chatwoottest.Options{})}
	t.Cleanup(func() { c.fake.Close() })
	addr, err := c.fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.url = "http://" + addr.String()
	if c.inbox, err = c.fake.AddInbox(chatwoottest.InboxConfig{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// relayEnv is the in-process relay's environment for the gap-free tests,
// with extra added: fast subscribes and catch-ups, a fresh data dir.
func (c *chat) relayEnv(t *testing.T, extra map[string]string) map[string]string {
	env := map[string]string{
		"RELAY_CHATWOOT_URL":             c.url,
		"RELAY_HTTP_ADDR":                "127.0.0.1:0",
		"RELAY_DATA_DIR":                 t.TempDir(),
		"RELAY_CABLE_SUBSCRIBE_RATE":     "1000",
		"RELAY_CHATWOOT_RATE_PER_MINUTE": "600000",
		"RELAY_CATCHUP_CONCURRENCY":      "8",
	}
	maps.Copy(env, extra)
	return env
}

// createContacts creates n contacts, each with a conversation and a first
// message, through the relay's proxy (which subscribes them).
func (c *chat) createContacts(relayURL string, n int) {
	c.t.Helper()
	base := relayURL + "/public/api/v1/inboxes/" + c.inbox.Identifier
	for i := range n {
		var contact struct {
			SourceID string `json:"source_id"`
		}
		c.post(base+"/contacts", fmt.Sprintf(`{"name":"Customer %d"}`, i), &contact)
		var conv struct {
			ID int64 `json:"id"`
		}
		c.post(base+"/contacts/"+contact.SourceID+"/conversations", `{}`, &conv)
		c.post(fmt.Sprintf("%s/contacts/%s/conversations/%d/messages", base, contact.SourceID, conv.ID), `{"content":"hello"}`, nil)
		c.convs = append(c.convs, conv.ID)
	}
}

func (c *chat) post(url, body string, out any) {
	c.t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("POST: %d %s", resp.StatusCode, data)
	}
	if out != nil {
		json.Unmarshal(data, out)
	}
}

// agents replies at rate per second, spread over all conversations, until
// ctx ends.
func (c *chat) agents(ctx context.Context, rate int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for range rate / 100 {
			conv := c.convs[n%len(c.convs)]
			if _, err := c.fake.AgentReply(c.inbox.AccountID, conv, fmt.Sprintf("reply %d", n)); err != nil {
				c.t.Errorf("agent reply: %v", err)
				return
			}
			c.sent.Add(1)
			n++
		}
	}
}

// lastID is the newest message id.
func (c *chat) lastID() int64 {
	all := c.fake.AllMessages()
	if len(all) == 0 {
		return 0
	}
	return all[len(all)-1].ID
}

// created returns the ids of every message a contact's feed should carry:
// all but private notes and activity messages.
func (c *chat) created() map[int64]bool {
	ids := map[int64]bool{}
	for _, m := range c.fake.AllMessages() {
		if !m.Private && m.MessageType != chatwoottest.MessageActivity {
			ids[m.ID] = true
		}
	}
	return ids
}

// streamIDs reads every message.created in the stream and counts each
// message id; it waits until the stream holds at least want events and the
// relay has gone quiet, bounded by a deadline.
func streamIDs(t *testing.T, natsURL string, want map[int64]bool) map[int64]int {
	t.Helper()
	got, _ := streamIDsAt(t, natsURL, want)
	return got
}

// streamIDsAt is streamIDs that also tells when the last expected message
// was read.
func streamIDsAt(t *testing.T, natsURL string, want map[int64]bool) (map[int64]int, time.Time) {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a long outage takes long to catch up
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "CHATWOOT", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"chatwoot.*.*.*.*.message.created"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	// fetch reads one batch into got and reports how many it read.
	fetch := func(wait time.Duration) int {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(wait))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var ev struct {
				Data struct {
					ID int64 `json:"id"`
				} `json:"data"`
			}
			json.Unmarshal(m.Data(), &ev)
			got[ev.Data.ID]++
		}
		return n
	}
	missing := func() int {
		n := 0
		for id := range want {
			if got[id] == 0 {
				n++
			}
		}
		return n
	}
	for missing() > 0 && ctx.Err() == nil {
		fetch(2 * time.Second)
	}
	complete := time.Now()
	// Everything expected arrived; read what else the stream holds.
	for fetch(time.Second) > 0 {
	}
	return got, complete
}

// compare reports the figures and fails on a missing or duplicated message.
func compare(t *testing.T, want map[int64]bool, got map[int64]int) {
	t.Helper()
	var missing, dups, extra int
	for id := range want {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	for id := range got {
		if !want[id] {
			extra++
		}
	}
	t.Logf("messages created %d, in the stream %d, missing %d, duplicated %d, unknown %d", len(want), len(got), missing, dups, extra)
	if missing > 0 {
		var ids []int64
		for id := range want {
			if got[id] == 0 && len(ids) < 20 {
				ids = append(ids, id)
			}
		}
		t.Logf("missing e.g. %v", ids)
	}
	if missing != 0 || dups != 0 || extra != 0 {
		t.Fatalf("the stream is not the set of created messages")
	}
}

// relayMetric reads one sample (summing label sets matching the filter)
// from the relay's /metrics.
func relayMetric(t *testing.T, relayURL, name, filter string) float64 {
	resp, err := http.Get(relayURL + "/metrics")
	if err != nil {
		t.Logf("metrics: %v", err)
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name) && strings.Contains(line, filter) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func reportRelay(t *testing.T, relayURL string) {
	replayed := relayMetric(t, relayURL, "relay_catchup_replayed_total", `event="message.created"`)
	dups := relayMetric(t, relayURL, "relay_fanout_events_dropped_total", `reason="duplicate"`)
	lat := relayMetric(t, relayURL, "relay_catchup_latency_seconds_sum", "")
	n := relayMetric(t, relayURL, "relay_catchup_latency_seconds_count", "")
	mean := 0.0
	if n > 0 {
		mean = lat / n
	}
	t.Logf("since the last start: replayed %.0f message.created, duplicates suppressed in-process %.0f, catch-ups %.0f, mean reconnect→caught-up %.3fs",
		replayed, dups, n, mean)
	t.Logf("since the last start: catch-ups failed %.0f, events dropped (not duplicates) %.0f, cable drops %.0f",
		relayMetric(t, relayURL, "relay_catchup_runs_total", `result="error"`),
		relayMetric(t, relayURL, "relay_fanout_events_dropped_total", "")-dups-relayMetric(t, relayURL, "relay_fanout_events_dropped_total", `reason="filtered"`),
		relayMetric(t, relayURL, "relay_cable_dropped_total", ""))
}

// TestGapFreeAcrossDropsAndStall: 200 contacts, agents at 500 messages/s,
// every websocket dropped 10 times at random moments (with and without a
// disconnect frame) and one stall past the stale threshold.
func TestGapFreeAcrossDropsAndStall(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 30 s")
	}
	c := newChat(t)
	e := &e2e{t: t, fake: c.fake, noConsumer: true, env: c.relayEnv(t, map[string]string{
		"RELAY_NATS_LISTEN":       "127.0.0.1:-1",
		"RELAY_CABLE_BACKOFF_MIN": "200ms",
		"RELAY_CABLE_BACKOFF_MAX": "2s",
	})}
	e.start()
	c.createContacts(e.app.httpURL(), 200)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 500) })
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 10 {
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		c.fake.DropAll(i%2 == 0)
		if i == 5 {
			c.fake.Stall(true) // a hung Chatwoot: no pings; broadcasts lost
			time.Sleep(8 * time.Second)
			c.fake.Stall(false)
		}
	}
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	t.Logf("agent replies sent: %d", c.sent.Load())
	want := c.created()
	got := streamIDs(t, e.app.natsURL, want)
	reportRelay(t, e.app.httpURL())
	compare(t, want, got)
}

// freePort returns a loopback port free right now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// relayProcess runs the relay as a child process (this test binary).
type relayProcess struct {
	t   *testing.T
	env []string
	cmd *exec.Cmd
	url string
}

func (p *relayProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Env = append(p.cmd.Env, mainChildEnv+"=1")
	logs := &tailBuffer{max: 8 << 10}
	p.cmd.Stderr = logs
	if testing.Verbose() {
		p.cmd.Stderr = io.MultiWriter(os.Stderr, logs)
	}
	if path := os.Getenv("RELAY_TEST_CHILD_LOG"); path != "" { // debugging aid: keep the relay's logs
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			p.t.Fatal(err)
		}
		defer f.Close()
		p.cmd.Stderr = f
		p.cmd.Env = append(p.cmd.Env, "RELAY_LOG_LEVEL=debug")
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	// A loaded machine (CI shares two cores with the rest of the suite)
	// can take long to start a process; one that exited says why.
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if exited(p.cmd.Process.Pid) {
			p.t.Fatalf("relay process exited before it was ready; its last output:\n%s", logs.String())
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("relay process not ready after 90 s; its last output:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited reports whether the child pid has exited (a zombie awaiting Wait).
func exited(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false // not Linux, or gone: the deadline decides
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (p *relayProcess) stop(sig syscall.Signal) {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	err := p.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		p.t.Fatalf("relay did not stop cleanly on SIGTERM: %v", err)
	}
}

// startRelayProcess runs the relay as a child process against c, with
// natsEnv choosing its NATS (RELAY_NATS_LISTEN=… for the embedded server,
// RELAY_NATS_URL=… for an external one); it is killed at the end of the test.
func (c *chat) startRelayProcess(t *testing.T, httpAddr, natsEnv string) *relayProcess {
	p := &relayProcess{t: t, url: "http://" + httpAddr, env: []string{
		"RELAY_CHATWOOT_URL=" + c.url,
		"RELAY_HTTP_ADDR=" + httpAddr,
		natsEnv,
		"RELAY_DATA_DIR=" + t.TempDir(),
		"RELAY_LOG_LEVEL=warn",
		"RELAY_CABLE_BACKOFF_MIN=200ms",
		"RELAY_CABLE_SUBSCRIBE_RATE=1000",
		"RELAY_CHATWOOT_RATE_PER_MINUTE=600000",
		"RELAY_CATCHUP_CONCURRENCY=8",
	}}
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.stop(syscall.SIGKILL)
		}
	})
	return p
}

// TestGapFreeAcrossRelayRestarts: the same promise when the relay process
// itself is stopped (SIGTERM) and killed (SIGKILL) mid-run; its state lives
// in the bbolt file and the embedded JetStream under the same data dir.
func TestGapFreeAcrossRelayRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 30 s")
	}
	c := newChat(t)
	httpAddr, natsAddr := freePort(t), freePort(t)
	p := c.startRelayProcess(t, httpAddr, "RELAY_NATS_LISTEN="+natsAddr)
	c.createContacts(p.url, 200)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 500) })
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		time.Sleep(3 * time.Second)
		t.Logf("%s at message id %d", sig, c.lastID())
		p.stop(sig)
		time.Sleep(2 * time.Second) // agents keep replying while the relay is down
		p.start()
	}
	time.Sleep(3 * time.Second)
	cancel()
	wg.Wait()
	t.Logf("agent replies sent: %d", c.sent.Load())
	want := c.created()
	got := streamIDs(t, "nats://"+natsAddr, want)
	reportRelay(t, p.url)
	compare(t, want, got)
	p.stop(syscall.SIGTERM)
}

// TestGapFreeAcrossNATSOutage: an external NATS server is restarted and
// stays away for longer than the relay's buffer lasts, while agents keep
// replying; the relay reports not ready, sheds what it cannot hold and
// catches those subscriptions up once NATS is back. The outage is 5 s
// (about 25 times what the buffer holds: the shed path is the same as in a
// minute); RELAY_TEST_OUTAGE=60s runs the long one.
func TestGapFreeAcrossNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 20 s")
	}
	c := newChat(t)
	dir := t.TempDir()
	ns := startNATS(t, natsserver.RandomPort, dir)
	port := ns.Port()
	e := &e2e{t: t, fake: c.fake, noConsumer: true, env: c.relayEnv(t, map[string]string{
		"RELAY_NATS_URL":          ns.ClientURL(),
		"RELAY_NATS_BUFFER_BYTES": "65536", // about 40 events
	})}
	e.start()
	url := e.app.httpURL()
	c.createContacts(url, 50)
	core := countCore(t, ns.ClientURL())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	time.Sleep(2 * time.Second)
	ns.Shutdown()
	waitFor(t, 10*time.Second, "/readyz false while NATS is away", func() bool { return !readyz(url) })
	time.Sleep(outage(t, 5*time.Second))
	shed := relayMetric(t, url, "relay_fanout_events_dropped_total", `reason="buffer_full"`)
	ns = startNATS(t, port, dir)
	back := time.Now()
	ready := waitFor(t, 30*time.Second, "/readyz true once NATS is back", func() bool { return readyz(url) })
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	t.Logf("agent replies sent: %d; events shed while NATS was away: %.0f; ready %s after NATS came back", c.sent.Load(), shed, ready)
	if shed == 0 {
		t.Fatal("the outage never filled the buffer: the test proves nothing")
	}
	want := c.created()
	got, complete := streamIDsAt(t, ns.ClientURL(), want)
	t.Logf("stream complete %s after NATS came back; duplicates for core subscribers: %d", complete.Sub(back), core.dups())
	reportRelay(t, url)
	e.stop() // while NATS is still up
	compare(t, want, got)
}

// startNATS runs a JetStream server storing in dir.
func startNATS(t *testing.T, port int, dir string) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{Port: port, JetStream: true, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}
