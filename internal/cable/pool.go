package cable

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Pool errors.
var (
	ErrClosed   = errors.New("cable: pool closed")
	ErrBadToken = errors.New("cable: pubsub token must be 1 to 256 printable characters")
)

// Pool keeps the desired set of RoomChannel subscriptions placed on as few
// websocket connections as fit PerConn, and keeps them confirmed.
type Pool[M any] struct {
	cfg     Config[M]
	log     *slog.Logger
	m       *metrics
	limiter *rate.Limiter // admits queued subscribes, in FIFO order
	// wlimiter paces the same subscribes again where they are written, so
	// writer jitter cannot bunch them up (see conn.write). Both run at
	// SubscribeRate, so it only waits for subscribes that were bunched.
	wlimiter *rate.Limiter
	// beforePacedWrite, if set (tests), runs in a writer before it waits
	// for wlimiter; the argument is the connection number.
	beforePacedWrite func(conn int)
	ctx              context.Context
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	wake             chan struct{} // nudges the scheduler; capacity 1
	wbufs            sync.Pool     // websocket write buffers, held only while a frame is written
	clock            time.Time     // monotonic origin of sub.sentAt

	// Guarded by mu.
	mu       sync.Mutex
	closed   bool
	subs     map[string]*sub[M]
	conns    []*conn[M]
	nextConn int
	// Subscribes wait in two queues: fresh holds subscriptions that never
	// missed a confirm (new ones, and confirmed ones after a reconnect),
	// retries those that did. A retry is sent only when no fresh subscribe
	// waits: thousands of tokens Chatwoot never confirms cannot delay a
	// new registration.
	fresh, retries subQueue[M]
	// confirmedAny: Chatwoot confirmed a subscription since the pool
	// started. Until it does, it may be down rather than ignoring unknown
	// tokens, and nothing is parked.
	confirmedAny bool
}

// sub is one desired subscription. A pool holds one per subscription:
// its fields are ordered and sized to keep it at 128 bytes (TestSubSize).
type sub[M any] struct {
	id   string
	key  string       // what it is routed by: see routeKey
	meta atomic.Value // metaBox; read on the hot path

	// Guarded by Pool.mu.
	conn        *conn[M]
	timer       *time.Timer   // the one live timer: confirm timeout, retry or presence
	sentAt      time.Duration // when the subscribe was sent, on Pool.clock
	confirmedAt int64         // unix nanoseconds of the latest confirm; 0 = never
	tseq        uint32        // arms of timer; a firing with an older seq is stale
	sentGen     uint32        // genTag of the session the subscribe went out on; 0 = not sent
	latency     int32         // of the latest confirm, in microseconds
	confirms    int32
	misses      int32
	state       State
	user        bool // a user's subscription: key is the whole identifier
	queued      bool // waiting in the subscribe queue
	verifying   bool

	// Updated by the connection's reader.
	lastGap   atomic.Uint32 // 1 + Pool.clock milliseconds (mod 2^32) of the last ChangeGap; 0 = never
	dropped   atomic.Uint32 // wraps after 2^32, which Info shows as is
	events    atomic.Uint64
	lastEvent atomic.Int64 // unix nanoseconds
}

// genTag is the never-zero tag of session generation g that sub.sentGen
// holds: generations 2^31 apart share one, which no connection lives to see.
func genTag(g uint64) uint32 { return uint32(g)&(1<<31-1) | 1<<31 }

// gapEvery bounds ChangeGap reports to one per subscription per interval:
// a sustained overflow is one gap to fill, not thousands.
const gapEvery = time.Second

// reportGap tells OnState that broadcasts of s were dropped.
func (p *Pool[M]) reportGap(s *sub[M], now time.Time, reason string) {
	// Milliseconds in 32 bits wrap every 49 days; the difference of two
	// stays right across a wrap. 0 means never: the tag is one more.
	tag, last := max(uint32(now.Sub(p.clock).Milliseconds())+1, 1), s.lastGap.Load()
	if last != 0 && tag-last < uint32(gapEvery.Milliseconds()) || !s.lastGap.CompareAndSwap(last, tag) {
		return
	}
	p.mu.Lock()
	ev := p.change(s, ChangeGap, reason)
	p.mu.Unlock()
	p.cfg.OnState(ev)
}

type metaBox[M any] struct{ v M }

func (s *sub[M]) getMeta() M { return s.meta.Load().(metaBox[M]).v }

// New validates cfg, applies defaults and starts the pool's scheduler.
// Connections open as subscriptions are added.
func New[M any](cfg Config[M]) (*Pool[M], error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool[M]{
		cfg:      cfg,
		log:      cfg.Logger,
		m:        newMetrics(cfg.Registerer),
		limiter:  rate.NewLimiter(cfg.paceRate(), cfg.SubscribeBurst),
		wlimiter: rate.NewLimiter(cfg.paceRate(), cfg.SubscribeBurst),
		ctx:      ctx,
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		clock:    time.Now(),
		subs:     make(map[string]*sub[M]),
	}
	p.wg.Add(2)
	go p.schedule()
	go p.logParked()
	return p, nil
}

// Add asks for a subscription to token, idempotently: adding a token twice
// keeps one subscription (meta is replaced), and adding an invalid one
// tries it again. It returns the subscription id.
func (p *Pool[M]) Add(token string, meta M) (string, error) {
	if !validToken(token) {
		return "", ErrBadToken
	}
	return p.add(SubscriptionID(token), contactKey(token), false, meta)
}

// AddUser asks for a user's subscription to one account (a Chatwoot
// user's pubsub_token with account_id and user_id: what an agent sees in
// that account), idempotently like Add. It returns the subscription id,
// UserSubscriptionID(token, accountID).
func (p *Pool[M]) AddUser(token string, accountID, userID int64, meta M) (string, error) {
	if !validToken(token) {
		return "", ErrBadToken
	}
	return p.add(UserSubscriptionID(token, accountID), NewUserIdentifier(token, accountID, userID).Key, true, meta)
}

func (p *Pool[M]) add(id, key string, user bool, meta M) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", ErrClosed
	}
	if s := p.subs[id]; s != nil {
		s.meta.Store(metaBox[M]{meta})
		if s.state == StateInvalid {
			s.misses = 0
			p.setState(s, StatePending)
			p.place(s)
		}
		return id, nil
	}
	s := &sub[M]{id: id, key: key, user: user, state: StatePending}
	s.meta.Store(metaBox[M]{meta})
	p.subs[id] = s
	p.m.subState[StatePending].Inc()
	p.place(s)
	return id, nil
}

// ValidToken reports whether Add accepts t as a pubsub token.
func ValidToken(t string) bool { return validToken(t) }

func validToken(t string) bool {
	if t == "" || len(t) > 256 {
		return false
	}
	return !strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Remove drops a subscription (unsubscribing it upstream). It reports
// whether the id was known.
func (p *Pool[M]) Remove(id string) bool {
	p.mu.Lock()
	s := p.subs[id]
	if s == nil || p.closed {
		p.mu.Unlock()
		return false
	}
	delete(p.subs, id)
	p.stopTimer(s)
	p.unassign(s)
	p.m.subState[s.state].Dec()
	evs := append([]StateChange[M]{p.change(s, ChangeRemoved, "")}, p.rebalance()...)
	p.mu.Unlock()
	p.emit(evs)
	return true
}

// Invalidate stops a subscription the relay learned is dead by other means
// (Chatwoot answered 404 for its contact): it is unsubscribed and left
// invalid, as a rejected one, until its token is added again. reason goes
// with the ChangeInvalid. It reports whether the subscription was known and
// not invalid already.
func (p *Pool[M]) Invalidate(id, reason string) bool {
	p.mu.Lock()
	s := p.subs[id]
	if s == nil || p.closed || s.state == StateInvalid {
		p.mu.Unlock()
		return false
	}
	ev := p.invalidate(s, reason)
	p.mu.Unlock()
	p.cfg.OnState(ev)
	return true
}

// Lookup returns the record a subscription was added with.
func (p *Pool[M]) Lookup(id string) (M, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.subs[id]; s != nil {
		return s.getMeta(), true
	}
	var zero M
	return zero, false
}

// Len is the number of subscriptions held, in any state.
func (p *Pool[M]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// Each calls fn with every subscription's id and record, under the pool's
// lock: fn must not call the pool.
func (p *Pool[M]) Each(fn func(id string, meta M)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.subs {
		fn(id, s.getMeta())
	}
}

// Get returns a snapshot of one subscription.
func (p *Pool[M]) Get(id string) (Info[M], bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.subs[id]
	if s == nil {
		return Info[M]{}, false
	}
	return s.info(), true
}

// List returns snapshots of all subscriptions, ordered by id.
func (p *Pool[M]) List() []Info[M] {
	p.mu.Lock()
	out := make([]Info[M], 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s.info())
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Info[M]) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Stats counts subscriptions by state and connections.
type Stats struct {
	Subscriptions [numStates]int
	Connections   int
	QueueDepth    int
}

// Stats returns current counts.
func (p *Pool[M]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st Stats
	for _, s := range p.subs {
		st.Subscriptions[s.state]++
	}
	st.Connections = len(p.conns)
	st.QueueDepth = p.fresh.len() + p.retries.len()
	return st
}

// Close stops every connection and goroutine of the pool. Subscriptions
// are not unsubscribed upstream: the sockets just close.
func (p *Pool[M]) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	for _, s := range p.subs {
		p.stopTimer(s)
	}
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

func (s *sub[M]) info() Info[M] {
	in := Info[M]{
		ID: s.id, Meta: s.getMeta(), State: s.state, Confirms: int(s.confirms), Misses: int(s.misses),
		ConfirmLatency: time.Duration(s.latency) * time.Microsecond, Events: s.events.Load(), Dropped: uint64(s.dropped.Load()),
	}
	if s.confirmedAt != 0 {
		in.ConfirmedAt = time.Unix(0, s.confirmedAt)
	}
	if s.conn != nil {
		in.Conn = s.conn.n
	}
	if ns := s.lastEvent.Load(); ns != 0 {
		in.LastEventAt = time.Unix(0, ns)
	}
	return in
}

// setState moves s to st, keeping the gauges right. Caller holds mu.
func (p *Pool[M]) setState(s *sub[M], st State) {
	if s.state == st {
		return
	}
	p.m.subState[s.state].Dec()
	p.m.subState[st].Inc()
	s.state = st
}

// change builds a StateChange for s. Caller holds mu.
func (p *Pool[M]) change(s *sub[M], c Change, reason string) StateChange[M] {
	return StateChange[M]{ID: s.id, Meta: s.getMeta(), Change: c, Confirms: int(s.confirms), Reason: reason, At: time.Now()}
}

func (p *Pool[M]) emit(evs []StateChange[M]) {
	for _, ev := range evs {
		p.cfg.OnState(ev)
	}
}

// place puts s on the first connection with room, opening one if needed.
// Caller holds mu.
func (p *Pool[M]) place(s *sub[M]) { p.placeAfter(s, 0) }

// placeAfter is place with the subscribe held back for at least hold.
// Caller holds mu.
func (p *Pool[M]) placeAfter(s *sub[M], hold time.Duration) {
	var c *conn[M]
	for _, cand := range p.conns {
		if len(cand.routes) < p.cfg.PerConn {
			c = cand
			break
		}
	}
	if c == nil {
		c = p.openConn()
	}
	c.setRoute(s.key, s)
	s.conn = c
	if wait := max(c.resubscribeWait(s.key), hold); wait > 0 {
		// Rails runs commands of one socket on a worker pool: an unsubscribe
		// and a subscribe of the same identifier sent back to back can run
		// in either order, and the subscribe be lost (protocol §1.5).
		p.arm(s, wait, p.requeue)
		return
	}
	if c.ready {
		p.enqueue(s)
	}
}

// unsubscribeGap is the least time between an unsubscribe and a subscribe
// of the same identifier on one connection. Confirm-timeout retries wait
// at least as long by their backoff.
const unsubscribeGap = 500 * time.Millisecond

// noteUnsubscribe records an unsubscribe sent for key. Caller holds Pool.mu.
func (c *conn[M]) noteUnsubscribe(key string, now time.Time) {
	if c.unsubscribed == nil {
		c.unsubscribed = make(map[string]time.Time)
	}
	if len(c.unsubscribed) > 256 {
		for k, at := range c.unsubscribed {
			if now.Sub(at) >= unsubscribeGap {
				delete(c.unsubscribed, k)
			}
		}
	}
	c.unsubscribed[key] = now
}

// resubscribeWait is how long a subscribe of key must still wait on c.
// Caller holds Pool.mu.
func (c *conn[M]) resubscribeWait(key string) time.Duration {
	at, ok := c.unsubscribed[key]
	if !ok {
		return 0
	}
	wait := unsubscribeGap - time.Since(at)
	if wait <= 0 {
		delete(c.unsubscribed, key)
	}
	return wait
}

// requeue queues s for its subscribe once a wait is over.
func (p *Pool[M]) requeue(s *sub[M], seq uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.tseq != seq || s.state != StatePending || s.conn == nil {
		return
	}
	s.timer = nil
	if s.conn.ready {
		p.enqueue(s)
	}
}

// unassign takes s off its connection, unsubscribing it there if the server
// may hold it. An emptied connection is closed. Caller holds mu.
func (p *Pool[M]) unassign(s *sub[M]) {
	c := s.conn
	if c == nil {
		return
	}
	if c.ready && (s.sentGen != 0 || s.state == StateConfirmed) {
		c.send(s.ident().Unsubscribe())
		c.noteUnsubscribe(s.key, time.Now())
	}
	c.delRoute(s.key)
	s.conn, s.sentGen = nil, 0
	if len(c.routes) == 0 {
		p.retire(c)
	}
}

// rebalance closes the least loaded connection when its subscriptions fit
// on the others with a tenth of a connection to spare (so a count hovering
// at a boundary does not move subscriptions back and forth). Moved
// subscriptions are confirmed again on their new connection; the relay's
// catch-up covers the moment between. Those the server may hold on the
// closed socket wait unsubscribeGap first: Chatwoot handles the close and
// the new subscribe on different sockets independently, and a token must
// not be held by two sockets. Caller holds mu.
func (p *Pool[M]) rebalance() []StateChange[M] {
	n := len(p.conns)
	if n < 2 {
		return nil
	}
	total, victim := 0, p.conns[0]
	for _, c := range p.conns {
		total += len(c.routes)
		if len(c.routes) < len(victim.routes) {
			victim = c
		}
	}
	if total+p.cfg.PerConn/10 > (n-1)*p.cfg.PerConn {
		return nil
	}
	p.retire(victim)
	moved := len(victim.routes)
	var evs []StateChange[M]
	for _, s := range victim.routes {
		var hold time.Duration
		if s.sentGen != 0 || s.state == StateConfirmed {
			hold = unsubscribeGap
		}
		if s.state == StateConfirmed {
			evs = append(evs, p.change(s, ChangeLost, "rebalance"))
		}
		p.unassign(s)
		p.stopTimer(s)
		s.queued = false
		p.setState(s, StatePending)
		p.placeAfter(s, hold)
	}
	p.log.Info("cable connection drained", "conn", victim.n, "moved", moved)
	return evs
}

// enqueue adds s to its subscribe queue: retries after a confirm miss
// wait behind fresh subscribes. Caller holds mu.
func (p *Pool[M]) enqueue(s *sub[M]) {
	if s.queued {
		return
	}
	s.queued = true
	if s.misses > 0 {
		p.retries.push(s)
	} else {
		p.fresh.push(s)
	}
	p.m.queueDepth.Inc()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// schedule sends queued subscribes, paced by the process-wide limiter.
func (p *Pool[M]) schedule() {
	defer p.wg.Done()
	for {
		s := p.pop()
		if s == nil {
			select {
			case <-p.wake:
				continue
			case <-p.ctx.Done():
				return
			}
		}
		if err := p.limiter.Wait(p.ctx); err != nil {
			return
		}
		if sp := p.cfg.SharedPace; sp != nil {
			if err := sp.Wait(p.ctx); err != nil {
				return
			}
		}
		p.sendSubscribe(s)
	}
}

// pop returns the next queued subscription that still needs a subscribe:
// fresh ones first, then retries.
func (p *Pool[M]) pop() *sub[M] {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		s := p.fresh.pop()
		if s == nil {
			s = p.retries.pop()
		}
		if s == nil {
			return nil
		}
		p.m.queueDepth.Dec()
		if !s.queued {
			continue
		}
		s.queued = false
		if p.needsSubscribe(s) {
			return s
		}
	}
}

// needsSubscribe reports whether s waits for a subscribe on a welcomed
// connection. Caller holds mu.
func (p *Pool[M]) needsSubscribe(s *sub[M]) bool {
	return s.state == StatePending && s.sentGen == 0 && s.conn != nil && s.conn.ready && p.subs[s.id] == s
}

func (p *Pool[M]) sendSubscribe(s *sub[M]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.needsSubscribe(s) {
		return // its connection dropped or it was removed while waiting its turn
	}
	c := s.conn
	c.sendPaced(s.ident().Subscribe()) // if the queue is full, the confirm timeout retries
	s.sentGen, s.sentAt = genTag(c.gen), time.Since(p.clock)
	p.m.subscribes.Inc()
	p.arm(s, p.cfg.ConfirmTimeout, p.confirmTimeout)
}

// arm replaces s's timer. Caller holds mu.
func (p *Pool[M]) arm(s *sub[M], d time.Duration, fn func(*sub[M], uint32)) {
	p.stopTimer(s)
	seq := s.tseq
	s.timer = time.AfterFunc(d, func() { fn(s, seq) })
}

func (p *Pool[M]) stopTimer(s *sub[M]) {
	s.tseq++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// confirmTimeout handles a subscribe that got no answer: Chatwoot's answer
// to an unknown token is silence, and the half-made subscription stays on
// the server until unsubscribed (chatwoot-protocol.md §2.4).
func (p *Pool[M]) confirmTimeout(s *sub[M], seq uint32) {
	p.mu.Lock()
	if s.tseq != seq || s.state != StatePending || s.sentGen == 0 {
		p.mu.Unlock()
		return
	}
	s.misses++
	p.m.confirmMisses.Inc()
	if genTag(s.conn.gen) == s.sentGen {
		s.conn.send(s.ident().Unsubscribe())
		s.conn.noteUnsubscribe(s.key, time.Now())
	}
	// Parked only once Chatwoot confirmed something: one that never did
	// may be down, and its subscriptions keep the usual backoff.
	if int(s.misses) >= p.cfg.ParkAfter && p.confirmedAny {
		p.setState(s, StateParked)
		p.arm(s, equalJitter(p.cfg.ParkInterval, p.cfg.Jitter()), p.retry)
	} else {
		p.setState(s, StateRetrying)
		p.arm(s, equalJitter(backoff(int(s.misses)-1, p.cfg.BackoffMin, p.cfg.BackoffMax), p.cfg.Jitter()), p.retry)
	}
	s.sentGen = 0
	verify := p.cfg.Verifier != nil && int(s.misses) >= p.cfg.VerifyAfter && !s.verifying && !p.closed
	if verify {
		s.verifying = true
		p.wg.Add(1) // under mu, so never concurrent with Close's Wait
	}
	misses, state := s.misses, s.state
	p.mu.Unlock()
	// One line per subscription; parked ones are summed up by logParked.
	if misses == 1 {
		p.log.Warn("subscription not confirmed in time; retrying", "subscription", s.id)
	} else {
		p.log.Debug("subscription not confirmed in time", "subscription", s.id, "misses", misses, "state", state.String())
	}
	if verify {
		go p.verify(s)
	}
}

func (p *Pool[M]) retry(s *sub[M], seq uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.tseq != seq || (s.state != StateRetrying && s.state != StateParked) {
		return
	}
	s.timer = nil
	p.setState(s, StatePending)
	if s.conn != nil && s.conn.ready {
		p.enqueue(s)
	}
}

// parkedLogEvery is how often logParked sums up the parked subscriptions.
const parkedLogEvery = 5 * time.Minute

// logParked logs how many subscriptions are parked, every parkedLogEvery
// while there are any: one line however many there are.
func (p *Pool[M]) logParked() {
	defer p.wg.Done()
	t := time.NewTicker(parkedLogEvery)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		if n := p.Stats().Subscriptions[StateParked]; n > 0 {
			p.log.Warn("subscriptions parked: Chatwoot never confirmed them (unknown pubsub_tokens?)",
				"parked", n, "retry_every", p.cfg.ParkInterval.String())
		}
	}
}

func (p *Pool[M]) verify(s *sub[M]) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	verdict, err := p.cfg.Verifier.Verify(ctx, s.id, s.getMeta())
	if err != nil {
		p.log.Warn("subscription check failed", "subscription", s.id, "err", err)
		verdict = VerdictUnknown
	}
	p.m.verifications.WithLabelValues([...]string{"unknown", "valid", "invalid"}[verdict%3]).Inc()
	p.mu.Lock()
	s.verifying = false
	if verdict != VerdictInvalid || p.subs[s.id] != s || s.state == StateConfirmed || s.state == StateInvalid {
		p.mu.Unlock()
		return
	}
	ev := p.invalidate(s, "verifier")
	p.mu.Unlock()
	p.cfg.OnState(ev)
}

// invalidate stops all attempts for s. Caller holds mu.
func (p *Pool[M]) invalidate(s *sub[M], reason string) StateChange[M] {
	p.stopTimer(s)
	p.unassign(s)
	p.setState(s, StateInvalid)
	p.log.Warn("subscription invalid", "subscription", s.id, "reason", reason)
	return p.change(s, ChangeInvalid, reason)
}

func (p *Pool[M]) presenceTick(s *sub[M], seq uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.tseq != seq || s.state != StateConfirmed || s.conn == nil {
		return
	}
	s.conn.send(s.ident().UpdatePresence())
	p.arm(s, p.cfg.PresenceInterval, p.presenceTick)
}

// confirmed handles confirm_subscription for s on c. Caller holds mu.
func (p *Pool[M]) confirmed(c *conn[M], s *sub[M], now time.Time) (StateChange[M], bool) {
	if s.conn != c || s.state != StatePending || s.sentGen != genTag(c.gen) {
		return StateChange[M]{}, false // late answer to a subscribe given up on
	}
	p.stopTimer(s)
	p.setState(s, StateConfirmed)
	p.confirmedAny = true
	s.confirms++
	s.misses = 0
	latency := now.Sub(p.clock) - s.sentAt
	s.latency, s.confirmedAt = int32(min(latency.Microseconds(), math.MaxInt32)), now.UnixNano()
	p.m.confirmLatency.Observe(latency.Seconds())
	if p.cfg.PresenceInterval > 0 {
		p.arm(s, fullJitter(p.cfg.PresenceInterval, p.cfg.Jitter()), p.presenceTick)
	}
	return p.change(s, ChangeConfirmed, ""), true
}
