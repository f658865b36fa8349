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
	// quietStop ends the walk down the conversations (most recently active
	// first) after this many in a row had nothing after the cursor: every
	// message moves its conversation to the top, so what follows is older.
	// More than one absorbs conversations created without a message.
	quietStop = 5
	// maxPages bounds the walk: 25 conversations a page.
	maxPages = 40
	// maxCalls bounds the message pages (100 messages) read for one
	// conversation in one catch-up; the next catch-up goes on from there.
	maxCalls = 100
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
	}
	m.mu.Unlock()
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
// backoff, while s is subscribed.
func (m *Manager) runCatchup(s *Sub) {
	defer m.wg.Done()
	for attempt := 0; ; {
		m.mu.Lock()
		gen := s.gen
		s.again = false
		m.mu.Unlock()
		err := m.catchUp(m.ctx, s)
		switch {
		case err == nil:
			m.m.catchups.WithLabelValues("ok").Inc()
		case m.ctx.Err() == nil:
			m.m.catchups.WithLabelValues("error").Inc()
			m.log.Warn("feed catch-up failed; retrying", "feed", s.FeedID, "account", s.AccountID, "err", err)
		}
		if !m.finishRun(s, gen, err) {
			return
		}
		if err != nil {
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

// catchUp replays what s missed since its account's cursor and moves the
// cursor once NATS holds all of it. Without a cursor it sets one at the
// account's newest message.
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
	r := replay{m: m, s: s, token: token, cursor: cursor, upTo: cursor}
	if err := r.walk(ctx); err != nil {
		return err
	}
	if err := r.wait(ctx); err != nil {
		return err
	}
	m.log.Debug("feed caught up", "feed", s.FeedID, "account", s.AccountID, "replayed", r.sent)
	return m.advance(ctx, s, r.upTo)
}

// newestMessage is the highest message id of the most recently active
// conversation: the account's newest message; 0 without any.
func (m *Manager) newestMessage(ctx context.Context, token chatwoot.AccessToken, account int64) (int64, error) {
	convs, err := m.opts.Source.ListAccountConversations(ctx, token, account, 1)
	if err != nil || len(convs) == 0 {
		return 0, err
	}
	msgs, err := m.opts.Source.ListAccountMessages(ctx, token, account, convs[0].ID, 0)
	var newest int64
	for _, msg := range msgs {
		newest = max(newest, msg.ID)
	}
	return newest, err
}

// replay is one catch-up walk: conversations by last activity, messages
// after the cursor, each handed to the fan-out as a replayed
// message.created.
type replay struct {
	m      *Manager
	s      *Sub
	token  chatwoot.AccessToken
	cursor int64
	upTo   int64 // highest message id replayed
	sent   int

	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error // from Done
}

func (r *replay) walk(ctx context.Context) error {
	quiet := 0
	for page := 1; page <= maxPages; page++ {
		convs, err := r.m.opts.Source.ListAccountConversations(ctx, r.token, r.s.AccountID, page)
		if err != nil || len(convs) == 0 {
			return err
		}
		for _, c := range convs {
			r.m.routes.learn(strconv.FormatInt(r.s.AccountID, 10), strconv.FormatInt(c.ID, 10), strconv.FormatInt(c.InboxID, 10), c.ContactID())
			n, err := r.conversation(ctx, c)
			if err != nil {
				return err
			}
			if quiet = quiet + 1; n > 0 {
				quiet = 0
			}
			if quiet >= quietStop {
				return nil
			}
		}
	}
	return nil
}

// conversation replays the messages of c after the cursor, 100 a call.
func (r *replay) conversation(ctx context.Context, c chatwoot.AccountConversation) (int, error) {
	n := 0
	for after, calls := r.cursor, 0; calls < maxCalls; calls++ {
		msgs, err := r.m.opts.Source.ListAccountMessages(ctx, r.token, r.s.AccountID, c.ID, after)
		if err != nil {
			return n, err
		}
		fresh := 0
		for _, msg := range msgs {
			if msg.ID > after {
				r.publish(c, msg)
				after, fresh = msg.ID, fresh+1
			}
		}
		n += fresh
		if fresh == 0 || len(msgs) < 100 {
			return n, nil
		}
	}
	return n, nil
}

func (r *replay) publish(c chatwoot.AccountConversation, msg chatwoot.AccountMessage) {
	body := make([]byte, 0, len(msg.Raw)+40)
	body = append(body, `{"event":"message.created","data":`...)
	body = append(append(body, msg.Raw...), '}')
	r.upTo = max(r.upTo, msg.ID)
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
