package chatwoottest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// Subprotocols ActionCable hands to the websocket driver, in its order.
const (
	ProtocolV1          = "actioncable-v1-json"
	ProtocolUnsupported = "actioncable-unsupported"
)

var upgrader = websocket.Upgrader{
	HandshakeTimeout: 10 * time.Second,
	// Chatwoot disables forgery protection; Options.RequireOrigin is checked
	// before upgrading so a refusal is a 404 like ActionCable's.
	CheckOrigin: func(*http.Request) bool { return true },
}

// serveCable upgrades /cable requests and runs the connection's processor on
// the handler goroutine.
func (s *Server) serveCable(w http.ResponseWriter, r *http.Request) {
	if !isWebsocketRequest(r) || !s.originAllowed(r) {
		pageNotFound(w)
		return
	}
	hdr := http.Header{}
	if p := selectProtocol(websocket.Subprotocols(r)); p != "" {
		hdr.Set("Sec-WebSocket-Protocol", p)
	}
	ws, err := upgrader.Upgrade(w, r, hdr)
	if err != nil {
		s.log.Debug("cable upgrade failed", "err", err)
		return
	}
	c := s.register(ws, r.RemoteAddr)
	if c == nil {
		ws.Close()
		return
	}
	defer s.wg.Done()
	c.run()
}

func isWebsocketRequest(r *http.Request) bool {
	return r.Method == http.MethodGet && websocket.IsWebSocketUpgrade(r)
}

func (s *Server) originAllowed(r *http.Request) bool {
	if s.opts.RequireOrigin == "" || r.Header.Get("Origin") == s.opts.RequireOrigin {
		return true
	}
	s.log.Info("request origin not allowed")
	return false
}

// pageNotFound is ActionCable's answer to invalid requests.
func pageNotFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("Page not found"))
}

// selectProtocol picks the first protocol the client offered that ActionCable
// supports, as faye-websocket-driver does.
func selectProtocol(offered []string) string {
	for _, p := range offered {
		if p == ProtocolV1 || p == ProtocolUnsupported {
			return p
		}
	}
	return ""
}

// register adds a connection and accounts for its handler goroutine; nil
// means the server is closed.
func (s *Server) register(ws *websocket.Conn, remote string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.wg.Add(1)
	s.nextConnID++
	c := newConn(s, s.nextConnID, ws, remote)
	s.conns[c.id] = c
	s.stats.connsAccepted.Add(1)
	s.stats.connsOpen.Add(1)
	s.startPinger()
	return c
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	s.stats.connsOpen.Add(-1)
}

// connList returns open connections by id. Caller holds s.mu.
func (s *Server) connList() []*conn {
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *conn) int { return int(a.id - b.id) })
	return out
}

func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connList()
}

// startPinger arms the process-wide heartbeat on the first connection, as
// ActionCable arms it on the first request. Caller holds s.mu.
func (s *Server) startPinger() {
	if s.pingStarted {
		return
	}
	s.pingStarted = true
	t := time.NewTicker(s.opts.PingInterval)
	s.wg.Add(1)
	go s.pingLoop(t)
}

func (s *Server) pingLoop(t *time.Ticker) {
	defer s.wg.Done()
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.pingAll(now)
		}
	}
}

func (s *Server) pingAll(now time.Time) {
	if s.stalled.Load() {
		return
	}
	frame := pingFrame(now.Unix())
	for _, c := range s.openConns() {
		c.ping(frame)
	}
}

func pingFrame(unix int64) []byte {
	b := append([]byte(nil), `{"type":"ping","message":`...)
	b = strconv.AppendInt(b, unix, 10)
	return append(b, '}')
}

func disconnectFrame(reason string, reconnect bool) []byte {
	b := append([]byte(nil), `{"type":"disconnect","reason":`...)
	b = appendJSONString(b, reason)
	b = append(b, `,"reconnect":`...)
	b = strconv.AppendBool(b, reconnect)
	return append(b, '}')
}

// DropAll closes every connection. With withDisconnectFrame it first sends
// {"type":"disconnect","reason":"server_restart","reconnect":true} (unless
// stalled); without it the socket just drops, like a deploy or crash. It
// returns the number of connections closed and does not wait for the
// handlers to finish.
func (s *Server) DropAll(withDisconnectFrame bool) int {
	if withDisconnectFrame {
		return s.Disconnect("server_restart", true)
	}
	conns := s.openConns()
	for _, c := range conns {
		c.shutdown()
	}
	return len(conns)
}

// Disconnect sends {"type":"disconnect","reason":reason,"reconnect":reconnect}
// to every connection, then closes it. It returns the number of connections.
func (s *Server) Disconnect(reason string, reconnect bool) int {
	frame := disconnectFrame(reason, reconnect)
	conns := s.openConns()
	for _, c := range conns {
		c.closeWith(frame)
	}
	return len(conns)
}

// DropConn closes the connection with the given id (see Conns), optionally
// after a server_restart disconnect frame. It reports whether it was open.
func (s *Server) DropConn(id int64, withDisconnectFrame bool) bool {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	if withDisconnectFrame {
		c.closeWith(disconnectFrame("server_restart", true))
	} else {
		c.shutdown()
	}
	return true
}

// Stall makes the server hang (on) or recover (off). While stalled it sends
// nothing at all: no welcome, pings, confirms or broadcasts. Connections stay
// open and handshakes still succeed; received commands are held and executed
// after recovery; broadcasts during the stall are lost, like Chatwoot's.
func (s *Server) Stall(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on == s.stalled.Load() {
		return
	}
	if on {
		s.unstalled = make(chan struct{})
		s.stalled.Store(true)
		return
	}
	s.stalled.Store(false)
	close(s.unstalled)
}

// waitUnstalled blocks while the server is stalled; false means done closed.
func (s *Server) waitUnstalled(done <-chan struct{}) bool {
	if !s.stalled.Load() {
		return true
	}
	s.mu.Lock()
	ch := s.unstalled
	s.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// ConnInfo describes one open connection.
type ConnInfo struct {
	ID         int64
	RemoteAddr string
	// Subscriptions currently registered, sorted by identifier.
	Subscriptions []SubscriptionInfo
	// Confirms counts confirm_subscription frames sent on this connection
	// per identifier, including identifiers unsubscribed since.
	Confirms map[string]int
}

// SubscriptionInfo is one registered subscription of a connection.
type SubscriptionInfo struct {
	Identifier string
	Token      string
	// Confirmed is false for a broken subscription (unknown token): it was
	// registered but never confirmed and receives nothing.
	Confirmed bool
}

// Conns lists the open connections by id.
func (s *Server) Conns() []ConnInfo {
	conns := s.openConns()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info())
	}
	return out
}

// Broadcast sends message (a {"event":...,"data":...} object) to every
// confirmed subscription of token on every connection and returns how many
// frames were queued. It blocks while a target connection's queue is full.
// Broadcasts to a token nobody subscribed, or while stalled, are lost.
// message is copied.
func (s *Server) Broadcast(token string, message []byte) int {
	return s.broadcast(token, append([]byte(nil), message...))
}

// broadcast is Broadcast without the copy; message must not be modified.
func (s *Server) broadcast(token string, message []byte) int {
	s.stats.broadcasts.Add(1)
	if s.stalled.Load() {
		s.stats.broadcastsLost.Add(1)
		return 0
	}
	subs := s.streams.get(token)
	n := 0
	for _, sub := range subs {
		if sub.conn.enqueue(outFrame{prefix: sub.prefix, body: message}) {
			n++
		}
	}
	s.stats.broadcastFrames.Add(int64(n))
	return n
}

func appendJSONString(b []byte, s string) []byte {
	return append(b, quoteJSON(s)...)
}

// quoteJSON encodes s as a JSON string, escaping <, > and & like
// ActiveSupport::JSON does.
func quoteJSON(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
