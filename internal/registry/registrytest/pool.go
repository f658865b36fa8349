// Package registrytest has a stand-in for the cable pool the registry
// subscribes into, for tests of the registry and of what is built on it.
package registrytest

import (
	"sync"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
)

// Pool keeps the records the registry adds, subscribes nothing, and
// implements registry.Pool. States are set by the test.
type Pool struct {
	mu    sync.Mutex
	subs  map[string]*fanout.Sub
	state map[string]cable.State
}

// NewPool returns an empty Pool.
func NewPool() *Pool {
	return &Pool{subs: map[string]*fanout.Sub{}, state: map[string]cable.State{}}
}

// Add keeps sub under the token's subscription id; an invalid token is
// refused as the pool refuses it.
func (p *Pool) Add(token string, sub *fanout.Sub) (string, error) {
	if !cable.ValidToken(token) {
		return "", cable.ErrBadToken
	}
	id := cable.SubscriptionID(token)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subs[id] = sub
	return id, nil
}

// Remove forgets id and reports whether it was held.
func (p *Pool) Remove(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.subs[id]
	delete(p.subs, id)
	delete(p.state, id)
	return ok
}

// Invalidate marks a held subscription invalid.
func (p *Pool) Invalidate(id, _ string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.subs[id]; !ok || p.state[id] == cable.StateInvalid {
		return false
	}
	p.state[id] = cable.StateInvalid
	return true
}

// Get returns id's state as set by the test.
func (p *Pool) Get(id string) (cable.Info[*fanout.Sub], bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[id]
	if !ok {
		return cable.Info[*fanout.Sub]{}, false
	}
	return cable.Info[*fanout.Sub]{ID: id, Meta: s, State: p.state[id]}, true
}

// Lookup returns the record added for id.
func (p *Pool) Lookup(id string) (*fanout.Sub, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[id]
	return s, ok
}

// Len is the number of subscriptions held.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// Each calls fn for every held subscription.
func (p *Pool) Each(fn func(string, *fanout.Sub)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.subs {
		fn(id, s)
	}
}

// Record returns the record added for id, or nil.
func (p *Pool) Record(id string) *fanout.Sub {
	s, _ := p.Lookup(id)
	return s
}

// Has reports whether id is held.
func (p *Pool) Has(id string) bool { return p.Record(id) != nil }

// SetState sets the state Get reports for id.
func (p *Pool) SetState(id string, st cable.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state[id] = st
}
