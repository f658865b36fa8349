package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/store"
)

// Defaults. The TTL outlasts a Redis client reconnect (go-redis dials
// with a 5 s timeout and retries) plus two missed renewals, so a member
// that hiccups keeps its buckets; renewing at a third of it leaves two
// more tries before expiry.
const (
	DefaultBuckets = 1024
	DefaultTTL     = 15 * time.Second
	DefaultRenew   = 5 * time.Second
	DefaultPoll    = time.Second
	MaxBuckets     = 65536
)

// settingBuckets is the pinned setting holding the deployment's bucket count.
const settingBuckets = "cluster-buckets"

// Config configures a Cluster.
type Config struct {
	// Store holds heartbeats, leases and the pinned bucket count.
	Store store.Leases
	// Member names this replica; unique among the live replicas.
	Member string
	// Buckets is the deployment's fixed bucket count. Default DefaultBuckets.
	Buckets int
	// TTL of heartbeats and leases (DefaultTTL); Renew is how often both
	// are renewed (DefaultRenew); Poll is how often members are read and
	// buckets this member should own but does not hold are claimed
	// (DefaultPoll).
	TTL, Renew, Poll time.Duration
	// OnAcquire is called with buckets just claimed: subscribe their tokens.
	OnAcquire func(buckets []int)
	// OnRelease is called with buckets about to be released (or lost):
	// return once their subscriptions are stopped.
	OnRelease  func(buckets []int)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Renew == 0 {
		c.Renew = DefaultRenew
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnAcquire == nil {
		c.OnAcquire = func([]int) {}
	}
	if c.OnRelease == nil {
		c.OnRelease = func([]int) {}
	}
}

func (c *Config) validate() error {
	switch {
	case c.Store == nil || c.Member == "":
		return errors.New("cluster: a store and a member name are required")
	case c.Buckets < 1 || c.Buckets > MaxBuckets:
		return fmt.Errorf("cluster: bucket count %d out of range 1..%d", c.Buckets, MaxBuckets)
	case c.Renew <= 0 || c.Poll <= 0 || c.TTL < 2*c.Renew:
		return fmt.Errorf("cluster: the lease TTL (%v) must be at least twice the renewal interval (%v)", c.TTL, c.Renew)
	}
	return nil
}

// Handover describes the last change of the buckets this member holds.
type Handover struct {
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"` // claimed, rebalance, fenced, shutdown
	Buckets int       `json:"buckets"`
}

// Reasons of a handover.
const (
	ReasonClaimed   = "claimed"   // buckets claimed (joining, or taken over)
	ReasonRebalance = "rebalance" // buckets given to their new owner
	ReasonFenced    = "fenced"    // another member holds the lease now
	ReasonShutdown  = "shutdown"  // this member is leaving
)

// Cluster is this replica's membership and bucket ownership.
type Cluster struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu          sync.Mutex
	held        map[int]store.Lease
	members     []string
	last        Handover
	unreachable bool
	lastRenew   time.Time

	// ops serialises the loop's steps with Close.
	ops    sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and the bucket count against what the store recorded for
// the deployment (the first member records it), and announces the member.
// Call Start to claim buckets.
func New(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	want := strconv.Itoa(cfg.Buckets)
	got, err := cfg.Store.PinSetting(ctx, settingBuckets, want)
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the deployment's bucket count: %w", err)
	}
	if got != want {
		return nil, fmt.Errorf("cluster: this deployment was started with %s buckets and the count is fixed for a deployment; configured %s", got, want)
	}
	if err := cfg.Store.Heartbeat(ctx, cfg.Member, cfg.TTL); err != nil {
		return nil, fmt.Errorf("cluster: announcing member: %w", err)
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registerer), held: make(map[int]store.Lease),
		members: []string{cfg.Member}, done: make(chan struct{})}
	c.m.buckets.Set(float64(cfg.Buckets))
	return c, nil
}

// Start runs the membership loop until Close.
func (c *Cluster) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.run(ctx)
}

func (c *Cluster) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.cfg.Poll)
	defer tick.Stop()
	c.step(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.step(ctx)
		}
	}
}

// step renews when due (every poll while the store is out of reach, so
// that a fenced bucket stops as soon as it answers again), reads the
// members and moves buckets. Each store call is bounded by the renewal
// interval.
func (c *Cluster) step(ctx context.Context) {
	c.ops.Lock()
	defer c.ops.Unlock()
	if ctx.Err() != nil {
		return
	}
	if time.Since(c.lastRenew) >= c.cfg.Renew || c.isCutOff() {
		c.lastRenew = time.Now()
		c.renew(ctx)
	}
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.Renew)
	members, err := c.cfg.Store.Members(opCtx)
	cancel()
	if err != nil {
		c.cutOff("members", err)
		return
	}
	if !slices.Contains(members, c.cfg.Member) {
		members = append(members, c.cfg.Member) // alive, whatever the store says
		slices.Sort(members)
	}
	c.setMembers(members)
	c.rebalance(ctx, members)
}

// renew renews the heartbeat and every held lease.
func (c *Cluster) renew(ctx context.Context) {
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.Renew)
	defer cancel()
	if err := c.cfg.Store.Heartbeat(opCtx, c.cfg.Member, c.cfg.TTL); err != nil {
		c.m.renewFailures.Inc() // no lease is renewed either
		c.cutOff("heartbeat", err)
		return
	}
	var fenced []int
	for _, l := range c.heldLeases() {
		ok, err := c.cfg.Store.RenewLease(opCtx, l, c.cfg.TTL)
		switch {
		case err != nil:
			c.m.renewFailures.Inc()
			c.cutOff("lease renewal", err)
			return
		case !ok && !c.reclaim(opCtx, l):
			fenced = append(fenced, bucketOf(l))
		}
	}
	c.reached()
	if len(fenced) > 0 {
		c.m.fenced.Add(float64(len(fenced)))
		c.log.Warn("buckets claimed by another member: their subscriptions stop", "buckets", len(fenced))
		c.drop(fenced, ReasonFenced, false)
	}
}

// reclaim claims again a lease whose grant expired with nobody taking it
// (the store was out of reach longer than the TTL): the subscriptions go
// on under a new token.
func (c *Cluster) reclaim(ctx context.Context, old store.Lease) bool {
	l, ok, err := c.cfg.Store.ClaimLease(ctx, old.Name, c.cfg.Member, c.cfg.TTL)
	if err != nil || !ok {
		return false
	}
	c.mu.Lock()
	c.held[bucketOf(old)] = l
	c.mu.Unlock()
	return true
}

// rebalance gives away held buckets another member should own, then claims
// free buckets this member should own.
func (c *Cluster) rebalance(ctx context.Context, members []string) {
	var give, want []int
	for b := range c.cfg.Buckets {
		mine := Owner(b, members) == c.cfg.Member
		switch held := c.Owns(b); {
		case held && !mine:
			give = append(give, b)
		case !held && mine:
			want = append(want, b)
		}
	}
	if len(give) > 0 {
		c.drop(give, ReasonRebalance, true)
	}
	if len(want) > 0 {
		c.claim(ctx, want)
	}
}

// claim claims the free buckets among want and subscribes them.
func (c *Cluster) claim(ctx context.Context, want []int) {
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.Renew)
	defer cancel()
	var got []int
	for _, b := range want {
		l, ok, err := c.cfg.Store.ClaimLease(opCtx, LeaseName(b), c.cfg.Member, c.cfg.TTL)
		if err != nil {
			c.cutOff("lease claim", err)
			break
		}
		if ok {
			c.mu.Lock()
			c.held[b] = l
			c.mu.Unlock()
			got = append(got, b)
		}
	}
	if len(got) == 0 {
		return
	}
	c.handedOver(ReasonClaimed, len(got))
	c.log.Info("buckets claimed", "buckets", len(got), "held", c.Held())
	c.cfg.OnAcquire(got)
}

// drop forgets the buckets (so nothing subscribes them again), stops
// their subscriptions and, when release is set, releases their leases
// (only while still this grant's).
func (c *Cluster) drop(buckets []int, reason string, release bool) {
	c.mu.Lock()
	leases := make([]store.Lease, 0, len(buckets))
	for _, b := range buckets {
		leases = append(leases, c.held[b])
		delete(c.held, b)
	}
	c.mu.Unlock()
	c.cfg.OnRelease(buckets)
	c.handedOver(reason, len(buckets))
	if release {
		bound := c.cfg.Renew
		if reason == ReasonShutdown {
			bound = closeBound
		}
		c.release(leases, bound)
	}
	c.log.Info("buckets handed over", "buckets", len(buckets), "reason", reason, "held", c.Held())
}

// release returns leases within bound; one held by someone else now stays
// theirs.
func (c *Cluster) release(leases []store.Lease, bound time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for _, l := range leases {
		if err := c.cfg.Store.ReleaseHeld(ctx, l); err != nil && !errors.Is(err, store.ErrNotHolder) {
			c.log.Warn("lease not released: it expires with its TTL", "lease", l.Name, "err", err)
			return
		}
	}
}

// closeBound bounds each store call of Close (leaving, releasing): with the
// store out of reach the leases expire by themselves, and a shutdown must
// not wait for it.
const closeBound = 2 * time.Second

// Close leaves the member set and hands every bucket over: the other
// members claim them as soon as they are released. OnRelease must return.
func (c *Cluster) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	if err := c.cfg.Store.Leave(ctx, c.cfg.Member); err != nil {
		c.log.Warn("member not removed: the others see it leave when its heartbeat expires", "err", err)
	}
	cancel()
	if all := c.HeldBuckets(); len(all) > 0 {
		c.drop(all, ReasonShutdown, true)
	}
}

func (c *Cluster) handedOver(reason string, n int) {
	c.m.handovers.WithLabelValues(reason).Add(float64(n))
	c.mu.Lock()
	c.last = Handover{At: time.Now(), Reason: reason, Buckets: n}
	c.m.held.Set(float64(len(c.held)))
	c.mu.Unlock()
}

// cutOff records that the store is out of reach: held buckets are kept.
func (c *Cluster) cutOff(what string, err error) {
	c.mu.Lock()
	first := !c.unreachable
	c.unreachable = true
	held := len(c.held)
	c.mu.Unlock()
	c.m.unreachable.Set(1)
	if first {
		c.log.Error("cluster store out of reach: keeping the buckets held until it answers again",
			"step", what, "buckets", held, "err", err)
	}
}

func (c *Cluster) isCutOff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unreachable
}

func (c *Cluster) reached() {
	c.mu.Lock()
	was := c.unreachable
	c.unreachable = false
	c.mu.Unlock()
	c.m.unreachable.Set(0)
	if was {
		c.log.Info("cluster store reachable again")
	}
}

func (c *Cluster) setMembers(m []string) {
	c.mu.Lock()
	c.members = m
	c.mu.Unlock()
	c.m.members.Set(float64(len(m)))
}

func bucketOf(l store.Lease) int {
	n, _ := strconv.Atoi(l.Name[len("bucket-"):])
	return n
}
