package catchup

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/relayhq/relay/internal/fanout"
)

// benchSubs is how many subscriptions BenchmarkObserveLive spreads its
// events over.
const benchSubs = 100_000

// BenchmarkObserveLive is the per-event cost of catch-up on the event path:
// published live message.created events of many subscriptions, from as many
// goroutines as GOMAXPROCS (the fan-out's senders). thawed: the events move
// cursors (and mark them dirty); frozen: they are remembered until a
// catch-up ends.
func BenchmarkObserveLive(b *testing.B) {
	for _, tc := range []struct {
		name   string
		thawed bool
		ids    int
	}{{"thawed", true, 1024}, {"frozen", false, 16}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := New(Options{Source: newFakeSource(b), Cursors: &failingCursors{}, Sink: newRecSink()})
			if err != nil {
				b.Fatal(err)
			}
			targets := make([]*Target, benchSubs)
			for i := range targets {
				targets[i] = &Target{ID: strconv.Itoa(i), State: new(State)}
				targets[i].State.set(thawed, tc.thawed)
			}
			routes := benchRoutes(tc.ids)
			for i := range targets { // cursors and pending made: the steady state
				c.ObserveLive(targets[i], routes[0])
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for i := rand.N(benchSubs); pb.Next(); i++ {
					c.ObserveLive(targets[i%benchSubs], routes[i/benchSubs%len(routes)])
				}
			})
		})
	}
}

// benchRoutes are n message.created routes of one conversation with
// ascending ids. Each round over the subscriptions takes the next: a
// thawed cursor moves with most events, and a frozen subscription
// remembers at most n ids.
func benchRoutes(n int) []fanout.Route {
	rs := make([]fanout.Route, n)
	for i := range rs {
		rs[i] = fanout.Route{Kind: fanout.KindMessage, Event: evMessageCreated, AccountID: "1",
			ConversationID: "7", MessageID: strconv.Itoa(i + 1)}
	}
	return rs
}
