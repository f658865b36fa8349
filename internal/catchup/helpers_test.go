package catchup

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

// templates are the REST shapes of the fixtures: a conversation, an
// incoming and an outgoing message, decoded into generic maps.
type templates struct {
	conv     map[string]any
	incoming map[string]any
	outgoing map[string]any
}

func loadTemplates(t testing.TB) templates {
	t.Helper()
	var convs []map[string]any
	if err := json.Unmarshal(fixtures.Read(t, "api/conversations_index.json"), &convs); err != nil {
		t.Fatal(err)
	}
	var msgs []map[string]any
	if err := json.Unmarshal(fixtures.Read(t, "api/messages_index.json"), &msgs); err != nil {
		t.Fatal(err)
	}
	return templates{conv: convs[0], incoming: msgs[0], outgoing: msgs[1]}
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

type fakeMsg struct {
	id, createdAt int64
	outgoing      bool
}

type fakeConv struct {
	id     int64
	status string
	msgs   []fakeMsg // ascending id
}

type call struct {
	op       string // "conversations" or "messages"
	sourceID string
	conv     int64
	before   int64
	at       time.Time
}

// fakeSource is an in-memory public API with Chatwoot's paging rules. It
// answers every source_id with the same conversations.
type fakeSource struct {
	tpl templates

	mu    sync.Mutex
	convs []*fakeConv
	calls []call
	// embedLatest, when positive, embeds only the latest embedLatest
	// messages in a listed conversation, as a server bounding the
	// embedding would; 0 embeds all of them, as Chatwoot does.
	embedLatest int
	// fixedConvs and fixedMsgs, when set, are returned as they are.
	fixedConvs, fixedMsgs []byte
	// onList and onMessages, when set, run before answering; a non-nil
	// error is returned instead. They are called without the lock held.
	onList     func(ctx context.Context, sourceID string) error
	onMessages func(ctx context.Context, conv, before int64) error
}

func newFakeSource(t testing.TB) *fakeSource { return &fakeSource{tpl: loadTemplates(t)} }

// conv returns the conversation with display id id, creating it.
func (f *fakeSource) conv(id int64, status string) *fakeConv {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.convs {
		if c.id == id {
			c.status = status
			return c
		}
	}
	c := &fakeConv{id: id, status: status}
	f.convs = append(f.convs, c)
	return c
}

// add appends messages with ids from..to to conversation conv.
func (f *fakeSource) add(conv, from, to, createdAt int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.convs {
		if c.id == conv {
			for id := from; id <= to; id++ {
				c.msgs = append(c.msgs, fakeMsg{id: id, createdAt: createdAt, outgoing: id%2 == 0})
			}
			return
		}
	}
	panic("no conversation")
}

func (f *fakeSource) setStatus(conv int64, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.convs {
		if c.id == conv {
			c.status = status
		}
	}
}

// messageJSON is the REST message the fake returns for m, byte for byte
// the same on every call.
func (f *fakeSource) messageJSON(conv int64, m fakeMsg) []byte {
	tpl := f.tpl.incoming
	if m.outgoing {
		tpl = f.tpl.outgoing
	}
	v := clone(tpl)
	v["id"], v["created_at"], v["conversation_id"] = m.id, m.createdAt, conv
	v["content"] = fmt.Sprintf("message %d", m.id)
	b, _ := json.Marshal(v)
	return b
}

func (f *fakeSource) conversationJSON(c *fakeConv) []byte {
	v := clone(f.tpl.conv)
	msgs := make([]json.RawMessage, 0, len(c.msgs))
	embedded := c.msgs
	if f.embedLatest > 0 && len(embedded) > f.embedLatest {
		embedded = embedded[len(embedded)-f.embedLatest:]
	}
	for _, m := range embedded {
		msgs = append(msgs, f.messageJSON(c.id, m))
	}
	v["id"], v["status"], v["messages"] = c.id, c.status, msgs
	b, _ := json.Marshal(v)
	return b
}

func (f *fakeSource) record(c call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.at = time.Now()
	f.calls = append(f.calls, c)
}

func (f *fakeSource) ListConversations(ctx context.Context, ci chatwoot.ContactInbox) ([]chatwoot.Conversation, error) {
	f.record(call{op: "conversations", sourceID: ci.SourceID})
	if f.onList != nil {
		if err := f.onList(ctx, ci.SourceID); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	body := f.fixedConvs
	if body == nil {
		parts := make([]json.RawMessage, 0, len(f.convs))
		for _, c := range f.convs {
			parts = append(parts, f.conversationJSON(c))
		}
		body, _ = json.Marshal(parts)
	}
	f.mu.Unlock()
	var out []chatwoot.Conversation
	return out, json.Unmarshal(body, &out)
}

func (f *fakeSource) ListMessages(ctx context.Context, _ chatwoot.ContactInbox, conv, before int64) ([]chatwoot.Message, error) {
	f.record(call{op: "messages", conv: conv, before: before})
	if f.onMessages != nil {
		if err := f.onMessages(ctx, conv, before); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	body := f.fixedMsgs
	if body == nil {
		body = f.pageJSON(conv, before)
	}
	f.mu.Unlock()
	if body == nil {
		return nil, &chatwoot.APIError{Kind: chatwoot.KindNotFound, Route: "GET messages", Status: 404}
	}
	var out []chatwoot.Message
	return out, json.Unmarshal(body, &out)
}

// pageJSON is MessageFinder: the 20 most recent messages (with id < before
// when before > 0), ascending; nil for an unknown conversation.
func (f *fakeSource) pageJSON(conv, before int64) []byte {
	for _, c := range f.convs {
		if c.id != conv {
			continue
		}
		var page []json.RawMessage
		for i := len(c.msgs) - 1; i >= 0 && len(page) < PageSize; i-- {
			if before <= 0 || c.msgs[i].id < before {
				page = append(page, f.messageJSON(conv, c.msgs[i]))
			}
		}
		slices.Reverse(page)
		b, _ := json.Marshal(append([]json.RawMessage{}, page...))
		return b
	}
	return nil
}

func (f *fakeSource) callsOf(op string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.op == op {
			out = append(out, c)
		}
	}
	return out
}

// recSink records what catch-up publishes.
type recSink struct {
	mu     sync.Mutex
	drop   int // the next drop replayed events are reported as not published (no room)
	reject int // the next reject replayed events are reported as rejected for good
	events []fanout.Event
	life   []fanout.LifecycleEvent
	done   chan fanout.LifecycleEvent
	// waits counts WaitRoom calls; room, when set, answers them.
	waits int
	room  func(ctx context.Context) error
}

func (s *recSink) WaitRoom(ctx context.Context) error {
	s.mu.Lock()
	s.waits++
	room := s.room
	s.mu.Unlock()
	if room != nil {
		return room(ctx)
	}
	return nil
}

func newRecSink() *recSink { return &recSink{done: make(chan fanout.LifecycleEvent, 100)} }

func (s *recSink) Handle(ev fanout.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	var outcome error // recorded is published, unless told otherwise
	switch {
	case s.drop > 0:
		s.drop--
		outcome = fanout.ErrBufferFull
	case s.reject > 0:
		s.reject--
		outcome = fmt.Errorf("%w: too large", fanout.ErrRejected)
	}
	s.mu.Unlock()
	if ev.Done != nil {
		ev.Done(outcome)
	}
}

func (s *recSink) Lifecycle(ev fanout.LifecycleEvent) error {
	s.mu.Lock()
	s.life = append(s.life, ev)
	s.mu.Unlock()
	s.done <- ev
	return nil
}

// take returns and forgets the recorded events.
func (s *recSink) take() []fanout.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

// env is a Catchup over a fake source, a bolt store and a recording sink.
type env struct {
	t    *testing.T
	src  *fakeSource
	sink *recSink
	st   *bolt.Store
	c    *Catchup
	reg  *prometheus.Registry

	mu     sync.Mutex
	states map[string]*State // the records' catch-up states, by subscription id
}

// newEnv must run inside a synctest bubble. It registers the given
// subscriptions in the store and starts the Catchup.
func newEnv(t *testing.T, opts Options, subs ...string) *env {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, src: newFakeSource(t), sink: newRecSink(), st: st, reg: prometheus.NewRegistry()}
	for _, id := range subs {
		e.register(id)
	}
	opts.Source, opts.Cursors, opts.Sink, opts.Registerer = e.src, st, e.sink, e.reg
	e.c, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.c.Start()
	t.Cleanup(func() {
		if err := e.c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		st.Close()
	})
	return e
}

func (e *env) register(id string) {
	e.t.Helper()
	_, _, err := e.st.PutSubscription(context.Background(), store.Subscription{
		ID: id, Token: "token-" + id, InboxIdentifier: "inbox-1", SourceID: "src-" + id,
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// state returns the catch-up state of subscription id's record, as a
// record owns it.
func (e *env) state(id string) *State {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.states == nil {
		e.states = make(map[string]*State)
	}
	st := e.states[id]
	if st == nil {
		st = new(State)
		e.states[id] = st
	}
	return st
}

// drop forgets id's record: a later state(id) is a new record's.
func (e *env) drop(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.states, id)
}

// target is subscription id's record as the event path knows it.
func (e *env) target(id string) *Target { return &Target{ID: id, State: e.state(id)} }

// meta is a subscription with catch-up data, registered at created.
func (e *env) meta(id string, created time.Time) *Target {
	return &Target{ID: id, InboxIdentifier: "inbox-1", SourceID: "src-" + id, CreatedAt: created, State: e.state(id)}
}

// putCursor stores a cursor as an earlier process would have.
func (e *env) putCursor(sub, conv string, last int64, status string) {
	e.t.Helper()
	_, err := e.st.PutCursor(context.Background(), store.Cursor{SubscriptionID: sub, ConversationID: conv, LastMessageID: last, Status: status})
	if err != nil {
		e.t.Fatal(err)
	}
}

// synced marks sub as caught up before, with cursor conv at last.
func (e *env) synced(sub, conv string, last int64, status string) {
	e.putCursor(sub, SyncMarker, 0, "")
	e.putCursor(sub, conv, last, status)
}

// caughtUpOpen makes sub synced up to message 2 of the open conversation
// 1 and runs its catch-up once: live events then move its cursors.
func (e *env) caughtUpOpen(sub string) {
	e.t.Helper()
	e.synced(sub, "1", 2, "open")
	e.src.conv(1, "open")
	e.run(e.meta(sub, time.Now()))
}

func (e *env) cursor(sub, conv string) store.Cursor {
	e.t.Helper()
	c, err := e.st.GetCursor(context.Background(), sub, conv)
	if err != nil {
		e.t.Fatalf("cursor %s/%s: %v", sub, conv, err)
	}
	return c
}

// memCursor returns the in-memory cursor of a conversation.
func (e *env) memCursor(sub, conv string) cursor {
	st := e.state(sub)
	st.mu.Lock()
	defer st.mu.Unlock()
	if cur := st.cursors[conv]; cur != nil {
		return *cur
	}
	return cursor{}
}

// run triggers a catch-up of m and waits for its catchup.done.
func (e *env) run(m *Target) fanout.LifecycleEvent {
	e.t.Helper()
	e.c.Trigger(m, time.Now())
	return <-e.sink.done
}

func (e *env) runs(result int) int { return int(testutil.ToFloat64(e.c.m.runs[result])) }

// envelope is the body catch-up must publish for a REST object.
func envelope(event string, data []byte) string {
	return `{"event":"` + event + `","data":` + string(data) + `,"replayed":true}`
}

// decoded returns the event name and data id of a replayed body.
func decoded(t testing.TB, ev fanout.Event) (string, int64) {
	t.Helper()
	var v struct {
		Event    string `json:"event"`
		Replayed bool   `json:"replayed"`
		Data     struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ev.Message, &v); err != nil {
		t.Fatalf("body %s: %v", ev.Message, err)
	}
	if !v.Replayed || !ev.Replayed {
		t.Fatalf("event not marked replayed: %s", ev.Message)
	}
	return v.Event, v.Data.ID
}

// messageIDs returns the ids of the replayed message.created events.
func messageIDs(t testing.TB, evs []fanout.Event) []int64 {
	t.Helper()
	var ids []int64
	for _, ev := range evs {
		if name, id := decoded(t, ev); name == evMessageCreated {
			ids = append(ids, id)
		}
	}
	return ids
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// liveMessage is the route fanout computes for a live message.created of
// the fixture (agent reply) with the given ids.
func liveMessage(t testing.TB, conv, id int64) fanout.Route {
	t.Helper()
	var frame struct {
		Message map[string]any `json:"message"`
	}
	if err := json.Unmarshal(fixtures.Read(t, "cable/03_message.created.agent_reply.json"), &frame); err != nil {
		t.Fatal(err)
	}
	data := frame.Message["data"].(map[string]any)
	data["id"], data["conversation_id"] = id, conv
	b, _ := json.Marshal(frame.Message)
	r, err := fanout.Resolve(fanout.Event{SubID: "x", Message: b})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func liveStatus(conv, status string) fanout.Route {
	return fanout.Route{Kind: fanout.KindConversation, Event: evStatusChanged, AccountID: "1", ConversationID: conv, Status: status}
}

var upstreamDown = &chatwoot.APIError{Kind: chatwoot.KindUpstream, Route: "GET /inboxes/{inbox}/contacts/{source_id}/conversations", Status: 502}
var contactGone = &chatwoot.APIError{Kind: chatwoot.KindNotFound, Route: "GET /inboxes/{inbox}/contacts/{source_id}/conversations", Status: 404}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func itoa(n int64) string { return fmt.Sprint(n) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// fixtureMessage returns the `message` object of a cable fixture frame.
func fixtureMessage(t testing.TB, name string) []byte {
	t.Helper()
	var f struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(fixtures.Read(t, "cable/"+name), &f); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), f.Message...)
}

// jsonEqual reports whether a and b encode the same JSON value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// withNewestMessageOnly returns a REST conversation with "messages" cut to
// its newest message.
func withNewestMessageOnly(t testing.TB, conv []byte) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(conv, &v); err != nil {
		t.Fatal(err)
	}
	msgs, _ := v["messages"].([]any)
	var newest any
	for _, m := range msgs {
		if newest == nil || m.(map[string]any)["id"].(float64) > newest.(map[string]any)["id"].(float64) {
			newest = m
		}
	}
	v["messages"] = []any{}
	if newest != nil {
		v["messages"] = []any{newest}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dataOf returns the "data" member of a replayed event.
func dataOf(t testing.TB, body []byte) []byte {
	t.Helper()
	var v struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v.Data
}
