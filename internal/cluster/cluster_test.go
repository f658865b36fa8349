package cluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// owners records which member subscribes each bucket, through the
// callbacks, and counts a bucket subscribed by two members at once.
type owners struct {
	mu      sync.Mutex
	by      map[int]string
	overlap int
}

func newOwners() *owners { return &owners{by: make(map[int]string)} }

func (o *owners) acquire(member string, buckets []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range buckets {
		if h := o.by[b]; h != "" && h != member {
			o.overlap++
		}
		o.by[b] = member
	}
}

func (o *owners) release(member string, buckets []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range buckets {
		if o.by[b] == member {
			delete(o.by, b)
		}
	}
}

func (o *owners) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := map[string]int{}
	for _, m := range o.by {
		c[m]++
	}
	return c
}

// openStore returns leases in memory, on the bubble's clock.
func openStore(*testing.T) store.Leases { return newMemLeases() }

// openBolt opens a bbolt store.
func openBolt(t *testing.T) store.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newMember(t *testing.T, s store.Leases, name string, o *owners) *Cluster {
	t.Helper()
	c, err := New(t.Context(), Config{Store: s, Member: name, Registerer: prometheus.NewRegistry(),
		OnAcquire: func(b []int) { o.acquire(name, b) }, OnRelease: func(b []int) { o.release(name, b) }})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	return c
}

// kill stops a member's loop as a crash would: no leave, no release.
func (c *Cluster) kill() {
	c.cancel()
	<-c.done
}

func wantShares(t *testing.T, o *owners, members ...string) {
	t.Helper()
	counts := o.counts()
	total := 0
	for _, m := range members {
		total += counts[m]
		share := float64(DefaultBuckets) / float64(len(members))
		if n := float64(counts[m]); n < share*0.8 || n > share*1.2 {
			t.Errorf("%s subscribes %v buckets, want %v ±20%% (%v)", m, n, share, counts)
		}
	}
	if total != DefaultBuckets {
		t.Errorf("%d buckets subscribed, want %d (%v)", total, DefaultBuckets, counts)
	}
}

func TestMembersSplitAndHandOverGracefully(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, o := openStore(t), newOwners()
		a := newMember(t, s, "a", o)
		time.Sleep(DefaultPoll)
		synctest.Wait()
		if a.Held() != DefaultBuckets {
			t.Fatalf("a lone member holds %d buckets", a.Held())
		}
		b, c := newMember(t, s, "b", o), newMember(t, s, "c", o)
		start := time.Now()
		for a.Held()+b.Held()+c.Held() != DefaultBuckets || a.Held() == DefaultBuckets {
			time.Sleep(100 * time.Millisecond)
		}
		// Every bucket moved within a poll of the old owner noticing
		// plus a poll of the new owner claiming.
		if took := time.Since(start); took > 2*DefaultPoll+100*time.Millisecond {
			t.Errorf("rebalance took %v", took)
		}
		wantShares(t, o, "a", "b", "c")
		b.Close()
		time.Sleep(2 * DefaultPoll)
		synctest.Wait()
		wantShares(t, o, "a", "c")
		if o.overlap != 0 {
			t.Errorf("%d buckets were subscribed by two members during graceful handovers", o.overlap)
		}
		a.Close()
		c.Close()
		if n := len(o.counts()); n != 0 {
			t.Errorf("buckets still subscribed after every member closed: %v", o.counts())
		}
	})
}

func TestCrashedMemberBucketsTakenOverAfterTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, o := openStore(t), newOwners()
		a, b := newMember(t, s, "a", o), newMember(t, s, "b", o)
		time.Sleep(3 * DefaultPoll)
		synctest.Wait()
		if a.Held()+b.Held() != DefaultBuckets || b.Held() == 0 {
			t.Fatalf("held a=%d b=%d", a.Held(), b.Held())
		}
		b.kill()
		crash := time.Now()
		for a.Held() != DefaultBuckets {
			time.Sleep(100 * time.Millisecond)
		}
		// The heartbeat and leases were renewed at most Renew before the
		// crash; a claims within a poll of their expiry.
		if took := time.Since(crash); took > DefaultTTL+DefaultPoll+100*time.Millisecond {
			t.Errorf("takeover took %v, want within TTL + a poll", took)
		}
		a.Close()
	})
}

// flaky is a store whose lease and membership calls fail while down is set.
type flaky struct {
	store.Leases
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (f *flaky) err() error {
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *flaky) Heartbeat(ctx context.Context, m string, ttl time.Duration) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Leases.Heartbeat(ctx, m, ttl)
}

func (f *flaky) Members(ctx context.Context) ([]string, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Leases.Members(ctx)
}

func (f *flaky) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (bool, error) {
	if err := f.err(); err != nil {
		return false, err
	}
	return f.Leases.RenewLease(ctx, l, ttl)
}

func (f *flaky) ClaimLease(ctx context.Context, n, h string, ttl time.Duration) (store.Lease, bool, error) {
	if err := f.err(); err != nil {
		return store.Lease{}, false, err
	}
	return f.Leases.ClaimLease(ctx, n, h, ttl)
}

func TestCutOffMemberKeepsBucketsThenYieldsToTheNewHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, o := openStore(t), newOwners()
		fa := &flaky{Leases: s}
		reg := prometheus.NewRegistry()
		a, err := New(t.Context(), Config{Store: fa, Member: "a", Registerer: reg,
			OnAcquire: func(b []int) { o.acquire("a", b) }, OnRelease: func(b []int) { o.release("a", b) }})
		if err != nil {
			t.Fatal(err)
		}
		a.Start()
		time.Sleep(DefaultPoll)
		synctest.Wait()
		fa.down.Store(true)
		time.Sleep(3 * DefaultTTL)
		synctest.Wait()
		if a.Held() != DefaultBuckets || o.counts()["a"] != DefaultBuckets {
			t.Fatalf("a member cut off from the store dropped buckets: holds %d", a.Held())
		}
		if v := testutil.ToFloat64(a.m.unreachable); v != 1 {
			t.Errorf("store unreachable gauge = %v", v)
		}
		if v := testutil.ToFloat64(a.m.renewFailures); v == 0 {
			t.Error("no renewal failure counted")
		}
		// b reaches the store, sees a's heartbeat gone and takes every
		// bucket; a keeps its subscriptions meanwhile (availability).
		b := newMember(t, s, "b", o)
		time.Sleep(2 * DefaultPoll)
		synctest.Wait()
		if b.Held() != DefaultBuckets || a.Held() != DefaultBuckets {
			t.Fatalf("during the cut: a holds %d, b holds %d", a.Held(), b.Held())
		}
		// a reaches the store again: its renewals are fenced, it stops
		// every bucket, then takes back its share from b gracefully.
		fa.down.Store(false)
		time.Sleep(DefaultRenew + 3*DefaultPoll)
		synctest.Wait()
		if v := testutil.ToFloat64(a.m.fenced); v != DefaultBuckets {
			t.Errorf("fenced buckets = %v, want %d", v, DefaultBuckets)
		}
		if v := testutil.ToFloat64(a.m.unreachable); v != 0 {
			t.Errorf("store unreachable gauge = %v after recovery", v)
		}
		wantShares(t, o, "a", "b")
		a.Close()
		b.Close()
	})
}

func TestBucketCountIsFixedPerDeployment(t *testing.T) {
	s := openBolt(t)
	if _, err := New(t.Context(), Config{Store: s, Member: "a", Buckets: 1024}); err != nil {
		t.Fatal(err)
	}
	_, err := New(t.Context(), Config{Store: s, Member: "b", Buckets: 512})
	if err == nil {
		t.Fatal("a member with another bucket count started")
	}
	want := "this deployment was started with 1024 buckets"
	if got := err.Error(); !strings.Contains(got, want) {
		t.Fatalf("error %q does not say %q", got, want)
	}
}

func TestConfigRejectsTTLBelowTwoRenewals(t *testing.T) {
	_, err := New(t.Context(), Config{Store: openStore(t), Member: "a", TTL: 5 * time.Second, Renew: 5 * time.Second})
	if err == nil {
		t.Fatal("TTL of one renewal accepted")
	}
}

func TestRendezvousMovesOnlyTheJoinersShare(t *testing.T) {
	three := []string{"relay-0", "relay-1", "relay-2"}
	four := append(append([]string{}, three...), "relay-3")
	counts := map[string]int{}
	moved := 0
	for b := range DefaultBuckets {
		before, after := Owner(b, three), Owner(b, four)
		counts[before]++
		if before != after {
			moved++
			if after != "relay-3" {
				t.Fatalf("bucket %d moved from %s to %s, not to the new member", b, before, after)
			}
		}
	}
	for _, m := range three {
		if n := counts[m]; n < 1024/3*8/10 || n > 1024/3*12/10 {
			t.Errorf("%s owns %d of 1024 buckets", m, n)
		}
	}
	if moved < 1024/4*8/10 || moved > 1024/4*12/10 {
		t.Errorf("%d buckets moved to a fourth member, want about 256", moved)
	}
}

func TestBucketIsUniformOverSubscriptionIDs(t *testing.T) {
	counts := make([]int, 16)
	for i := range 16000 {
		counts[Bucket(fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), 16)]++
	}
	for b, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("bucket %d has %d of 16000 ids", b, n)
		}
	}
	if Bucket("not-hex", 16) != Bucket("not-hex", 16) {
		t.Error("Bucket is not stable")
	}
}

// TestMembersShareBucketsThroughRedis runs the loop on the Redis store
// (miniredis) with short intervals: the split and a graceful leave, as
// events rather than timings.
func TestMembersShareBucketsThroughRedis(t *testing.T) {
	mr := miniredis.RunT(t)
	s, err := redisstore.Open("redis://"+mr.Addr(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o := newOwners()
	member := func(name string) *Cluster {
		c, err := New(t.Context(), Config{Store: s, Member: name, Buckets: 64, TTL: time.Second,
			Renew: 200 * time.Millisecond, Poll: 20 * time.Millisecond,
			OnAcquire: func(b []int) { o.acquire(name, b) }, OnRelease: func(b []int) { o.release(name, b) }})
		if err != nil {
			t.Fatal(err)
		}
		c.Start()
		return c
	}
	a, b := member("a"), member("b")
	waitFor(t, "the rendezvous split", func() bool {
		for bk := range 64 {
			if want := Owner(bk, []string{"a", "b"}); !map[string]*Cluster{"a": a, "b": b}[want].Owns(bk) || o.counts()[want] == 0 {
				return false
			}
		}
		return o.counts()["a"]+o.counts()["b"] == 64
	})
	if owner, err := a.OwnerOf(t.Context(), "00000000000000ff"); err != nil || (owner != "a" && owner != "b") {
		t.Fatalf("OwnerOf = %q, %v", owner, err)
	}
	st, err := b.Status(t.Context())
	if err != nil || len(st.Members) != 2 || st.Members[0].BucketsHeld+st.Members[1].BucketsHeld != 64 || st.Unheld != 0 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	b.Close()
	waitFor(t, "a holding everything", func() bool { return o.counts()["a"] == 64 })
	if o.overlap != 0 {
		t.Errorf("%d buckets subscribed twice during a graceful leave", o.overlap)
	}
	a.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
