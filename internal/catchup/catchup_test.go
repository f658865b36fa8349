package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/store"
)

// The listed conversation embeds every message, so catch-up reads no
// page; a server that embeds only the latest page is paged back to the
// cursor instead.
func TestPaging(t *testing.T) {
	tests := []struct {
		name      string
		cursor    int64
		total     int64
		wantIDs   []int64
		wantPages []int64 // with a bounded embedding: the before of each ListMessages call
	}{
		{"45 missed over 3 pages", 10, 55, seq(11, 55), []int64{0, 36, 16}},
		{"cursor within the embedded page", 50, 55, seq(51, 55), nil},
		{"cursor just before the embedded page", 35, 55, seq(36, 55), []int64{0, 36}},
		{"nothing missed", 55, 55, nil, nil},
		{"whole short conversation", 0, 7, seq(1, 7), nil},
	}
	for _, embedding := range []string{"all", "latest page"} {
		for _, tt := range tests {
			if embedding == "all" {
				tt.wantPages = nil
			}
			t.Run(embedding+"/"+tt.name, func(t *testing.T) { testPaging(t, embedding == "all", tt.cursor, tt.total, tt.wantIDs, tt.wantPages) })
		}
	}
}

func testPaging(t *testing.T, embedAll bool, cursor, total int64, wantIDs, wantPages []int64) {
	tt := struct {
		cursor, total      int64
		wantIDs, wantPages []int64
	}{cursor, total, wantIDs, wantPages}
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		if !embedAll {
			e.src.embedLatest = PageSize
		}
		e.synced("a", "1", tt.cursor, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, tt.total, time.Now().Unix())

		done := e.run(e.meta("a", time.Now()))

		evs := e.sink.take()
		if got := messageIDs(t, evs); !slices.Equal(got, tt.wantIDs) {
			t.Fatalf("replayed ids = %v, want %v", got, tt.wantIDs)
		}
		if len(evs) != len(tt.wantIDs) {
			t.Fatalf("%d events, want only the %d messages", len(evs), len(tt.wantIDs))
		}
		for _, ev := range evs {
			_, id := decoded(t, ev)
			want := envelope(evMessageCreated, e.src.messageJSON(1, fakeMsg{id: id, createdAt: time.Now().Unix(), outgoing: id%2 == 0}))
			if string(ev.Message) != want {
				t.Fatalf("body of %d:\n got %s\nwant %s", id, ev.Message, want)
			}
			if ev.SubID != "a" || ev.Hints != (fanout.Hints{AccountID: "1", InboxID: "1", ContactID: "1"}) {
				t.Fatalf("event of %d: sub %q hints %+v", id, ev.SubID, ev.Hints)
			}
		}
		var befores []int64
		for _, c := range e.src.callsOf("messages") {
			befores = append(befores, c.before)
		}
		if !slices.Equal(befores, tt.wantPages) {
			t.Fatalf("pages (before) = %v, want %v", befores, tt.wantPages)
		}
		if got := int(testutil.ToFloat64(e.c.m.pages)); got != len(tt.wantPages) {
			t.Fatalf("pages metric = %d, want %d", got, len(tt.wantPages))
		}
		if c := e.cursor("a", "1"); c.LastMessageID != tt.total || c.Status != "open" {
			t.Fatalf("stored cursor = %+v, want last %d open", c, tt.total)
		}
		if done.Event != fanout.CatchupDone || done.SubscriptionID != "a" || done.Reason != "" ||
			done.Replayed != len(tt.wantIDs) || done.Conversations != 1 || done.AccountID != "1" {
			t.Fatalf("catchup.done = %+v", done)
		}
	})
}

// The REST fixtures replay byte for byte and route like the live frame of
// the same message: same subject, same dedup key.
func TestGoldenFixtures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 1, "open")
		e.src.fixedConvs = fixtures.Read(t, "api/conversations_index.json")
		e.src.fixedMsgs = fixtures.Read(t, "api/messages_index.json")

		e.run(e.meta("a", time.Now()))

		evs := e.sink.take()
		if len(evs) != 2 {
			t.Fatalf("%d events, want message 2 and the status change", len(evs))
		}
		var convs []chatwoot.Conversation
		if err := jsonUnmarshal(e.src.fixedConvs, &convs); err != nil {
			t.Fatal(err)
		}
		var msgs []chatwoot.Message
		if err := jsonUnmarshal(e.src.fixedMsgs, &msgs); err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, convs[0].Messages[1].Raw, msgs[1].Raw) {
			t.Fatalf("the listed conversation embeds message 2 as\n%s\nthe message index lists\n%s", convs[0].Messages[1].Raw, msgs[1].Raw)
		}
		if got, want := string(evs[0].Message), envelope(evMessageCreated, convs[0].Messages[1].Raw); got != want {
			t.Fatalf("message body:\n got %s\nwant %s", got, want)
		}
		if got, want := evs[1].Message, withNewestMessageOnly(t, convs[0].Raw); !jsonEqual(t, dataOf(t, got), want) {
			t.Fatalf("status body:\n got %s\nwant data %s", got, want)
		}

		replay, err := fanout.Resolve(evs[0])
		if err != nil {
			t.Fatal(err)
		}
		live, err := fanout.Resolve(fanout.Event{SubID: "a", Hints: fanout.Hints{ContactID: "1"},
			Message: fixtureMessage(t, "03_message.created.agent_reply.json")})
		if err != nil {
			t.Fatal(err)
		}
		if replay.DedupKey != "m:1:2:created" || replay.DedupKey != live.DedupKey {
			t.Fatalf("dedup keys: replay %q live %q", replay.DedupKey, live.DedupKey)
		}
		if replay.Subject("chatwoot") != live.Subject("chatwoot") || !replay.Replayed {
			t.Fatalf("subjects: replay %q live %q", replay.Subject("chatwoot"), live.Subject("chatwoot"))
		}
		status, err := fanout.Resolve(evs[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := status.Subject("chatwoot"); got != "chatwoot.1.1.1.1.conversation.status_changed" || status.Status != "resolved" {
			t.Fatalf("status change routed to %q status %q", got, status.Status)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 2 || c.Status != "resolved" {
			t.Fatalf("cursor = %+v", c)
		}
	})
}

func TestStatusChange(t *testing.T) {
	tests := []struct {
		name       string
		stored     string
		now        string
		wantReplay bool
	}{
		{"resolved while away", "open", "resolved", true},
		{"unchanged", "open", "open", false},
		{"previous status unknown", "", "resolved", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, Options{}, "a")
				e.synced("a", "1", 3, tt.stored)
				e.src.conv(1, tt.now)
				e.src.add(1, 1, 3, time.Now().Unix())

				e.run(e.meta("a", time.Now()))

				evs := e.sink.take()
				if got := len(evs) == 1; got != tt.wantReplay {
					t.Fatalf("%d events, want replay %v", len(evs), tt.wantReplay)
				}
				if tt.wantReplay {
					if name, id := decoded(t, evs[0]); name != evStatusChanged || id != 1 {
						t.Fatalf("replayed %s of %d", name, id)
					}
					r, err := fanout.Resolve(evs[0])
					if err != nil || r.Status != tt.now {
						t.Fatalf("route %+v, %v", r, err)
					}
				}
				if n := len(e.src.callsOf("messages")); n != 0 {
					t.Fatalf("%d message pages fetched for a conversation without new messages", n)
				}
				if c := e.cursor("a", "1"); c.Status != tt.now {
					t.Fatalf("cursor status %q, want %q", c.Status, tt.now)
				}
			})
		})
	}
}

func TestNewConversation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 3, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3, time.Now().Unix())
		e.src.conv(2, "pending")
		e.src.add(2, 4, 6, time.Now().Unix())

		done := e.run(e.meta("a", time.Now()))

		evs := e.sink.take()
		var got []string
		for _, ev := range evs {
			name, id := decoded(t, ev)
			got = append(got, name+":"+itoa(id))
		}
		want := []string{"conversation.created:2", "message.created:4", "message.created:5", "message.created:6"}
		if !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
		if c := e.cursor("a", "2"); c.LastMessageID != 6 || c.Status != "pending" {
			t.Fatalf("new conversation cursor = %+v", c)
		}
		if done.Replayed != 4 || done.Conversations != 2 {
			t.Fatalf("catchup.done = %+v", done)
		}
	})
}

// On the first sync, messages older than the registration are history; the
// ones created since (with 1 s of slack) were missed.
func TestFirstSyncBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		created := time.Now()
		old := created.Add(-time.Hour).Unix()
		e.src.conv(1, "open")
		e.src.add(1, 1, 24, old)
		e.src.add(1, 25, 25, created.Unix()-2)
		e.src.add(1, 26, 26, created.Unix()-1)
		e.src.add(1, 27, 30, created.Unix()+5)
		e.src.conv(2, "resolved")
		e.src.add(2, 31, 33, old)

		done := e.run(e.meta("a", created))

		evs := e.sink.take()
		if got := messageIDs(t, evs); !slices.Equal(got, seq(26, 30)) || len(evs) != 5 {
			t.Fatalf("replayed %v (%d events), want 26..30 only", got, len(evs))
		}
		for _, call := range e.src.callsOf("messages") {
			if call.conv == 2 {
				t.Fatalf("paged through conversation 2, which only has history")
			}
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 30 || c.Status != "open" {
			t.Fatalf("cursor 1 = %+v", c)
		}
		if c := e.cursor("a", "2"); c.LastMessageID != 33 || c.Status != "resolved" {
			t.Fatalf("baseline cursor 2 = %+v", c)
		}
		e.cursor("a", SyncMarker)
		if done.Replayed != 5 || done.Conversations != 2 {
			t.Fatalf("catchup.done = %+v", done)
		}

		// Synced now: a conversation created during the next outage is new.
		e.c.Lost(e.target("a"))
		e.src.conv(3, "open")
		e.src.add(3, 34, 34, old)
		e.run(e.meta("a", created))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{34}) {
			t.Fatalf("after sync: replayed %v, want the new conversation's message", got)
		}
	})
}

// On the first sync, a conversation begun since the registration was
// missed whole: its conversation.created is replayed before its messages.
// One with history is not announced.
func TestFirstSyncAnnouncesNewConversations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		created := time.Now()
		e.src.conv(1, "open")
		e.src.add(1, 1, 2, created.Add(-time.Hour).Unix())
		e.src.add(1, 3, 3, created.Unix()+1)
		e.src.conv(2, "open")
		e.src.add(2, 4, 5, created.Unix()+1)
		e.src.conv(3, "open") // created after the contact, nothing written yet

		e.run(e.meta("a", created))

		var got []string
		for _, ev := range e.sink.take() {
			name, id := decoded(t, ev)
			got = append(got, name+":"+itoa(id))
		}
		want := []string{"message.created:3", "conversation.created:2", "message.created:4",
			"message.created:5", "conversation.created:3"}
		if !slices.Equal(got, want) {
			t.Fatalf("events = %v, want %v", got, want)
		}
	})
}

func TestTokenOnlySkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3, time.Now().Unix())

		e.c.Trigger(&Target{ID: "a", State: e.state("a")}, time.Now())
		e.c.Trigger(&Target{ID: "a", InboxIdentifier: "inbox-1", State: e.state("a")}, time.Now())
		synctest.Wait()

		if n := len(e.src.calls); n != 0 {
			t.Fatalf("%d API calls for a subscription without catch-up data", n)
		}
		if e.runs(resultSkipped) != 2 || len(e.sink.life) != 0 {
			t.Fatalf("skipped = %d, lifecycle = %v", e.runs(resultSkipped), e.sink.life)
		}
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 4))
		if n := len(e.state("a").pending); n != 0 {
			t.Fatalf("live events remembered for a subscription that is never caught up: %d", n)
		}
	})
}

// The gap scenario: messages 8 and 9 are broadcast while the subscription
// is down; 10 arrives live right after the reconnect, before the catch-up.
func TestGapFreezesCursors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{FlushInterval: time.Second}, "a")
		e.synced("a", "1", 7, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 7, time.Now().Unix())
		e.run(e.meta("a", time.Now()))
		e.sink.take()

		e.c.Lost(e.target("a"))
		e.src.add(1, 8, 10, time.Now().Unix())
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 10))
		e.c.Lost(e.target("a"))     // a second blip before the catch-up
		time.Sleep(5 * time.Second) // several flush intervals
		synctest.Wait()
		if c := e.memCursor("a", "1"); c.lastID != 7 {
			t.Fatalf("frozen cursor moved to %d by a live event", c.lastID)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 7 {
			t.Fatalf("stored cursor moved to %d while frozen", c.LastMessageID)
		}

		e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{8, 9}) {
			t.Fatalf("replayed %v, want 8 9 (10 was published live)", got)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 10 {
			t.Fatalf("cursor after catch-up = %d", c.LastMessageID)
		}

		// Thawed: live events move the cursor again and get flushed.
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 11))
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if c := e.cursor("a", "1"); c.LastMessageID != 11 {
			t.Fatalf("stored cursor after a live event = %d, want 11", c.LastMessageID)
		}
	})
}

// Live events seen during the freeze are merged in when the catch-up
// completes, including conversations the REST read did not see yet.
func TestPendingMergedAfterCatchup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 5, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 5, time.Now().Unix())
		release := make(chan struct{})
		e.src.onList = func(context.Context, string) error { <-release; return nil }

		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		synctest.Wait() // running, blocked in ListConversations
		// A conversation created after the read.
		e.c.ObserveLive(e.target("a"), liveMessage(t, 9, 40))
		e.c.ObserveLive(e.target("a"), liveStatus("9", "open"))
		close(release)
		<-e.sink.done

		if c := e.memCursor("a", "9"); c.lastID != 40 || c.status != "open" {
			t.Fatalf("merged cursor = %+v", c)
		}
		if err := e.c.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := e.cursor("a", "9"); c.LastMessageID != 40 {
			t.Fatalf("stored merged cursor = %+v", c)
		}
	})
}

// A loss during a running catch-up keeps the cursors frozen: that attempt
// does not cover the next confirm.
func TestLostWhileRunningStaysFrozen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 5, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 5, time.Now().Unix())
		release := make(chan struct{})
		var block atomic.Bool
		block.Store(true)
		e.src.onList = func(context.Context, string) error {
			if block.Load() {
				<-release
			}
			return nil
		}

		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		synctest.Wait()
		e.c.Lost(e.target("a"))
		block.Store(false)
		close(release)
		<-e.sink.done

		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 9))
		if c := e.memCursor("a", "1"); c.lastID != 5 {
			t.Fatalf("cursor moved to %d although the subscription was lost during its catch-up", c.lastID)
		}
		e.src.add(1, 6, 9, time.Now().Unix())
		e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, seq(6, 8)) {
			t.Fatalf("replayed %v, want 6 7 8 (9 was published live)", got)
		}
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 10))
		if c := e.memCursor("a", "1"); c.lastID != 10 {
			t.Fatalf("cursor = %d after the covering catch-up, want 10", c.lastID)
		}
	})
}

// A conversation event already published live during the freeze is not
// replayed from REST (REST objects have no timestamp to dedup on).
func TestLiveConversationEventsNotReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 2, "open")
		e.src.conv(1, "resolved")
		e.src.add(1, 1, 2, time.Now().Unix())
		e.src.conv(2, "open")

		e.c.Lost(e.target("a"))
		e.c.ObserveLive(e.target("a"), liveStatus("1", "resolved"))
		e.c.ObserveLive(e.target("a"), fanout.Route{Kind: fanout.KindConversation, Event: evConversationCreated, ConversationID: "2", Status: "open"})
		done := e.run(e.meta("a", time.Now()))

		if evs := e.sink.take(); len(evs) != 0 {
			name, id := decoded(t, evs[0])
			t.Fatalf("replayed %d events (first %s %d), want none", len(evs), name, id)
		}
		if done.Replayed != 0 || done.Conversations != 2 {
			t.Fatalf("catchup.done = %+v", done)
		}
	})
}

func TestObserveLiveIgnoresReplays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.caughtUpOpen("a")

		r := liveMessage(t, 1, 50)
		r.Replayed = true
		e.c.ObserveLive(e.target("a"), r)
		e.c.ObserveLive(e.target("a"), fanout.Route{Kind: fanout.KindMessage, Event: "message.updated", ConversationID: "1", MessageID: "60"})
		e.c.ObserveLive(e.target("a"), fanout.Route{Kind: fanout.KindMessage, Event: evMessageCreated, ConversationID: fanout.Unknown, MessageID: "61"})
		if c := e.memCursor("a", "1"); c.lastID != 2 {
			t.Fatalf("cursor moved to %d", c.lastID)
		}
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 3))
		if c := e.memCursor("a", "1"); c.lastID != 3 {
			t.Fatalf("cursor = %d, want 3", c.lastID)
		}
	})
}

// With one worker and a backlog, the most recently active subscription
// goes first.
func TestPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{Concurrency: 1}, "blocker", "b", "c", "d")
		release := make(chan struct{})
		e.src.onList = func(_ context.Context, src string) error {
			if src == "src-blocker" {
				<-release
			}
			return nil
		}
		base := time.Now()
		e.c.Trigger(e.meta("blocker", base), base)
		synctest.Wait()
		e.c.Trigger(e.meta("b", base), base.Add(1*time.Minute))
		e.c.Trigger(e.meta("c", base), base.Add(3*time.Minute))
		e.c.Trigger(e.meta("d", base), base.Add(2*time.Minute))
		if got := testutil.ToFloat64(e.c.m.queued); got != 3 {
			t.Fatalf("queued gauge = %v", got)
		}
		close(release)
		for range 4 {
			<-e.sink.done
		}
		var order []string
		for _, c := range e.src.callsOf("conversations") {
			order = append(order, c.sourceID)
		}
		if want := []string{"src-blocker", "src-c", "src-d", "src-b"}; !slices.Equal(order, want) {
			t.Fatalf("order = %v, want %v", order, want)
		}
	})
}

func TestRetriggerWhileRunningRunsOnceMore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.src.conv(1, "open")
		release := make(chan struct{})
		var calls atomic.Int32
		e.src.onList = func(context.Context, string) error {
			if calls.Add(1) == 1 {
				<-release
			}
			return nil
		}
		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		synctest.Wait()
		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		close(release)
		<-e.sink.done
		<-e.sink.done
		synctest.Wait()
		if n := calls.Load(); n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
		if e.runs(resultOK) != 2 || len(e.sink.done) != 0 {
			t.Fatalf("ok runs = %d, extra done events = %d", e.runs(resultOK), len(e.sink.done))
		}
	})
}

func TestQueuedTriggersCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{Concurrency: 1}, "blocker", "a")
		release := make(chan struct{})
		e.src.onList = func(_ context.Context, src string) error {
			if src == "src-blocker" {
				<-release
			}
			return nil
		}
		e.c.Trigger(e.meta("blocker", time.Now()), time.Now())
		synctest.Wait()
		for range 5 {
			e.c.Trigger(e.meta("a", time.Now()), time.Now())
		}
		close(release)
		<-e.sink.done
		<-e.sink.done
		synctest.Wait()
		if n := len(e.src.callsOf("conversations")); n != 2 {
			t.Fatalf("%d runs, want one per subscription", n)
		}
	})
}

func TestRetryWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{RetryMin: time.Second, RetryMax: time.Minute}, "a")
		e.src.conv(1, "open")
		var n atomic.Int32
		e.src.onList = func(context.Context, string) error {
			if n.Add(1) <= 2 {
				return upstreamDown
			}
			return nil
		}

		done := e.run(e.meta("a", time.Now()))

		calls := e.src.callsOf("conversations")
		if len(calls) != 3 || done.Reason != "" {
			t.Fatalf("%d attempts, done %+v", len(calls), done)
		}
		// Backoff after attempt n is in [d/2, d] with d = RetryMin * 2^(n-1).
		for i, min := range []time.Duration{500 * time.Millisecond, time.Second} {
			if gap := calls[i+1].at.Sub(calls[i].at); gap < min {
				t.Fatalf("attempt %d came %v after the previous one, want at least %v", i+2, gap, min)
			}
		}
		if got := testutil.ToFloat64(e.c.m.retries); got != 2 || e.runs(resultOK) != 1 {
			t.Fatalf("retries = %v, ok = %d", got, e.runs(resultOK))
		}
	})
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{MaxAttempts: 3, RetryMin: time.Second}, "a")
		e.synced("a", "1", 5, "open")
		e.src.conv(1, "open")
		e.src.onList = func(context.Context, string) error { return upstreamDown }

		done := e.run(e.meta("a", time.Now()))

		if n := len(e.src.callsOf("conversations")); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
		if done.Reason != ReasonError || e.runs(resultError) != 1 {
			t.Fatalf("done %+v, error runs %d", done, e.runs(resultError))
		}
		// Still frozen: the next catch-up must still cover the gap.
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 9))
		if c := e.memCursor("a", "1"); c.lastID != 5 {
			t.Fatalf("cursor moved to %d after a failed catch-up", c.lastID)
		}
	})
}

// A new trigger during the backoff runs at once with a fresh budget.
func TestTriggerDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{RetryMin: time.Hour, RetryMax: time.Hour}, "a")
		e.src.conv(1, "open")
		var n atomic.Int32
		e.src.onList = func(context.Context, string) error {
			if n.Add(1) == 1 {
				return upstreamDown
			}
			return nil
		}
		start := time.Now()
		e.c.Trigger(e.meta("a", start), start)
		synctest.Wait()
		if got := testutil.ToFloat64(e.c.m.backoff); got != 1 {
			t.Fatalf("backoff gauge = %v", got)
		}
		e.c.Trigger(e.meta("a", start), start)
		<-e.sink.done
		if waited := time.Since(start); waited >= 30*time.Minute {
			t.Fatalf("re-triggered catch-up waited out the backoff (%v)", waited)
		}
		if got := testutil.ToFloat64(e.c.m.backoff); got != 0 {
			t.Fatalf("backoff gauge = %v", got)
		}
	})
}

func TestContactGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var gone []string // appended before catchup.done is published
		e := newEnv(t, Options{OnGone: func(id string) { gone = append(gone, id) }}, "a")
		e.src.onList = func(context.Context, string) error { return contactGone }

		done := e.run(e.meta("a", time.Now()))

		if n := len(e.src.callsOf("conversations")); n != 1 {
			t.Fatalf("%d attempts after a 404, want 1", n)
		}
		if done.Reason != ReasonGone || e.runs(resultGone) != 1 || !slices.Equal(gone, []string{"a"}) {
			t.Fatalf("done %+v, gone runs %d, OnGone %v", done, e.runs(resultGone), gone)
		}
	})
}

// A conversation deleted between the list and its pages is skipped.
func TestConversationGoneIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.src.embedLatest = PageSize // so conversation 1 is paged
		e.synced("a", "1", 1, "open")
		e.synced("a", "2", 1, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 30, time.Now().Unix())
		e.src.conv(2, "open")
		e.src.add(2, 31, 32, time.Now().Unix())
		e.src.onMessages = func(_ context.Context, conv, _ int64) error {
			if conv == 1 {
				return &chatwoot.APIError{Kind: chatwoot.KindNotFound, Status: 404}
			}
			return nil
		}
		done := e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{31, 32}) || done.Reason != "" {
			t.Fatalf("replayed %v, done %+v", got, done)
		}
	})
}

// A replayed conversation event carries the newest message only, as a
// live one does, however long the conversation: the list embeds them all.
func TestReplayedConversationEventIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 3000, "open")
		e.src.conv(1, "resolved")
		e.src.add(1, 1, 3000, time.Now().Unix())
		e.run(e.meta("a", time.Now()))
		evs := e.sink.take()
		if len(evs) != 1 {
			t.Fatalf("%d events, want the status change", len(evs))
		}
		var body struct {
			Data struct {
				ID       int64 `json:"id"`
				Status   string
				Messages []struct{ ID int64 }
				Contact  struct{ ID int64 }
			}
		}
		if err := jsonUnmarshal(evs[0].Message, &body); err != nil {
			t.Fatal(err)
		}
		d := body.Data
		if d.ID != 1 || d.Status != "resolved" || d.Contact.ID != 1 || len(d.Messages) != 1 || d.Messages[0].ID != 3000 {
			t.Fatalf("replayed conversation %+v", d)
		}
		if len(evs[0].Message) > 16<<10 {
			t.Fatalf("replayed conversation is %d bytes", len(evs[0].Message))
		}
	})
}

// A long gap is replayed whole from the listed conversation: no page is
// read, so nothing is cut off at MaxPages.
func TestLongGapNeedsNoPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{MaxPages: 2}, "a")
		e.synced("a", "1", 1, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3000, time.Now().Unix())
		e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, seq(2, 3000)) {
			t.Fatalf("replayed %d messages, want 2..3000", len(got))
		}
		if n := len(e.src.callsOf("messages")); n != 0 || testutil.ToFloat64(e.c.m.truncated) != 0 {
			t.Fatalf("%d pages read, %v truncated", n, testutil.ToFloat64(e.c.m.truncated))
		}
	})
}

// A long replay goes in batches: catch-up waits for room in the buffer
// before each event, and an attempt cut short resumes after the last batch NATS
// holds instead of replaying the conversation from its start.
func TestReplayResumesAfterLastBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 0, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3*ReplayBatch, time.Now().Unix())
		waits := 0
		e.sink.room = func(context.Context) error {
			waits++
			if waits == ReplayBatch+1 { // the second batch is refused for lack of room
				e.sink.drop = ReplayBatch
			}
			return nil
		}
		e.run(e.meta("a", time.Now()))
		ids := messageIDs(t, e.sink.take())
		if want := 3*ReplayBatch + ReplayBatch; len(ids) != want {
			t.Fatalf("%d messages replayed, want %d: the refused batch once more, the first not again", len(ids), want)
		}
		if got := ids[2*ReplayBatch : 2*ReplayBatch+3]; !slices.Equal(got, seq(ReplayBatch+1, ReplayBatch+3)) {
			t.Fatalf("the retry began with %v, want the refused batch", got)
		}
		if e.sink.waits != len(ids) || e.runs(resultOK) != 1 {
			t.Fatalf("%d waits for room for %d replays, %d successful runs; want one wait a replay and 1 run", e.sink.waits, len(ids), e.runs(resultOK))
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 3*ReplayBatch {
			t.Fatalf("cursor %d", c.LastMessageID)
		}
	})
}

// Catch-up replays nothing while the sink has no room, and gives up the
// attempt with the wait's error.
func TestReplayWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{MaxAttempts: 1}, "a")
		e.synced("a", "1", 0, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 5, time.Now().Unix())
		e.sink.room = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
		done := e.run(e.meta("a", time.Now()))
		if evs := e.sink.take(); len(evs) != 0 || done.Reason == "" {
			t.Fatalf("%d events replayed without room, done %+v", len(evs), done)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 0 {
			t.Fatalf("cursor moved to %d", c.LastMessageID)
		}
	})
}

// A server that embeds only the latest page is paged back, at most
// MaxPages; what lies beyond is counted as truncated.
func TestMaxPagesTruncates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{MaxPages: 2}, "a")
		e.src.embedLatest = PageSize
		e.synced("a", "1", 1, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 100, time.Now().Unix())
		e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, seq(61, 100)) {
			t.Fatalf("replayed %v, want the newest 2 pages", got)
		}
		if got := testutil.ToFloat64(e.c.m.truncated); got != 1 {
			t.Fatalf("truncated = %v", got)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 100 {
			t.Fatalf("cursor = %d", c.LastMessageID)
		}
	})
}

func TestForgetCancelsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{Concurrency: 1}, "blocker", "a")
		release := make(chan struct{})
		e.src.onList = func(_ context.Context, src string) error {
			if src == "src-blocker" {
				<-release
			}
			return nil
		}
		e.c.Trigger(e.meta("blocker", time.Now()), time.Now())
		synctest.Wait()
		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		e.c.Forget(e.target("a"))
		close(release)
		<-e.sink.done
		synctest.Wait()
		for _, c := range e.src.callsOf("conversations") {
			if c.sourceID == "src-a" {
				t.Fatal("a forgotten subscription was caught up")
			}
		}
		if got := testutil.ToFloat64(e.c.m.queued); got != 0 {
			t.Fatalf("queued = %v", got)
		}
	})
}

// A subscription deleted from the store during its catch-up ends it
// quietly.
func TestRemovedFromStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.src.conv(1, "open")
		e.src.add(1, 1, 2, time.Now().Unix())
		e.src.onList = func(context.Context, string) error {
			return e.st.DeleteSubscription(context.Background(), "a")
		}
		e.c.Trigger(e.meta("a", time.Now()), time.Now())
		synctest.Wait()
		if e.runs(resultGone) != 1 || len(e.sink.life) != 0 || len(e.src.callsOf("conversations")) != 1 {
			t.Fatalf("gone %d, lifecycle %v", e.runs(resultGone), e.sink.life)
		}
	})
}

func TestFlushOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{FlushInterval: time.Hour}, "a")
		e.caughtUpOpen("a")

		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 7))
		e.c.ObserveLive(e.target("a"), liveStatus("1", "snoozed"))
		e.c.ObserveLive(e.target("a"), liveMessage(t, 4, 8)) // a conversation seen first live
		if c := e.cursor("a", "1"); c.LastMessageID != 2 {
			t.Fatalf("written before the flush: %+v", c)
		}
		if err := e.c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 7 || c.Status != "snoozed" {
			t.Fatalf("cursor after Close = %+v", c)
		}
		if c := e.cursor("a", "4"); c.LastMessageID != 8 {
			t.Fatalf("new conversation cursor after Close = %+v", c)
		}
		if got := testutil.ToFloat64(e.c.m.flushed); got != 2 {
			t.Fatalf("flushed = %v, want 2", got)
		}
	})
}

// failingCursors fails writes while fail is set.
type failingCursors struct {
	Cursors
	fail atomic.Bool
}

var errStoreDown = errors.New("store down")

func (f *failingCursors) PutCursor(ctx context.Context, c store.Cursor) (store.Cursor, error) {
	if f.fail.Load() {
		return store.Cursor{}, errStoreDown
	}
	return f.Cursors.PutCursor(ctx, c)
}

// A failed flush keeps the cursor dirty; the next one writes it.
func TestFlushRetriesAfterStoreError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.caughtUpOpen("a")

		fc := &failingCursors{Cursors: e.st}
		e.c.opts.Cursors = fc
		fc.fail.Store(true)
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 5))
		if err := e.c.flush(context.Background()); !errors.Is(err, errStoreDown) {
			t.Fatalf("flush = %v", err)
		}
		fc.fail.Store(false)
		if err := e.c.flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 5 {
			t.Fatalf("cursor = %+v", c)
		}
		if got := testutil.ToFloat64(e.c.m.storeErrors[opFlush]); got != 1 {
			t.Fatalf("flush errors = %v", got)
		}
	})
}

// Options are validated all at once.
func TestOptions(t *testing.T) {
	_, err := New(Options{Concurrency: -1})
	for _, want := range []string{"Source", "Cursors", "Sink", "Concurrency"} {
		if err == nil || !errors.Is(err, ErrOptions) || !contains(err.Error(), want) {
			t.Fatalf("New error %v does not mention %s", err, want)
		}
	}
	o, err := Options{Source: newFakeSource(t), Cursors: &failingCursors{}, Sink: newRecSink()}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Concurrency != 4 || o.MaxAttempts != 5 || o.FlushInterval != 2*time.Second || o.MaxPages != 50 {
		t.Fatalf("defaults = %+v", o)
	}
}

func TestStatusMissed(t *testing.T) {
	const now = 3
	tests := []struct {
		name         string
		cursor, rest string
		live         seen
		want         bool
	}{
		{"changed while away", "open", "resolved", seen{}, true},
		{"unchanged", "open", "open", seen{}, false},
		{"unknown before", "", "resolved", seen{}, false},
		{"no status from REST", "open", "", seen{}, false},
		{"seen live since the confirm", "open", "resolved", seen{status: "resolved", statusE: now}, false},
		{"seen live since the confirm, REST differs", "open", "pending", seen{status: "resolved", statusE: now}, false},
		{"seen live before a later loss, changed again", "open", "pending", seen{status: "resolved", statusE: now - 1}, true},
		{"seen live before a later loss, unchanged since", "open", "resolved", seen{status: "resolved", statusE: now - 1}, false},
	}
	for _, tt := range tests {
		if got := statusMissed(tt.cursor, tt.rest, tt.live, now); got != tt.want {
			t.Errorf("%s: statusMissed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A gap (dropped broadcast on a confirmed subscription) freezes the cursors
// and catches up at once; no confirm follows, so that catch-up thaws them.
func TestGapTriggersCatchup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 3, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 3, time.Now().Unix())
		e.run(e.meta("a", time.Now()))

		e.src.add(1, 4, 6, time.Now().Unix()) // 4 and 5 dropped, 6 delivered
		release := make(chan struct{})
		e.src.onList = func(context.Context, string) error { <-release; return nil }
		e.c.Gap(e.meta("a", time.Now()), time.Now())
		synctest.Wait()
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 6))
		close(release)
		<-e.sink.done
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{4, 5}) {
			t.Fatalf("replayed %v, want 4 5", got)
		}
		e.c.ObserveLive(e.target("a"), liveMessage(t, 1, 7))
		if c := e.memCursor("a", "1"); c.lastID != 7 {
			t.Fatalf("cursor = %d after the gap's catch-up, want 7", c.lastID)
		}
	})
}

// A burst of gaps while the subscription's catch-up waits its turn is one
// catch-up: it starts after all of them.
func TestGapBurstIsOneCatchup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{Concurrency: 1}, "a", "b")
		e.synced("a", "1", 3, "open")
		e.src.conv(1, "open")
		release := make(chan struct{})
		e.src.onList = func(_ context.Context, source string) error {
			if source == "src-b" {
				<-release
			}
			return nil
		}
		e.c.Trigger(e.meta("b", time.Now()), time.Now()) // holds the only worker
		synctest.Wait()
		for range 100 {
			e.c.Gap(e.meta("a", time.Now()), time.Now())
		}
		close(release)
		<-e.sink.done // b
		<-e.sink.done // a
		synctest.Wait()
		if n := e.runs(resultOK); n != 2 {
			t.Fatalf("catch-ups = %d, want 2 (b, then a once)", n)
		}
	})
}

// TestCursorWaitsForPublication: a replayed event that never reached NATS
// keeps the cursor where it was; the retry replays it.
func TestCursorWaitsForPublication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{RetryMin: time.Second}, "a")
		e.synced("a", "1", 10, "open")
		e.src.conv(1, "open")
		e.src.add(1, 1, 13, time.Now().Unix())
		e.sink.mu.Lock()
		e.sink.drop = 1 // message 11 is dropped by the fan-out
		e.sink.mu.Unlock()

		done := e.run(e.meta("a", time.Now()))

		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{11, 12, 13, 11, 12, 13}) {
			t.Fatalf("replayed %v, want 11-13 twice (the retry)", got)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 13 || done.Reason != "" {
			t.Fatalf("cursor %+v, done %+v", c, done)
		}
		if got := testutil.ToFloat64(e.c.m.retries); got != 1 {
			t.Fatalf("retries = %v", got)
		}
	})
}

// Replays NATS does not take (an outage) are retried for as long as it
// lasts: they do not use up MaxAttempts.
func TestNotPublishedNeverExhaustsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{MaxAttempts: 2, RetryMin: time.Second, RetryMax: 2 * time.Second}, "a")
		e.synced("a", "1", 10, "open")
		e.src.conv(1, "open")
		e.src.add(1, 11, 13, time.Now().Unix())
		e.sink.mu.Lock()
		e.sink.drop = 3 * 3 // three attempts' replays are dropped
		e.sink.mu.Unlock()

		done := e.run(e.meta("a", time.Now()))

		if c := e.cursor("a", "1"); c.LastMessageID != 13 || done.Reason != "" {
			t.Fatalf("cursor %+v, done %+v; want 13 and success", c, done)
		}
		if got := messageIDs(t, e.sink.take()); len(got) != 4*3 {
			t.Fatalf("replayed %v, want 11-13 four times", got)
		}
	})
}

// refuseFirstAttempt leaves subscription "a" one message (11) behind,
// triggers its catch-up and has NATS refuse the replay: it returns, with
// the replays taken, once the catch-up backs off, and when it was triggered.
func refuseFirstAttempt(e *env) time.Time {
	e.synced("a", "1", 10, "open")
	e.src.conv(1, "open")
	e.src.add(1, 11, 11, time.Now().Unix())
	e.sink.mu.Lock()
	e.sink.drop = 1
	e.sink.mu.Unlock()
	start := time.Now()
	e.c.Trigger(e.meta("a", start), start)
	synctest.Wait()
	e.sink.take()
	return start
}

// A gap while a catch-up backs off does not start it early: only a confirm
// cuts a backoff short.
func TestGapDoesNotCutBackoffShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{RetryMin: 10 * time.Second, RetryMax: 10 * time.Second}, "a")
		start := refuseFirstAttempt(e) // backing off 5-10 s
		for range 10 {
			e.c.Gap(e.meta("a", time.Now()), time.Now())
		}
		synctest.Wait()
		if got := e.sink.take(); len(got) != 0 {
			t.Fatalf("a gap started the catch-up during its backoff (%d replays)", len(got))
		}
		<-e.sink.done
		if waited := time.Since(start); waited < 5*time.Second {
			t.Fatalf("retried after %v, want the backoff (at least 5 s)", waited)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 11 {
			t.Fatalf("cursor %+v, want 11", c)
		}
	})
}

// Resume starts catch-ups that wait because NATS refused their replays,
// without waiting out the backoff; others keep theirs.
func TestResumeRetriesRefusedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{RetryMin: time.Minute, RetryMax: time.Minute}, "a")
		start := refuseFirstAttempt(e) // backing off 30-60 s
		time.Sleep(time.Second)
		e.c.Resume()
		<-e.sink.done
		if waited := time.Since(start); waited > 2*time.Second {
			t.Fatalf("retried after %v, want at once on Resume", waited)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 11 {
			t.Fatalf("cursor %+v, want 11", c)
		}
	})
}

// levels records the level of every log record with a given message.
type levels struct {
	mu  sync.Mutex
	msg string
	got []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levels) WithGroup(string) slog.Handler            { return l }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	if r.Message == l.msg {
		l.mu.Lock()
		l.got = append(l.got, r.Level)
		l.mu.Unlock()
	}
	return nil
}

// A NATS outage makes every refused catch-up retry: only the first retry of
// each is a warning, or a long outage floods the log.
func TestRefusedRetriesLogOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lv := &levels{msg: "catch-up failed, retrying"}
		e := newEnv(t, Options{RetryMin: time.Second, RetryMax: time.Second, Logger: slog.New(lv)}, "a")
		e.synced("a", "1", 10, "open")
		e.src.conv(1, "open")
		e.src.add(1, 11, 11, time.Now().Unix())
		e.sink.mu.Lock()
		e.sink.drop = 3
		e.sink.mu.Unlock()
		e.run(e.meta("a", time.Now()))
		lv.mu.Lock()
		defer lv.mu.Unlock()
		if fmt.Sprint(lv.got) != "[WARN DEBUG DEBUG]" {
			t.Fatalf("retry log levels %v, want [WARN DEBUG DEBUG]", lv.got)
		}
	})
}

// A replayed event the fan-out rejects for good is skipped: the catch-up
// completes and the cursor moves past it, instead of retrying for ever.
func TestRejectedReplaySkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, Options{}, "a")
		e.synced("a", "1", 10, "open")
		e.src.conv(1, "open")
		e.src.add(1, 11, 13, time.Now().Unix())
		e.sink.mu.Lock()
		e.sink.reject = 1 // message 11
		e.sink.mu.Unlock()
		done := e.run(e.meta("a", time.Now()))
		if got := messageIDs(t, e.sink.take()); !slices.Equal(got, []int64{11, 12, 13}) {
			t.Fatalf("replayed %v, want 11-13 once", got)
		}
		if c := e.cursor("a", "1"); c.LastMessageID != 13 || done.Reason != "" {
			t.Fatalf("cursor %+v, done %+v; want 13 and success", c, done)
		}
		if got := testutil.ToFloat64(e.c.m.rejected); got != 1 {
			t.Fatalf("rejected = %v, want 1", got)
		}
	})
}
