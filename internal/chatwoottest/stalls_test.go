package chatwoottest

import (
	"testing"
	"time"
)

// TestRateExcessAllowsForStalls: subscribes stamped together at the end of
// a stall of the fake's process count against the pace over the window
// and the stall; without a stall the same bunch is an excess.
func TestRateExcessAllowsForStalls(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l SubscribeLog
	for i := range 10 { // 10/s, evenly
		l.Record("x", t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	at := t0.Add(2 * time.Second)
	for range 5 { // what was sent during a 400 ms stall, read at its end
		l.Record("x", at)
	}
	for i := range 10 {
		l.Record("x", at.Add(time.Duration(i)*100*time.Millisecond))
	}
	if w := l.RateExcess(time.Second, 10, 2, nil); w.Count != 15 || w.Excess != 3 || !w.Start.Equal(at) {
		t.Errorf("without stalls: %+v; want 15 from %v, excess 3", w, at)
	}
	if w := l.RateExcess(time.Second, 10, 2, []Stall{{End: at, Length: 400 * time.Millisecond}}); w.Excess > 0 {
		t.Errorf("with the stall: %+v; want no excess", w)
	}
	if w := l.RateExcess(time.Second, 10, 2, []Stall{{End: at.Add(-time.Millisecond), Length: time.Second}}); w.Excess != 3 {
		t.Errorf("a stall that ended before the bunch excused %v of it", 3-w.Excess)
	}
	if h := l.Histogram(at, 500*time.Millisecond, 3); h[0] != 10 || h[1] != 5 || h[2] != 0 {
		t.Errorf("histogram %v, want [10 5 0]", h)
	}
}
