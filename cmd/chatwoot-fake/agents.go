package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// errNoOpenConversation: the agents have nobody to reply to.
var errNoOpenConversation = errors.New("no open conversation to reply to")

// agents are the simulated agents: account 1's agent replies round-robin to
// the conversations that are not resolved, at a rate the control API can
// change, typing before each reply like a person.
type agents struct {
	fake    *chatwoottest.Server
	changed chan struct{} // wakes run after a rate change

	mu      sync.Mutex // guards the fields below
	rate    float64    // replies per second; 0 = none
	next    int        // round-robin position
	replies int        // replies sent, numbering their content
}

func newAgents(fake *chatwoottest.Server, rate float64) *agents {
	return &agents{fake: fake, rate: rate, changed: make(chan struct{}, 1)}
}

// setRate changes the reply rate (validated by the caller).
func (a *agents) setRate(perSecond float64) {
	a.mu.Lock()
	a.rate = perSecond
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *agents) interval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / a.rate)
}

// run replies at the current rate until ctx ends. A reply that finds no
// open conversation is skipped.
func (a *agents) run(ctx context.Context) {
	for {
		var tick <-chan time.Time
		var timer *time.Timer
		if d := a.interval(); d > 0 {
			timer = time.NewTimer(d)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
		case <-a.changed:
		case <-tick:
			a.reply()
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// load sends n replies at once, as fast as the fake takes them.
func (a *agents) load(n int) (int, error) {
	for i := range n {
		if err := a.reply(); err != nil {
			return i, err
		}
	}
	return n, nil
}

// reply types and replies in the next open conversation.
func (a *agents) reply() error {
	conv, n, err := a.pick()
	if err != nil {
		return err
	}
	a.fake.AgentTyping(conv.AccountID, conv.DisplayID, true, false)
	_, err = a.fake.AgentReply(conv.AccountID, conv.DisplayID, fmt.Sprintf("Agent reply %d: we are looking into it.", n))
	a.fake.AgentTyping(conv.AccountID, conv.DisplayID, false, false)
	return err
}

func (a *agents) pick() (chatwoottest.Conversation, int, error) {
	var open []chatwoottest.Conversation
	for _, c := range a.fake.Conversations() {
		if c.Status != "resolved" && c.SourceID != "" {
			open = append(open, c)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(open) == 0 {
		return chatwoottest.Conversation{}, 0, errNoOpenConversation
	}
	conv := open[a.next%len(open)]
	a.next++
	a.replies++
	return conv, a.replies, nil
}
