package api

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/fixtures"
)

func TestEchoTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := NewEchoTracker(2)

		// Observed between Expect and wait: wait returns at once.
		wait, cancel := tr.Expect("a")
		tr.Observe("a")
		if !wait(context.Background()) {
			t.Error("echo observed before wait was missed")
		}
		cancel()

		// Observed while waiting.
		wait, cancel = tr.Expect("b")
		got := make(chan bool)
		go func() { got <- wait(context.Background()) }()
		synctest.Wait()
		tr.Observe("b")
		if !<-got {
			t.Error("echo observed while waiting was missed")
		}
		cancel()

		// Not observed: the context ends the wait.
		wait, cancel = tr.Expect("c")
		ctx, stop := context.WithTimeout(context.Background(), time.Second)
		if wait(ctx) {
			t.Error("wait without an echo returned true")
		}
		stop()
		cancel()
		tr.Observe("c") // after cancel: ignored, no panic
		if n := tr.Pending(); n != 0 {
			t.Errorf("pending = %d after cancels", n)
		}

		// Two waiters for one echo_id are both released.
		w1, c1 := tr.Expect("d")
		w2, c2 := tr.Expect("d")
		tr.Observe("d")
		if !w1(context.Background()) || !w2(context.Background()) {
			t.Error("one of two waiters missed the echo")
		}
		c1()
		c2()

		// Full tracker: Expect fails fast, and frees up after cancel.
		_, ca := tr.Expect("x")
		_, cb := tr.Expect("y")
		full, cfull := tr.Expect("z")
		tr.Observe("z")
		if full(context.Background()) {
			t.Error("expectation over the bound was kept")
		}
		cfull()
		ca()
		cb()
		if n := tr.Pending(); n != 0 {
			t.Errorf("pending = %d", n)
		}
		if wait, _, ok := tr.expect(""); ok || wait(context.Background()) {
			t.Error("empty echo_id accepted")
		}
	})
}

func TestEventEchoID(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
		ok         bool
	}{
		{"fixture incoming echo", string(fixtures.Read(t, "cable/02_message.created.incoming_echo.json")), "", false}, // a frame, not an event body
		{"string", `{"event":"message.created","data":{"id":1,"echo_id":"e-1"}}`, "e-1", true},
		{"number", `{"event":"message.created","data":{"echo_id":12}}`, "12", true},
		{"null", `{"event":"message.created","data":{"echo_id":null}}`, "", false},
		{"other event", `{"event":"message.updated","data":{"echo_id":"e-1"}}`, "", false},
		{"no echo", string(fixtures.Read(t, "cable/03_message.created.agent_reply.json")), "", false},
		{"garbage", `{"event":"message.created","data":{"echo_id":`, "", false},
	}
	for _, tt := range tests {
		got, ok := EventEchoID([]byte(tt.body))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: EventEchoID = %q %v, want %q %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestObserveEventFixture feeds the message object of the recorded echo
// frame, as the relay publishes it.
func TestObserveEventFixture(t *testing.T) {
	var frame struct {
		Message jsonRaw `json:"message"`
	}
	unmarshal(t, fixtures.Read(t, "cable/02_message.created.incoming_echo.json"), &frame)
	tr := NewEchoTracker(0)
	wait, cancel := tr.Expect("echo-123")
	defer cancel()
	tr.ObserveEvent(frame.Message)
	if !wait(context.Background()) {
		t.Error("ObserveEvent missed the fixture's echo_id")
	}
	var msg struct {
		Data struct {
			ID json.Number `json:"id"`
		} `json:"data"`
	}
	unmarshal(t, frame.Message, &msg)
	if id, ok := tr.Seen("echo-123"); !ok || id != msg.Data.ID.String() {
		t.Errorf("Seen = %q %v, want the fixture's message id %s", id, ok, msg.Data.ID)
	}
}

// TestEchoMemory: observed echoes are remembered, expected or not, up to a
// bound, oldest forgotten first.
func TestEchoMemory(t *testing.T) {
	tr := NewEchoTracker(0)
	if _, ok := tr.Seen("never"); ok {
		t.Error("an echo never observed is seen")
	}
	tr.Observe("first")
	if id, ok := tr.Seen("first"); !ok || id != "" {
		t.Errorf("Seen(first) = %q %v", id, ok)
	}
	tr.ObserveMessage("first", "42") // the id, learned later, is kept
	for i := range echoMemory - 1 {
		tr.ObserveMessage("echo-"+strconv.Itoa(i), strconv.Itoa(i))
	}
	if id, _ := tr.Seen("first"); id != "42" {
		t.Errorf("Seen(first) = %q, want 42 while the memory is not over its bound", id)
	}
	tr.Observe("one more")
	if _, ok := tr.Seen("first"); ok {
		t.Error("the oldest echo is not forgotten past the bound")
	}
	if id, ok := tr.Seen("echo-0"); !ok || id != "0" || len(tr.seen) != echoMemory {
		t.Errorf("Seen(echo-0) = %q %v with %d remembered", id, ok, len(tr.seen))
	}
}

func TestNewEchoID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newEchoID()
		if !uuid.MatchString(id) || seen[id] {
			t.Fatalf("echo id %q: not a fresh v4 uuid", id)
		}
		seen[id] = true
	}
}

// A send waits for its message to reach subscribers live: a replayed copy
// of it (catch-up) neither releases the waiter nor counts as seen.
func TestRoutedReleasesOnlyLiveEchoes(t *testing.T) {
	tr := NewEchoTracker(4)
	wait, cancel := tr.Expect("e1")
	defer cancel()
	tr.Routed("sub", fanout.Route{EchoID: "e1", MessageID: "9", Replayed: true})
	if _, ok := tr.Seen("e1"); ok {
		t.Fatal("a replayed echo was taken for the live one")
	}
	tr.Routed("sub", fanout.Route{EchoID: "e1", MessageID: "9"})
	ctx, stop := context.WithCancel(context.Background())
	stop() // released already: wait must not need time
	if !wait(ctx) {
		t.Fatal("the live echo did not release the waiting send")
	}
	if id, ok := tr.Seen("e1"); !ok || id != "9" {
		t.Fatalf("Seen = %q, %v; want 9", id, ok)
	}
}
