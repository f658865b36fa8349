package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func acquire(t *testing.T, s store.Store, name, holder string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.AcquireLease(ctx(t), name, holder, ttl)
	mustNoErr(t, err, "AcquireLease "+name+" by "+holder)
	return ok
}

func wantHolder(t *testing.T, s store.Store, name, want string) {
	t.Helper()
	h, err := s.LeaseHolder(ctx(t), name)
	if want == "" {
		wantErr(t, err, store.ErrNotFound, "LeaseHolder of free lease "+name)
		return
	}
	if err != nil || h != want {
		t.Fatalf("LeaseHolder(%s) = %q, %v; want %q", name, h, err, want)
	}
}

func testLeaseAcquireRelease(t *testing.T, b *Backend) {
	s := b.Store
	wantHolder(t, s, "bucket-1", "")
	if !acquire(t, s, "bucket-1", "r1", longTTL) {
		t.Fatal("r1 could not acquire a free lease")
	}
	if acquire(t, s, "bucket-1", "r2", longTTL) {
		t.Fatal("r2 acquired a lease held by r1")
	}
	if !acquire(t, s, "bucket-2", "r2", longTTL) {
		t.Fatal("leases are not independent")
	}
	wantHolder(t, s, "bucket-1", "r1")
	wantErr(t, s.ReleaseLease(ctx(t), "bucket-1", "r2"), store.ErrNotHolder, "release by non-holder")
	wantHolder(t, s, "bucket-1", "r1")
	wantErr(t, s.ReleaseLease(ctx(t), "free", "r1"), store.ErrNotHolder, "release of a free lease")
	mustNoErr(t, s.ReleaseLease(ctx(t), "bucket-1", "r1"), "release by holder")
	wantHolder(t, s, "bucket-1", "")
	wantErr(t, s.ReleaseLease(ctx(t), "bucket-1", "r1"), store.ErrNotHolder, "release twice")
	if !acquire(t, s, "bucket-1", "r2", longTTL) {
		t.Fatal("r2 could not acquire a released lease")
	}
	wantHolder(t, s, "bucket-1", "r2")
}

func testLeaseRenew(t *testing.T, b *Backend) {
	s := b.Store
	if !acquire(t, s, "b", "r1", longTTL) || !acquire(t, s, "b", "r1", longTTL) {
		t.Fatal("holder could not renew")
	}
	if !b.realTime() {
		ttl := 10 * time.Second
		acquire(t, s, "b", "r1", ttl)
		b.Advance(ttl * 3 / 4)
		if !acquire(t, s, "b", "r1", ttl) {
			t.Fatal("renewal before expiry failed")
		}
		b.Advance(ttl * 3 / 4) // past the first expiry, before the renewed one
		wantHolder(t, s, "b", "r1")
		if acquire(t, s, "b", "r2", ttl) {
			t.Fatal("r2 took a renewed lease")
		}
	}
	// A renewal sets the new TTL (here shorter): the lease then expires.
	if !acquire(t, s, "b", "r1", shortTTL) {
		t.Fatal("renewal with a short ttl failed")
	}
	b.expire(t, shortTTL, "renewed lease expires with its new ttl", func() bool {
		_, err := s.LeaseHolder(ctx(t), "b")
		return err != nil
	})
	wantHolder(t, s, "b", "")
}

func testLeaseExpirySteal(t *testing.T, b *Backend) {
	s := b.Store
	acquire(t, s, "b", "dead", shortTTL)
	if !b.realTime() {
		b.Advance(shortTTL / 2)
		if acquire(t, s, "b", "r2", longTTL) {
			t.Fatal("lease stolen before expiry")
		}
	}
	b.expire(t, shortTTL, "expired lease can be taken", func() bool {
		return acquire(t, s, "b", "r2", longTTL)
	})
	wantHolder(t, s, "b", "r2")
	wantErr(t, s.ReleaseLease(ctx(t), "b", "dead"), store.ErrNotHolder, "release by the expired holder")
	wantHolder(t, s, "b", "r2")
}

func testLeaseConcurrent(t *testing.T, b *Backend) {
	s := b.Store
	const contenders = 16
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range contenders {
		holder := fmt.Sprintf("r%d", i)
		wg.Go(func() {
			<-start
			ok, err := s.AcquireLease(ctx(t), "contested", holder, longTTL)
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, holder)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
	wantHolder(t, s, "contested", winners[0])
}

func testLeaseInvalid(t *testing.T, b *Backend) {
	s := b.Store
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "h", time.Second}, {"n", "", time.Second}, {"n", "h", 0}, {"n", "h", -time.Second}} {
		_, err := s.AcquireLease(ctx(t), c.name, c.holder, c.ttl)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("AcquireLease(%q, %q, %v)", c.name, c.holder, c.ttl))
	}
	wantHolder(t, s, "n", "")
	wantErr(t, s.Heartbeat(ctx(t), "", time.Second), store.ErrInvalid, "Heartbeat empty member")
	wantErr(t, s.Heartbeat(ctx(t), "m", 0), store.ErrInvalid, "Heartbeat zero ttl")
}

func members(t *testing.T, s store.Store) []string {
	t.Helper()
	m, err := s.Members(ctx(t))
	mustNoErr(t, err, "Members")
	return m
}

func testMembership(t *testing.T, b *Backend) {
	s := b.Store
	if m := members(t, s); len(m) != 0 {
		t.Fatalf("Members of empty store = %v", m)
	}
	for _, m := range []string{"replica-c", "replica-a", "replica-b", "replica-a"} {
		mustNoErr(t, s.Heartbeat(ctx(t), m, longTTL), "Heartbeat")
	}
	if m := members(t, s); !slices.Equal(m, []string{"replica-a", "replica-b", "replica-c"}) {
		t.Fatalf("Members = %v", m)
	}
	mustNoErr(t, s.Leave(ctx(t), "replica-b"), "Leave")
	mustNoErr(t, s.Leave(ctx(t), "unknown"), "Leave unknown")
	if m := members(t, s); !slices.Equal(m, []string{"replica-a", "replica-c"}) {
		t.Fatalf("Members after leave = %v", m)
	}
	mustNoErr(t, s.Heartbeat(ctx(t), "replica-b", longTTL), "Heartbeat after leave")
	if m := members(t, s); !slices.Equal(m, []string{"replica-a", "replica-b", "replica-c"}) {
		t.Fatalf("Members after rejoin = %v", m)
	}
}

func testMembershipExpiry(t *testing.T, b *Backend) {
	s := b.Store
	mustNoErr(t, s.Heartbeat(ctx(t), "alive", longTTL), "Heartbeat alive")
	mustNoErr(t, s.Heartbeat(ctx(t), "dying", shortTTL), "Heartbeat dying")
	if !b.realTime() {
		b.Advance(shortTTL / 2)
		if m := members(t, s); !slices.Equal(m, []string{"alive", "dying"}) {
			t.Fatalf("Members before expiry = %v", m)
		}
		// A heartbeat renews.
		mustNoErr(t, s.Heartbeat(ctx(t), "dying", shortTTL), "renew")
		b.Advance(shortTTL * 3 / 4)
		if m := members(t, s); !slices.Equal(m, []string{"alive", "dying"}) {
			t.Fatalf("Members after renewal = %v", m)
		}
	}
	b.expire(t, shortTTL, "silent member drops out", func() bool {
		return slices.Equal(members(t, s), []string{"alive"})
	})
	// A member that comes back is listed again.
	mustNoErr(t, s.Heartbeat(ctx(t), "dying", longTTL), "Heartbeat back")
	if m := members(t, s); !slices.Equal(m, []string{"alive", "dying"}) {
		t.Fatalf("Members after return = %v", m)
	}
}

func claim(t *testing.T, s store.Store, name, holder string, ttl time.Duration) (store.Lease, bool) {
	t.Helper()
	l, ok, err := s.ClaimLease(ctx(t), name, holder, ttl)
	mustNoErr(t, err, "ClaimLease "+name+" by "+holder)
	return l, ok
}

// testLeaseFencing: every new grant gets a larger token, a renewal keeps
// it, and only the current grant can renew or release.
func testLeaseFencing(t *testing.T, b *Backend) {
	s := b.Store
	l1, ok := claim(t, s, "b", "r1", longTTL)
	if !ok || l1.Holder != "r1" || l1.Token <= 0 || l1.Name != "b" || l1.Since.IsZero() {
		t.Fatalf("first claim = %+v, %v", l1, ok)
	}
	if again, ok := claim(t, s, "b", "r1", longTTL); !ok || again.Token != l1.Token {
		t.Fatalf("claim by the holder = %+v, %v; want the same token %d", again, ok, l1.Token)
	}
	if other, ok := claim(t, s, "b", "r2", longTTL); ok || other.Holder != "r1" || other.Token != l1.Token {
		t.Fatalf("claim of a held lease = %+v, %v; want r1's lease", other, ok)
	}
	if ok, err := s.RenewLease(ctx(t), l1, longTTL); err != nil || !ok {
		t.Fatalf("RenewLease by the holder = %v, %v", ok, err)
	}
	mustNoErr(t, s.ReleaseHeld(ctx(t), l1), "ReleaseHeld by the holder")
	wantHolder(t, s, "b", "")
	// The same holder claiming again gets a new grant: its old lease is dead.
	l2, ok := claim(t, s, "b", "r1", longTTL)
	if !ok || l2.Token <= l1.Token {
		t.Fatalf("second grant token %d, want > %d", l2.Token, l1.Token)
	}
	if ok, err := s.RenewLease(ctx(t), l1, longTTL); err != nil || ok {
		t.Fatalf("renewal of a superseded grant = %v, %v; want false", ok, err)
	}
	wantErr(t, s.ReleaseHeld(ctx(t), l1), store.ErrNotHolder, "release of a superseded grant")
	wantHolder(t, s, "b", "r1")
	stale := l2
	stale.Holder = "r2"
	wantErr(t, s.ReleaseHeld(ctx(t), stale), store.ErrNotHolder, "release by another holder with the token")
	if ok, _ := s.RenewLease(ctx(t), stale, longTTL); ok {
		t.Fatal("another holder renewed with the current token")
	}
	// AcquireLease grants carry tokens too.
	if !acquire(t, s, "c", "r3", longTTL) {
		t.Fatal("AcquireLease of a free lease failed")
	}
	if l, ok := claim(t, s, "c", "r3", longTTL); !ok || l.Token <= 0 {
		t.Fatalf("claim after AcquireLease = %+v, %v", l, ok)
	}
}

// testLeaseFencingExpiry: after a lease expires and is taken over, the old
// holder can neither renew nor release it, and tokens never go back.
func testLeaseFencingExpiry(t *testing.T, b *Backend) {
	s := b.Store
	old, _ := claim(t, s, "b", "dead", shortTTL)
	var next store.Lease
	b.expire(t, shortTTL, "expired lease can be claimed", func() bool {
		var ok bool
		next, ok = claim(t, s, "b", "r2", longTTL)
		return ok
	})
	if next.Token <= old.Token {
		t.Fatalf("takeover token %d, want > %d", next.Token, old.Token)
	}
	if ok, err := s.RenewLease(ctx(t), old, longTTL); err != nil || ok {
		t.Fatalf("renewal by the expired holder = %v, %v; want false", ok, err)
	}
	wantErr(t, s.ReleaseHeld(ctx(t), old), store.ErrNotHolder, "release by the expired holder")
	wantHolder(t, s, "b", "r2")
	// An expired lease nobody took cannot be renewed either: its holder
	// must claim it again (and gets a new token).
	l, _ := claim(t, s, "x", "r1", shortTTL)
	b.expire(t, shortTTL, "unrenewed lease expires", func() bool {
		_, err := s.LeaseHolder(ctx(t), "x")
		return err != nil
	})
	if ok, _ := s.RenewLease(ctx(t), l, longTTL); ok {
		t.Fatal("an expired lease was renewed")
	}
	if l2, ok := claim(t, s, "x", "r1", longTTL); !ok || l2.Token <= l.Token {
		t.Fatalf("claim after expiry = %+v, %v; want a token > %d", l2, ok, l.Token)
	}
}

// testLeaseClaimConcurrent: of many concurrent claims exactly one wins and
// every loser is told the winner.
func testLeaseClaimConcurrent(t *testing.T, b *Backend) {
	s := b.Store
	const contenders = 16
	var wg sync.WaitGroup
	results := make([]store.Lease, contenders)
	won := make([]bool, contenders)
	for i := range contenders {
		wg.Go(func() {
			l, ok, err := s.ClaimLease(ctx(t), "contested", fmt.Sprintf("r%d", i), longTTL)
			if err != nil {
				t.Errorf("ClaimLease: %v", err)
			}
			results[i], won[i] = l, ok
		})
	}
	wg.Wait()
	winner := ""
	for i, ok := range won {
		if ok {
			if winner != "" {
				t.Fatalf("two winners: %s and %s", winner, results[i].Holder)
			}
			winner = results[i].Holder
		}
	}
	for i, l := range results {
		if l.Holder != winner {
			t.Fatalf("contender %d was told holder %q, winner %q", i, l.Holder, winner)
		}
	}
}

// testPinSetting: the first value recorded stays; later ones read it back.
func testPinSetting(t *testing.T, b *Backend) {
	s := b.Store
	got, err := s.PinSetting(ctx(t), "buckets", "1024")
	if err != nil || got != "1024" {
		t.Fatalf("first PinSetting = %q, %v", got, err)
	}
	got, err = s.PinSetting(ctx(t), "buckets", "512")
	if err != nil || got != "1024" {
		t.Fatalf("second PinSetting = %q, %v; want the recorded 1024", got, err)
	}
	if got, _ := s.PinSetting(ctx(t), "other", "x"); got != "x" {
		t.Fatalf("settings are not independent: %q", got)
	}
	_, err = s.PinSetting(ctx(t), "", "x")
	wantErr(t, err, store.ErrInvalid, "PinSetting with an empty name")
}
