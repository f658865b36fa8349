package feeds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Errors.
var (
	// ErrRefused: Chatwoot refused the access token (401).
	ErrRefused = errors.New("feeds: Chatwoot refused the access token")
	// ErrNoAccount: the user belongs to no account.
	ErrNoAccount = errors.New("feeds: the user belongs to no account")
	// ErrNotFound: no such feed.
	ErrNotFound = errors.New("feeds: no such feed")
	// ErrProfile: the profile Chatwoot answered cannot make a feed.
	ErrProfile = errors.New("feeds: unusable profile")
)

// MaxAccounts bounds the accounts (subscriptions) of one feed.
const MaxAccounts = 100

// Source is the Application API the manager calls (a *chatwoot.Client,
// whose limiter is the relay's shared Chatwoot budget).
type Source interface {
	GetProfile(ctx context.Context, token chatwoot.AccessToken) (chatwoot.Profile, error)
	ListAccountConversations(ctx context.Context, token chatwoot.AccessToken, account int64, page int) ([]chatwoot.AccountConversation, int, error)
	ListAccountMessages(ctx context.Context, token chatwoot.AccessToken, account, conversation, after int64) ([]chatwoot.AccountMessage, error)
}

// Pool is what the manager needs of the cable pool.
type Pool interface {
	AddUser(token string, accountID, userID int64, sub *fanout.Sub) (string, error)
	Remove(id string) bool
	Get(id string) (cable.Info[*fanout.Sub], bool)
}

// Sink takes replayed events (the fan-out).
type Sink interface {
	Handle(ev fanout.Event)
}

// Options configure a Manager.
type Options struct {
	Store  store.Feeds
	Source Source
	Pool   Pool
	Sink   Sink
	// Events takes the subscriptions' lifecycle events (the fan-out); nil
	// publishes none.
	Events interface {
		Lifecycle(ev fanout.LifecycleEvent) error
	}
	// SyncInterval is how often the manager reads the stored feeds again,
	// so that feeds added or deleted through another replica are followed.
	// 0: only at Load.
	SyncInterval time.Duration
	// Logger: nil discards.
	Logger *slog.Logger
	// Registerer receives the relay_feed_* collectors; nil: not registered.
	Registerer prometheus.Registerer
}

// Manager keeps the account feeds subscribed and caught up.
type Manager struct {
	opts   Options
	log    *slog.Logger
	m      *metrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// applyMu serializes changes of the subscriptions (pool calls), which
	// are made without mu: the pool reports them back synchronously.
	applyMu sync.Mutex

	routes routeTable
	// nsubs is len(subs), read without mu on the event path.
	nsubs atomic.Int64

	// Guarded by mu.
	mu    sync.Mutex
	feeds map[string]*feed // by feed id
	subs  map[string]*Sub  // by subscription id
}

// feed is one feed's record and its subscriptions. Guarded by Manager.mu.
type feed struct {
	rec  store.Feed
	subs map[int64]*Sub // by account id
}

// Sub is one feed subscription (one account). Its fan-out record, which
// the cable pool carries, has it as Owner.
type Sub struct {
	ID        string // subscription id
	m         *Manager
	rec       *fanout.Sub
	FeedID    string
	AccountID int64
	UserID    int64
	token     string // the pubsub token it was added with

	// Guarded by Manager.mu.
	clean    bool   // caught up since the last confirm, and no gap since
	gen      uint64 // bumped by every confirm, loss and gap
	live     live   // live messages in NATS
	catching bool   // a catch-up runs
	again    bool   // another catch-up is wanted when it ends

	walk *walk // the catch-up in progress; only its goroutine uses it
	// touched holds, while a catch-up runs, the conversations live
	// messages came from (guarded by Manager.mu): see walk.
	touched map[int64]chatwoot.AccountConversation
}

// ID is the public id of the feed of an access token: a stable hash, never
// the token.
func ID(accessToken string) string {
	h := sha256.Sum256([]byte("relay/feed-token\x00" + accessToken))
	return hex.EncodeToString(h[:8])
}

// New returns a Manager; Load subscribes the stored feeds.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel,
		feeds: make(map[string]*feed), subs: make(map[string]*Sub)}
	m.m = newMetrics(opts.Registerer, m)
	return m
}

// Add registers the feed of an access token: it reads the user's profile,
// stores the feed and subscribes each account. Adding a token again reads
// the profile again. created reports a new feed.
func (m *Manager) Add(ctx context.Context, accessToken string) (Feed, bool, error) {
	rec, err := m.readProfile(ctx, store.Feed{ID: ID(accessToken), AccessToken: accessToken})
	if err != nil {
		return Feed{}, false, err
	}
	stored, created, err := m.opts.Store.PutFeed(ctx, rec)
	if err != nil {
		return Feed{}, false, err
	}
	m.apply(stored)
	f, err := m.Get(ctx, stored.ID)
	return f, created, err
}

// readProfile fills rec from the profile of its access token.
func (m *Manager) readProfile(ctx context.Context, rec store.Feed) (store.Feed, error) {
	p, err := m.opts.Source.GetProfile(ctx, chatwoot.AccessToken(rec.AccessToken))
	switch {
	case chatwoot.Unauthorized(err):
		m.m.profiles.WithLabelValues("refused").Inc()
		return rec, ErrRefused
	case err != nil:
		m.m.profiles.WithLabelValues("error").Inc()
		return rec, err
	case len(p.Accounts) == 0:
		return rec, ErrNoAccount
	case len(p.Accounts) > MaxAccounts:
		return rec, fmt.Errorf("%w: the user belongs to %d accounts, more than %d", ErrProfile, len(p.Accounts), MaxAccounts)
	case !cable.ValidToken(p.PubsubToken):
		return rec, fmt.Errorf("%w: no usable pubsub_token", ErrProfile)
	case p.ID <= 0:
		return rec, fmt.Errorf("%w: no user id", ErrProfile)
	}
	m.m.profiles.WithLabelValues("ok").Inc()
	rec.UserID, rec.PubsubToken, rec.Accounts = p.ID, p.PubsubToken, nil
	for _, a := range p.Accounts {
		if a.ID <= 0 || slices.Contains(rec.Accounts, a.ID) {
			return rec, fmt.Errorf("%w: an account id is missing or repeated", ErrProfile)
		}
		rec.Accounts = append(rec.Accounts, a.ID)
	}
	slices.Sort(rec.Accounts)
	return rec, nil
}

// Load subscribes every stored feed and, with Options.SyncInterval, keeps
// following the store; it returns how many feeds it found.
func (m *Manager) Load(ctx context.Context) (int, error) {
	n, err := m.Sync(ctx)
	if err != nil || m.opts.SyncInterval <= 0 {
		return n, err
	}
	m.wg.Add(1)
	go m.follow()
	return n, nil
}

// Sync makes the subscriptions match the stored feeds: feeds another
// replica added (or whose profile it read again) are subscribed, feeds it
// deleted are unsubscribed. It returns how many feeds are stored.
func (m *Manager) Sync(ctx context.Context) (int, error) {
	recs, err := m.opts.Store.ListFeeds(ctx)
	if err != nil {
		return 0, err
	}
	keep := make(map[string]bool, len(recs))
	for _, rec := range recs {
		keep[rec.ID] = true
		m.apply(rec)
	}
	m.mu.Lock()
	var gone []string
	for id := range m.feeds {
		if !keep[id] {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		m.forget(id)
	}
	return len(recs), nil
}

// follow runs Sync every SyncInterval until Close.
func (m *Manager) follow() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.Sync(m.ctx); err != nil && m.ctx.Err() == nil {
			m.log.Warn("account feeds not synced with the store", "err", err)
		}
	}
}

// Remove deletes a feed and its subscriptions.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if err := m.opts.Store.DeleteFeed(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	m.forget(id)
	return nil
}

// forget unsubscribes a feed that is no longer stored.
func (m *Manager) forget(id string) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	f := m.feeds[id]
	delete(m.feeds, id)
	m.mu.Unlock()
	if f != nil {
		for _, s := range f.subs {
			m.drop(s)
		}
	}
}

// apply makes the pool hold one subscription per account of rec with its
// pubsub token, replacing those of an older token.
func (m *Manager) apply(rec store.Feed) {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	f := m.feeds[rec.ID]
	if f == nil {
		f = &feed{subs: make(map[int64]*Sub)}
		m.feeds[rec.ID] = f
	}
	f.rec = rec
	var stale []*Sub
	for acc, s := range f.subs {
		if s.token != rec.PubsubToken || !slices.Contains(rec.Accounts, acc) {
			stale = append(stale, s)
			delete(f.subs, acc)
		}
	}
	var fresh []int64
	for _, acc := range rec.Accounts {
		if f.subs[acc] == nil {
			fresh = append(fresh, acc)
		}
	}
	m.mu.Unlock()
	for _, s := range stale {
		m.drop(s)
	}
	if rec.PubsubToken == "" {
		return
	}
	for _, acc := range fresh {
		m.subscribe(f, rec, acc)
	}
}

func (m *Manager) subscribe(f *feed, rec store.Feed, acc int64) {
	s := &Sub{FeedID: rec.ID, AccountID: acc, UserID: rec.UserID, token: rec.PubsubToken,
		ID: cable.UserSubscriptionID(rec.PubsubToken, acc), m: m}
	s.rec = fanout.NewSub(s.ID, s, fanout.Hints{AccountID: strconv.FormatInt(acc, 10)})
	s.rec.Feed = true
	m.mu.Lock()
	f.subs[acc] = s
	m.subs[s.ID] = s
	m.nsubs.Store(int64(len(m.subs)))
	m.mu.Unlock()
	if _, err := m.opts.Pool.AddUser(rec.PubsubToken, acc, rec.UserID, s.rec); err != nil {
		m.log.Error("feed subscription not added", "feed", rec.ID, "account", acc, "err", err)
	}
}

func (m *Manager) drop(s *Sub) {
	m.mu.Lock()
	delete(m.subs, s.ID)
	m.nsubs.Store(int64(len(m.subs)))
	m.mu.Unlock()
	m.opts.Pool.Remove(s.ID)
}

// Verify is the pool's verifier for feed subscriptions that Chatwoot keeps
// leaving unconfirmed: it reads the profile again. A rotated pubsub token
// (password change) replaces the subscriptions; a refused access token
// makes the subscription invalid.
func (m *Manager) Verify(ctx context.Context, s *Sub) (cable.Verdict, error) {
	m.mu.Lock()
	f := m.feeds[s.FeedID]
	var rec store.Feed
	if f != nil {
		rec = f.rec
	}
	m.mu.Unlock()
	if f == nil {
		return cable.VerdictUnknown, nil
	}
	fresh, err := m.readProfile(ctx, rec)
	switch {
	case errors.Is(err, ErrRefused):
		m.log.Warn("feed access token refused by Chatwoot; its subscription stops", "feed", s.FeedID, "account", s.AccountID)
		return cable.VerdictInvalid, nil
	case err != nil:
		return cable.VerdictUnknown, err
	case fresh.PubsubToken == rec.PubsubToken && slices.Equal(fresh.Accounts, rec.Accounts):
		return cable.VerdictValid, nil
	}
	m.log.Info("feed profile changed; subscriptions replaced", "feed", s.FeedID)
	stored, _, err := m.opts.Store.PutFeed(ctx, fresh)
	if err != nil {
		return cable.VerdictUnknown, err
	}
	go m.apply(stored) // not from the pool's verifier goroutine, which Remove would wait for
	return cable.VerdictUnknown, nil
}

// Close stops the catch-ups and writes the cursors of the subscriptions
// that are caught up.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.cancel() // under mu: goroutines are added under mu while not cancelled
	m.mu.Unlock()
	m.wg.Wait()
	m.mu.Lock()
	upTo := map[*Sub]int64{}
	for _, s := range m.subs {
		if id := s.live.settle(time.Now()); s.clean && id > 0 {
			upTo[s] = id
		}
	}
	m.mu.Unlock()
	var errs []error
	for s, id := range upTo {
		errs = append(errs, m.advance(ctx, s, id))
	}
	return errors.Join(errs...)
}

func (m *Manager) advance(ctx context.Context, s *Sub, id int64) error {
	err := m.opts.Store.AdvanceFeedCursor(ctx, s.FeedID, s.AccountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // removed meanwhile
	}
	return err
}
