package chatwoottest

import (
	"slices"
	"sync"
	"time"
)

// TokenEvent is a confirmed subscription of Token starting (Subscribed) or
// ending on connection Conn.
type TokenEvent struct {
	Token      string
	Conn       int64
	Subscribed bool
	At         time.Time
}

// TokenLog records, per token, when it was subscribed and unsubscribed on
// which connection, to tell how long a token was held by two sockets at
// once. Its Record method fits Options.OnToken. The zero value is ready.
type TokenLog struct {
	mu     sync.Mutex
	events []TokenEvent
}

// Record notes one event.
func (l *TokenLog) Record(ev TokenEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

// Events returns the recorded events in time order.
func (l *TokenLog) Events() []TokenEvent {
	l.mu.Lock()
	evs := slices.Clone(l.events)
	l.mu.Unlock()
	slices.SortStableFunc(evs, func(a, b TokenEvent) int { return a.At.Compare(b.At) })
	return evs
}

// Overlap is a span during which one token was subscribed on more than
// one connection.
type Overlap struct {
	Token    string
	From     time.Time
	Duration time.Duration
}

// Overlaps returns every span, between from and to, during which a token
// was subscribed on two connections or more; a span still open at to ends
// there. Events before from only set the starting state.
func (l *TokenLog) Overlaps(from, to time.Time) []Overlap {
	conns := map[string]map[int64]bool{}
	open := map[string]time.Time{}
	var out []Overlap
	for _, ev := range l.Events() {
		if ev.At.After(to) {
			break
		}
		cs := conns[ev.Token]
		if cs == nil {
			cs = map[int64]bool{}
			conns[ev.Token] = cs
		}
		if ev.Subscribed {
			cs[ev.Conn] = true
		} else {
			delete(cs, ev.Conn)
		}
		start, ok := open[ev.Token]
		switch {
		case len(cs) > 1 && !ok:
			open[ev.Token] = maxTime(ev.At, from)
		case len(cs) <= 1 && ok:
			delete(open, ev.Token)
			if ev.At.After(from) {
				out = append(out, Overlap{Token: ev.Token, From: start, Duration: ev.At.Sub(start)})
			}
		}
	}
	for tok, start := range open {
		out = append(out, Overlap{Token: tok, From: start, Duration: to.Sub(start)})
	}
	return out
}

// Subscribed returns the tokens subscribed at the end of the log, with the
// number of connections holding each.
func (l *TokenLog) Subscribed() map[string]int {
	conns := map[string]map[int64]bool{}
	for _, ev := range l.Events() {
		if conns[ev.Token] == nil {
			conns[ev.Token] = map[int64]bool{}
		}
		if ev.Subscribed {
			conns[ev.Token][ev.Conn] = true
		} else {
			delete(conns[ev.Token], ev.Conn)
		}
	}
	out := map[string]int{}
	for tok, cs := range conns {
		if len(cs) > 0 {
			out[tok] = len(cs)
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
