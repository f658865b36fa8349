package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// Scale-out wiring. With RELAY_REDIS_URL the replicas split the
// subscriptions by bucket (package cluster): the registry subscribes only
// owned ones, claimed buckets are loaded from the store, released ones are
// unsubscribed, and a registration or removal made through a replica that
// does not own the token is announced on a Redis pub/sub channel so the
// owner subscribes it at once. Redis pub/sub rather than a NATS subject:
// ownership already lives in Redis, the channel carries only subscription
// ids (no consumer of the event stream ever sees it), and it needs no
// publish permission outside the event subjects.

// noticeChannel is the pub/sub channel of registration notices, under the
// Redis key prefix.
const noticeChannel = "subscriptions"

// resyncInterval is how often a member loads its buckets again, for a
// notice lost while its pub/sub connection was reconnecting.
const resyncInterval = 5 * time.Minute

// clusterMode is the relay's part in a deployment of several replicas.
type clusterMode struct {
	c        *cluster.Cluster
	rdb      redis.UniversalClient
	channel  string
	registry *registry.Registry
	log      *slog.Logger

	echoes  *nats.Conn        // message.created of every replica, for ?wait=echo
	loads   chan map[int]bool // claimed buckets to subscribe
	notices chan string       // subscription ids to announce
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// joinCluster sets the cluster up with Redis; nothing without it.
func (a *app) joinCluster(ctx context.Context) error {
	rs, ok := a.store.(*redisstore.Store)
	if !ok {
		return nil
	}
	member := a.cfg.ClusterMember
	if member == "" {
		member = defaultMember()
	}
	m := &clusterMode{rdb: rs.Client(), channel: rs.Key(noticeChannel), registry: a.registry,
		log: a.log.With("component", "cluster"), loads: make(chan map[int]bool, 64), notices: make(chan string, 65536)}
	c, err := cluster.New(ctx, cluster.Config{
		Store: a.store, Member: member, Buckets: a.cfg.ClusterBuckets, TTL: a.cfg.ClusterLeaseTTL, Renew: a.cfg.ClusterRenew,
		OnAcquire: m.acquired, OnRelease: m.released, Logger: m.log, Registerer: a.metrics,
	})
	if err != nil {
		return err
	}
	m.c = c
	if err := a.echoesFromNATS(m); err != nil {
		return err
	}
	a.registry.SetSharding(registry.Sharding{Owns: c.OwnsID, Elsewhere: m.elsewhere})
	a.cluster = m
	m.log.Info("cluster member", "member", member, "buckets", a.cfg.ClusterBuckets)
	return nil
}

// echoesFromNATS feeds the echo tracker from the message.created events
// every replica publishes, so that ?wait=echo answers whichever replica
// subscribes the contact. Core NATS on its own connection: an echo is
// only useful while a request waits, and every replica sees every
// message.created (cheap next to the cable traffic behind it).
func (a *app) echoesFromNATS(m *clusterMode) error {
	nc, err := fanout.Connect(a.natsConfig(), a.log.With("component", "echoes"), prometheus.NewRegistry())
	if err != nil {
		return fmt.Errorf("NATS for echoes: %w", err)
	}
	subject := a.cfg.NATSSubjectPrefix + ".*.*.*.*.message.created"
	if _, err := nc.Subscribe(subject, func(msg *nats.Msg) { a.echoes.ObserveEvent(msg.Data) }); err != nil {
		nc.Close()
		return fmt.Errorf("NATS for echoes: %w", err)
	}
	m.echoes = nc
	return nil
}

// defaultMember is the host name (the pod name on Kubernetes) with a
// random suffix, so a restarted process never renews its predecessor's
// leases by name.
func defaultMember() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relay"
	}
	b := make([]byte, 3)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// start subscribes the notices and starts claiming buckets.
func (m *clusterMode) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	ps := m.rdb.Subscribe(ctx, m.channel)
	if _, err := ps.Receive(ctx); err != nil {
		cancel()
		ps.Close()
		return fmt.Errorf("cluster: subscribing registration notices: %w", err)
	}
	m.wg.Add(3)
	go m.listen(ctx, ps)
	go m.announce(ctx)
	go m.load(ctx)
	m.c.Start()
	return nil
}

// stop hands every bucket over (unsubscribing them) and stops.
func (m *clusterMode) stop() {
	m.c.Close()
	if m.cancel != nil { // started
		m.cancel()
		m.wg.Wait()
	}
	m.echoes.Close()
}

// acquired queues the subscriptions of claimed buckets for loading: the
// cluster loop must not wait for a scan of the registry.
func (m *clusterMode) acquired(buckets []int) {
	set := make(map[int]bool, len(buckets))
	for _, b := range buckets {
		set[b] = true
	}
	m.loads <- set
}

// released unsubscribes the buckets' subscriptions before their leases go,
// and returns handoverSettle later.
func (m *clusterMode) released(buckets []int) {
	set := make(map[int]bool, len(buckets))
	for _, b := range buckets {
		set[b] = true
	}
	n := m.registry.Unload(func(id string) bool { return set[m.c.BucketOf(id)] })
	if n > 0 {
		time.Sleep(handoverSettle)
	}
	m.log.Info("subscriptions handed over", "buckets", len(buckets), "subscriptions", n)
}

// handoverSettle is how long a replica waits between unsubscribing a
// handed-over bucket's subscriptions and releasing its lease. The pool
// writes the unsubscribes on its sockets' own goroutines and Chatwoot runs
// each on its worker pool, while the new owner may claim the lease within
// milliseconds: without the wait, the new owner's subscribe of a token
// could reach Chatwoot first and the token be held by two sockets. The
// same 500 ms the cable package keeps between an unsubscribe and a
// subscribe of one token.
const handoverSettle = 500 * time.Millisecond

// load subscribes claimed buckets, merging what queued up into one scan,
// and every held bucket again every resyncInterval. A scan the store
// interrupts is tried again every loadRetry until it completes: claimed
// buckets must not wait for the resync (their subscriptions are caught up
// from the registration time once subscribed).
func (m *clusterMode) load(ctx context.Context) {
	defer m.wg.Done()
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(loadRetry)
	retry.Stop()
	var failed *loadSet // what the last scan did not complete
	for {
		next := &loadSet{}
		select {
		case <-ctx.Done():
			return
		case set := <-m.loads:
			next.buckets = m.merge(set)
		case <-resync.C:
			next.all = true
		case <-retry.C:
		}
		next.add(failed)
		if next.empty() {
			continue
		}
		failed = nil
		if err := m.loadOwned(ctx, next); err != nil {
			if ctx.Err() != nil {
				return
			}
			failed = next
			retry.Reset(loadRetry)
			m.log.Error("subscriptions of held buckets not all loaded: trying again", "err", err)
		}
	}
}

// loadRetry is how soon an interrupted load of claimed buckets is retried.
const loadRetry = time.Second

// loadSet is what a scan of the registry subscribes: every held bucket,
// or those listed.
type loadSet struct {
	all     bool
	buckets map[int]bool
}

func (s *loadSet) empty() bool { return !s.all && len(s.buckets) == 0 }

func (s *loadSet) add(o *loadSet) {
	if o == nil {
		return
	}
	s.all = s.all || o.all
	if s.buckets == nil {
		s.buckets = map[int]bool{}
	}
	for b := range o.buckets {
		s.buckets[b] = true
	}
}

// loadOwned subscribes the owned subscriptions of set.
func (m *clusterMode) loadOwned(ctx context.Context, set *loadSet) error {
	keep := func(id string) bool { return set.all || set.buckets[m.c.BucketOf(id)] }
	start := time.Now()
	n, err := m.registry.LoadOwned(ctx, keep)
	if err == nil {
		m.log.Info("subscriptions of held buckets loaded", "subscriptions", n, "took", time.Since(start).String())
	}
	return err
}

// merge adds every queued set to set.
func (m *clusterMode) merge(set map[int]bool) map[int]bool {
	for {
		select {
		case more := <-m.loads:
			for b := range more {
				set[b] = true
			}
		default:
			return set
		}
	}
}

// elsewhere queues a notice for the owner of id; with the queue full the
// notice is dropped (logged) and the owner's resync catches up.
func (m *clusterMode) elsewhere(id string, removed bool) {
	select {
	case m.notices <- id:
	default:
		m.log.Warn("registration notice dropped: the owner picks it up at its next resync", "subscription", id)
	}
}

// announce publishes queued notices, many per round trip.
func (m *clusterMode) announce(ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-m.notices:
			m.publish(ctx, m.batch(id))
		}
	}
}

// batch returns first and up to 999 more queued notices.
func (m *clusterMode) batch(first string) []string {
	batch := []string{first}
	for len(batch) < 1000 {
		select {
		case id := <-m.notices:
			batch = append(batch, id)
		default:
			return batch
		}
	}
	return batch
}

func (m *clusterMode) publish(ctx context.Context, ids []string) {
	_, err := m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, m.channel, id)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		m.log.Warn("registration notices not sent: the owners pick them up at their next resync", "notices", len(ids), "err", err)
	}
}

// listen refreshes the owned subscriptions other replicas announce.
func (m *clusterMode) listen(ctx context.Context, ps *redis.PubSub) {
	defer m.wg.Done()
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			id := msg.Payload
			if !subscriptionIDShape(id) || !m.c.OwnsID(id) {
				continue // not a notice (anyone with Redis access can publish), or not ours
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := m.registry.Refresh(rctx, id); err != nil {
				m.log.Warn("announced subscription not refreshed: picked up at the next resync", "subscription", id, "err", err)
			}
			cancel()
		}
	}
}

// clusterAPI is the cluster as the HTTP API sees it; nil with one replica.
func (a *app) clusterAPI() api.Cluster {
	if a.cluster == nil {
		return nil
	}
	return clusterView{a.cluster.c}
}

type clusterView struct{ c *cluster.Cluster }

func (v clusterView) OwnerOf(ctx context.Context, id string) (string, error) {
	return v.c.OwnerOf(ctx, id)
}

func (v clusterView) Status(ctx context.Context) (any, error) { return v.c.Status(ctx) }

// sharedRates makes the subscribe pace and the Chatwoot budget limits of
// the whole deployment when the replicas share Redis: every replica waits
// on the same GCRA buckets (package cluster's SharedRate). Nothing without
// Redis: the process's own limiters are the deployment's.
func (a *app) sharedRates(context.Context) error {
	rs, ok := a.store.(*redisstore.Store)
	if !ok {
		return nil
	}
	c := a.cfg
	members := func() int {
		if a.cluster == nil {
			return 1
		}
		return a.cluster.c.Members()
	}
	log := a.log.With("component", "cluster")
	a.subscribeRate = cluster.NewSharedRate(rs.Client(), cluster.RateOptions{
		Key: rs.Key("rate:subscribe"), PerSecond: c.CableSubscribeRate * (1 - sharedMargin), Burst: c.CableSubscribeBurst,
		Members: members, Logger: log, Registerer: a.metrics, Name: "subscribe",
	})
	perSecond := float64(c.ChatwootRatePerMinute) * 0.9 / 60 // the 10 % headroom chatwoot.NewLimiter keeps
	a.chatwootRate = cluster.NewSharedRate(rs.Client(), cluster.RateOptions{
		Key: rs.Key("rate:chatwoot"), PerSecond: perSecond, Burst: max(1, int(perSecond/9)),
		Members: members, Logger: log, Registerer: a.metrics, Name: "chatwoot",
	})
	return nil
}

// sharedMargin keeps the shared subscribe pace 5 % under the configured
// rate (the pool's own buckets keep 1 %): between Redis granting a
// subscribe and Chatwoot reading it lie a Redis round trip and another
// process's scheduling, and grants of several replicas bunch more than
// one process's writes (measured: 208 in a second at 200/s + 5 with 1 %).
const sharedMargin = 0.05

// waiter is a deployment-wide rate as the pool and client take it; nil
// (not a typed nil) without one.
func waiter(s *cluster.SharedRate) interface{ Wait(context.Context) error } {
	if s == nil {
		return nil
	}
	return s
}

// subscriptionIDShape reports whether v looks like a subscription id (the
// 16 hex digits cable.SubscriptionID makes): anything else on the notice
// channel is ignored without touching the store.
func subscriptionIDShape(v string) bool {
	if len(v) != 16 {
		return false
	}
	_, err := hex.DecodeString(v)
	return err == nil
}
