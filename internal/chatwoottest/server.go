package chatwoottest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Default option values.
const (
	DefaultPingInterval  = 3 * time.Second
	DefaultQueueSize     = 1024
	DefaultCommandBuffer = 4096
	DefaultCloseGrace    = time.Second
)

// Options configure a Server. The zero value is a stock Chatwoot.
type Options struct {
	// Logger receives the fake's logs (never tokens or source_ids). nil
	// discards them.
	Logger *slog.Logger
	// PingInterval between ping frames to every connection. 0 means 3 s,
	// Chatwoot's BEAT_INTERVAL.
	PingInterval time.Duration
	// RequireOrigin, when set, refuses websocket handshakes whose Origin
	// header differs with 404 "Page not found" (forgery protection enabled).
	// Empty accepts any origin, like stock Chatwoot.
	RequireOrigin string
	// QueueSize is the bound of each connection's send queue. 0 means 1024.
	QueueSize int
	// CommandBuffer is how many received commands a connection holds while
	// its processing is stalled or busy. 0 means 4096.
	CommandBuffer int
	// CloseGrace bounds how long DropAll/Disconnect wait for the disconnect
	// frame to be written before closing the socket anyway. 0 means 1 s.
	CloseGrace time.Duration
	// OnSubscribe, when set, is called for every subscribe command read from
	// any connection (duplicates included) with its raw identifier and the
	// time it was read. It runs on the connection's reader goroutine, for
	// several connections concurrently: keep it cheap and safe for concurrent
	// use. SubscribeLog.Record fits.
	OnSubscribe func(identifier string, at time.Time)
	// OnToken, when set, is called whenever a confirmed subscription starts
	// or ends on a connection (unsubscribe, or the connection closing),
	// concurrently from many connections. TokenLog.Record fits.
	OnToken func(TokenEvent)
	// Seed makes generated inbox identifiers, tokens, source_ids, uuids and
	// names deterministic. 0 picks a random seed.
	Seed uint64
	// RateLimitPerMinute throttles each client IP to this many HTTP requests
	// (REST and /cable handshakes) per fixed one-minute window, answering 429
	// "Retry later" like Rack::Attack. 0 disables it. Unlike Chatwoot there
	// is no safelist for 127.0.0.1 and ::1. See also SetRateLimit.
	RateLimitPerMinute int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.CommandBuffer <= 0 {
		o.CommandBuffer = DefaultCommandBuffer
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = DefaultCloseGrace
	}
	return o
}

// Server is a fake Chatwoot. Create it with New, serve Handler (or call Serve
// or Listen) and Close it when done. All methods are safe for concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	stats counters
	done  chan struct{} // closed by Close

	handler http.Handler
	tokens  tokenTable
	streams streamTable
	model   *model
	rest    restControls

	stalled atomic.Bool
	wg      sync.WaitGroup // every goroutine the server started

	// Guarded by mu.
	mu          sync.Mutex
	closed      bool
	conns       map[int64]*conn
	nextConnID  int64
	servers     []*http.Server
	pingStarted bool
	unstalled   chan struct{} // closed while not stalled
}

// New returns a Server with account 1 and its agent 1 ("Agent 1", online).
// It starts no goroutines; the ping timer starts with the first connection.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		done:      make(chan struct{}),
		conns:     make(map[int64]*conn),
		unstalled: make(chan struct{}),
	}
	close(s.unstalled)
	s.tokens.init()
	s.streams.init()
	s.model = newModel(s, opts.Seed)
	s.rest.init(opts.RateLimitPerMinute)
	s.handler = s.routes()
	return s
}

// Handler serves /cable and the public client API.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves Handler on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	if !s.track(srv) {
		ln.Close()
		return ErrClosed
	}
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Listen listens on a TCP address (such as "127.0.0.1:0") and serves in the
// background until Close. It returns the address, e.g. for "http://"+addr.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.goServe(ln)
	return ln.Addr(), nil
}

// ServeMem serves the fake on a new in-memory listener in the background
// until Close and returns the listener to dial through.
func (s *Server) ServeMem() *MemListener {
	ln := NewMemListener()
	s.goServe(ln)
	return ln
}

func (s *Server) goServe(ln net.Listener) {
	if !s.addGoroutine() {
		ln.Close()
		return
	}
	go func() {
		defer s.wg.Done()
		if err := s.Serve(ln); err != nil {
			s.log.Warn("serve stopped", "err", err)
		}
	}()
}

// addGoroutine accounts for a goroutine unless the server is closed.
func (s *Server) addGoroutine() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) track(srv *http.Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.servers = append(s.servers, srv)
	return true
}

// Close closes every connection and HTTP server the fake started and waits
// for all of its goroutines to stop. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	servers := s.servers
	conns := s.connList()
	s.mu.Unlock()

	for _, srv := range servers {
		srv.Close()
	}
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	return nil
}

// sleep waits d or until ctx or the server is done; it reports whether the
// full delay elapsed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}
