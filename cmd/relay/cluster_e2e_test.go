package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/redisserver"
)

// The scale-out proof: a real redis-server, a 3-node NATS cluster with
// JetStream (embedded servers with routes, an R3 stream), relay processes
// built from this package, and the fake Chatwoot with many contacts while
// agents reply. CI runs 300 contacts at 300 replies/s with a 3 s lease
// TTL; RELAY_TEST_CLUSTER_CONTACTS=3000 runs the full size.
//
// redis-server comes from PATH (CI installs it with .ci/redis.sh); without
// it the test is skipped and says so.

const (
	clusterTTL   = 3 * time.Second
	clusterRenew = time.Second
	clusterBurst = 5 // RELAY_CABLE_SUBSCRIBE_BURST's default
)

// startRedisProcess runs redis-server until the test ends.
func startRedisProcess(t *testing.T) string {
	s, err := redisserver.Start(t.Context())
	if errors.Is(err, redisserver.ErrNotFound) {
		t.Skipf("SKIP: %v: the scale-out proof needs a real Redis", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s.URL
}

// natsNode is one server of the embedded NATS cluster.
type natsNode struct {
	opts *natsd.Options
	srv  *natsd.Server
}

func (n *natsNode) start(t *testing.T) {
	t.Helper()
	srv, err := natsd.NewServer(n.opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS node not ready")
	}
	n.srv = srv
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// startNATSCluster starts size routed servers with JetStream and waits for
// the JetStream cluster to answer.
func startNATSCluster(t *testing.T, size int) []*natsNode {
	ports, routes := make([]int, size), make([]string, size)
	for i := range size {
		ports[i] = portOf(freePort(t))
		routes[i] = "nats://" + freePort(t)
	}
	nodes := make([]*natsNode, size)
	for i := range size {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		nodes[i] = &natsNode{opts: &natsd.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: ports[i], NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: natsd.ClusterOpts{Name: "relay-test", Host: "127.0.0.1", Port: portOf(strings.TrimPrefix(routes[i], "nats://"))},
			Routes:  natsd.RoutesFromStr(strings.Join(others, ",")),
		}}
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.start(t) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			n.srv.Shutdown()
		}
	})
	nc, err := nats.Connect(nodes[0].url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	waitFor(t, 30*time.Second, "a JetStream meta leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return nodes
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// clusterProof holds the topology under test.
type clusterProof struct {
	t      *testing.T
	c      *chat
	tokens *chatwoottest.TokenLog
	subs   *chatwoottest.SubscribeLog
	redis  string
	nats   []*natsNode
	relays map[string]*relayProcess
	rate   int // RELAY_CABLE_SUBSCRIBE_RATE
}

func (p *clusterProof) natsURLs() string {
	urls := make([]string, len(p.nats))
	for i, n := range p.nats {
		urls[i] = n.url()
	}
	return strings.Join(urls, ",")
}

// addRelay starts the relay process named member.
func (p *clusterProof) addRelay(member string) *relayProcess {
	addr := freePort(p.t)
	r := &relayProcess{t: p.t, url: "http://" + addr, env: []string{
		"RELAY_CHATWOOT_URL=" + p.c.url,
		"RELAY_HTTP_ADDR=" + addr,
		"RELAY_NATS_URL=" + p.natsURLs(),
		"RELAY_NATS_STREAM_REPLICAS=3",
		"RELAY_REDIS_URL=" + p.redis,
		"RELAY_CLUSTER_MEMBER=" + member,
		"RELAY_CLUSTER_LEASE_TTL=" + clusterTTL.String(),
		"RELAY_CLUSTER_RENEW_INTERVAL=" + clusterRenew.String(),
		"RELAY_DATA_DIR=" + p.t.TempDir(),
		"RELAY_LOG_LEVEL=warn",
		"RELAY_CABLE_BACKOFF_MIN=200ms",
		"RELAY_CABLE_SUBSCRIBE_RATE=" + strconv.Itoa(p.rate),
		"RELAY_CHATWOOT_RATE_PER_MINUTE=600000",
		"RELAY_CATCHUP_CONCURRENCY=8",
	}}
	r.start()
	p.relays[member] = r
	p.t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.stop(syscall.SIGKILL)
		}
	})
	return r
}

// newChatWith is newChat with options for the fake.
func newChatWith(t *testing.T, opts chatwoottest.Options) *chat {
	c := &chat{t: t, fake: chatwoottest.New(opts)}
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

func (p *clusterProof) any() *relayProcess {
	for _, r := range p.relays {
		if r.cmd.ProcessState == nil {
			return r
		}
	}
	p.t.Fatal("no relay running")
	return nil
}

// status reads GET /v1/cluster from a running relay.
func (p *clusterProof) status() (cluster.Status, bool) {
	var st cluster.Status
	resp, err := http.Get(p.any().url + "/v1/cluster")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&st) == nil
}

// balanced reports whether exactly members hold every bucket between them,
// each its share ±20 %.
func (p *clusterProof) balanced(members ...string) bool {
	st, ok := p.status()
	if !ok || st.Unheld != 0 {
		return false
	}
	held := map[string]int{}
	for _, m := range st.Members {
		held[m.Name] = m.BucketsHeld
	}
	share := float64(st.Buckets) / float64(len(members))
	total := 0
	for _, m := range members {
		n := float64(held[m])
		if n < share*0.8 || n > share*1.2 {
			return false
		}
		total += held[m]
	}
	return total == st.Buckets
}

// allSubscribedOnce reports whether n tokens are subscribed, each on one
// connection.
func (p *clusterProof) allSubscribedOnce(n int) bool {
	subs := p.tokens.Subscribed()
	for _, conns := range subs {
		if conns != 1 {
			return false
		}
	}
	return len(subs) == n
}

func (p *clusterProof) settle(what string, n int, members ...string) time.Duration {
	p.t.Helper()
	return waitFor(p.t, 60*time.Second, what, func() bool { return p.balanced(members...) && p.allSubscribedOnce(n) })
}

// overlaps logs and returns the longest span a token spent on two sockets
// since from.
func (p *clusterProof) overlaps(what string, from time.Time) time.Duration {
	var longest time.Duration
	ov := p.tokens.Overlaps(from, time.Now())
	for _, o := range ov {
		longest = max(longest, o.Duration)
	}
	p.t.Logf("%s: %d tokens on two sockets at once, longest %s", what, len(ov), longest)
	return longest
}

func TestClusterScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs about a minute")
	}
	contacts := 300
	if v := os.Getenv("RELAY_TEST_CLUSTER_CONTACTS"); v != "" {
		contacts, _ = strconv.Atoi(v)
	}
	// The fake runs in this process with three NATS servers and the
	// agents: under load the process stalls (365 ms seen) and the fake
	// stamps what arrived meanwhile at once. The rate is checked with those
	// stalls allowed for.
	stalls := chatwoottest.NewStallProbe(10 * time.Millisecond)
	defer stalls.Close()
	redisURL := startRedisProcess(t)
	p := &clusterProof{t: t, tokens: &chatwoottest.TokenLog{}, subs: &chatwoottest.SubscribeLog{},
		redis: redisURL, relays: map[string]*relayProcess{}, rate: 200}
	p.c = newChatWith(t, chatwoottest.Options{OnToken: p.tokens.Record, OnSubscribe: p.subs.Record})
	p.nats = startNATSCluster(t, 3)
	for _, m := range []string{"relay-0", "relay-1", "relay-2"} {
		p.addRelay(m)
	}
	took := waitFor(t, 30*time.Second, "three members sharing the buckets", func() bool { return p.balanced("relay-0", "relay-1", "relay-2") })
	st, _ := p.status()
	t.Logf("all up: buckets balanced %s after the last start: %+v", took, st.Members)
	p.c.createContacts(p.relays["relay-0"].url, contacts)
	t.Logf("every token subscribed once %s after the contacts were created", p.settle("contacts subscribed", contacts, "relay-0", "relay-1", "relay-2"))
	p.echoThroughAnotherReplica()
	contacts++

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.c.agents(ctx, 300) })
	defer cancel()

	// Rolling restart: SIGTERM one at a time. No token is ever on two
	// sockets: the old owner unsubscribes before it releases.
	for _, m := range []string{"relay-0", "relay-1", "relay-2"} {
		from := time.Now()
		p.relays[m].stop(syscall.SIGTERM)
		others := without([]string{"relay-0", "relay-1", "relay-2"}, m)
		t.Logf("SIGTERM %s: the others own everything after %s", m, p.settle("handover on leave", contacts, others...))
		p.relays[m].start()
		t.Logf("%s back: balanced after %s", m, p.settle("handover on join", contacts, "relay-0", "relay-1", "relay-2"))
		if d := p.overlaps("rolling restart of "+m, from); d > 0 {
			t.Errorf("a graceful handover left a token on two sockets for %s", d)
		}
	}

	// kill -9: the buckets are owned again within TTL + 5 s.
	from := time.Now()
	p.relays["relay-1"].stop(syscall.SIGKILL)
	took = p.settle("takeover after a crash", contacts, "relay-0", "relay-2")
	// Durations are reported, not asserted (wall clock): the bound is
	// asserted on the bubble's clock in package cluster.
	t.Logf("kill -9 relay-1: every bucket owned again and every token subscribed after %s (TTL %s)", took, clusterTTL)
	p.overlaps("crash", from)
	p.relays["relay-1"].start()
	p.settle("rejoin after the crash", contacts, "relay-0", "relay-1", "relay-2")

	// One NATS node goes away and comes back.
	p.nats[2].srv.Shutdown()
	time.Sleep(2 * time.Second)
	p.nats[2].start(t)
	t.Log("NATS node n2 stopped for 2 s and restarted")

	// Scale 3 → 5 → 2.
	from = time.Now()
	p.addRelay("relay-3")
	p.addRelay("relay-4")
	t.Logf("scaled to 5: balanced after %s", p.settle("scale to 5", contacts, "relay-0", "relay-1", "relay-2", "relay-3", "relay-4"))
	for _, m := range []string{"relay-2", "relay-3", "relay-4"} {
		p.relays[m].stop(syscall.SIGTERM)
	}
	t.Logf("scaled to 2: balanced after %s", p.settle("scale to 2", contacts, "relay-0", "relay-1"))
	if d := p.overlaps("scaling", from); d > 0 {
		t.Errorf("scaling left a token on two sockets for %s", d)
	}

	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	want := p.c.created()
	got := streamIDs(t, p.nats[0].url(), want)
	peak := p.subs.MaxInWindow(time.Second)
	t.Logf("agent replies sent: %d; subscribes seen by Chatwoot: %d, most in one second: %d (deployment rate %d/s, burst %d)",
		p.c.sent.Load(), p.subs.Len(), peak, p.rate, clusterBurst)
	w := p.subs.RateExcess(time.Second, float64(p.rate), clusterBurst, stalls.Stalls())
	t.Logf("worst second against the rate: %d subscribes, this process stalled %s in it (excess %.1f); per 20 ms: %v",
		w.Count, w.Stall, w.Excess, p.subs.Histogram(w.Start, 20*time.Millisecond, 50))
	if w.Excess > 0 {
		t.Errorf("Chatwoot saw %d subscribes in one second (this process stalled %s in it), over the deployment's %d/s + burst %d", w.Count, w.Stall, p.rate, clusterBurst)
	}
	compare(t, want, got)
	for _, r := range p.relays {
		if r.cmd.ProcessState == nil {
			r.stop(syscall.SIGTERM)
		}
	}
}

// echoThroughAnotherReplica registers a contact, reads its owner from
// GET /v1/subscriptions/{id} and sends a message with ?wait=echo through
// another replica: the echo reaches it through NATS.
func (p *clusterProof) echoThroughAnotherReplica() {
	t := p.t
	base := "/public/api/v1/inboxes/" + p.c.inbox.Identifier
	resp, err := http.Post(p.relays["relay-0"].url+base+"/contacts", "application/json", strings.NewReader(`{"name":"Echo"}`))
	if err != nil {
		t.Fatal(err)
	}
	var contact struct {
		SourceID string `json:"source_id"`
	}
	json.NewDecoder(resp.Body).Decode(&contact)
	resp.Body.Close()
	subID := resp.Header.Get("Relay-Subscription")
	var owner string
	waitFor(t, 10*time.Second, "the new contact's owner", func() bool {
		r, err := http.Get(p.relays["relay-0"].url + "/v1/subscriptions/" + subID)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var sub struct {
			Owner string `json:"owner"`
			State string `json:"state"`
		}
		json.NewDecoder(r.Body).Decode(&sub)
		owner = sub.Owner
		return owner != "" && p.relays[owner] != nil
	})
	other := "relay-0"
	if owner == other {
		other = "relay-1"
	}
	via := p.relays[other].url + base + "/contacts/" + contact.SourceID
	var conv struct {
		ID int64 `json:"id"`
	}
	p.c.post(via+"/conversations", `{}`, &conv)
	waitFor(t, 10*time.Second, "the contact subscribed by its owner", func() bool { return len(p.tokens.Subscribed()) > 0 && p.allSubscribedOnce(len(p.c.convs)+1) })
	resp, err = http.Post(fmt.Sprintf("%s/conversations/%d/messages?wait=echo", via, conv.ID), "application/json", strings.NewReader(`{"content":"echo me"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Relay-Echo"); resp.StatusCode != 200 || got != "received" {
		t.Fatalf("?wait=echo through %s for a contact %s owns: %d, Relay-Echo %q", other, owner, resp.StatusCode, got)
	}
	t.Logf("?wait=echo through %s for a contact owned by %s: received", other, owner)
}

func without(list []string, drop string) []string {
	var out []string
	for _, m := range list {
		if m != drop {
			out = append(out, m)
		}
	}
	return out
}
