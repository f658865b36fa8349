package feeds

import "time"

// settleAfter is how long a live message must have been in NATS before
// the cursor may pass it. Chatwoot's broadcasts to one token can swap
// (chatwoot-protocol.md §1.5): message 15 may be published while 14 is
// still on its way, and a socket dropping then would lose 14 for good if
// the cursor moved to 15 at once. Catch-ups read again what is younger.
const settleAfter = 5 * time.Second

// maxMarks bounds the unsettled live messages remembered per subscription;
// past it the oldest settle early.
const maxMarks = 256

// liveMark is a live message in NATS and when it was seen there.
type liveMark struct {
	id int64
	at time.Time
}

// live tracks the live messages of a subscription in NATS. Guarded by
// Manager.mu.
type live struct {
	settled int64      // highest id older than settleAfter
	recent  []liveMark // younger ones, in arrival order
}

func (l *live) add(id int64, now time.Time) {
	l.settle(now)
	l.recent = append(l.recent, liveMark{id, now})
	if len(l.recent) > maxMarks {
		l.settled = max(l.settled, l.recent[0].id)
		l.recent = l.recent[1:]
	}
}

// settle folds the marks older than settleAfter into settled and returns it.
func (l *live) settle(now time.Time) int64 {
	i := 0
	for ; i < len(l.recent) && now.Sub(l.recent[i].at) >= settleAfter; i++ {
		l.settled = max(l.settled, l.recent[i].id)
	}
	l.recent = l.recent[i:]
	return l.settled
}
