package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// memLeases is store.Leases in memory on the bubble's clock: the timing
// tests run thousands of lease operations, which the contract suite
// (storetest) already checks on the real backends.
type memLeases struct {
	mu       sync.Mutex
	leases   map[string]memLease
	fences   map[string]int64
	members  map[string]time.Time
	settings map[string]string
}

type memLease struct {
	l       store.Lease
	expires time.Time
}

func newMemLeases() *memLeases {
	return &memLeases{leases: map[string]memLease{}, fences: map[string]int64{},
		members: map[string]time.Time{}, settings: map[string]string{}}
}

func (m *memLeases) live(name string) (memLease, bool) {
	l, ok := m.leases[name]
	return l, ok && time.Now().Before(l.expires)
}

func (m *memLeases) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	_, ok, err := m.ClaimLease(ctx, name, holder, ttl)
	return ok, err
}

func (m *memLeases) ClaimLease(_ context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, live := m.live(name)
	if live && cur.l.Holder != holder {
		return cur.l, false, nil
	}
	if !live {
		m.fences[name]++
		cur.l = store.Lease{Name: name, Holder: holder, Token: m.fences[name], Since: time.Now()}
	}
	cur.expires = time.Now().Add(ttl)
	m.leases[name] = cur
	return cur.l, true, nil
}

func (m *memLeases) RenewLease(_ context.Context, l store.Lease, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, live := m.live(l.Name)
	if !live || cur.l != l {
		return false, nil
	}
	cur.expires = time.Now().Add(ttl)
	m.leases[l.Name] = cur
	return true, nil
}

func (m *memLeases) ReleaseHeld(_ context.Context, l store.Lease) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, live := m.live(l.Name); !live || cur.l != l {
		return store.ErrNotHolder
	}
	delete(m.leases, l.Name)
	return nil
}

func (m *memLeases) ReleaseLease(_ context.Context, name, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, live := m.live(name); !live || cur.l.Holder != holder {
		return store.ErrNotHolder
	}
	delete(m.leases, name)
	return nil
}

func (m *memLeases) LeaseHolder(_ context.Context, name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, live := m.live(name); live {
		return cur.l.Holder, nil
	}
	return "", store.ErrNotFound
}

func (m *memLeases) Heartbeat(_ context.Context, member string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[member] = time.Now().Add(ttl)
	return nil
}

func (m *memLeases) Leave(_ context.Context, member string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, member)
	return nil
}

func (m *memLeases) Members(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, exp := range m.members {
		if time.Now().Before(exp) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *memLeases) PinSetting(_ context.Context, name, value string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.settings[name]; ok {
		return v, nil
	}
	m.settings[name] = value
	return value, nil
}
