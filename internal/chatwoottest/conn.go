package chatwoottest

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// maxFrameSize bounds incoming frames (faye-websocket-driver's default
// max_length is 2^26-1).
const maxFrameSize = 1<<26 - 1

var (
	welcomeFrame = []byte(`{"type":"welcome"}`)
	errClosing   = errors.New("chatwoottest: connection closing")
)

// outFrame is one queued frame: body alone, or prefix+body+"}" for a
// broadcast to a subscription.
type outFrame struct {
	prefix  []byte
	body    []byte
	welcome bool
}

// conn is one websocket connection.
type conn struct {
	id     int64
	remote string
	srv    *Server
	ws     *websocket.Conn

	queue chan outFrame // processor and broadcasters -> writer
	cmds  chan command  // reader -> processor
	wake  chan struct{} // pending ping or final frame, cap 1
	done  chan struct{} // closed by shutdown

	pendingPing atomic.Pointer[[]byte]
	final       atomic.Pointer[[]byte] // frame to send before closing
	closeOnce   sync.Once

	// Owned by writeLoop.
	welcomed bool // pings start after the welcome, as ActionCable registers for beats then

	// Guarded by mu.
	mu       sync.Mutex
	closed   bool
	subs     map[string]*subscription // by raw identifier
	confirms map[string]int
	grace    *time.Timer
}

func newConn(s *Server, id int64, ws *websocket.Conn, remote string) *conn {
	return &conn{
		id:       id,
		remote:   remote,
		srv:      s,
		ws:       ws,
		queue:    make(chan outFrame, s.opts.QueueSize),
		cmds:     make(chan command, s.opts.CommandBuffer),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		subs:     make(map[string]*subscription),
		confirms: make(map[string]int),
	}
}

// run starts the reader and writer and runs the processor until the
// connection ends.
func (c *conn) run() {
	c.srv.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	c.process()
	c.shutdown()
}

// process sends welcome once the server is not stalled, then executes
// commands in order, each only while the server is not stalled.
func (c *conn) process() {
	if !c.srv.waitUnstalled(c.done) || !c.enqueue(outFrame{body: welcomeFrame, welcome: true}) {
		return
	}
	for {
		select {
		case <-c.done:
			return
		case cmd := <-c.cmds:
			if !c.srv.waitUnstalled(c.done) {
				return
			}
			c.execute(cmd)
		}
	}
}

func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	defer c.shutdown()
	c.ws.SetReadLimit(maxFrameSize)
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		cmd, ok := c.srv.parseFrame(typ, data)
		if !ok {
			continue
		}
		select {
		case c.cmds <- cmd:
		case <-c.done:
			return
		}
	}
}

func (c *conn) writeLoop() {
	defer c.srv.wg.Done()
	defer c.shutdown()
	var buf []byte
	for {
		var err error
		select {
		case <-c.done:
			return
		case f := <-c.queue:
			buf, err = c.writeFrame(buf, f)
		case <-c.wake:
			err = c.writeSignals()
		}
		if err != nil {
			return
		}
	}
}

// writeFrame writes f (dropping it while stalled), reusing buf to assemble
// broadcast frames.
func (c *conn) writeFrame(buf []byte, f outFrame) ([]byte, error) {
	if c.srv.stalled.Load() {
		c.srv.stats.framesDropped.Add(1)
		return buf, nil
	}
	data := f.body
	if f.prefix != nil {
		buf = append(append(append(buf[:0], f.prefix...), f.body...), '}')
		data = buf
	}
	err := c.write(data)
	c.welcomed = c.welcomed || (f.welcome && err == nil)
	return buf, err
}

func (c *conn) write(data []byte) error {
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		return err
	}
	c.srv.stats.framesSent.Add(1)
	return nil
}

// writeSignals writes the final frame (then ends the connection) or a
// pending ping.
func (c *conn) writeSignals() error {
	if f := c.final.Load(); f != nil {
		if !c.srv.stalled.Load() && c.write(*f) == nil {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.opts.CloseGrace))
		}
		return errClosing
	}
	if p := c.pendingPing.Swap(nil); p != nil && c.welcomed && !c.srv.stalled.Load() {
		if err := c.write(*p); err != nil {
			return err
		}
		c.srv.stats.pings.Add(1)
	}
	return nil
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ping asks the writer to send frame; it never blocks.
func (c *conn) ping(frame []byte) {
	c.pendingPing.Store(&frame)
	c.signal()
}

// enqueue queues f, blocking while the queue is full; false means the
// connection is closed.
func (c *conn) enqueue(f outFrame) bool {
	select {
	case c.queue <- f:
		return true
	default:
	}
	select {
	case c.queue <- f:
		return true
	case <-c.done:
		c.srv.stats.framesDropped.Add(1)
		return false
	}
}

// closeWith sends frame then closes; the socket is closed after CloseGrace
// even if the writer is stuck. While stalled nothing is sent.
func (c *conn) closeWith(frame []byte) {
	if c.srv.stalled.Load() {
		c.shutdown()
		return
	}
	c.final.Store(&frame)
	c.mu.Lock()
	if !c.closed && c.grace == nil {
		c.grace = time.AfterFunc(c.srv.opts.CloseGrace, c.shutdown)
	}
	c.mu.Unlock()
	c.signal()
}

// shutdown closes the socket, removes the connection's subscriptions from
// the token streams and unregisters it. Idempotent.
func (c *conn) shutdown() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.ws.Close()
		for _, sub := range c.detach() {
			if sub.confirmed {
				c.srv.streams.remove(sub)
				c.tokenEvent(sub, false)
			}
		}
		c.srv.unregister(c)
	})
}

func (c *conn) detach() []*subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.grace != nil {
		c.grace.Stop()
	}
	subs := slices.Collect(maps.Values(c.subs))
	clear(c.subs)
	return subs
}

func (c *conn) info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := ConnInfo{ID: c.id, RemoteAddr: c.remote, Confirms: maps.Clone(c.confirms)}
	for _, sub := range c.subs {
		ci.Subscriptions = append(ci.Subscriptions, SubscriptionInfo{
			Identifier: sub.identifier, Token: sub.token, Confirmed: sub.confirmed,
		})
	}
	slices.SortFunc(ci.Subscriptions, func(a, b SubscriptionInfo) int {
		return strings.Compare(a.Identifier, b.Identifier)
	})
	return ci
}
