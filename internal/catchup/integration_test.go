package catchup_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/catchup"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/natsserver"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

const waitFor = 20 * time.Second

// The relay's real pieces satisfy what catch-up consumes.
var (
	_ catchup.Source  = (*chatwoot.Client)(nil)
	_ catchup.Cursors = (store.Store)(nil)
	_ catchup.Sink    = (*fanout.Fanout)(nil)
)

// relay wires the real pieces the way the relay does: cable pool ->
// fanout (core NATS) with catch-up observing live events and triggered by
// state changes, catch-up reading the fake's public API.
type relay struct {
	t      *testing.T
	fake   *chatwoottest.Server
	pool   *cable.Pool[*catchup.Target]
	cu     *catchup.Catchup
	fo     *fanout.Fanout
	states chan cable.StateChange[*catchup.Target]
}

func (r *relay) onState(sc cable.StateChange[*catchup.Target]) {
	m := sc.Meta
	switch sc.Change {
	case cable.ChangeConfirmed:
		r.cu.Trigger(m, time.Now())
	case cable.ChangeLost:
		r.cu.Lost(m)
	case cable.ChangeGap:
		r.cu.Gap(m, time.Now())
	}
	select {
	case r.states <- sc:
	default:
	}
}

func (r *relay) deliver(d cable.Delivery[*catchup.Target]) {
	m := d.Meta
	r.fo.Handle(fanout.Event{SubID: d.ID, Hints: m.Hints(), Message: d.Message, ReceivedAt: d.ReceivedAt})
}

func (r *relay) awaitState(c cable.Change) {
	r.t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case sc := <-r.states:
			if sc.Change == c {
				return
			}
		case <-deadline:
			r.t.Fatalf("no %v state change", c)
		}
	}
}

// received is what the NATS subscriber saw.
type received struct {
	mu       sync.Mutex
	messages map[int64][]bool // message id -> Relay-Replayed of each copy
	done     chan fanout.LifecycleEvent
	ids      chan int64 // every message.created id received
}

func (rc *received) handle(msg *nats.Msg) {
	var body struct {
		Event string `json:"event"`
		Data  struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg.Data, &body); err == nil && body.Event == "message.created" {
		rc.mu.Lock()
		rc.messages[body.Data.ID] = append(rc.messages[body.Data.ID], msg.Header.Get("Relay-Replayed") == "true")
		rc.mu.Unlock()
		select {
		case rc.ids <- body.Data.ID:
		default:
		}
		return
	}
	var life fanout.LifecycleEvent
	if json.Unmarshal(msg.Data, &life) == nil && life.Event == fanout.CatchupDone {
		rc.done <- life
	}
}

func (rc *received) awaitMessage(t *testing.T, id int64) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case got := <-rc.ids:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("message %d not received", id)
		}
	}
}

func (rc *received) awaitDone(t *testing.T) fanout.LifecycleEvent {
	t.Helper()
	select {
	case ev := <-rc.done:
		return ev
	case <-time.After(waitFor):
		t.Fatal("no catchup.done on NATS")
		return fanout.LifecycleEvent{}
	}
}

// Messages created while the subscription is down are replayed exactly once,
// marked Relay-Replayed; messages delivered live are not published twice.
func TestIntegrationReplayAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets")
	}
	fake := chatwoottest.New(chatwoottest.Options{Seed: 7})
	t.Cleanup(func() { fake.Close() })
	addr, err := fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	inbox, err := fake.AddInbox(chatwoottest.InboxConfig{Identifier: "inbox-1"})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := fake.CreateContact(inbox.Identifier, chatwoottest.ContactParams{Name: "Jane"})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := fake.CreateConversation(inbox.Identifier, ci.SourceID)
	if err != nil {
		t.Fatal(err)
	}

	// NATS and the subscriber counting message.created ids.
	ns, err := natsserver.Start(natsserver.Config{Port: natsserver.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	sub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	rc := &received{messages: make(map[int64][]bool), done: make(chan fanout.LifecycleEvent, 10), ids: make(chan int64, 100)}
	if _, err := sub.Subscribe("chatwoot.>", rc.handle); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	// The relay's pieces.
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := cable.SubscriptionID(ci.PubsubToken)
	if _, _, err := st.PutSubscription(context.Background(), store.Subscription{
		ID: id, Token: ci.PubsubToken, InboxIdentifier: inbox.Identifier, SourceID: ci.SourceID,
	}); err != nil {
		t.Fatal(err)
	}
	meta := &catchup.Target{
		ID: id, InboxIdentifier: inbox.Identifier, SourceID: ci.SourceID, CreatedAt: time.Now(), State: new(catchup.State),
		Sub: fanout.NewSub(id, nil, fanout.Hints{AccountID: "1", InboxID: strconv.FormatInt(inbox.ID, 10), ContactID: strconv.FormatInt(ci.ContactID, 10)}),
	}
	client, err := chatwoot.New(chatwoot.Options{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	pub := fanout.NewCore(nc)
	r := &relay{t: t, fake: fake, states: make(chan cable.StateChange[*catchup.Target], 64)}
	r.fo, err = fanout.New(pub, fanout.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.fo.AddObserver(fanout.ObserverFunc(func(_ string, rt fanout.Route) { r.cu.ObserveLive(meta, rt) }))
	r.cu, err = catchup.New(catchup.Options{Source: client, Cursors: st, Sink: r.fo, FlushInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.cu.Start()
	cableURL, _ := cable.CableURL(base)
	r.pool, err = cable.New[*catchup.Target](cable.Config[*catchup.Target]{
		URL: cableURL, Handler: r.deliver, OnState: r.onState,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond, StaleAfter: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.cu.Close(ctx)
		r.fo.Close(ctx)
		pub.Close()
		nc.Close()
	})

	// First confirm: first sync. The conversation began in the second of
	// the registration, so it is announced (conversation.created); it has
	// no message to replay.
	if _, err := r.pool.Add(ci.PubsubToken, meta); err != nil {
		t.Fatal(err)
	}
	if done := rc.awaitDone(t); done.SubscriptionID != id || done.Replayed != 1 || done.Conversations != 1 {
		t.Fatalf("first catchup.done = %+v", done)
	}

	// Live.
	live, err := fake.AgentReply(conv.AccountID, conv.DisplayID, "live reply")
	if err != nil {
		t.Fatal(err)
	}
	rc.awaitMessage(t, live.ID)

	// Outage: every broadcast is lost until the subscription is confirmed again.
	fake.Stall(true)
	fake.DropAll(false)
	r.awaitState(cable.ChangeLost)
	var missed []int64
	for i := range 3 {
		m, err := fake.AgentReply(conv.AccountID, conv.DisplayID, "missed reply "+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		missed = append(missed, m.ID)
	}
	m, err := fake.ContactSend(inbox.Identifier, ci.SourceID, conv.DisplayID, "missed question", "")
	if err != nil {
		t.Fatal(err)
	}
	missed = append(missed, m.ID)

	// Reconnect; the catch-up's conversation read is slow, so a reply sent
	// right after the confirm usually arrives live during the catch-up,
	// which must then not publish it again.
	fake.SetFault(chatwoottest.RouteConversationIndex, chatwoottest.Fault{Delay: time.Second, Count: 1})
	fake.Stall(false)
	r.awaitState(cable.ChangeConfirmed)
	after, err := fake.AgentReply(conv.AccountID, conv.DisplayID, "reply after reconnect")
	if err != nil {
		t.Fatal(err)
	}
	done := rc.awaitDone(t)
	if done.Reason != "" || done.Replayed < len(missed) {
		t.Fatalf("second catchup.done = %+v, want at least %d replayed", done, len(missed))
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, mid := range missed {
		if copies := rc.messages[mid]; len(copies) != 1 || !copies[0] {
			t.Errorf("missed message %d: copies %v, want one replayed copy", mid, copies)
		}
	}
	if copies := rc.messages[live.ID]; len(copies) != 1 || copies[0] {
		t.Errorf("live message %d: copies %v, want one live copy", live.ID, copies)
	}
	if copies := rc.messages[after.ID]; len(copies) != 1 {
		t.Errorf("message %d sent after the reconnect: %d copies, want 1", after.ID, len(copies))
	}
	t.Logf("catch-up replayed %d events for %d missed messages; the reply after the reconnect was published %v",
		done.Replayed, len(missed), rc.messages[after.ID])
	if len(rc.messages) != len(missed)+2 {
		t.Errorf("received ids %v", rc.messages)
	}
	c, err := st.GetCursor(context.Background(), id, strconv.FormatInt(conv.DisplayID, 10))
	if err != nil || c.LastMessageID < after.ID-1 {
		t.Errorf("stored cursor %+v, %v", c, err)
	}
}
