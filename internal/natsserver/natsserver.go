package natsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults used when a Config field is zero.
const (
	DefaultHost         = "127.0.0.1"
	DefaultPort         = 4222
	DefaultMaxPayload   = 2 << 20 // room for a 1 MiB cable message plus headers
	DefaultReadyTimeout = 10 * time.Second

	// RandomPort asks the operating system for a free port (tests).
	RandomPort = -1
)

// Sentinel errors.
var (
	ErrNoStoreDir = errors.New("natsserver: JetStream needs a store directory")
	ErrNotReady   = errors.New("natsserver: server not ready for connections")
)

// Config describes the embedded server. The zero value is a core-NATS server
// on 127.0.0.1:4222.
type Config struct {
	// Host is the listen address; "" means 127.0.0.1.
	Host string
	// Port is the client port; 0 means 4222, RandomPort (-1) a free port.
	Port int
	// JetStream enables JetStream with file storage under StoreDir.
	JetStream bool
	// StoreDir is where JetStream keeps its data; required with JetStream.
	StoreDir string
	// ServerName names the server in logs and monitoring; "" lets nats-server pick one.
	ServerName string
	// MaxPayload is the largest message accepted; 0 means 2 MiB.
	MaxPayload int32
	// ReadyTimeout bounds the wait for the listener; 0 means 10 s.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines; nil keeps the server silent.
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	ns   *server.Server
	host string // as configured
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogLogger{cfg.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.readyTimeout()) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: %s", ErrNotReady, net.JoinHostPort(opts.Host, strconv.Itoa(cfg.Port)))
	}
	if cfg.JetStream && !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: JetStream did not start (store %s)", ErrNotReady, cfg.StoreDir)
	}
	return &Server{ns: ns, host: opts.Host}, nil
}

func (c Config) options() (*server.Options, error) {
	if c.JetStream && c.StoreDir == "" {
		return nil, ErrNoStoreDir
	}
	opts := &server.Options{
		Host:       c.Host,
		Port:       c.Port,
		ServerName: c.ServerName,
		MaxPayload: c.MaxPayload,
		JetStream:  c.JetStream,
		StoreDir:   c.StoreDir,
		NoSigs:     true,
		NoLog:      c.Logger == nil,
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	return opts, nil
}

func (c Config) readyTimeout() time.Duration {
	if c.ReadyTimeout > 0 {
		return c.ReadyTimeout
	}
	return DefaultReadyTimeout
}

// ClientURL is the nats:// URL clients connect to. With a wildcard listen
// host (0.0.0.0 or ::) it points at the loopback address.
func (s *Server) ClientURL() string {
	host := s.host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(s.Port()))
}

// Port is the port the server actually listens on (useful with RandomPort,
// and to restart a server on the same port).
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// JetStreamEnabled reports whether JetStream is running.
func (s *Server) JetStreamEnabled() bool { return s.ns.JetStreamEnabled() }

// Shutdown stops the server and returns once it has released its port and
// store directory. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// SplitListen parses a "host:port" listen address such as "127.0.0.1:4222".
// An empty host means 127.0.0.1; port "-1" means a random port.
func SplitListen(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("natsserver: listen address %q: %w", addr, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < RandomPort || port > 65535 {
		return "", 0, fmt.Errorf("natsserver: listen address %q: invalid port", addr)
	}
	if host == "" {
		host = DefaultHost
	}
	return host, port, nil
}

// slogLogger adapts nats-server's Logger to slog. Notices are startup and
// shutdown chatter, so they go to Debug; traces are dropped.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s slogLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s slogLogger) Tracef(string, ...any)           {}
