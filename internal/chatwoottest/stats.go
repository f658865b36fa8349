package chatwoottest

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// counters are the server's running totals.
type counters struct {
	connsAccepted, connsOpen                          atomic.Int64
	subscribes, duplicateSubscribes, brokenSubscribes atomic.Int64
	confirms, rejects                                 atomic.Int64
	unsubscribes, unknownUnsubscribes                 atomic.Int64
	presenceUpdates, ignoredMessages, malformed       atomic.Int64
	broadcasts, broadcastsLost, broadcastFrames       atomic.Int64
	framesSent, framesDropped, pings                  atomic.Int64
}

// Stats is a snapshot of what the fake has done.
type Stats struct {
	ConnectionsOpen     int64 // websocket connections currently open
	ConnectionsAccepted int64 // websocket connections ever upgraded

	Subscribes          int64 // subscribe commands executed
	DuplicateSubscribes int64 // subscribes for an identifier already on that connection
	BrokenSubscribes    int64 // subscribes left unconfirmed (unknown token, user token)
	Confirms            int64 // confirm_subscription frames queued
	Rejects             int64 // reject_subscription frames queued (RejectToken)
	Unsubscribes        int64 // unsubscribes that removed a subscription
	UnknownUnsubscribes int64 // unsubscribes for an identifier not on that connection
	PresenceUpdates     int64 // update_presence actions performed
	IgnoredMessages     int64 // message commands that did nothing (unknown identifier or action, broken subscription)
	Malformed           int64 // frames and commands that could not be executed

	Broadcasts      int64 // broadcasts to a token (events), presence replies included
	BroadcastsLost  int64 // broadcasts discarded because the server was stalled
	BroadcastFrames int64 // broadcast frames queued to subscriptions
	FramesSent      int64 // frames written to sockets (all types)
	FramesDropped   int64 // queued frames discarded (stall, connection closed)
	Pings           int64 // ping frames written

	// REST requests by route name (see the Route constants), faulted and
	// throttled ones included.
	Requests map[string]int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		ConnectionsOpen:     c.connsOpen.Load(),
		ConnectionsAccepted: c.connsAccepted.Load(),
		Subscribes:          c.subscribes.Load(),
		DuplicateSubscribes: c.duplicateSubscribes.Load(),
		BrokenSubscribes:    c.brokenSubscribes.Load(),
		Confirms:            c.confirms.Load(),
		Rejects:             c.rejects.Load(),
		Unsubscribes:        c.unsubscribes.Load(),
		UnknownUnsubscribes: c.unknownUnsubscribes.Load(),
		PresenceUpdates:     c.presenceUpdates.Load(),
		IgnoredMessages:     c.ignoredMessages.Load(),
		Malformed:           c.malformed.Load(),
		Broadcasts:          c.broadcasts.Load(),
		BroadcastsLost:      c.broadcastsLost.Load(),
		BroadcastFrames:     c.broadcastFrames.Load(),
		FramesSent:          c.framesSent.Load(),
		FramesDropped:       c.framesDropped.Load(),
		Pings:               c.pings.Load(),
		Requests:            s.rest.requestCounts(),
	}
}

// SubscribeLog records when subscribes arrived. Its Record method fits
// Options.OnSubscribe. The zero value is ready to use.
type SubscribeLog struct {
	mu    sync.Mutex
	times []time.Time
}

// Record notes one subscribe at time at.
func (l *SubscribeLog) Record(_ string, at time.Time) {
	l.mu.Lock()
	l.times = append(l.times, at)
	l.mu.Unlock()
}

// Len returns how many subscribes were recorded.
func (l *SubscribeLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.times)
}

// Times returns the recorded times in order.
func (l *SubscribeLog) Times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.times)
}

// MaxInWindow returns the largest number of subscribes recorded within any
// half-open interval [t, t+window).
func (l *SubscribeLog) MaxInWindow(window time.Duration) int {
	ts := l.Times()
	slices.SortFunc(ts, time.Time.Compare)
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
