package chatwoottest

import (
	"slices"
	"sync"
	"time"
)

// Stall is a span during which the process running the fake ran none of
// its goroutines in time (descheduled by the system, or stopped by the
// runtime): whatever the fake reads then is stamped when it runs again, so
// subscribes sent over the whole span are recorded as arriving at once.
type Stall struct {
	End    time.Time
	Length time.Duration
}

// StallProbe records the stalls of this process: a goroutine that wakes
// every millisecond and notes every wake-up later than the threshold.
type StallProbe struct {
	threshold time.Duration
	stop      chan struct{}
	done      chan struct{}

	mu     sync.Mutex
	stalls []Stall
}

// NewStallProbe starts a probe noting stalls longer than threshold; Close
// stops it.
func NewStallProbe(threshold time.Duration) *StallProbe {
	p := &StallProbe{threshold: threshold, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

const probeTick = time.Millisecond

func (p *StallProbe) run() {
	defer close(p.done)
	t := time.NewTicker(probeTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			now = time.Now() // the tick's time is when it was due, not when this ran
			if late := now.Sub(last) - probeTick; late > p.threshold {
				p.mu.Lock()
				p.stalls = append(p.stalls, Stall{End: now, Length: late})
				p.mu.Unlock()
			}
			last = now
		}
	}
}

// Close stops the probe.
func (p *StallProbe) Close() {
	close(p.stop)
	<-p.done
}

// Stalls returns the stalls noted so far, in time order.
func (p *StallProbe) Stalls() []Stall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stalls)
}

// RateWindow is the worst window RateExcess found.
type RateWindow struct {
	Start  time.Time
	Count  int           // subscribes stamped in it
	Stall  time.Duration // the longest stall that ended in it
	Excess float64       // Count beyond perSecond·(window+Stall)+burst; ≤ 0 when the pace was kept
}

// RateExcess checks the subscribes against a pace of perSecond with burst,
// as the client sent them: in any window [t, t+window) the fake may have
// stamped the subscribes sent within window plus the longest stall that
// ended in it (what arrived during a stall is stamped at its end). It
// returns the window with the most subscribes beyond that.
func (l *SubscribeLog) RateExcess(window time.Duration, perSecond float64, burst int, stalls []Stall) RateWindow {
	ts := l.Times()
	slices.SortFunc(ts, time.Time.Compare)
	worst := RateWindow{Excess: -perSecond*window.Seconds() - float64(burst)}
	lo := 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= window {
			lo++
		}
		n := hi - lo + 1
		s := longestStall(stalls, ts[lo], ts[lo].Add(window))
		if e := float64(n) - perSecond*(window+s).Seconds() - float64(burst); e > worst.Excess {
			worst = RateWindow{Start: ts[lo], Count: n, Stall: s, Excess: e}
		}
	}
	return worst
}

// Histogram counts the subscribes stamped in each step from start, n
// steps.
func (l *SubscribeLog) Histogram(start time.Time, step time.Duration, n int) []int {
	out := make([]int, n)
	for _, at := range l.Times() {
		if d := at.Sub(start); d >= 0 && d < step*time.Duration(n) {
			out[d/step]++
		}
	}
	return out
}

// longestStall is the longest of stalls ending within [from, to).
func longestStall(stalls []Stall, from, to time.Time) time.Duration {
	var longest time.Duration
	for _, s := range stalls {
		if !s.End.Before(from) && s.End.Before(to) {
			longest = max(longest, s.Length)
		}
	}
	return longest
}
