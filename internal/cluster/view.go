package cluster

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// Member returns this replica's member name.
func (c *Cluster) Member() string { return c.cfg.Member }

// Buckets returns the deployment's bucket count.
func (c *Cluster) Buckets() int { return c.cfg.Buckets }

// Owns reports whether this member holds bucket.
func (c *Cluster) Owns(bucket int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.held[bucket]
	return ok
}

// OwnsID reports whether this member holds the bucket of subscription id.
func (c *Cluster) OwnsID(id string) bool { return c.Owns(Bucket(id, c.cfg.Buckets)) }

// BucketOf returns the bucket of subscription id.
func (c *Cluster) BucketOf(id string) int { return Bucket(id, c.cfg.Buckets) }

// Held returns how many buckets this member holds.
func (c *Cluster) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// HeldBuckets returns the held buckets in order.
func (c *Cluster) HeldBuckets() []int {
	c.mu.Lock()
	out := make([]int, 0, len(c.held))
	for b := range c.held {
		out = append(out, b)
	}
	c.mu.Unlock()
	slices.Sort(out)
	return out
}

func (c *Cluster) heldLeases() []store.Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]store.Lease, 0, len(c.held))
	for _, l := range c.held {
		out = append(out, l)
	}
	return out
}

// OwnerOf returns the member holding the bucket of subscription id, or ""
// when nobody holds it now.
func (c *Cluster) OwnerOf(ctx context.Context, id string) (string, error) {
	b := Bucket(id, c.cfg.Buckets)
	if c.Owns(b) {
		return c.cfg.Member, nil
	}
	h, err := c.cfg.Store.LeaseHolder(ctx, LeaseName(b))
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return h, err
}

// Status is this member's view of the deployment.
type Status struct {
	Member         string         `json:"member"`
	Buckets        int            `json:"buckets"`
	Held           int            `json:"buckets_held"`
	Members        []MemberStatus `json:"members"`
	Unheld         int            `json:"buckets_unheld"`
	OldestLease    float64        `json:"oldest_lease_age_seconds"`
	NewestLease    float64        `json:"newest_lease_age_seconds"`
	LastHandover   *Handover      `json:"last_handover,omitempty"`
	StoreReachable bool           `json:"store_reachable"`
}

// MemberStatus is one live member and the buckets it holds.
type MemberStatus struct {
	Name        string `json:"name"`
	BucketsHeld int    `json:"buckets_held"`
}

// Status reads the holder of every bucket (one store read each) and
// reports them with this member's own leases.
func (c *Cluster) Status(ctx context.Context) (Status, error) {
	c.mu.Lock()
	s := Status{Member: c.cfg.Member, Buckets: c.cfg.Buckets, Held: len(c.held), StoreReachable: !c.unreachable}
	members := slices.Clone(c.members)
	if !c.last.At.IsZero() {
		h := c.last
		s.LastHandover = &h
	}
	now := time.Now()
	for _, l := range c.held {
		age := now.Sub(l.Since).Seconds()
		if s.OldestLease == 0 || age > s.OldestLease {
			s.OldestLease = age
		}
		if s.NewestLease == 0 || age < s.NewestLease {
			s.NewestLease = age
		}
	}
	c.mu.Unlock()
	counts := make(map[string]int, len(members))
	for b := range c.cfg.Buckets {
		h, err := c.cfg.Store.LeaseHolder(ctx, LeaseName(b))
		switch {
		case errors.Is(err, store.ErrNotFound):
			s.Unheld++
		case err != nil:
			return s, err
		default:
			counts[h]++
		}
	}
	for _, m := range members {
		s.Members = append(s.Members, MemberStatus{Name: m, BucketsHeld: counts[m]})
		delete(counts, m)
	}
	for m, n := range counts { // holders whose heartbeat lapsed
		s.Members = append(s.Members, MemberStatus{Name: m, BucketsHeld: n})
	}
	return s, nil
}
