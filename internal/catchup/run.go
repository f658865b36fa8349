package catchup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Events catch-up publishes (and the live ones it follows).
const (
	evMessageCreated      = "message.created"
	evConversationCreated = "conversation.created"
	evStatusChanged       = "conversation.status_changed"
)

// attempt is one run of a job, with what it captured when it started.
type attempt struct {
	job       *job
	st        *State
	id        string
	meta      *Target
	epoch     uint32
	triggered time.Time
	n         int // 1 for the first attempt since the latest trigger
}

func (a *attempt) contactInbox() chatwoot.ContactInbox {
	return chatwoot.ContactInbox{Inbox: a.meta.InboxIdentifier, SourceID: a.meta.SourceID}
}

// result sums up an attempt.
type result struct {
	conversations int
	replayed      int
	hints         fanout.Hints // of the first conversation, for catchup.done
}

// start is the frozen state an attempt starts from.
type start struct {
	synced  bool
	cursors map[string]cursor
}

// mode says how a conversation is caught up.
type mode uint8

const (
	modeCursor   mode = iota // known conversation: replay what is past its cursor
	modeBaseline             // first sync: replay what was created since registration
	modeNew                  // new since the last sync: replay it whole
)

// plan is how one conversation is caught up.
type plan struct {
	conv      string
	mode      mode
	from      cursor
	threshold int64 // modeBaseline: messages created at or after it were missed
	// announce: modeBaseline, the conversation began after the registration
	// (see bornAfter), so its conversation.created was missed too.
	announce bool
	hints    fanout.Hints
}

// catchUp runs one attempt: list the conversations, replay what each
// missed, advance its cursor, and mark the subscription synced.
func (c *Catchup) catchUp(ctx context.Context, a *attempt) (result, error) {
	var res result
	from, err := c.startFrom(ctx, a)
	if err != nil {
		return res, fmt.Errorf("catchup: load cursors: %w", err)
	}
	convs, err := c.opts.Source.ListConversations(ctx, a.contactInbox())
	if err != nil {
		return res, fmt.Errorf("catchup: list conversations: %w", err)
	}
	res.conversations = len(convs)
	for i := range convs {
		p := c.plan(a, from, &convs[i])
		if i == 0 {
			res.hints = p.hints
		}
		n, err := c.conversation(ctx, a, p, &convs[i])
		res.replayed += n
		if err != nil {
			return res, err
		}
	}
	if !from.synced {
		return res, c.markSynced(ctx, a)
	}
	return res, nil
}

// startFrom loads the subscription's cursors and copies them: the frozen
// starting point of this attempt.
func (c *Catchup) startFrom(ctx context.Context, a *attempt) (start, error) {
	if err := c.load(ctx, a.id, a.st); err != nil {
		return start{}, err
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	s := start{synced: a.st.is(synced), cursors: make(map[string]cursor, len(a.st.cursors))}
	for conv, cur := range a.st.cursors {
		s.cursors[conv] = *cur
	}
	return s, nil
}

func (c *Catchup) plan(a *attempt, from start, cv *chatwoot.Conversation) plan {
	p := plan{conv: strconv.FormatInt(cv.ID, 10), hints: hintsOf(cv, a.meta)}
	cur, ok := from.cursors[p.conv]
	switch {
	case ok:
		p.mode, p.from = modeCursor, cur
	case from.synced:
		p.mode = modeNew
	default:
		p.mode = modeBaseline
		if !a.meta.CreatedAt.IsZero() {
			p.threshold = a.meta.CreatedAt.Unix() - 1
			p.announce = bornAfter(cv, p.threshold)
		}
	}
	return p
}

// bornAfter reports whether a conversation began at or after threshold. A
// REST conversation carries no creation time, but it embeds all its
// messages and when either side last read it: one with nothing dated
// before threshold is taken as new. An older conversation nobody ever
// wrote in or read is announced as well: a conversation.created too many,
// with a stable dedup key, beats one lost.
func bornAfter(cv *chatwoot.Conversation, threshold int64) bool {
	for _, seen := range []int64{cv.ContactLastSeenAt, cv.AgentLastSeenAt} {
		if seen > 0 && seen < threshold {
			return false
		}
	}
	for i := range cv.Messages {
		if cv.Messages[i].CreatedAt < threshold {
			return false
		}
	}
	return true
}

// conversation catches up one conversation and returns how many events it
// replayed. A conversation that disappeared meanwhile (404) is skipped.
func (c *Catchup) conversation(ctx context.Context, a *attempt, p plan, cv *chatwoot.Conversation) (int, error) {
	missed, newest, err := c.missed(ctx, a, p, cv)
	if errors.Is(err, chatwoot.ErrNotFound) {
		c.log.Debug("catchup: conversation gone", "subscription", a.id, "conversation", p.conv)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("catchup: list messages: %w", err)
	}
	live, missed := a.st.pendingOf(p.conv, missed)
	r := replay{a: a, p: p, cv: cv, live: live, announce: (p.mode == modeNew || p.announce) && !live.created}
	for first := true; first || len(missed) > 0; first = false {
		batch := missed[:min(len(missed), ReplayBatch)]
		missed = missed[len(batch):]
		upto, status := newest, cv.Status
		if len(missed) > 0 {
			upto, status = batch[len(batch)-1].ID, ""
		}
		if err := c.replayBatch(ctx, &r, batch, len(missed) == 0); err != nil {
			return r.n, err
		}
		if err := c.advance(ctx, a, p, status, upto); err != nil {
			return r.n, err
		}
	}
	return r.n, nil
}

// ReplayBatch is how many missed messages of a conversation are replayed
// before catch-up waits for NATS to hold them and moves the cursor past
// them: an attempt cut short resumes after the last complete batch.
const ReplayBatch = 200

// replay is the state of one conversation's replay across its batches.
type replay struct {
	a        *attempt
	p        plan
	cv       *chatwoot.Conversation
	live     seen
	announce bool // conversation.created is still to be replayed
	n        int  // events replayed
}

// replayBatch publishes one batch of the conversation's missed events and
// waits until NATS holds them: conversation.created first when it is
// due, the messages in id order, and after the last batch a missed status
// change. What was published live during the freeze is left out.
func (c *Catchup) replayBatch(ctx context.Context, r *replay, batch []chatwoot.Message, last bool) error {
	var acks published
	err := func() error {
		if r.announce {
			if err := c.emit(ctx, r, evConversationCreated, conversationBody(r.cv), &acks); err != nil {
				return err
			}
		}
		for i := range batch {
			if err := c.emit(ctx, r, evMessageCreated, rawOf(batch[i].Raw, &batch[i]), &acks); err != nil {
				return err
			}
		}
		if last && r.p.mode == modeCursor && statusMissed(r.p.from.status, r.cv.Status, r.live, r.a.epoch) {
			return c.emit(ctx, r, evStatusChanged, conversationBody(r.cv), &acks)
		}
		return nil
	}()
	if err != nil {
		return err
	}
	if err := acks.wait(ctx); err != nil {
		return err
	}
	r.announce = false
	if k := acks.rejected.Load(); k > 0 {
		c.m.rejected.Add(float64(k))
		c.log.Warn("catchup: replayed events rejected for good, skipped (see relay_fanout_events_dropped_total)",
			"subscription", r.a.id, "conversation", r.p.conv, "events", k)
	}
	return nil
}

// errNotPublished: a replayed event was dropped before reaching NATS (no
// room, or shutdown); the attempt is retried and the cursor stays where it
// was.
var errNotPublished = errors.New("catchup: a replayed event did not reach NATS")

// published waits for the replayed events of one conversation to be in
// NATS, so that its cursor is never stored past an event that a relay
// dying now would lose. An event the fan-out rejects for good
// (fanout.ErrRejected: unroutable, too large, refused by the stream) is
// counted as skipped instead: no retry could publish it, and holding the
// cursor for it would freeze the subscription.
type published struct {
	wg       sync.WaitGroup
	failed   atomic.Bool
	rejected atomic.Int64
}

func (p *published) track() func(error) {
	p.wg.Add(1)
	return func(err error) {
		switch {
		case err == nil:
		case errors.Is(err, fanout.ErrRejected):
			p.rejected.Add(1)
		default:
			p.failed.Store(true)
		}
		p.wg.Done()
	}
}

func (p *published) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }() // ends when fanout settles every event, at the latest at its Close
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.failed.Load() {
		return errNotPublished
	}
	return nil
}

// missed returns the conversation's missed messages in ascending id order,
// and the newest message id known. The list embeds them (see
// embeddedCovers), so pages are read only when it does not.
func (c *Catchup) missed(ctx context.Context, a *attempt, p plan, cv *chatwoot.Conversation) ([]chatwoot.Message, int64, error) {
	newest := newestID(cv.Messages)
	var keep func(m *chatwoot.Message) bool
	var reached func(oldest *chatwoot.Message) bool
	switch p.mode {
	case modeCursor:
		if newest <= p.from.lastID {
			return nil, newest, nil
		}
		keep = func(m *chatwoot.Message) bool { return m.ID > p.from.lastID }
		reached = func(o *chatwoot.Message) bool { return o.ID <= p.from.lastID }
	case modeBaseline:
		if p.threshold <= 0 || (len(cv.Messages) > 0 && newestCreated(cv.Messages) < p.threshold) {
			return nil, newest, nil // only history: record the baseline
		}
		keep = func(m *chatwoot.Message) bool { return m.CreatedAt >= p.threshold }
		reached = func(o *chatwoot.Message) bool { return !keep(o) }
	case modeNew:
		keep = func(*chatwoot.Message) bool { return true }
		reached = func(*chatwoot.Message) bool { return false }
	}
	all := cv.Messages
	if !embeddedCovers(p, cv) {
		paged, err := c.pageBack(ctx, a, cv.ID, reached)
		if err != nil {
			return nil, 0, err
		}
		all = append(paged, cv.Messages...)
	}
	out := make([]chatwoot.Message, 0, len(all))
	for i := range all {
		newest = max(newest, all[i].ID)
		if keep(&all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(x, y chatwoot.Message) int { return cmp.Compare(x.ID, y.ID) })
	out = slices.CompactFunc(out, func(x, y chatwoot.Message) bool { return x.ID == y.ID })
	return out, newest, nil
}

// embeddedCovers reports whether the messages embedded in a listed
// conversation hold every message the plan needs. The public API embeds
// all chat messages of a conversation (its view renders
// messages.chat, the set its message index pages through), so one list
// read covers the catch-up of every conversation, whatever was missed: its
// cost follows the contact's history, never pages times conversations.
// Pages are read only for a conversation listed without "messages", or
// whose embedded messages (a page or more) all lie past its cursor: a
// server that bounds the embedding.
func embeddedCovers(p plan, cv *chatwoot.Conversation) bool {
	switch {
	case cv.Messages == nil:
		return false
	case p.mode != modeCursor || len(cv.Messages) < PageSize:
		return true
	default:
		return oldestMessage(cv.Messages).ID <= p.from.lastID
	}
}

// pageBack reads pages of messages, newest first, until a page's oldest
// message is reached, a page is short (the conversation's first), or
// MaxPages were read.
func (c *Catchup) pageBack(ctx context.Context, a *attempt, convID int64, reached func(*chatwoot.Message) bool) ([]chatwoot.Message, error) {
	var all []chatwoot.Message
	before := int64(0)
	for range c.opts.MaxPages {
		page, err := c.opts.Source.ListMessages(ctx, a.contactInbox(), convID, before)
		if err != nil {
			return nil, err
		}
		c.m.pages.Inc()
		all = append(all, page...)
		oldest := oldestMessage(page)
		if len(page) < PageSize || reached(oldest) || (before > 0 && oldest.ID >= before) {
			return all, nil
		}
		before = oldest.ID
	}
	c.m.truncated.Inc()
	c.log.Warn("catchup: conversation has more missed messages than MaxPages; older ones are not replayed",
		"subscription", a.id, "conversation", convID, "pages", c.opts.MaxPages)
	return all, nil
}

// statusMissed reports whether a conversation's status change was missed:
// the REST status differs from the last one published (the cursor's, or
// one seen live during the freeze). A status seen live since the latest
// confirm is at least as fresh as the REST read, so nothing was missed.
func statusMissed(cursor, rest string, live seen, epoch uint32) bool {
	prev := cursor
	if live.status != "" {
		if live.statusE == epoch {
			return false
		}
		prev = live.status
	}
	return prev != "" && rest != "" && rest != prev
}

// emit hands one replayed event to the sink:
// {"event":<event>,"data":<REST object>,"replayed":true}.
// It first waits until the sink has room (Sink.WaitRoom), so a replay
// neither overflows the buffer nor crowds live events out of it.
func (c *Catchup) emit(ctx context.Context, r *replay, event string, data []byte, acks *published) error {
	if err := c.opts.Sink.WaitRoom(ctx); err != nil {
		return fmt.Errorf("catchup: wait for room in the buffer: %w", err)
	}
	a := r.a
	body := make([]byte, 0, len(data)+len(event)+40)
	body = append(body, `{"event":"`...)
	body = append(body, event...)
	body = append(body, `","data":`...)
	body = append(body, data...)
	body = append(body, `,"replayed":true}`...)
	c.opts.Sink.Handle(fanout.Event{SubID: a.id, Hints: r.p.hints, Message: body, ReceivedAt: c.now(), Replayed: true, Done: acks.track()})
	c.m.replayed.WithLabelValues(event).Inc()
	r.n++
	return nil
}

// advance moves the conversation's cursor to what the attempt has covered
// and writes it to the store.
func (c *Catchup) advance(ctx context.Context, a *attempt, p plan, status string, newest int64) error {
	w, ok := c.move(a, p.conv, max(newest, p.from.lastID), status)
	if !ok {
		return errRemoved
	}
	if err := c.persist(ctx, a.st, w); err != nil {
		if !errors.Is(err, errRemoved) {
			c.m.storeErrors[opWrite].Inc()
		}
		return fmt.Errorf("catchup: store cursor: %w", err)
	}
	return nil
}

// move moves a conversation's cursor to at least lastID and to status
// (unless empty), marks it dirty, and returns the write that stores it. It
// reports false when the subscription was forgotten since the attempt
// started.
func (c *Catchup) move(a *attempt, conv string, lastID int64, status string) (write, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.st.job != a.job {
		return write{}, false
	}
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	cur := a.st.cursorLocked(conv)
	cur.lastID = max(cur.lastID, lastID)
	if status != "" {
		cur.status = status
	}
	c.changedLocked(a.id, a.st, cur)
	return write{id: a.id, conv: conv, cur: cur, snap: *cur}, true
}

// markSynced writes the SyncMarker cursor after the first complete
// catch-up, so that later conversations without a cursor are known to be
// new.
func (c *Catchup) markSynced(ctx context.Context, a *attempt) error {
	_, err := c.opts.Cursors.PutCursor(ctx, store.Cursor{SubscriptionID: a.id, ConversationID: SyncMarker})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errRemoved
		}
		c.m.storeErrors[opWrite].Inc()
		return fmt.Errorf("catchup: store sync marker: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.st.job != a.job {
		return errRemoved // forgotten meanwhile: the State is as new
	}
	a.st.mu.Lock()
	a.st.set(synced, true)
	a.st.mu.Unlock()
	return nil
}

// hintsOf returns the routing ids of a conversation's events: the REST
// conversation's own (contact.account_id, inbox_id, contact.id), else the
// subscription's.
func hintsOf(cv *chatwoot.Conversation, m *Target) fanout.Hints {
	h := m.Hints()
	if acc := accountOf(cv.Raw); acc != "" {
		h.AccountID = acc
	}
	if cv.InboxID > 0 {
		h.InboxID = strconv.FormatInt(cv.InboxID, 10)
	}
	if cv.Contact.ID > 0 {
		h.ContactID = strconv.FormatInt(cv.Contact.ID, 10)
	}
	return h
}

// accountOf reads contact.account_id from a raw REST conversation.
func accountOf(raw []byte) string {
	var v struct {
		Contact struct {
			AccountID json.Number `json:"account_id"`
		} `json:"contact"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if id, err := v.Contact.AccountID.Int64(); err == nil && id > 0 {
		return v.Contact.AccountID.String()
	}
	return ""
}

// conversationBody is the body of a replayed conversation event: the REST
// conversation as Chatwoot sent it, except that "messages" holds only its
// newest message, as a live conversation event's does. The list embeds the
// whole history, which would make the event grow with the conversation,
// past what NATS accepts.
func conversationBody(cv *chatwoot.Conversation) []byte {
	newest := []byte("[]")
	if len(cv.Messages) > 0 {
		last := slices.MaxFunc(cv.Messages, func(x, y chatwoot.Message) int { return cmp.Compare(x.ID, y.ID) })
		newest = append(append([]byte{'['}, rawOf(last.Raw, &last)...), ']')
	}
	return chatwoot.ReplaceMember(rawOf(cv.Raw, cv), "messages", newest)
}

// rawOf returns the exact bytes Chatwoot sent, or an encoding of v for an
// object built in code.
func rawOf(raw json.RawMessage, v any) []byte {
	if len(raw) > 0 {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

func newestID(ms []chatwoot.Message) int64 {
	var id int64
	for i := range ms {
		id = max(id, ms[i].ID)
	}
	return id
}

func newestCreated(ms []chatwoot.Message) int64 {
	var at int64
	for i := range ms {
		at = max(at, ms[i].CreatedAt)
	}
	return at
}

// oldestMessage returns the message with the lowest id, or a zero message
// for an empty page.
func oldestMessage(page []chatwoot.Message) *chatwoot.Message {
	if len(page) == 0 {
		return &chatwoot.Message{}
	}
	o := &page[0]
	for i := range page {
		if page[i].ID < o.ID {
			o = &page[i]
		}
	}
	return o
}
