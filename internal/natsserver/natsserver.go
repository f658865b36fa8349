package natsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
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
	// ErrNoAuth: a server reachable from other hosts must authenticate
	// its clients, or anyone could read, publish and manage streams.
	ErrNoAuth = errors.New("natsserver: a listen address other than loopback needs authentication")
	// ErrAuthConfig reports unusable authentication or TLS settings.
	ErrAuthConfig = errors.New("natsserver: invalid authentication or TLS configuration")
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

	// Authentication: at most one of User/Password, Token and NKey. A
	// Host other than loopback requires one of them.
	User, Password string
	Token          string
	// NKey is the public user nkey ("U...") allowed to connect; the
	// client signs the server's challenge with its seed (NKeyFromSeedFile).
	NKey string
	// TLSCert and TLSKey make the client port require TLS. With
	// TLSClientCA, clients must also present a certificate it signed.
	TLSCert, TLSKey, TLSClientCA string
}

// authenticated reports whether clients must authenticate.
func (c Config) authenticated() bool {
	return c.User != "" || c.Password != "" || c.Token != "" || c.NKey != ""
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
	if !loopback(opts.Host) && !c.authenticated() {
		return nil, fmt.Errorf("%w: %s", ErrNoAuth, opts.Host)
	}
	if err := c.secure(opts); err != nil {
		return nil, err
	}
	// Only the client port is opened: monitoring (HTTPPort), profiling,
	// cluster, gateway, leaf node, websocket and MQTT ports keep their
	// zero value, which nats-server reads as "off".
	return opts, nil
}

// secure sets the authentication and TLS options.
func (c Config) secure(opts *server.Options) error {
	n := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NKey != ""} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		return fmt.Errorf("%w: use only one of user/password, token, nkey", ErrAuthConfig)
	case (c.User == "") != (c.Password == ""):
		return fmt.Errorf("%w: user and password go together", ErrAuthConfig)
	case c.NKey != "" && !nkeys.IsValidPublicUserKey(c.NKey):
		return fmt.Errorf("%w: NKey is not a public user nkey", ErrAuthConfig)
	}
	opts.Username, opts.Password, opts.Authorization = c.User, c.Password, c.Token
	if c.NKey != "" {
		opts.Nkeys = []*server.NkeyUser{{Nkey: c.NKey}}
	}
	return c.tls(opts)
}

// tls sets the TLS options of the client port.
func (c Config) tls(opts *server.Options) error {
	if c.TLSCert == "" && c.TLSKey == "" && c.TLSClientCA == "" {
		return nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return fmt.Errorf("%w: TLS needs both a certificate and its key", ErrAuthConfig)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSClientCA, Verify: c.TLSClientCA != "",
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuthConfig, err)
	}
	opts.TLS, opts.TLSConfig, opts.TLSVerify, opts.TLSTimeout = true, tc, c.TLSClientCA != "", 2
	return nil
}

// loopback reports whether host only accepts connections from this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NKeyFromSeedFile reads a user nkey seed file (the bare seed or the
// decorated form nsc writes) and returns its public key, for Config.NKey.
// Errors never quote the file's content.
func NKeyFromSeedFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("natsserver: nkey seed: %w", err)
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", fmt.Errorf("natsserver: nkey seed file %s: %w", path, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("natsserver: nkey seed file %s: not a user seed (SU...)", path)
	}
	return pub, nil
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

// InProcessConn connects to the server without a socket (nats.InProcessServer):
// the relay's own publisher uses it, so it needs no TLS client settings and
// works whatever the listen address. Clients still authenticate.
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

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
