package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/redisserver"
)

// The cluster scenario: several relay replicas on one redis-server split
// the subscriptions by bucket. The store is seeded with every subscription
// before the replicas start (redisstore's batch write, 1,000 records a
// round trip): registering a million one by one through the HTTP API
// would measure the API, not the deployment, and a subscriptions file is
// re-read and written to the store by every replica. Then it measures the
// cold start to every subscription confirmed once (paced by the shared
// subscribe rate in Redis), each replica's memory per subscription, and
// the rebalance when one replica leaves with SIGTERM.

// ClusterResult is the cluster scenario.
type ClusterResult struct {
	Subscriptions int     `json:"subscriptions"`
	Replicas      int     `json:"replicas"`
	Rate          float64 `json:"subscribe_rate"` // deployment-wide
	Burst         int     `json:"subscribe_burst"`
	SeedSeconds   float64 `json:"seed_seconds"`
	// ConfirmSeconds runs from starting the replicas to every subscription
	// confirmed, every bucket held; BudgetSeconds is subscriptions/rate.
	ConfirmSeconds float64          `json:"first_full_confirm_seconds"`
	BudgetSeconds  float64          `json:"budget_seconds"`
	InitialMaxIn1s int              `json:"initial_max_subscribes_in_1s"`
	Baseline       snapshot         `json:"baseline"` // one replica, empty store
	Members        []ClusterReplica `json:"replicas_loaded"`
	RSSPerSub      float64          `json:"rss_bytes_per_subscription"` // mean over the replicas
	RedisRSS       int64            `json:"redis_rss_bytes"`
	Rebalance      ClusterRebalance `json:"rebalance"`
	Targets        []Target         `json:"targets"`
}

// ClusterReplica is one replica holding its share.
type ClusterReplica struct {
	Name          string   `json:"name"`
	Confirmed     int      `json:"confirmed"`
	Buckets       int      `json:"buckets_held"`
	Loaded        snapshot `json:"loaded"`
	RSSPerSub     float64  `json:"rss_bytes_per_subscription"`
	HeapPerSub    float64  `json:"heap_inuse_bytes_per_subscription"`
	AnonPerSubRaw float64  `json:"rss_anon_bytes_per_subscription"`
}

// ClusterRebalance is one replica leaving (SIGTERM): its buckets held
// again by the others, and its subscriptions confirmed again there.
type ClusterRebalance struct {
	Left           string  `json:"left"`
	Moved          int     `json:"subscriptions_moved"`
	StopSeconds    float64 `json:"stop_seconds"` // SIGTERM to the process exiting (it hands over first)
	BucketsSeconds float64 `json:"buckets_held_again_seconds"`
	ConfirmSeconds float64 `json:"confirmed_again_seconds"`
	BudgetSeconds  float64 `json:"budget_seconds"` // moved/rate
	MaxIn1s        int     `json:"max_subscribes_in_1s"`
}

func (r *ClusterResult) targets() []Target { return r.Targets }

func (r *ClusterResult) summary() string {
	return fmt.Sprintf("%d subscriptions on %d replicas at %.0f/s: confirmed in %.1fs (budget %.1fs), RSS %.0f B/sub per replica, Redis %d MiB; %s left: buckets held again in %.1fs, %d confirmed again in %.1fs (budget %.1fs); at most %d/%d subscribes in any 1 s",
		r.Subscriptions, r.Replicas, r.Rate, r.ConfirmSeconds, r.BudgetSeconds, r.RSSPerSub, r.RedisRSS>>20,
		r.Rebalance.Left, r.Rebalance.BucketsSeconds, r.Rebalance.Moved, r.Rebalance.ConfirmSeconds, r.Rebalance.BudgetSeconds,
		r.InitialMaxIn1s, r.Rebalance.MaxIn1s)
}

// clusterRun is the running topology.
type clusterRun struct {
	b        *bench
	redis    *redisserver.Server
	replicas []*relayProc
	n        int
}

func (b *bench) cluster(ctx context.Context) (*ClusterResult, error) {
	n, replicas := b.p.ClusterSubscriptions, b.p.ClusterReplicas
	res := &ClusterResult{Subscriptions: n, Replicas: replicas, Rate: b.p.ClusterRate, Burst: b.p.ClusterBurst}
	rd, err := b.startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer rd.Stop()
	cr := &clusterRun{b: b, redis: rd, n: n}
	defer cr.stop()
	if res.Baseline, err = cr.baseline(ctx); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if err := cr.seed(ctx, res); err != nil {
		return nil, err
	}
	if err := cr.coldStart(ctx, res); err != nil {
		return nil, err
	}
	if err := cr.footprint(ctx, res); err != nil {
		return nil, err
	}
	if err := cr.leave(ctx, res); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// clusterPrefix is the Redis key prefix of the measured deployment.
const clusterPrefix = "bench:"

// replica starts relay i of the deployment on key prefix prefix.
func (cr *clusterRun) replica(ctx context.Context, i int, prefix string) (*relayProc, error) {
	b := cr.b
	name := "clus" + strconv.Itoa(i)
	return b.startRelay(ctx, relayConfig{name: name, subscribeRate: b.p.ClusterRate, burst: b.p.ClusterBurst,
		extra: map[string]string{
			"RELAY_REDIS_URL": cr.redis.URL, "RELAY_REDIS_KEY_PREFIX": prefix, "RELAY_CLUSTER_MEMBER": name,
			"RELAY_NATS_SUBJECT_PREFIX": "clus", "RELAY_NATS_STREAM": "CLUS",
		}})
}

// baseline is one replica of an empty deployment (its own key prefix),
// settled: what a replica costs before it holds anything.
func (cr *clusterRun) baseline(ctx context.Context) (snapshot, error) {
	rp, err := cr.replica(ctx, 0, "bench-empty:")
	if err != nil {
		return snapshot{}, err
	}
	defer rp.stop()
	sleepCtx(ctx, 2*time.Second)
	return takeSnapshot(rp)
}

// seed makes the tokens known to the fake and stores their subscriptions.
func (cr *clusterRun) seed(ctx context.Context, res *ClusterResult) error {
	set, err := newTokenSet("clus", cr.n, 0)
	if err != nil {
		return err
	}
	cr.b.addTokens(set)
	cr.b.progress("cluster: seeding Redis with %d subscriptions", cr.n)
	start := time.Now()
	if err := seedStore(ctx, cr.redis.URL, clusterPrefix, set.tokens); err != nil {
		return err
	}
	res.SeedSeconds = round3(time.Since(start).Seconds())
	return nil
}

// coldStart starts every replica at once and waits until every
// subscription is confirmed and every bucket held.
func (cr *clusterRun) coldStart(ctx context.Context, res *ClusterResult) error {
	b := cr.b
	log := &chatwoottest.SubscribeLog{}
	b.subLog.Store(log)
	defer b.subLog.Store(nil)
	b.progress("cluster: starting %d replicas, subscribe rate %.0f/s for the deployment", res.Replicas, res.Rate)
	start := time.Now()
	if err := cr.startAll(ctx, res.Replicas); err != nil {
		return err
	}
	if err := cr.waitSettled(ctx, cr.replicas); err != nil {
		return err
	}
	res.ConfirmSeconds = round3(time.Since(start).Seconds())
	res.InitialMaxIn1s = log.MaxInWindow(time.Second)
	b.progress("cluster: %d confirmed in %.1fs", cr.n, res.ConfirmSeconds)
	return nil
}

// startAll starts the replicas concurrently, as a deployment's pods start.
func (cr *clusterRun) startAll(ctx context.Context, replicas int) error {
	cr.replicas = make([]*relayProc, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { cr.replicas[i], errs[i] = cr.replica(ctx, i, clusterPrefix) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// waitSettled polls until the live replicas confirm every subscription
// between them and hold every bucket.
func (cr *clusterRun) waitSettled(ctx context.Context, live []*relayProc) error {
	next := time.Now().Add(progressEvery)
	err := waitFor(ctx, cr.b.p.ConfirmTimeout.D(), 250*time.Millisecond, func() (bool, error) {
		c, err := confirmedSum(live)
		if time.Now().After(next) {
			cr.b.progress("cluster: %d of %d confirmed", c, cr.n)
			next = time.Now().Add(progressEvery)
		}
		if err != nil || c != cr.n {
			return false, err
		}
		return cr.bucketsHeld(live)
	})
	if err == errTimeout {
		c, _ := confirmedSum(live)
		return fmt.Errorf("%d of %d subscriptions confirmed after %s", c, cr.n, cr.b.p.ConfirmTimeout.D())
	}
	return err
}

// progressEvery is how often a long wait reports progress.
const progressEvery = 30 * time.Second

// confirmedSum adds the replicas' confirmed subscriptions; an exited one
// is an error.
func confirmedSum(live []*relayProc) (int, error) {
	sum := 0
	for _, rp := range live {
		select {
		case <-rp.done:
			return 0, fmt.Errorf("relay %s exited: %v\n%s", rp.name, rp.err, rp.tail.String())
		default:
		}
		c, err := rp.confirmed()
		if err != nil {
			return 0, nil // not answering this time
		}
		sum += c
	}
	return sum, nil
}

// bucketsHeld reports whether exactly the live replicas hold every bucket.
func (cr *clusterRun) bucketsHeld(live []*relayProc) (bool, error) {
	st, err := clusterStatus(live[0])
	if err != nil || st.Unheld != 0 || len(st.Members) != len(live) {
		return false, nil
	}
	held := 0
	for _, m := range st.Members {
		held += m.BucketsHeld
	}
	return held == st.Buckets, nil
}

// clusterStatus reads GET /v1/cluster.
func clusterStatus(rp *relayProc) (cluster.Status, error) {
	var st cluster.Status
	resp, err := rp.client.Get(rp.base + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("relay %s /v1/cluster: HTTP %d", rp.name, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// footprint reads every replica's memory once the confirms settled (and,
// with WaitGC, after their next GC cycle).
func (cr *clusterRun) footprint(ctx context.Context, res *ClusterResult) error {
	sleepCtx(ctx, 2*time.Second)
	var wg sync.WaitGroup
	for _, rp := range cr.replicas {
		wg.Go(func() { cr.b.awaitGC(ctx, rp) })
	}
	wg.Wait()
	var st cluster.Status
	err := waitFor(ctx, time.Minute, time.Second, func() (bool, error) {
		var err error
		st, err = clusterStatus(cr.replicas[0]) // reads every lease: slow on a busy machine
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("GET /v1/cluster: %w", err)
	}
	held := map[string]int{}
	for _, m := range st.Members {
		held[m.Name] = m.BucketsHeld
	}
	for _, rp := range cr.replicas {
		s, err := takeSnapshot(rp)
		if err != nil {
			return err
		}
		res.Members = append(res.Members, replicaFootprint(rp.name, held[rp.name], s, res.Baseline))
	}
	rs, err := readProc(cr.redis.Pid())
	res.RedisRSS = rs.RSS
	return err
}

func replicaFootprint(name string, buckets int, s, base snapshot) ClusterReplica {
	n := max(s.Confirmed, 1)
	return ClusterReplica{Name: name, Confirmed: int(s.Confirmed), Buckets: buckets, Loaded: s,
		RSSPerSub:     round3(float64(s.RSS-base.RSS) / n),
		AnonPerSubRaw: round3(float64(s.RSSAnon-base.RSSAnon) / n),
		HeapPerSub:    round3((s.HeapInuse - base.HeapInuse) / n)}
}

// leave stops the last replica with SIGTERM and times the rebalance:
// until the others hold every bucket, and until they confirm every
// subscription again.
func (cr *clusterRun) leave(ctx context.Context, res *ClusterResult) error {
	b := cr.b
	last := cr.replicas[len(cr.replicas)-1]
	live := cr.replicas[:len(cr.replicas)-1]
	rb := &res.Rebalance
	rb.Left = last.name
	if c, err := last.confirmed(); err == nil {
		rb.Moved = c
	}
	rb.BudgetSeconds = round3(float64(rb.Moved) / res.Rate)
	log := &chatwoottest.SubscribeLog{}
	b.subLog.Store(log)
	defer b.subLog.Store(nil)
	b.progress("cluster: SIGTERM %s (%d subscriptions)", last.name, rb.Moved)
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- last.stop() }()
	err := waitFor(ctx, b.p.ConfirmTimeout.D(), 100*time.Millisecond, func() (bool, error) { return cr.bucketsHeld(live) })
	if err != nil {
		return fmt.Errorf("buckets of %s not held again: %w", last.name, err)
	}
	rb.BucketsSeconds = round3(time.Since(start).Seconds())
	if err := <-stopped; err != nil {
		return err
	}
	rb.StopSeconds = round3(last.exitedAt.Sub(start).Seconds())
	if err := cr.waitSettled(ctx, live); err != nil {
		return err
	}
	rb.ConfirmSeconds = round3(time.Since(start).Seconds())
	rb.MaxIn1s = log.MaxInWindow(time.Second)
	return nil
}

func (cr *clusterRun) stop() {
	var wg sync.WaitGroup
	for _, rp := range cr.replicas {
		if rp != nil {
			wg.Go(func() { rp.stop() })
		}
	}
	wg.Wait()
}

func (r *ClusterResult) finish() {
	var sum float64
	for _, m := range r.Members {
		sum += m.RSSPerSub
	}
	r.RSSPerSub = round3(sum / float64(max(len(r.Members), 1)))
	r.BudgetSeconds = round3(float64(r.Subscriptions) / r.Rate)
	limit := r.Rate + float64(r.Burst)
	r.Targets = []Target{
		atMost("resident memory per subscription per replica (B)", r.RSSPerSub, 1024, "%.0f"),
		atMost("subscribes in any 1 s at the cold start", float64(r.InitialMaxIn1s), limit, "%.0f"),
		atMost("subscribes in any 1 s during the rebalance", float64(r.Rebalance.MaxIn1s), limit, "%.0f"),
	}
}
