package feeds

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
)

// Catch-up bounds.
const (
	// runPages and runCalls bound the Application API calls of one run of
	// a catch-up: conversations pages (25 conversations) and message pages
	// (100 messages). A walk that needs more is split: the next run goes
	// on where this one stopped, at once, paced by the shared Chatwoot
	// budget. The bounds spread the load; they never drop a message.
	runPages = 40
	runCalls = 1000
	// activitySlack is the clock skew allowed between the order of message
	// ids and of their created_at (last_activity_at), in seconds.
	activitySlack = 60
	// retryMin and retryMax bound the wait before a failed catch-up runs
	// again.
	retryMin, retryMax = time.Second, time.Minute
)

// Confirmed starts a catch-up of a feed subscription Chatwoot confirmed.
func (m *Manager) Confirmed(subID string) { m.dirty(subID) }

// Gap starts a catch-up of a confirmed feed subscription that lost events
// (a dropped broadcast, or the fan-out refused a live event).
func (m *Manager) Gap(subID string) { m.dirty(subID) }

// Lost notes that a feed subscription's connection went away. If it was
// caught up, every live message up to the highest that settled is in NATS:
// its cursor moves there (see settleAfter).
func (m *Manager) Lost(subID string) {
	m.mu.Lock()
	s := m.subs[subID]
	var upTo int64
	if s != nil {
		if s.clean {
			upTo = s.live.settle(time.Now())
		}
		s.clean = false
		s.gen++
	}
	if upTo > 0 && m.ctx.Err() == nil {
		m.wg.Add(1) // under mu and before Close cancels: never concurrent with its Wait
		go m.writeCursor(s, upTo)
	}
	m.mu.Unlock()
}

// storeTimeout bounds a cursor write made apart from a catch-up.
const storeTimeout = 10 * time.Second

// writeCursor writes a cursor without holding up the pool's callback.
func (m *Manager) writeCursor(s *Sub, upTo int64) {
	defer m.wg.Done()
	ctx, cancel := context.WithTimeout(m.ctx, storeTimeout)
	defer cancel()
	if err := m.advance(ctx, s, upTo); err != nil {
		m.log.Warn("feed cursor not written", "feed", s.FeedID, "account", s.AccountID, "err", err)
	}
}

// Published notes a live event of a feed subscription that NATS holds.
func (m *Manager) Published(subID string, r fanout.Route) {
	if r.Replayed || r.Kind != fanout.KindMessage {
		return
	}
	id, err := strconv.ParseInt(r.MessageID, 10, 64)
	if err != nil {
		return
	}
	m.mu.Lock()
	if s := m.subs[subID]; s != nil {
		s.live.add(id, time.Now())
		if s.catching {
			s.touch(r)
		}
	}
	m.mu.Unlock()
}

// maxTouched bounds the conversations a catch-up remembers from live
// messages; past it the walk makes one more repass instead.
const maxTouched = 10_000

// touch notes the conversation of a live message while a catch-up runs.
// Called with Manager.mu held.
func (s *Sub) touch(r fanout.Route) {
	conv, err := strconv.ParseInt(r.ConversationID, 10, 64)
	if err != nil || len(s.touched) >= maxTouched {
		return
	}
	c := chatwoot.AccountConversation{ID: conv}
	c.InboxID, _ = strconv.ParseInt(r.InboxID, 10, 64)
	c.Meta.Sender.ID, _ = strconv.ParseInt(r.ContactID, 10, 64)
	if s.touched == nil {
		s.touched = make(map[int64]chatwoot.AccountConversation)
	}
	s.touched[conv] = c
}

// dirty marks a subscription not caught up and starts (or
// queues) its catch-up.
func (m *Manager) dirty(subID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.subs[subID]
	if s == nil || m.ctx.Err() != nil {
		return
	}
	s.clean = false
	s.gen++
	if s.catching {
		s.again = true
		return
	}
	s.catching = true
	m.wg.Add(1)
	go m.runCatchup(s)
}

// runCatchup catches s up until it is clean, retrying failures with
// backoff and going on at once with a walk split by the run bounds, while
// s is subscribed.
func (m *Manager) runCatchup(s *Sub) {
	defer m.wg.Done()
	for attempt := 0; ; {
		m.mu.Lock()
		gen := s.gen
		s.again = false
		m.mu.Unlock()
		err := m.catchUp(m.ctx, s)
		split := errors.Is(err, errSplit)
		switch {
		case split:
			m.m.splits.Inc()
		case err == nil:
			m.m.catchups.WithLabelValues("ok").Inc()
		case m.ctx.Err() == nil:
			m.m.catchups.WithLabelValues("error").Inc()
			m.log.Warn("feed catch-up failed; retrying", "feed", s.FeedID, "account", s.AccountID, "err", err)
		}
		if !m.finishRun(s, gen, err) {
			return
		}
		if err != nil && !split {
			attempt++
			if !sleep(m.ctx, min(retryMin<<min(attempt, 10), retryMax)) {
				m.finishRun(s, gen, m.ctx.Err())
				return
			}
		}
	}
}

// finishRun records the outcome of one catch-up; it reports whether
// another must run.
func (m *Manager) finishRun(s *Sub, gen uint64, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	subscribed := m.subs[s.ID] == s && m.ctx.Err() == nil
	if err == nil && !s.again && s.gen == gen {
		s.clean = true
	}
	if subscribed && (err != nil || s.again) {
		return true
	}
	s.catching = false
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errSplit: a catch-up run reached its bounds before the walk ended; the
// next run goes on with it.
var errSplit = errors.New("feeds: catch-up split")

// catchUp runs s's walk from its account's cursor (a new one, or the one a
// previous run left) and moves the cursor once the walk ended and NATS
// holds all it replayed. Without a cursor it sets one at the account's
// newest message.
func (m *Manager) catchUp(ctx context.Context, s *Sub) error {
	rec, err := m.opts.Store.GetFeed(ctx, s.FeedID)
	if err != nil {
		return err
	}
	token := chatwoot.AccessToken(rec.AccessToken)
	cursor, ok := rec.Cursors[s.AccountID]
	if !ok {
		newest, err := m.newestMessage(ctx, token, s.AccountID)
		if err != nil {
			return err
		}
		return m.advance(ctx, s, newest)
	}
	if s.walk == nil || s.walk.from != cursor {
		s.walk = newWalk(cursor)
		m.mu.Lock()
		s.touched = nil
		m.mu.Unlock()
	}
	r := replay{m: m, s: s, w: s.walk, token: token}
	ended, err := r.walk(ctx)
	if werr := r.wait(ctx); werr != nil {
		s.walk = nil // what it replayed may not all be in NATS: start again
		return werr
	}
	switch {
	case err != nil:
		return err
	case !ended:
		m.log.Info("feed catch-up split; the next run goes on where it stopped", "feed", s.FeedID, "account", s.AccountID,
			"pages", r.pages, "calls", r.calls, "replayed", r.sent)
		return errSplit
	}
	s.walk = nil
	m.log.Debug("feed caught up", "feed", s.FeedID, "account", s.AccountID, "replayed", r.w.sent)
	return m.advance(ctx, s, r.w.target())
}

// newestMessage is the highest id among the last messages of the most
// recently active conversations: the account's newest message; 0
// without any.
func (m *Manager) newestMessage(ctx context.Context, token chatwoot.AccessToken, account int64) (int64, error) {
	convs, _, err := m.opts.Source.ListAccountConversations(ctx, token, account, 1)
	var newest int64
	for _, c := range convs {
		newest = max(newest, c.LastMessageID())
	}
	return newest, err
}

// replay is one run of a walk: it reads conversations and messages within
// the run bounds and hands each message to the fan-out as a replayed
// message.created.
type replay struct {
	m     *Manager
	s     *Sub
	w     *walk
	token chatwoot.AccessToken
	pages int // conversations pages read in this run
	calls int // message pages read in this run
	sent  int // messages replayed in this run

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error // from Done
}

// list reads a conversations page and how many conversations the listing
// holds; ok is false when the run has no page left.
func (r *replay) list(ctx context.Context, page int) (convs []chatwoot.AccountConversation, total int, ok bool, err error) {
	if r.pages >= runPages {
		return nil, 0, false, nil
	}
	r.pages++
	convs, total, err = r.m.opts.Source.ListAccountConversations(ctx, r.token, r.s.AccountID, page)
	return convs, total, err == nil, err
}

// conversation replays the messages of c that the walk has not read, 100
// a call; ok is false when the run has no call left (the walk keeps how
// far it read). old counts the messages it replayed that were listed when
// the walk began (up to walk.newest).
func (r *replay) conversation(ctx context.Context, c chatwoot.AccountConversation) (old int, ok bool, err error) {
	w := r.w
	after := w.after(c.ID)
	if w.done[c.ID] && c.LastMessageID() <= after {
		return 0, true, nil
	}
	r.m.routes.learn(strconv.FormatInt(r.s.AccountID, 10), strconv.FormatInt(c.ID, 10), strconv.FormatInt(c.InboxID, 10), c.ContactID())
	defer func() { w.read[c.ID] = after }()
	for {
		if r.calls >= runCalls {
			return old, false, nil
		}
		r.calls++
		msgs, err := r.m.opts.Source.ListAccountMessages(ctx, r.token, r.s.AccountID, c.ID, after)
		if err != nil {
			return old, false, err
		}
		// Chatwoot orders by created_at: an id may come after a higher one.
		last := after
		for _, msg := range msgs {
			if msg.ID > after {
				r.publish(c, msg)
				last = max(last, msg.ID)
				if msg.ID <= w.newest {
					old++
				}
			}
		}
		if last == after || len(msgs) < 100 {
			after = last
			w.done[c.ID] = true
			return old, true, nil
		}
		after = last
	}
}

func (r *replay) publish(c chatwoot.AccountConversation, msg chatwoot.AccountMessage) {
	body := make([]byte, 0, len(msg.Raw)+40)
	body = append(body, `{"event":"message.created","data":`...)
	body = append(append(body, msg.Raw...), '}')
	r.w.upTo = max(r.w.upTo, msg.ID)
	r.w.sent++
	r.sent++
	r.m.m.replayed.Inc()
	r.wg.Add(1)
	r.m.opts.Sink.Handle(fanout.Event{
		SubID: r.s.ID, Message: body, ReceivedAt: time.Now(), Replayed: true, Feed: true,
		Hints: fanout.Hints{AccountID: strconv.FormatInt(r.s.AccountID, 10), InboxID: strconv.FormatInt(c.InboxID, 10),
			ContactID: c.ContactID()},
		Done: r.done,
	})
}

func (r *replay) done(err error) {
	if err != nil {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
	r.wg.Done()
}

// wait returns once NATS holds every replayed event, or why one is not.
func (r *replay) wait(ctx context.Context) error {
	ch := make(chan struct{})
	go func() { r.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		return errors.Join(r.errs[0], errors.New("feeds: replayed events not all published"))
	}
	return nil
}
