package feeds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// memStore is store.Feeds in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string]store.Feed
}

func (s *memStore) PutFeed(_ context.Context, f store.Feed) (store.Feed, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, found := s.m[f.ID]
	if found {
		f = store.NewFeedRecord(f, &old, old.CreatedAt)
	} else {
		f = store.NewFeedRecord(f, nil, f.CreatedAt)
	}
	s.m[f.ID] = f
	return f, !found, nil
}

func (s *memStore) GetFeed(_ context.Context, id string) (store.Feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.m[id]
	if !ok {
		return f, store.ErrNotFound
	}
	return f, nil
}

func (s *memStore) ListFeeds(context.Context) ([]store.Feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Feed
	for _, f := range s.m {
		out = append(out, f)
	}
	return out, nil
}

func (s *memStore) DeleteFeed(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func (s *memStore) AdvanceFeedCursor(_ context.Context, id string, acc, msg int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.m[id]
	if !ok {
		return store.ErrNotFound
	}
	if cur, ok := f.Cursors[acc]; ok && cur >= msg {
		return nil
	}
	c := map[int64]int64{}
	for k, v := range f.Cursors {
		c[k] = v
	}
	c[acc] = msg
	f.Cursors = c
	s.m[id] = f
	return nil
}

func (s *memStore) cursor(id string, acc int64) (int64, bool) {
	f, _ := s.GetFeed(context.Background(), id)
	c, ok := f.Cursors[acc]
	return c, ok
}

// source is the Application API: one account, conversations by activity.
type source struct {
	mu      sync.Mutex
	profile chatwoot.Profile
	err     error
	convs   []chatwoot.AccountConversation // most recently active first
	msgs    map[int64][]int64              // by conversation
	clock   int64                          // Chatwoot's clock, unix seconds
	onList  func(page int)                 // called as paged lists a page
	failAt  int                            // message calls before they fail (0: never)
	calls   int                            // message calls
	lists   int                            // conversations pages paged listed
	listMax int                            // pages paged lists before it fails (0: never)
}

func (s *source) GetProfile(context.Context, chatwoot.AccessToken) (chatwoot.Profile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profile, s.err
}

func (s *source) ListAccountConversations(_ context.Context, _ chatwoot.AccessToken, _ int64, page int) ([]chatwoot.AccountConversation, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if page > 1 {
		return nil, len(s.convs), nil
	}
	return slices.Clone(s.convs), len(s.convs), nil
}

func (s *source) ListAccountMessages(_ context.Context, _ chatwoot.AccessToken, account, conv, after int64) ([]chatwoot.AccountMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failAt > 0 && s.calls >= s.failAt {
		return nil, &chatwoot.APIError{Status: 502, Kind: chatwoot.KindStatus}
	}
	var out []chatwoot.AccountMessage
	for _, id := range s.msgs[conv] { // after=0 too: Chatwoot's after is present
		if id > after && len(out) < 100 {
			raw := fmt.Sprintf(`{"id":%d,"account_id":%d,"conversation_id":%d,"message_type":1,"private":false}`, id, account, conv)
			out = append(out, chatwoot.AccountMessage{ID: id, Raw: json.RawMessage(raw)})
		}
	}
	return out, nil
}

// add creates message id in conv: the conversation lists it as its last
// message and moves to the top, two minutes after the last change (more
// than activitySlack: repasses do not cover the whole account).
func (s *source) add(conv, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs[conv] = append(s.msgs[conv], id)
	i := slices.IndexFunc(s.convs, func(c chatwoot.AccountConversation) bool { return c.ID == conv })
	c := s.convs[i]
	s.clock = max(s.clock+120, 1_700_000_000)
	c.LastActivityAt = s.clock
	c.Messages = []struct {
		ID int64 `json:"id"`
	}{{ID: id}}
	s.convs = append([]chatwoot.AccountConversation{c}, slices.Delete(s.convs, i, i+1)...)
}

// create adds a conversation without messages at the top (one created
// through the API).
func (s *source) create(conv int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = max(s.clock+120, 1_700_000_000)
	c := chatwoot.AccountConversation{ID: conv, InboxID: 2, LastActivityAt: s.clock}
	s.convs = append([]chatwoot.AccountConversation{c}, s.convs...)
}

// pool records subscriptions.
type pool struct {
	mu   sync.Mutex
	subs map[string]string // id -> pubsub token
}

func (p *pool) AddUser(token string, acc, _ int64, _ *fanout.Sub) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := cable.UserSubscriptionID(token, acc)
	p.subs[id] = token
	return id, nil
}

func (p *pool) Remove(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.subs[id]
	delete(p.subs, id)
	return ok
}

func (p *pool) Get(string) (cable.Info[*fanout.Sub], bool) { return cable.Info[*fanout.Sub]{}, false }

func (p *pool) tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, t := range p.subs {
		out = append(out, t)
	}
	return out
}

// sink records events and settles them with outcome.
type sink struct {
	mu      sync.Mutex
	events  []fanout.Event
	outcome error
}

func (s *sink) Handle(ev fanout.Event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	out := s.outcome
	s.mu.Unlock()
	ev.Done(out)
}

func (s *sink) replayed() []fanout.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

type env struct {
	m      *Manager
	st     *memStore
	src    *source
	pool   *pool
	sink   *sink
	feedID string
}

func newEnv(t *testing.T) *env {
	e := &env{st: &memStore{m: map[string]store.Feed{}}, pool: &pool{subs: map[string]string{}}, sink: &sink{},
		src: &source{profile: chatwoot.Profile{ID: 5, PubsubToken: "pubsub-A", Accounts: []chatwoot.ProfileAccount{{ID: 1}}},
			convs: []chatwoot.AccountConversation{{ID: 1, InboxID: 2}, {ID: 2, InboxID: 2}}, msgs: map[int64][]int64{}}}
	e.src.convs[0].Meta.Sender.ID = 7
	e.m = New(Options{Store: e.st, Source: e.src, Pool: e.pool, Sink: e.sink, Registerer: prometheus.NewRegistry()})
	t.Cleanup(func() { e.m.Close(context.Background()) })
	f, created, err := e.m.Add(context.Background(), "access-secret")
	if err != nil || !created || f.UserID != 5 {
		t.Fatalf("Add: %+v %v %v", f, created, err)
	}
	e.feedID = f.ID
	return e
}

func (e *env) subID() string { return cable.UserSubscriptionID(e.src.profile.PubsubToken, 1) }

func (e *env) sub() *Sub {
	e.m.mu.Lock()
	defer e.m.mu.Unlock()
	return e.m.subs[e.subID()]
}

func TestAddSubscribesEachAccount(t *testing.T) {
	e := newEnv(t)
	if got := e.pool.tokens(); !slices.Equal(got, []string{"pubsub-A"}) {
		t.Fatalf("pool tokens %v", got)
	}
	e.src.profile.Accounts = append(e.src.profile.Accounts, chatwoot.ProfileAccount{ID: 2})
	if _, created, err := e.m.Add(context.Background(), "access-secret"); err != nil || created {
		t.Fatalf("Add again: created %v, %v", created, err)
	}
	if n := len(e.pool.tokens()); n != 2 {
		t.Fatalf("%d subscriptions for two accounts", n)
	}
	e.src.err = &chatwoot.APIError{Status: 401, Kind: chatwoot.KindStatus}
	if _, _, err := e.m.Add(context.Background(), "other"); !errors.Is(err, ErrRefused) {
		t.Fatalf("refused token: %v", err)
	}
}

// A new feed starts at the account's newest message; after a loss, what
// was created meanwhile is replayed and the cursor moves once it is in NATS.
func TestCatchUpFromCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		e.src.add(1, 10)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if c, ok := e.st.cursor(e.feedID, 1); !ok || c != 10 || len(e.sink.replayed()) != 0 {
			t.Fatalf("baseline: cursor %d (%v), %d replayed", c, ok, len(e.sink.replayed()))
		}
		e.m.Lost(e.subID())
		e.src.add(2, 11)
		e.src.add(1, 12)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		evs := e.sink.replayed()
		if len(evs) != 2 || !evs[0].Replayed || !evs[0].Feed || evs[0].Hints.ContactID != "7" || evs[0].Hints.InboxID != "2" {
			t.Fatalf("replayed %+v", evs)
		}
		if c, _ := e.st.cursor(e.feedID, 1); c != 12 {
			t.Fatalf("cursor %d after the catch-up, want 12", c)
		}
		if r, ok := testutil.ToFloat64(e.m.m.replayed), testutil.ToFloat64(e.m.m.catchups.WithLabelValues("ok")); r != 2 || ok != 2 {
			t.Errorf("metrics: replayed %v, catch-ups ok %v", r, ok)
		}
	})
}

// A replay NATS did not take leaves the cursor where it was and is tried
// again.
func TestCatchUpRetriesUnpublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		e.m.Confirmed(e.subID())
		synctest.Wait()
		e.m.Lost(e.subID())
		e.src.add(1, 3)
		e.sink.mu.Lock()
		e.sink.outcome = fanout.ErrBufferFull
		e.sink.mu.Unlock()
		e.m.Confirmed(e.subID())
		synctest.Wait()
		if c, _ := e.st.cursor(e.feedID, 1); c != 0 {
			t.Fatalf("cursor moved to %d past an unpublished replay", c)
		}
		e.sink.mu.Lock()
		e.sink.outcome = nil
		e.sink.mu.Unlock()
		synctest.Wait() // the retry waits a second
		for c, _ := e.st.cursor(e.feedID, 1); c != 3; c, _ = e.st.cursor(e.feedID, 1) {
			synctest.Wait()
			sleep(context.Background(), retryMin)
		}
	})
}

// Chatwoot stops confirming: the profile is read again; a rotated pubsub
// token replaces the subscription, a refused access token makes it invalid.
func TestVerifyRereadsProfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		old := e.sub()
		if v, err := e.m.Verify(context.Background(), old); v != cable.VerdictValid || err != nil {
			t.Fatalf("unchanged profile: %v %v", v, err)
		}
		e.src.mu.Lock()
		e.src.profile.PubsubToken = "pubsub-B"
		e.src.mu.Unlock()
		if v, _ := e.m.Verify(context.Background(), old); v != cable.VerdictUnknown {
			t.Fatalf("rotated token: verdict %v", v)
		}
		synctest.Wait()
		if got := e.pool.tokens(); !slices.Equal(got, []string{"pubsub-B"}) {
			t.Fatalf("pool tokens after rotation %v", got)
		}
		e.src.mu.Lock()
		e.src.err = &chatwoot.APIError{Status: 401, Kind: chatwoot.KindStatus}
		e.src.mu.Unlock()
		s := e.sub()
		if v, _ := e.m.Verify(context.Background(), s); v != cable.VerdictInvalid {
			t.Fatalf("refused token: verdict %v", v)
		}
	})
}

// A profile that cannot make a feed is refused with a clear error that
// carries no token, and subscribes nothing.
func TestUnusableProfiles(t *testing.T) {
	e := newEnv(t)
	before := len(e.pool.tokens())
	many := make([]chatwoot.ProfileAccount, MaxAccounts+1)
	for i := range many {
		many[i].ID = int64(i + 1)
	}
	for name, p := range map[string]chatwoot.Profile{
		"no account":        {ID: 5, PubsubToken: "pubsub-C"},
		"too many accounts": {ID: 5, PubsubToken: "pubsub-C", Accounts: many},
		"control character": {ID: 5, PubsubToken: "pubsub\x00C", Accounts: []chatwoot.ProfileAccount{{ID: 1}}},
		"no user id":        {PubsubToken: "pubsub-C", Accounts: []chatwoot.ProfileAccount{{ID: 1}}},
		"account id 0":      {ID: 5, PubsubToken: "pubsub-C", Accounts: []chatwoot.ProfileAccount{{ID: 0}}},
		"repeated account":  {ID: 5, PubsubToken: "pubsub-C", Accounts: []chatwoot.ProfileAccount{{ID: 1}, {ID: 1}}},
	} {
		e.src.profile = p
		_, _, err := e.m.Add(context.Background(), "access-other")
		if !errors.Is(err, ErrProfile) && !errors.Is(err, ErrNoAccount) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), p.PubsubToken) || strings.Contains(err.Error(), "access-other")) {
			t.Errorf("%s: error quotes a token: %v", name, err)
		}
	}
	if n := len(e.pool.tokens()); n != before {
		t.Errorf("%d subscriptions added for unusable profiles", n-before)
	}
}

// Feeds another replica adds or deletes in the shared store are followed.
func TestSyncFollowsTheStore(t *testing.T) {
	e := newEnv(t)
	other := store.Feed{ID: ID("access-2"), AccessToken: "access-2", PubsubToken: "pubsub-2", UserID: 6, Accounts: []int64{1}}
	e.st.PutFeed(context.Background(), other)
	if _, err := e.m.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.pool.tokens(); len(got) != 2 || !slices.Contains(got, "pubsub-2") {
		t.Fatalf("after another replica's add: %v", got)
	}
	e.st.DeleteFeed(context.Background(), e.feedID)
	e.m.Sync(context.Background())
	if got := e.pool.tokens(); !slices.Equal(got, []string{"pubsub-2"}) {
		t.Fatalf("after another replica's delete: %v", got)
	}
}

// A lost connection moves the cursor to the live messages that settled,
// not past a younger one whose predecessor may still be on its way.
func TestLostWritesSettledCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		e.m.Confirmed(e.subID())
		synctest.Wait() // baseline 0, caught up
		live := func(id int64) {
			e.m.Published(e.subID(), fanout.Route{Kind: fanout.KindMessage, MessageID: fmt.Sprint(id)})
		}
		live(20)
		sleep(context.Background(), settleAfter)
		live(22) // 21 may still come
		e.m.Lost(e.subID())
		synctest.Wait()
		if c, _ := e.st.cursor(e.feedID, 1); c != 20 {
			t.Fatalf("cursor %d after the loss, want 20 (22 has not settled)", c)
		}
	})
}
