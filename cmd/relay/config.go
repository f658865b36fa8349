package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/fanout"
)

const envPrefix = "RELAY_"

// Config is the relay's whole configuration, read once from RELAY_*
// environment variables. Fields tagged secret are redacted when logged.
type Config struct {
	ChatwootURL string   `env:"CHATWOOT_URL" url:"true" desc:"base URL of Chatwoot; /cable and /public/api/v1 hang off it (required outside -demo); no user info, query or fragment"`
	HTTPAddr    string   `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080" desc:"the relay's HTTP API, health and metrics"`
	APITokens   []string `env:"API_TOKENS" secret:"true" desc:"comma-separated bearer tokens with full access; empty (and no API_TOKENS_FILE) = local requests only"`
	// APITokensFile: JSON lines {"token","scopes","inboxes"}; see tokensfile.go.
	APITokensFile string `env:"API_TOKENS_FILE" desc:"file of bearer tokens with scopes (admin, proxy) and inboxes, one JSON object a line"`
	LogLevel      string `env:"LOG_LEVEL" envDefault:"info" desc:"debug, info, warn or error"`

	MetricsAddr       string        `env:"METRICS_ADDR" desc:"serves /metrics on its own listener instead of HTTP_ADDR; empty = on HTTP_ADDR"`
	HTTPMaxConcurrent int           `env:"HTTP_MAX_CONCURRENT" envDefault:"1024" desc:"API requests served at once (health, readiness, metrics apart); past it 503 with Retry-After"`
	HTTPBodyTimeout   time.Duration `env:"HTTP_BODY_TIMEOUT" envDefault:"15s" desc:"bound on reading a request body, multipart uploads on the proxied API apart"`
	HTTPUploadTimeout time.Duration `env:"HTTP_UPLOAD_TIMEOUT" envDefault:"5m" desc:"bound on reading a request, multipart uploads on the proxied API included"`

	NATSURL            string        `env:"NATS_URL" url:"true" desc:"external NATS; empty runs an embedded server"`
	NATSListen         string        `env:"NATS_LISTEN" envDefault:"127.0.0.1:4222" desc:"where the embedded NATS listens; other than loopback needs NATS_USER+NATS_PASSWORD, NATS_TOKEN or NATS_NKEY_SEED_FILE"`
	NATSJetStream      bool          `env:"NATS_JETSTREAM" envDefault:"true" desc:"publish to a JetStream stream (durable) or core NATS"`
	NATSSubjectPrefix  string        `env:"NATS_SUBJECT_PREFIX" envDefault:"chatwoot" desc:"first subject token"`
	NATSStream         string        `env:"NATS_STREAM" envDefault:"CHATWOOT" desc:"JetStream stream name"`
	NATSStreamMaxAge   time.Duration `env:"NATS_STREAM_MAX_AGE" envDefault:"168h" desc:"JetStream stream max age (0 = unlimited)"`
	NATSStreamMaxBytes int64         `env:"NATS_STREAM_MAX_BYTES" envDefault:"1073741824" desc:"JetStream stream max bytes (-1 = unlimited)"`
	NATSDupWindow      time.Duration `env:"NATS_DUPLICATE_WINDOW" envDefault:"2m" desc:"JetStream duplicate window for Nats-Msg-Id"`
	NATSBufferBytes    int64         `env:"NATS_BUFFER_BYTES" envDefault:"67108864" desc:"events held while NATS is unreachable"`
	HoldBack           time.Duration `env:"HOLD_BACK" envDefault:"2s" desc:"how long a burst may hold a websocket back when the relay's buffers are full, before events are dropped and caught up (0 = drop at once)"`
	NATSCredsFile      string        `env:"NATS_CREDS_FILE" desc:"NATS credentials file (external NATS only)"`
	NATSUser           string        `env:"NATS_USER" desc:"NATS user; the embedded NATS then requires it, with NATS_PASSWORD, from every client"`
	NATSPassword       string        `env:"NATS_PASSWORD" secret:"true" desc:"NATS password (with NATS_USER)"`
	NATSToken          string        `env:"NATS_TOKEN" secret:"true" desc:"NATS token; the embedded NATS then requires it from every client"`
	NATSNKeySeedFile   string        `env:"NATS_NKEY_SEED_FILE" desc:"file holding a NATS user nkey seed (SU...); the embedded NATS then accepts only that key"`
	NATSTLSCA          string        `env:"NATS_TLS_CA" desc:"CA file verifying an external NATS's certificate"`
	NATSTLSCert        string        `env:"NATS_TLS_CERT" desc:"client certificate for an external NATS's TLS"`
	NATSTLSKey         string        `env:"NATS_TLS_KEY" desc:"client key for an external NATS's TLS"`
	NATSListenTLSCert  string        `env:"NATS_LISTEN_TLS_CERT" desc:"embedded NATS: server certificate; clients must then use TLS"`
	NATSListenTLSKey   string        `env:"NATS_LISTEN_TLS_KEY" desc:"embedded NATS: key of NATS_LISTEN_TLS_CERT"`
	NATSListenClientCA string        `env:"NATS_LISTEN_TLS_CLIENT_CA" desc:"embedded NATS: clients must also present a certificate signed by this CA"`
	ForwardTokens      bool          `env:"FORWARD_TOKENS" envDefault:"false" desc:"keep pubsub_token values in published bodies"`
	ForwardSourceIDs   bool          `env:"FORWARD_SOURCE_IDS" envDefault:"false" desc:"keep the contact's source_id (contact_inbox.source_id) in published bodies"`

	DataDir        string `env:"DATA_DIR" envDefault:"./data" desc:"local state file and embedded JetStream storage"`
	RedisURL       string `env:"REDIS_URL" secret:"true" desc:"shared state for several replicas; empty = local state file"`
	RedisTLSCA     string `env:"REDIS_TLS_CA" desc:"CA file for a rediss:// REDIS_URL (a private CA); empty = system roots"`
	RedisKeyPrefix string `env:"REDIS_KEY_PREFIX" envDefault:"relay:" desc:"starts every Redis key, so several deployments share one Redis"`
	// Scale-out: with REDIS_URL the replicas split the subscriptions (package cluster).
	ClusterMember      string            `env:"CLUSTER_MEMBER" desc:"this replica's member name with REDIS_URL; empty = host name and a random suffix"`
	ClusterBuckets     int               `env:"CLUSTER_BUCKETS" envDefault:"1024" desc:"buckets the subscriptions hash into, fixed for a deployment (checked at start against Redis)"`
	ClusterLeaseTTL    time.Duration     `env:"CLUSTER_LEASE_TTL" envDefault:"15s" desc:"member heartbeat and bucket lease TTL: how long a crashed replica's buckets wait for a new owner"`
	ClusterRenew       time.Duration     `env:"CLUSTER_RENEW_INTERVAL" envDefault:"5s" desc:"heartbeat and lease renewal interval; at most half of CLUSTER_LEASE_TTL"`
	NATSStreamReplicas int               `env:"NATS_STREAM_REPLICAS" envDefault:"1" desc:"JetStream stream replicas: 1 with the embedded NATS, 3 recommended on a NATS cluster"`
	InboxHMACTokens    map[string]string `env:"INBOX_HMAC_TOKENS" envKeyValSeparator:"=" secret:"true" desc:"inbox_identifier=hmac_token,..."`
	SubscriptionsFile  string            `env:"SUBSCRIPTIONS_FILE" desc:"static subscriptions, reloaded on SIGHUP"`
	AccountFeeds       []string          `env:"ACCOUNT_FEEDS" secret:"true" desc:"comma-separated Chatwoot user access tokens: each becomes an account feed (every event of the user's accounts), added at start"`
	MaxSubscriptions   int               `env:"MAX_SUBSCRIPTIONS" envDefault:"1000000" desc:"most subscriptions the relay holds; new ones past it are refused (0 = no limit)"`

	CableOrigin           string        `env:"CABLE_ORIGIN" desc:"Origin header for /cable; empty = Chatwoot's origin, '-' = none"`
	CablePerConn          int           `env:"CABLE_PER_CONN" envDefault:"200" desc:"subscriptions per websocket"`
	CableSubscribeRate    float64       `env:"CABLE_SUBSCRIBE_RATE" envDefault:"50" desc:"subscribes per second, whole process"`
	CableSubscribeBurst   int           `env:"CABLE_SUBSCRIBE_BURST" envDefault:"5" desc:"subscribe burst"`
	CableStaleAfter       time.Duration `env:"CABLE_STALE_AFTER" envDefault:"6s" desc:"reconnect after this long without a frame"`
	CableBackoffMin       time.Duration `env:"CABLE_BACKOFF_MIN" envDefault:"1s" desc:"reconnect backoff start"`
	CableBackoffMax       time.Duration `env:"CABLE_BACKOFF_MAX" envDefault:"30s" desc:"reconnect backoff cap"`
	CableConfirmTimeout   time.Duration `env:"CABLE_CONFIRM_TIMEOUT" envDefault:"10s" desc:"unsubscribe and retry a subscribe unconfirmed this long"`
	CableVerifyAfter      int           `env:"CABLE_VERIFY_AFTER" envDefault:"3" desc:"confirm timeouts before checking the contact through the API"`
	CableParkAfter        int           `env:"CABLE_PARK_AFTER" envDefault:"5" desc:"confirm timeouts before a subscription is parked (retried every CABLE_PARK_INTERVAL, after all others)"`
	CableParkInterval     time.Duration `env:"CABLE_PARK_INTERVAL" envDefault:"10m" desc:"retry interval of parked subscriptions"`
	CablePresenceInterval time.Duration `env:"CABLE_PRESENCE_INTERVAL" envDefault:"0s" desc:"update_presence per subscription; 0 = off"`
	CableReadLimit        int64         `env:"CABLE_READ_LIMIT" envDefault:"1048576" desc:"largest frame accepted"`
	CableTLSCA            string        `env:"CABLE_TLS_CA" desc:"extra CA file for wss://"`

	ChatwootRatePerMinute int           `env:"CHATWOOT_RATE_PER_MINUTE" envDefault:"3000" desc:"Chatwoot's per-IP request limit; the relay uses 90% of it for all its public API calls"`
	ChatwootTimeout       time.Duration `env:"CHATWOOT_TIMEOUT" envDefault:"15s" desc:"timeout of each public API call"`
	MultipartLimit        int64         `env:"MULTIPART_LIMIT" envDefault:"41943040" desc:"largest multipart (attachment) request body"`
	CatchupConcurrency    int           `env:"CATCHUP_CONCURRENCY" envDefault:"4" desc:"catch-ups running at once"`

	// Webhook delivery (JetStream mode only); see internal/webhook.
	WebhooksFile          string          `env:"WEBHOOKS_FILE" desc:"webhook endpoints, one JSON object a line, reloaded on SIGHUP; needs NATS_JETSTREAM"`
	WebhooksSchedule      []time.Duration `env:"WEBHOOKS_SCHEDULE" envDefault:"5s,5m,30m,2h,5h,10h,10h" desc:"waits before each retry of a failed delivery (with ±20% jitter, at least the receiver's Retry-After); after the last, the dead-letter subject"`
	WebhooksTimeout       time.Duration   `env:"WEBHOOKS_TIMEOUT" envDefault:"15s" desc:"bound on one delivery attempt"`
	WebhooksConcurrency   int             `env:"WEBHOOKS_CONCURRENCY" envDefault:"16" desc:"conversations delivered in parallel per endpoint, unless the endpoint sets its own"`
	WebhooksAckWait       time.Duration   `env:"WEBHOOKS_ACK_WAIT" envDefault:"30s" desc:"events of a stopped or killed replica are delivered again after this long; above WEBHOOKS_TIMEOUT"`
	WebhooksFailover      time.Duration   `env:"WEBHOOKS_FAILOVER" envDefault:"30s" desc:"a replica that stopped pulling keeps its endpoints this long before another replica takes over"`
	WebhooksAllowLoopback bool            `env:"WEBHOOKS_ALLOW_LOOPBACK" envDefault:"false" desc:"let receivers resolve to loopback addresses"`
	WebhooksAllowPrivate  bool            `env:"WEBHOOKS_ALLOW_PRIVATE" envDefault:"false" desc:"let receivers resolve to private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); link-local and metadata addresses are always refused"`

	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s" desc:"bound on the ordered shutdown"`
	PprofAddr       string        `env:"PPROF_ADDR" desc:"loopback address serving Go's /debug/pprof profiles; empty = off"`
}

// loadConfig reads the configuration from environ (KEY=VALUE pairs) and
// validates it, reporting every problem at once.
func loadConfig(environ map[string]string, demo bool) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Prefix: envPrefix, Environment: environ}); err != nil {
		return c, scrubSecrets(err, environ)
	}
	return c, c.validate(demo)
}

// scrubSecrets removes the values of secret variables from a parse error:
// the env library quotes offending values, and an HMAC token in a
// malformed RELAY_INBOX_HMAC_TOKENS must not reach the terminal or logs.
func scrubSecrets(err error, environ map[string]string) error {
	msg := err.Error()
	forEachField(func(f reflect.StructField, _ reflect.Value) {
		if f.Tag.Get("secret") != "true" && f.Tag.Get("url") != "true" {
			return
		}
		raw := environ[envPrefix+f.Tag.Get("env")]
		pieces := []string{raw}
		for _, item := range strings.Split(raw, ",") {
			pieces = append(pieces, item)
			pieces = append(pieces, strings.FieldsFunc(item, func(r rune) bool { return r == '=' || r == ':' })...)
		}
		for _, p := range pieces {
			if len(p) >= 3 { // short pieces (a port, "a") say nothing and would mangle the message
				msg = strings.ReplaceAll(msg, p, "REDACTED")
			}
		}
	}, Config{})
	return errors.New(msg)
}

func (c *Config) validate(demo bool) error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", envPrefix, name, fmt.Sprintf(format, a...)))
	}
	if c.ChatwootURL == "" && !demo {
		bad("CHATWOOT_URL", "required (or run with -demo)")
	} else if c.ChatwootURL != "" {
		for _, problem := range chatwootURLProblems(c.ChatwootURL) {
			bad("CHATWOOT_URL", "%s", problem)
		}
	}
	if c.APITokens = trimTokens(c.APITokens); c.APITokens != nil && len(c.APITokens) == 0 {
		bad("API_TOKENS", "holds separators or spaces but no token; leave it empty to serve local requests without tokens")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "%v", err)
	} else if len(c.APITokens) == 0 && c.APITokensFile == "" && !loopbackAddr(c.HTTPAddr) {
		bad("API_TOKENS", "required (or API_TOKENS_FILE) when HTTP_ADDR %q is not a loopback address", c.HTTPAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("METRICS_ADDR", "%v", err)
		}
	}
	if c.HTTPMaxConcurrent <= 0 {
		bad("HTTP_MAX_CONCURRENT", "must be positive")
	}
	if c.HTTPBodyTimeout <= 0 || c.HTTPBodyTimeout > c.HTTPUploadTimeout {
		bad("HTTP_BODY_TIMEOUT", "must be positive and at most HTTP_UPLOAD_TIMEOUT")
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		bad("PPROF_ADDR", "%q: profiles are served on loopback addresses only", c.PprofAddr)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("LOG_LEVEL", "%v", err)
	}
	c.validateNATSAuth(bad)
	if !validSubjectToken(c.NATSSubjectPrefix) {
		bad("NATS_SUBJECT_PREFIX", "%q: want letters, digits, '_' or '-'", c.NATSSubjectPrefix)
	}
	if !validSubjectToken(c.NATSStream) {
		bad("NATS_STREAM", "%q: want letters, digits, '_' or '-'", c.NATSStream)
	}
	if c.NATSBufferBytes <= 0 {
		bad("NATS_BUFFER_BYTES", "must be positive")
	}
	if c.HoldBack < 0 || (c.HoldBack > 0 && c.HoldBack > c.CableStaleAfter/2) {
		bad("HOLD_BACK", "must be between 0 and half of CABLE_STALE_AFTER")
	}
	if c.AccountFeeds = trimTokens(c.AccountFeeds); c.AccountFeeds != nil && len(c.AccountFeeds) == 0 {
		bad("ACCOUNT_FEEDS", "holds separators or spaces but no token")
	}
	for i, t := range c.AccountFeeds {
		if len(t) > 255 || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			bad("ACCOUNT_FEEDS", "token %d: want at most 255 printable ASCII characters", i+1)
		}
	}
	if c.RedisURL == "" && c.DataDir == "" {
		bad("DATA_DIR", "required without REDIS_URL")
	}
	if c.MaxSubscriptions < 0 {
		bad("MAX_SUBSCRIPTIONS", "must not be negative (0 = no limit)")
	}
	if c.RedisTLSCA != "" && !strings.HasPrefix(c.RedisURL, "rediss://") {
		bad("REDIS_TLS_CA", "needs a rediss:// REDIS_URL")
	}
	if strings.ContainsFunc(c.RedisKeyPrefix, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("REDIS_KEY_PREFIX", "%q: no spaces or control characters", c.RedisKeyPrefix)
	}
	c.validateCluster(bad)
	for name, v := range map[string]float64{
		"CABLE_PER_CONN": float64(c.CablePerConn), "CABLE_SUBSCRIBE_RATE": c.CableSubscribeRate,
		"CABLE_SUBSCRIBE_BURST": float64(c.CableSubscribeBurst), "CABLE_VERIFY_AFTER": float64(c.CableVerifyAfter),
		"CABLE_PARK_AFTER": float64(c.CableParkAfter),
		"CABLE_READ_LIMIT": float64(c.CableReadLimit), "CHATWOOT_RATE_PER_MINUTE": float64(c.ChatwootRatePerMinute),
		"CATCHUP_CONCURRENCY": float64(c.CatchupConcurrency), "MULTIPART_LIMIT": float64(c.MultipartLimit),
	} {
		if v <= 0 {
			bad(name, "must be positive")
		}
	}
	c.validateWebhooks(bad)
	if c.CableBackoffMin <= 0 || c.CableBackoffMin > c.CableBackoffMax {
		bad("CABLE_BACKOFF_MIN", "must be positive and at most CABLE_BACKOFF_MAX")
	}
	for name, d := range map[string]time.Duration{
		"CABLE_STALE_AFTER": c.CableStaleAfter, "CABLE_CONFIRM_TIMEOUT": c.CableConfirmTimeout,
		"CHATWOOT_TIMEOUT": c.ChatwootTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"CABLE_PARK_INTERVAL": c.CableParkInterval,
	} {
		if d <= 0 {
			bad(name, "must be positive")
		}
	}
	return errors.Join(errs...)
}

// trimTokens drops the spaces around each token and the empty ones; the
// result is nil only for nil.
func trimTokens(tokens []string) []string {
	if tokens == nil {
		return nil
	}
	out := []string{}
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// chatwootURLProblems checks RELAY_CHATWOOT_URL. Credentials, a query or a
// fragment are refused without being echoed: the relay sends none of them,
// and they would otherwise reach logs.
func chatwootURLProblems(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return []string{fmt.Sprintf("want an http(s) URL such as https://chat.example.com, got %q", fanout.RedactURL(raw))}
	}
	var problems []string
	if u.User != nil {
		problems = append(problems, "must not carry user info (user:password@); the relay needs no credentials for Chatwoot")
	}
	if u.RawQuery != "" || u.ForceQuery {
		problems = append(problems, "must not carry a query (?...)")
	}
	if u.Fragment != "" {
		problems = append(problems, "must not carry a fragment (#...)")
	}
	return problems
}

// validateNATSAuth checks the NATS credentials and, without NATS_URL, the
// embedded server: reachable from other hosts only with authentication.
func (c *Config) validateNATSAuth(bad func(name, format string, a ...any)) {
	methods := 0
	for _, set := range []bool{c.NATSCredsFile != "", c.NATSUser != "" || c.NATSPassword != "", c.NATSToken != "", c.NATSNKeySeedFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		bad("NATS_USER", "use only one of NATS_CREDS_FILE, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE")
	}
	listenTLS := c.NATSListenTLSCert != "" || c.NATSListenTLSKey != "" || c.NATSListenClientCA != ""
	if c.NATSURL != "" {
		if listenTLS {
			bad("NATS_LISTEN_TLS_CERT", "NATS_LISTEN_TLS_* configure the embedded NATS; unset them with NATS_URL")
		}
		return
	}
	authenticated := (c.NATSUser != "" && c.NATSPassword != "") || c.NATSToken != "" || c.NATSNKeySeedFile != ""
	host, _, err := net.SplitHostPort(c.NATSListen)
	switch {
	case err != nil:
		bad("NATS_LISTEN", "%v", err)
	case host != "" && !loopbackAddr(c.NATSListen) && !authenticated:
		bad("NATS_LISTEN", "%q is reachable from other hosts: set NATS_USER and NATS_PASSWORD, NATS_TOKEN or NATS_NKEY_SEED_FILE so the embedded NATS requires authentication", c.NATSListen)
	}
	if c.NATSCredsFile != "" {
		bad("NATS_CREDS_FILE", "needs an external NATS (NATS_URL); the embedded NATS takes NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_NKEY_SEED_FILE")
	}
	if (c.NATSUser == "") != (c.NATSPassword == "") {
		bad("NATS_PASSWORD", "the embedded NATS needs NATS_USER and NATS_PASSWORD together")
	}
	if c.NATSTLSCA != "" || c.NATSTLSCert != "" || c.NATSTLSKey != "" {
		bad("NATS_TLS_CA", "NATS_TLS_* configure the connection to an external NATS (NATS_URL); the embedded NATS's TLS is NATS_LISTEN_TLS_CERT/KEY")
	}
	if listenTLS && (c.NATSListenTLSCert == "" || c.NATSListenTLSKey == "") {
		bad("NATS_LISTEN_TLS_CERT", "NATS_LISTEN_TLS_CERT and NATS_LISTEN_TLS_KEY go together (NATS_LISTEN_TLS_CLIENT_CA needs both)")
	}
}

func validSubjectToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// LogValue logs the effective configuration with secrets redacted.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	forEachField(func(f reflect.StructField, v reflect.Value) {
		key := envPrefix + f.Tag.Get("env")
		val := fmt.Sprint(v.Interface())
		switch {
		case f.Tag.Get("secret") == "true" && !v.IsZero():
			val = "REDACTED"
		case f.Tag.Get("url") == "true":
			val = fanout.RedactURL(val)
		}
		attrs = append(attrs, slog.String(key, val))
	}, c)
	return slog.GroupValue(attrs...)
}

func forEachField(fn func(reflect.StructField, reflect.Value), c Config) {
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		fn(t.Field(i), v.Field(i))
	}
}

// printUsage writes the variables with their defaults.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "relay: a realtime feed of Chatwoot conversations on NATS.\n\n")
	fmt.Fprintf(w, "Usage: relay [-demo]\n\n  -demo   run against a built-in fake Chatwoot with simulated agents\n\n")
	fmt.Fprintf(w, "       relay healthcheck [-ready] [-url URL]\n\n  probes /healthz (/readyz) of a running relay; exit 0 on 200, 1 otherwise\n\n")
	fmt.Fprintf(w, "Configuration (environment):\n\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	forEachField(func(f reflect.StructField, _ reflect.Value) {
		def := f.Tag.Get("envDefault")
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s%s\t%s\t%s\n", envPrefix, f.Tag.Get("env"), def, f.Tag.Get("desc"))
	}, Config{})
	tw.Flush()
}

// environMap turns os.Environ-style pairs into a map.
func environMap(pairs []string) map[string]string {
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// validateWebhooks checks the webhook delivery settings.
func (c *Config) validateWebhooks(bad func(name, format string, a ...any)) {
	if c.WebhooksFile != "" && !c.NATSJetStream {
		bad("WEBHOOKS_FILE", "webhook delivery needs JetStream: set NATS_JETSTREAM=true or remove WEBHOOKS_FILE")
	}
	if len(c.WebhooksSchedule) == 0 || slices.ContainsFunc(c.WebhooksSchedule, func(d time.Duration) bool { return d <= 0 }) {
		bad("WEBHOOKS_SCHEDULE", "one or more positive durations, e.g. 5s,5m,30m")
	}
	if c.WebhooksTimeout <= 0 || c.WebhooksAckWait <= c.WebhooksTimeout {
		bad("WEBHOOKS_ACK_WAIT", "must exceed WEBHOOKS_TIMEOUT, which must be positive")
	}
	if c.WebhooksConcurrency <= 0 || c.WebhooksConcurrency > 1024 {
		bad("WEBHOOKS_CONCURRENCY", "1 to 1024")
	}
	if c.WebhooksFailover < time.Second {
		bad("WEBHOOKS_FAILOVER", "at least 1s")
	}
}

// validateCluster checks the scale-out settings.
func (c *Config) validateCluster(bad func(name, format string, args ...any)) {
	if c.ClusterBuckets < 1 || c.ClusterBuckets > cluster.MaxBuckets {
		bad("CLUSTER_BUCKETS", "%d: want 1 to %d", c.ClusterBuckets, cluster.MaxBuckets)
	}
	if c.ClusterRenew <= 0 || c.ClusterLeaseTTL < 2*c.ClusterRenew {
		bad("CLUSTER_RENEW_INTERVAL", "must be positive and at most half of CLUSTER_LEASE_TTL")
	}
	if strings.ContainsFunc(c.ClusterMember, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("CLUSTER_MEMBER", "%q: no spaces or control characters", c.ClusterMember)
	}
	if c.NATSStreamReplicas < 1 || c.NATSStreamReplicas > 5 {
		bad("NATS_STREAM_REPLICAS", "%d: want 1 to 5", c.NATSStreamReplicas)
	}
	if c.NATSStreamReplicas > 1 && c.NATSURL == "" {
		bad("NATS_STREAM_REPLICAS", "more than 1 needs a NATS cluster (NATS_URL); the embedded NATS is one server")
	}
}
