package cable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relayhq/relay/internal/jsonscan"
)

// conn is one websocket connection slot. Its run goroutine dials, reads and
// redials for as long as the slot holds subscriptions; sessions are the
// individual sockets, numbered by generation.
type conn[M any] struct {
	p          *Pool[M]
	n          int
	ctx        context.Context
	cancel     context.CancelFunc
	deliveries *deliveryQueue[M]

	// Guarded by Pool.mu.
	unsubscribed map[string]time.Time // route key → when its unsubscribe was sent
	gen          uint64               // current session; incremented on every dial
	ready        bool                 // the current session got its welcome
	out          chan command         // the current session's writer queue; nil between sessions
	retired      bool

	// Owned by run.
	state string

	// routes maps route keys (sub.key) to the subscriptions this connection
	// carries. It is written under both Pool.mu and rmu, so holders of
	// Pool.mu read it freely; the reader takes rmu.
	rmu    sync.RWMutex
	routes map[string]*sub[M]
}

// openConn starts a new connection slot. Caller holds Pool.mu.
func (p *Pool[M]) openConn() *conn[M] {
	p.nextConn++
	ctx, cancel := context.WithCancel(p.ctx)
	c := &conn[M]{
		p: p, n: p.nextConn, ctx: ctx, cancel: cancel,
		deliveries: newDeliveryQueue[M](p.cfg.DeliveryQueue),
		routes:     make(map[string]*sub[M]),
	}
	p.conns = append(p.conns, c)
	if p.cfg.Direct {
		p.wg.Add(1)
		go c.run()
		return c
	}
	p.wg.Add(2)
	go c.run()
	go c.deliver()
	return c
}

// retire stops c. Caller holds Pool.mu.
func (p *Pool[M]) retire(c *conn[M]) {
	if c.retired {
		return
	}
	c.retired = true
	c.cancel()
	p.conns = slicesDelete(p.conns, c)
}

func slicesDelete[M any](cs []*conn[M], c *conn[M]) []*conn[M] {
	for i, x := range cs {
		if x == c {
			return append(cs[:i], cs[i+1:]...)
		}
	}
	return cs
}

func (c *conn[M]) setRoute(key string, s *sub[M]) {
	c.rmu.Lock()
	c.routes[key] = s
	c.rmu.Unlock()
}

func (c *conn[M]) delRoute(key string) {
	c.rmu.Lock()
	delete(c.routes, key)
	c.rmu.Unlock()
}

// route finds the subscription an identifier from the wire belongs to,
// without allocating for an identifier as the pool wrote it.
func (c *conn[M]) route(wire []byte) *sub[M] {
	c.rmu.RLock()
	s := c.routes[string(routeKey(wire))]
	c.rmu.RUnlock()
	if s != nil {
		return s
	}
	key, ok := canonicalKey(wire)
	if !ok {
		return nil
	}
	c.rmu.RLock()
	defer c.rmu.RUnlock()
	return c.routes[string(routeKey([]byte(key)))]
}

// command is one frame for the session's writer. A paced command (a
// subscribe) also waits for the pool's write limiter just before it is
// written.
type command struct {
	data  []byte
	paced bool
}

// send queues a command on the current session. Caller holds Pool.mu.
func (c *conn[M]) send(cmd []byte) bool { return c.enqueue(command{data: cmd}) }

// sendPaced queues a subscribe; see command.
func (c *conn[M]) sendPaced(cmd []byte) bool { return c.enqueue(command{data: cmd, paced: true}) }

func (c *conn[M]) enqueue(cmd command) bool {
	if c.out == nil {
		return false
	}
	select {
	case c.out <- cmd:
		return true
	default:
		c.p.m.drops.WithLabelValues(dropSendFull).Inc()
		return false
	}
}

// deliver hands broadcasts to the handler, in arrival order.
func (c *conn[M]) deliver() {
	defer c.p.wg.Done()
	c.deliveries.drain(c.p.cfg.Handler)
}

func (c *conn[M]) setState(st string) {
	if c.state == st {
		return
	}
	if c.state != "" {
		c.p.m.conns.WithLabelValues(c.state).Dec()
	}
	if st != "" {
		c.p.m.conns.WithLabelValues(st).Inc()
	}
	c.state = st
}

// run is the connection's lifecycle: dial → await welcome → resubscribe →
// serve, then back off and do it again, until the slot is retired.
func (c *conn[M]) run() {
	defer c.p.wg.Done()
	defer c.deliveries.close()
	defer c.setState("")
	attempt := 0
	for c.ctx.Err() == nil {
		start := time.Now()
		res := c.session()
		// Only a session that proved useful resets the backoff: a server that
		// welcomes and drops at once must not get a reconnect loop.
		if res.welcomed && (res.confirmed || time.Since(start) >= c.p.cfg.StaleAfter) {
			attempt = 0
		}
		if c.ctx.Err() != nil {
			return
		}
		c.p.m.reconnects.WithLabelValues(res.reason).Inc()
		delay := fullJitter(backoff(attempt, c.p.cfg.BackoffMin, c.p.cfg.BackoffMax), c.p.cfg.Jitter())
		if res.noReconnect {
			delay = c.p.cfg.BackoffMax
		}
		attempt++
		c.p.log.Info("cable connection lost", "conn", c.n, "reason", res.reason, "retry_in", delay.String())
		c.setState(connBackoff)
		if !sleep(c.ctx, delay) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type sessionResult struct {
	welcomed    bool
	confirmed   bool   // at least one subscription was confirmed
	reason      string // why it ended: a reconnect reason label
	noReconnect bool   // the server said disconnect with reconnect:false
}

// session runs one socket until it fails.
func (c *conn[M]) session() sessionResult {
	c.setState(connDialing)
	ws, err := c.dial()
	if err != nil {
		if c.ctx.Err() == nil {
			c.p.log.Warn("cable dial failed", "conn", c.n, "err", err)
		}
		return sessionResult{reason: "dial_error"}
	}
	c.setState(connConnected)
	ctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	out := make(chan command, c.p.cfg.SendQueue)
	c.p.mu.Lock()
	c.gen++
	gen := c.gen
	c.out = out
	c.p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel() // a failed write ends the session
		c.write(ctx, ws, out)
	}()
	res := c.read(ws, gen)
	cancel()
	wg.Wait()
	ws.Close()
	c.endSession()
	return res
}

func (c *conn[M]) dial() (*websocket.Conn, error) {
	cfg := &c.p.cfg
	d := websocket.Dialer{
		NetDialContext:   cfg.NetDialContext,
		TLSClientConfig:  cfg.TLSConfig,
		HandshakeTimeout: cfg.HandshakeTimeout,
		WriteBufferPool:  &c.p.wbufs, // most sockets write rarely: no buffer each
		Subprotocols:     []string{Protocol},
		Proxy:            http.ProxyFromEnvironment,
	}
	h := http.Header{}
	for k, v := range cfg.Header {
		h[k] = v
	}
	if o := cfg.origin(); o != "" {
		h.Set("Origin", o)
	}
	ws, resp, err := d.DialContext(c.ctx, cfg.URL, h)
	if err != nil {
		if resp != nil {
			return nil, handshakeError(resp, err)
		}
		return nil, fmt.Errorf("cable: dial: %w", err)
	}
	if p := ws.Subprotocol(); p != "" && p != Protocol {
		ws.Close()
		return nil, fmt.Errorf("cable: server chose subprotocol %q", p)
	}
	return ws, nil
}

// handshakeError says why the websocket upgrade was refused. A 502, 503 or
// 504 is Chatwoot (or its proxy) down or deploying. Only a refusal that
// looks like an Origin check suggests the Origin setting: Rails answers a
// refused Origin with 404 "Page not found", and proxies that check it with
// 403; any other 404 means no ActionCable at the URL.
func handshakeError(resp *http.Response, err error) error {
	switch status := resp.StatusCode; {
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout:
		return fmt.Errorf("cable: Chatwoot unavailable: handshake answered HTTP %d: %w", status, err)
	case status == http.StatusForbidden || status == http.StatusNotFound && railsNotFound(resp):
		return fmt.Errorf("cable: handshake refused with HTTP %d, as for a refused Origin (check RELAY_CABLE_ORIGIN): %w", status, err)
	default:
		return fmt.Errorf("cable: handshake refused with HTTP %d: %w", status, err)
	}
}

// railsNotFound reports whether a handshake answer is ActionCable's own
// refusal: text/plain "Page not found".
func railsNotFound(resp *http.Response) bool {
	if resp.Body == nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	return strings.HasPrefix(string(b), "Page not found")
}

// write writes the session's commands. Subscribes wait for the pool's
// write limiter here, at the socket: the scheduler already admits them at
// the configured rate, but a writer that was descheduled (or a socket that
// blocked) would otherwise send what queued meanwhile back to back, and
// Chatwoot would see more than rate·t + burst in some window t.
func (c *conn[M]) write(ctx context.Context, ws *websocket.Conn, out <-chan command) {
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-out:
			if cmd.paced {
				if c.p.beforePacedWrite != nil {
					c.p.beforePacedWrite(c.n)
				}
				if err := c.p.wlimiter.Wait(ctx); err != nil {
					return
				}
			}
			ws.SetWriteDeadline(time.Now().Add(c.p.cfg.WriteTimeout))
			if err := ws.WriteMessage(websocket.TextMessage, cmd.data); err != nil {
				return
			}
		}
	}
}

var errDisconnect = errors.New("cable: server sent disconnect")

// read reads frames until the socket fails, goes stale or the server
// disconnects.
func (c *conn[M]) read(ws *websocket.Conn, gen uint64) sessionResult {
	var (
		res sessionResult
		buf bytes.Buffer
		f   Frame
	)
	for {
		if c.p.cfg.StaleAfter > 0 {
			ws.SetReadDeadline(time.Now().Add(c.p.cfg.StaleAfter))
		}
		err := readFrame(ws, &buf, c.p.cfg.ReadLimit)
		if errors.Is(err, errOversized) {
			c.oversized(buf.Bytes())
			continue
		}
		if err != nil {
			res.reason = c.readFailure(err)
			return res
		}
		err = c.handle(buf.Bytes(), &f, gen, &res)
		if errors.Is(err, errDisconnect) {
			return res
		}
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{} // do not keep one huge frame's buffer
		}
	}
}

var errOversized = errors.New("cable: frame above the read limit")

// readFrame reads one frame into buf. A frame above limit is not kept: its
// first limit bytes stay in buf, the rest is read and discarded, and
// errOversized is returned; the connection lives on.
func readFrame(ws *websocket.Conn, buf *bytes.Buffer, limit int64) error {
	_, r, err := ws.NextReader()
	if err != nil {
		return err
	}
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		buf.Truncate(int(limit))
		return errOversized
	}
	return nil
}

// oversized counts a refused frame and, when its prefix names one of this
// connection's subscriptions, reports the gap so catch-up can fill it.
func (c *conn[M]) oversized(prefix []byte) {
	c.p.m.drops.WithLabelValues(dropOversized).Inc()
	c.p.log.Warn("cable frame above the read limit skipped", "conn", c.n, "limit", c.p.cfg.ReadLimit)
	if s := c.route(leadingIdentifier(prefix)); s != nil {
		c.p.reportGap(s, time.Now(), dropOversized)
	}
}

// leadingIdentifier returns the identifier of a frame that starts with its
// "identifier" field (as ActionCable writes broadcasts), or nil.
func leadingIdentifier(b []byte) []byte {
	s := jsonscan.At(b, 0)
	s.Space()
	if !s.Consume('{') {
		return nil
	}
	s.Space()
	if key, _, ok := s.Key(); !ok || string(key) != "identifier" {
		return nil
	}
	if start, end, _, ok := s.Str(); ok {
		return b[start:end]
	}
	return nil
}

func (c *conn[M]) readFailure(err error) string {
	var ne net.Error
	switch {
	case c.ctx.Err() != nil:
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "stale"
	default:
		return "closed"
	}
}

// handle acts on one frame.
func (c *conn[M]) handle(b []byte, f *Frame, gen uint64, res *sessionResult) error {
	if err := DecodeFields(b, f, c.p.cfg.Fields); err != nil {
		c.p.m.frames.WithLabelValues(FrameInvalid.String()).Inc()
		c.p.m.drops.WithLabelValues(dropDecodeError).Inc()
		c.p.log.Debug("cable frame not understood", "conn", c.n, "err", err)
		return nil
	}
	switch f.Type {
	case FrameBroadcast:
		c.p.m.frameBroadcast.Inc()
		c.broadcast(f)
		return nil
	case FramePing:
		c.p.m.framePing.Inc()
		c.deliveries.trim()
		return nil
	}
	c.p.m.frames.WithLabelValues(f.Type.String()).Inc()
	switch f.Type {
	case FrameWelcome:
		res.welcomed = true
		c.welcome(gen)
	case FrameConfirm:
		res.confirmed = c.confirm(f) || res.confirmed
	case FrameReject:
		c.reject(f)
	case FrameDisconnect:
		res.reason, res.noReconnect = "disconnect", !f.Reconnect
		c.p.log.Info("cable server sent disconnect", "conn", c.n, "reason", string(f.Reason), "reconnect", f.Reconnect)
		return errDisconnect
	}
	return nil
}

func (c *conn[M]) broadcast(f *Frame) {
	s := c.route(f.Identifier)
	if s == nil {
		c.p.m.drops.WithLabelValues(dropUnknownSub).Inc()
		return
	}
	now := time.Now()
	s.events.Add(1)
	s.lastEvent.Store(now.UnixNano())
	if c.p.cfg.Direct {
		c.p.cfg.Handler(Delivery[M]{ID: s.id, Meta: s.getMeta(), Message: f.Message, Fields: f.Fields, Borrowed: true, ReceivedAt: now})
		return
	}
	msg := make([]byte, len(f.Message))
	copy(msg, f.Message)
	if !c.deliveries.push(Delivery[M]{ID: s.id, Meta: s.getMeta(), Message: msg, Fields: f.Fields, ReceivedAt: now}) {
		s.dropped.Add(1)
		c.p.m.drops.WithLabelValues(dropQueueFull).Inc()
		c.p.reportGap(s, now, dropQueueFull)
	}
}

// welcome marks the session ready and queues a subscribe for everything
// this connection carries: subscriptions are per connection, so every new
// socket starts empty.
func (c *conn[M]) welcome(gen uint64) {
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.ready = true
	for _, s := range c.routes {
		if s.state == StatePending && s.sentGen == 0 {
			p.enqueue(s)
		}
	}
	p.log.Info("cable connected", "conn", c.n, "subscriptions", len(c.routes))
}

func (c *conn[M]) confirm(f *Frame) bool {
	s := c.route(f.Identifier)
	if s == nil {
		c.p.m.drops.WithLabelValues(dropUnknownSub).Inc()
		return false
	}
	c.p.mu.Lock()
	ev, ok := c.p.confirmed(c, s, time.Now())
	c.p.mu.Unlock()
	if ok {
		c.p.log.Debug("subscription confirmed", "subscription", s.id, "confirms", ev.Confirms)
		c.p.cfg.OnState(ev)
	}
	return ok
}

func (c *conn[M]) reject(f *Frame) {
	s := c.route(f.Identifier)
	if s == nil {
		return
	}
	c.p.mu.Lock()
	if s.conn != c {
		c.p.mu.Unlock()
		return
	}
	ev := c.p.invalidate(s, "rejected")
	c.p.mu.Unlock()
	c.p.cfg.OnState(ev)
}

// endSession resets what the server forgot with the socket: every
// subscription of this connection must be subscribed again.
func (c *conn[M]) endSession() {
	p := c.p
	var evs []StateChange[M]
	p.mu.Lock()
	c.ready, c.out = false, nil
	for _, s := range c.routes {
		switch s.state {
		case StateConfirmed:
			evs = append(evs, p.change(s, ChangeLost, "connection"))
			p.stopTimer(s)
			p.setState(s, StatePending)
		case StatePending:
			if s.sentGen != 0 {
				p.stopTimer(s) // its confirm can no longer come
			}
		}
		s.sentGen = 0
	}
	p.mu.Unlock()
	p.emit(evs)
}
