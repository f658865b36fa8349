package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/natsserver"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// The fault tests break one dependency of a running relay at a time (NATS,
// the JetStream stream, Redis, Chatwoot, the data disk, the relay process)
// while agents reply, and check that the stream still ends up holding every
// reply exactly once. Outages are a few seconds: the relay takes the same
// path (buffer, shed, catch-up) as in a longer one. RELAY_TEST_OUTAGE (a
// duration) and RELAY_TEST_KILLS (a count) run the longer variants.

// outage is how long a dependency stays away: def unless RELAY_TEST_OUTAGE.
func outage(t *testing.T, def time.Duration) time.Duration {
	if v := os.Getenv("RELAY_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RELAY_TEST_OUTAGE: %v", err)
		}
		return d
	}
	return def
}

// waitFor polls cond until it holds, failing after bound; it returns how
// long that took.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// readyz reports whether the relay answers /readyz with 200.
func readyz(url string) bool {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// coreCounter counts, per Nats-Msg-Id, the message.created a plain core
// NATS subscriber receives: what a consumer without JetStream sees.
type coreCounter struct {
	mu  sync.Mutex
	ids map[string]int
	nc  *nats.Conn
}

func countCore(t *testing.T, url string) *coreCounter {
	t.Helper()
	c := &coreCounter{ids: map[string]int{}}
	var err error
	if c.nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	sub, err := c.nc.Subscribe("chatwoot.*.*.*.*.message.created", func(m *nats.Msg) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ids[m.Header.Get(fanout.HeaderMsgID)]++
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1) // never a slow consumer: a lost copy would hide a duplicate
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// counts returns the distinct ids and the extra copies received so far,
// after a round trip that lets everything sent before arrive.
func (c *coreCounter) counts(t *testing.T) (distinct, dups int) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.ids {
		dups += n - 1
	}
	return len(c.ids), dups
}

// dups is how many message ids the subscriber received more than once.
func (c *coreCounter) dups() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.ids {
		if k > 1 {
			n++
		}
	}
	return n
}

// createdAfter is the part of want with ids above floor.
func createdAfter(want map[int64]bool, floor int64) map[int64]bool {
	out := map[int64]bool{}
	for id := range want {
		if id > floor {
			out[id] = true
		}
	}
	return out
}

// compareFrom is compare for a stream that lost its older part to an
// operator: every id of want exactly once, older ids at most once.
func compareFrom(t *testing.T, want map[int64]bool, got map[int64]int) {
	t.Helper()
	older := map[int64]int{}
	for id, n := range got {
		if !want[id] {
			older[id] = n
			delete(got, id)
		}
	}
	compare(t, want, got)
	for id, n := range older {
		if n > 1 {
			t.Fatalf("message %d is %d times in the stream", id, n)
		}
	}
}

// jsOf connects to the relay's NATS as an operator would.
func jsOf(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestFaultStreamDeleted: an operator deletes the stream while agents
// reply. The relay says so in its log, creates the stream again, and every
// reply created after the deletion is in the new stream exactly once.
func TestFaultStreamDeleted(t *testing.T) {
	c := newChat(t)
	logs := &syncBuffer{}
	e := &e2e{t: t, fake: c.fake, noConsumer: true, logTo: logs,
		env: c.relayEnv(t, map[string]string{"RELAY_NATS_LISTEN": "127.0.0.1:-1"})}
	e.start()
	c.createContacts(e.app.httpURL(), 20)
	js := jsOf(t, e.app.natsURL)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	time.Sleep(time.Second)
	if err := js.DeleteStream(context.Background(), "CHATWOOT"); err != nil {
		t.Fatal(err)
	}
	floor := c.lastID()
	took := waitFor(t, 30*time.Second, "the stream created again", func() bool {
		_, err := js.Stream(context.Background(), "CHATWOOT")
		return err == nil
	})
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("stream back %s after its deletion; agent replies sent: %d", took, c.sent.Load())
	want := createdAfter(c.created(), floor)
	got := streamIDs(t, e.app.natsURL, want)
	reportRelay(t, e.app.httpURL())
	compareFrom(t, want, got)
	if l := logs.take(); !strings.Contains(l, "stream") || !strings.Contains(l, `"level":"ERROR"`) {
		t.Fatalf("no error logged about the stream:\n%s", l)
	}
}

// TestFaultStreamFull: an operator caps the stream (MaxBytes, DiscardNew)
// so that JetStream refuses every write. The relay logs an error, reports
// not ready, never counts a refused event as published, and once room is
// made the stream holds every reply exactly once.
func TestFaultStreamFull(t *testing.T) {
	c := newChat(t)
	logs := &syncBuffer{}
	// The default buffer (64 MiB) holds every refused event: the relay must
	// see the refusal itself, not a buffer overflow.
	e := &e2e{t: t, fake: c.fake, noConsumer: true, logTo: logs,
		env: c.relayEnv(t, map[string]string{"RELAY_NATS_LISTEN": "127.0.0.1:-1"})}
	e.start()
	url := e.app.httpURL()
	c.createContacts(url, 20)
	js := jsOf(t, e.app.natsURL)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	time.Sleep(time.Second)
	resize := func(maxBytes int64, discard jetstream.DiscardPolicy) {
		t.Helper()
		s, err := js.Stream(context.Background(), "CHATWOOT")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if maxBytes == 0 {
			maxBytes = int64(s.CachedInfo().State.Bytes) + 2048
		}
		cfg.MaxBytes, cfg.Discard = maxBytes, discard
		if _, err := js.UpdateStream(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	resize(0, jetstream.DiscardNew)
	waitFor(t, 20*time.Second, "/readyz false while the stream refuses writes", func() bool { return !readyz(url) })
	time.Sleep(outage(t, 3*time.Second))
	resize(1<<30, jetstream.DiscardOld)
	took := waitFor(t, 30*time.Second, "/readyz true once room is made", func() bool { return readyz(url) })
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("ready again %s after room was made; agent replies sent: %d", took, c.sent.Load())
	want := c.created()
	got := streamIDs(t, e.app.natsURL, want)
	reportRelay(t, url)
	compare(t, want, got)
	inStream := 0
	for _, n := range got {
		inStream += n
	}
	if published := relayMetric(t, url, "relay_fanout_events_published_total", `kind="message"`); int(published) != inStream {
		t.Fatalf("relay_fanout_events_published_total{kind=message} = %.0f, the stream holds %d", published, inStream)
	}
	if l := logs.take(); !strings.Contains(l, `"level":"ERROR"`) {
		t.Fatalf("no error logged while the stream refused writes:\n%s", l)
	}
}

// TestFaultRedisDown: the shared Redis goes away while agents reply. Events
// keep reaching NATS, registrations answer 503 with a clear error, and the
// catch-up cursors are written once Redis is back.
func TestFaultRedisDown(t *testing.T) {
	c := newChat(t)
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	redisURL := "redis://" + m.Addr() + "/0"
	e := &e2e{t: t, fake: c.fake, noConsumer: true, env: c.relayEnv(t, map[string]string{
		"RELAY_NATS_LISTEN": "127.0.0.1:-1",
		"RELAY_REDIS_URL":   redisURL,
	})}
	e.start()
	url := e.app.httpURL()
	c.createContacts(url, 20)
	core := countCore(t, e.app.natsURL)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	time.Sleep(time.Second)
	m.Close()
	down := c.lastID()
	time.Sleep(outage(t, 3*time.Second))
	resp, body := e.do("POST", "/v1/subscriptions", map[string]any{"pubsub_token": "tokenWhileRedisIsDown1"}, nil)
	t.Logf("registration while Redis is down: %d %s", resp.StatusCode, body)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "state store is unavailable") || strings.Contains(string(body), "tokenWhileRedisIsDown1") {
		t.Fatalf("registration while Redis is down: %d %s", resp.StatusCode, body)
	}
	upAt := c.lastID()
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	want := c.created()
	got := streamIDs(t, e.app.natsURL, want)
	during := 0
	for id := range want {
		if id > down && id <= upAt && got[id] > 0 {
			during++
		}
	}
	t.Logf("agent replies sent: %d, of which reached the stream while Redis was down: %d; duplicates for core subscribers: %d",
		c.sent.Load(), during, core.dups())
	compare(t, want, got)
	took := waitFor(t, 20*time.Second, "cursors written to Redis", func() bool { return cursorsCaughtUp(t, c, redisURL) })
	t.Logf("cursors in Redis caught up %s after the replies stopped", took)
}

// cursorsCaughtUp reports whether the cursors in Redis reach the newest
// message of every conversation.
func cursorsCaughtUp(t *testing.T, c *chat, redisURL string) bool {
	st, err := redisstore.Open(redisURL, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	subs, _, err := st.ListSubscriptions(ctx, "", 1000)
	if err != nil {
		return false
	}
	seen := map[string]int64{}
	for _, s := range subs {
		cs, err := st.ListCursors(ctx, s.ID)
		if err != nil {
			return false
		}
		for _, cur := range cs {
			seen[cur.ConversationID] = max(seen[cur.ConversationID], cur.LastMessageID)
		}
	}
	for _, conv := range c.convs {
		msgs, _ := c.fake.Messages(c.inbox.AccountID, conv)
		if len(msgs) > 0 && seen[strconv.FormatInt(conv, 10)] < msgs[len(msgs)-1].ID {
			return false
		}
	}
	return true
}

// TestFaultChatwootDown: Chatwoot refuses websockets and answers 503 to its
// API for a while. The relay retries with a bounded backoff, confirms every
// subscription again once Chatwoot is back, and the replies created during
// the outage reach the stream exactly once.
func TestFaultChatwootDown(t *testing.T) {
	c := newChat(t)
	e := &e2e{t: t, fake: c.fake, noConsumer: true, env: c.relayEnv(t, map[string]string{
		"RELAY_NATS_LISTEN":       "127.0.0.1:-1",
		"RELAY_CABLE_BACKOFF_MIN": "100ms",
		"RELAY_CABLE_BACKOFF_MAX": "2s",
	})}
	e.start()
	url := e.app.httpURL()
	c.createContacts(url, 20)
	core := countCore(t, e.app.natsURL)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 200) })
	time.Sleep(time.Second)
	c.fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Status: http.StatusServiceUnavailable})
	c.fake.DropAll(false)
	waitFor(t, 10*time.Second, "subscriptions seen lost", func() bool { return !allConfirmed(e) })
	time.Sleep(outage(t, 3*time.Second))
	c.fake.ClearFaults()
	took := waitFor(t, 30*time.Second, "every subscription confirmed again", func() bool { return allConfirmed(e) })
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	want := c.created()
	got := streamIDs(t, e.app.natsURL, want)
	t.Logf("every subscription confirmed %s after Chatwoot came back; agent replies sent: %d; duplicates for core subscribers: %d",
		took, c.sent.Load(), core.dups())
	reportRelay(t, url)
	compare(t, want, got)
}

// allConfirmed reports whether every subscription the relay lists is
// confirmed.
func allConfirmed(e *e2e) bool {
	_, body := e.do("GET", "/v1/subscriptions", nil, nil)
	var list struct {
		Subscriptions []struct {
			State string `json:"state"`
		} `json:"subscriptions"`
	}
	if json.Unmarshal(body, &list) != nil || len(list.Subscriptions) == 0 {
		return false
	}
	for _, s := range list.Subscriptions {
		if s.State != "confirmed" {
			return false
		}
	}
	return true
}

// TestFaultDataDiskFull: the disk under RELAY_DATA_DIR fills up. New
// registrations get a clear error, and the state file stays readable: a
// restarted relay has every subscription it acknowledged.
func TestFaultDataDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a 2 MiB tmpfs for the data dir (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	c := newChat(t)
	ns := startNATS(t, natsserver.RandomPort, t.TempDir()) // the stream lives elsewhere: only the state file is on the full disk
	e := &e2e{t: t, fake: c.fake, noConsumer: true, env: c.relayEnv(t, map[string]string{
		"RELAY_NATS_URL": ns.ClientURL(),
		"RELAY_DATA_DIR": dir,
	})}
	e.start()
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)

	var acked []string
	var refused []byte
	for i := 0; i < 5000 && refused == nil; i++ {
		token := fmt.Sprintf("diskFullToken%05d%s", i, strings.Repeat("x", 200))
		resp, body := e.do("POST", "/v1/subscriptions", map[string]any{"pubsub_token": token}, nil)
		switch resp.StatusCode {
		case 200, 201:
			var s struct {
				ID string `json:"id"`
			}
			json.Unmarshal(body, &s)
			acked = append(acked, s.ID)
		default:
			refused = body
			t.Logf("registration %d on a full disk: %d %s", i, resp.StatusCode, body)
			if resp.StatusCode != 503 || !strings.Contains(string(body), "disk") || strings.Contains(string(body), "diskFullToken") {
				t.Fatalf("registration on a full disk: %d %s", resp.StatusCode, body)
			}
		}
	}
	if refused == nil {
		t.Fatalf("%d registrations on a full disk all succeeded: the test proves nothing", len(acked))
	}
	os.Remove(filler)
	e.stop()
	e.start()
	_, body := e.do("GET", "/v1/subscriptions", nil, nil)
	for _, id := range acked {
		if !strings.Contains(string(body), id) {
			t.Fatalf("subscription %s acknowledged before the disk filled is gone after a restart", id)
		}
	}
	t.Logf("%d subscriptions acknowledged before the disk was full, all back after a restart", len(acked))
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestFaultRepeatedKills: the relay process is killed (SIGKILL) several
// times at random moments while agents reply (RELAY_TEST_KILLS, default 4;
// ten in the long variant). The stream ends complete and exactly once.
func TestFaultRepeatedKills(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about 20 s")
	}
	kills := 4
	if v := os.Getenv("RELAY_TEST_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	c := newChat(t)
	httpAddr, natsAddr := freePort(t), freePort(t)
	p := c.startRelayProcess(t, httpAddr, "RELAY_NATS_LISTEN="+natsAddr)
	c.createContacts(p.url, 50)
	core := countCore(t, "nats://"+natsAddr)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.agents(ctx, 300) })
	rng := rand.New(rand.NewPCG(3, 4))
	var restarts time.Duration
	for i := range kills {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		t.Logf("kill %d at message id %d", i+1, c.lastID())
		p.stop(syscall.SIGKILL)
		begin := time.Now()
		p.start()
		restarts += time.Since(begin)
	}
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	want := c.created()
	got := streamIDs(t, "nats://"+natsAddr, want)
	t.Logf("%d kills; mean kill→ready %s; agent replies sent: %d; duplicates for core subscribers: %d",
		kills, restarts/time.Duration(max(kills, 1)), c.sent.Load(), core.dups())
	reportRelay(t, p.url)
	compare(t, want, got)
	p.stop(syscall.SIGTERM)
}
