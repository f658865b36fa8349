package fanout

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Connection defaults.
const (
	DefaultNATSName      = "relay"
	DefaultReconnectWait = 2 * time.Second
	DefaultPingInterval  = 20 * time.Second
	// DefaultFlusherTimeout bounds a blocked socket write (nats.go: 1 min).
	DefaultFlusherTimeout = 10 * time.Second
)

// ErrNATSConfig reports an unusable NATS connection configuration.
var ErrNATSConfig = errors.New("fanout: invalid NATS configuration")

// NATSConfig describes the NATS connection. At most one of CredsFile,
// User/Password, Token and NKeySeedFile may be set.
type NATSConfig struct {
	// URL of the server(s), comma-separated; "" means nats://127.0.0.1:4222.
	URL string
	// Name shown in NATS monitoring; "" means "relay".
	Name string
	// CredsFile is a NATS credentials (JWT + nkey) file.
	CredsFile string
	// User and Password for user/password authentication.
	User, Password string
	// Token for token authentication.
	Token string
	// NKeySeedFile holds a user nkey seed for nkey authentication.
	NKeySeedFile string
	// InProcess, when set, connects to an embedded server without a socket
	// (URL is then only a label); credentials are still sent.
	InProcess nats.InProcessConnProvider
	// CAFile, CertFile, KeyFile configure TLS (CA to verify the server,
	// client certificate and key for mutual TLS).
	CAFile, CertFile, KeyFile string
	// ReconnectWait between reconnect attempts; 0 means 2 s (plus jitter).
	ReconnectWait time.Duration
	// PingInterval for detecting a dead server; 0 means 20 s.
	PingInterval time.Duration
}

// LogValue keeps secrets out of logs.
func (c NATSConfig) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return slog.GroupValue(
		slog.String("url", RedactURL(c.URL)),
		slog.String("name", c.Name),
		slog.String("creds_file", c.CredsFile),
		slog.String("user", c.User),
		slog.String("password", redact(c.Password)),
		slog.String("token", redact(c.Token)),
		slog.String("nkey_seed_file", c.NKeySeedFile),
		slog.Bool("in_process", c.InProcess != nil),
		slog.String("ca_file", c.CAFile),
		slog.String("cert_file", c.CertFile),
		slog.String("key_file", c.KeyFile),
	)
}

// RedactURL hides passwords, bare user tokens, queries and fragments in a
// comma-separated list of URLs, so a URL can be logged or quoted in an
// error whatever secret it carries. An unparsable URL becomes REDACTED.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil || u.Opaque != "":
			parts[i] = "REDACTED"
		case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			parts[i] = redactParsed(u)
		}
	}
	return strings.Join(parts, ",")
}

// redactParsed replaces the secret-bearing parts of u.
func redactParsed(u *url.URL) string {
	if u.User != nil {
		if _, hasPw := u.User.Password(); !hasPw {
			u.User = url.User("REDACTED") // a bare user part is a token
		}
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "REDACTED", false
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = "REDACTED", ""
	}
	return u.Redacted()
}

// Validate reports every problem of c at once.
func (c NATSConfig) Validate() error {
	var errs []error
	auth := 0
	for _, set := range []bool{c.CredsFile != "", c.User != "" || c.Password != "", c.Token != "", c.NKeySeedFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		errs = append(errs, fmt.Errorf("%w: use only one of creds file, user/password, token, nkey seed file", ErrNATSConfig))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%w: TLS cert and key go together", ErrNATSConfig))
	}
	if c.ReconnectWait < 0 || c.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("%w: negative duration", ErrNATSConfig))
	}
	return errors.Join(errs...)
}

// options returns the nats.go connection options (ClientOptions adds
// security): reconnect forever, start even when
// the server is down, and no nats.go reconnect buffer (publishes made while
// disconnected fail, so Fanout keeps and counts the events itself instead
// of nats.go dropping them silently).
func (c NATSConfig) options(logger *slog.Logger, reconnects, disconnects prometheus.Counter) []nats.Option {
	name := c.Name
	if name == "" {
		name = DefaultNATSName
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(orDefault(c.ReconnectWait, DefaultReconnectWait)),
		nats.PingInterval(orDefault(c.PingInterval, DefaultPingInterval)),
		nats.MaxPingsOutstanding(3),
		nats.FlusherTimeout(DefaultFlusherTimeout),
	}
	return append(opts, handlers(logger, reconnects, disconnects)...)
}

// handlers log connection state changes (with redacted URLs) and count them.
func handlers(logger *slog.Logger, reconnects, disconnects prometheus.Counter) []nats.Option {
	return []nats.Option{
		nats.ConnectHandler(func(nc *nats.Conn) {
			logger.Info("fanout: NATS connected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // our own Close, not an outage
			}
			disconnects.Inc()
			logger.Warn("fanout: NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			reconnects.Inc()
			logger.Info("fanout: NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { logger.Info("fanout: NATS connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Warn("fanout: NATS error", "err", err)
		}),
	}
}

// nkeyOption reads the nkey seed file (nats.go reads it again for every
// signature, so the seed is not kept in memory). Errors never quote the
// file's content.
func (c NATSConfig) nkeyOption() (nats.Option, error) {
	o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
	if err != nil {
		return nil, fmt.Errorf("%w: nkey seed file %s: %w", ErrNATSConfig, c.NKeySeedFile, err)
	}
	return o, nil
}

// ClientOptions are the authentication, TLS and in-process options of c:
// Connect uses them, and so can another connection of the relay to the
// same server (the demo's consumer).
func (c NATSConfig) ClientOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.User != "" || c.Password != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := c.nkeyOption()
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if c.InProcess != nil {
		opts = append(opts, nats.InProcessServer(c.InProcess))
	}
	if c.CAFile != "" {
		opts = append(opts, nats.RootCAs(c.CAFile))
	}
	if c.CertFile != "" {
		opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
	}
	return opts, nil
}

// Connect dials NATS. It returns at once even when the server is
// unreachable: the connection then keeps trying in the background, forever.
// It registers relay_nats_reconnects_total and relay_nats_disconnects_total.
func Connect(cfg NATSConfig, logger *slog.Logger, reg prometheus.Registerer) (*nats.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reconnects := registerCounter(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_nats_reconnects_total", Help: "Successful NATS reconnects."}))
	disconnects := registerCounter(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relay_nats_disconnects_total", Help: "NATS connection losses."}))
	u := cfg.URL
	if u == "" {
		u = nats.DefaultURL
	}
	security, err := cfg.ClientOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(u, append(cfg.options(logger, reconnects, disconnects), security...)...)
	if err != nil {
		return nil, fmt.Errorf("fanout: NATS connect %s: %w", RedactURL(u), err)
	}
	return nc, nil
}

// Config is everything Open needs besides Options.
type Config struct {
	NATS NATSConfig
	// Core publishes with core NATS (at-most-once) instead of JetStream.
	Core bool
	// Stream configures JetStream mode; Subjects defaults to <prefix>.>.
	Stream JetStreamConfig
	// RestoreTimeout bounds rebuilding the dedup window from the stream's
	// recent Nats-Msg-Ids at Open (JetStream mode); 0 means 5 s, negative
	// skips it. See restore.go.
	RestoreTimeout time.Duration
}

// Open connects to NATS, sets up the core or JetStream publisher and starts
// a Fanout on it; in JetStream mode it first restores the dedup window from
// the stream (bounded by Config.RestoreTimeout). Close(ctx) flushes the Fanout, then closes the publisher
// and the connection.
func Open(cfg Config, opts Options) (*Fanout, error) {
	opts = opts.withDefaults()
	if !validPrefix(opts.Prefix) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidPrefix, opts.Prefix)
	}
	nc, err := Connect(cfg.NATS, opts.Logger, opts.Registerer)
	if err != nil {
		return nil, err
	}
	pub, closePub, err := newPublisher(nc, cfg, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	f, err := New(pub, opts)
	if err != nil {
		closePub()
		nc.Close()
		return nil, err
	}
	f.closers = []func(){closePub, func() {
		_ = nc.FlushTimeout(time.Second)
		nc.Close()
	}}
	if js, ok := pub.(*JetStream); ok {
		// Before the caller can hand over any event: catch-up replays
		// of what a killed process published must meet their keys.
		f.restore(js, cfg.RestoreTimeout)
	}
	return f, nil
}

func newPublisher(nc *nats.Conn, cfg Config, opts Options) (Publisher, func(), error) {
	if cfg.Core {
		c := NewCore(nc)
		return c, c.Close, nil
	}
	sc := cfg.Stream
	if len(sc.Subjects) == 0 {
		sc.Subjects = []string{opts.Prefix + ".>"}
	}
	sc.MaxPending = max(sc.MaxPending, opts.InFlight)
	js, err := NewJetStream(nc, sc, opts.Logger)
	if err != nil {
		return nil, nil, err
	}
	return js, js.Close, nil
}
