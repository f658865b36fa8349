package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/catchup"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/cluster"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/feeds"
	"github.com/relayhq/relay/internal/memtrim"
	"github.com/relayhq/relay/internal/natsserver"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
	"github.com/relayhq/relay/internal/store/redisstore"
	"github.com/relayhq/relay/internal/webhook"
)

// app is the wired relay. Fields are set once by start.
type app struct {
	cfg      Config
	log      *slog.Logger
	metrics  *prometheus.Registry
	store    store.Store
	nats     *natsserver.Server // nil with an external NATS
	natsURL  string
	fanout   *fanout.Fanout
	client   *chatwoot.Client
	registry *registry.Registry
	catchup  *catchup.Catchup
	pool     *cable.Pool[*fanout.Sub]
	feeds    *feeds.Manager
	// stopFeeds ends the adding of RELAY_ACCOUNT_FEEDS; feedsDone closes
	// when it returned. Nil without configured feeds.
	stopFeeds context.CancelFunc
	feedsDone chan struct{}
	echoes    *api.EchoTracker
	cluster   *clusterMode // nil without Redis
	// Deployment-wide limits through Redis; nil without it.
	subscribeRate, chatwootRate *cluster.SharedRate
	http                        *http.Server
	httpAddr                    net.Addr
	pprof                       *http.Server       // nil unless RELAY_PPROF_ADDR
	stopTrim                    context.CancelFunc // ends the memory trim
	static                      *staticSubscriptions
	tokens                      []api.Token // from RELAY_API_TOKENS_FILE

	webhooks        *webhook.Manager // nil in core NATS mode
	webhookNATS     *nats.Conn
	stopWebhookSync context.CancelFunc

	metricsHTTP *http.Server // nil unless RELAY_METRICS_ADDR
	metricsAddr net.Addr
}

// start wires every part in dependency order and starts serving. On error
// what was started is stopped again.
func start(ctx context.Context, cfg Config, log *slog.Logger) (a *app, err error) {
	a = &app{cfg: cfg, log: log, metrics: prometheus.NewRegistry()}
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log.Info("relay starting", "config", cfg)
	defer func() {
		if err != nil {
			a.shutdown()
		}
	}()
	steps := []func(context.Context) error{
		a.readTokens, a.openStore, a.sharedRates, a.startNATS, a.openFanout, a.startWebhooks, a.newClient, a.newCatchup, a.newPool, a.newFeeds, a.joinCluster, a.serveHTTP, a.serveMetrics, a.servePprof, a.trimMemory,
		a.loadSubscriptions, a.loadFeeds,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return a, err
		}
	}
	log.Info("relay started", "http", a.httpAddr.String(), "nats", fanout.RedactURL(a.natsURL))
	return a, nil
}

// readTokens reads RELAY_API_TOKENS_FILE first, so that a bad file stops
// the start before anything is opened.
func (a *app) readTokens(context.Context) error {
	if a.cfg.APITokensFile == "" {
		return nil
	}
	var err error
	a.tokens, err = readTokensFile(a.cfg.APITokensFile)
	return err
}

func (a *app) openStore(context.Context) error {
	var (
		s   store.Store
		err error
	)
	if a.cfg.RedisURL != "" {
		s, err = a.openRedis()
	} else {
		s, err = bolt.Open(filepath.Join(a.cfg.DataDir, "relay.db"), bolt.Options{})
	}
	if err != nil {
		// a.store stays nil: a failed Open returns a typed nil, which
		// shutdown would otherwise close.
		return fmt.Errorf("state store: %w", err)
	}
	a.store = s
	return nil
}

func (a *app) openRedis() (store.Store, error) {
	tlsConfig, err := tlsWithCA("redis", a.cfg.RedisTLSCA)
	if err != nil {
		return nil, err
	}
	return redisstore.Open(a.cfg.RedisURL, redisstore.Options{Prefix: a.cfg.RedisKeyPrefix, TLSConfig: tlsConfig})
}

func (a *app) startNATS(context.Context) error {
	if a.cfg.NATSURL != "" {
		a.natsURL = a.cfg.NATSURL
		return nil
	}
	c := a.cfg
	host, port, err := natsserver.SplitListen(c.NATSListen)
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	var nkey string
	if c.NATSNKeySeedFile != "" {
		if nkey, err = natsserver.NKeyFromSeedFile(c.NATSNKeySeedFile); err != nil {
			return fmt.Errorf("embedded NATS: %w", err)
		}
	}
	a.nats, err = natsserver.Start(natsserver.Config{
		Host: host, Port: port, JetStream: c.NATSJetStream,
		StoreDir: filepath.Join(c.DataDir, "nats"), ServerName: "relay", Logger: a.log.With("component", "nats"),
		User: c.NATSUser, Password: c.NATSPassword, Token: c.NATSToken, NKey: nkey,
		TLSCert: c.NATSListenTLSCert, TLSKey: c.NATSListenTLSKey, TLSClientCA: c.NATSListenClientCA,
	})
	if err != nil {
		return fmt.Errorf("embedded NATS on %s: %w", a.cfg.NATSListen, err)
	}
	a.natsURL = a.nats.ClientURL()
	return nil
}

func (a *app) openFanout(context.Context) error {
	c := a.cfg
	var err error
	a.fanout, err = fanout.Open(fanout.Config{
		NATS: a.natsConfig(),
		Core: !c.NATSJetStream,
		Stream: fanout.JetStreamConfig{Name: c.NATSStream, MaxAge: orUnlimited(c.NATSStreamMaxAge),
			MaxBytes: c.NATSStreamMaxBytes, Duplicates: c.NATSDupWindow, Replicas: c.NATSStreamReplicas},
	}, fanout.Options{
		Prefix: c.NATSSubjectPrefix, ForwardTokens: c.ForwardTokens, ForwardSourceIDs: c.ForwardSourceIDs, BufferBytes: c.NATSBufferBytes,
		HoldBack: c.HoldBack, Drained: a.drained, Logger: a.log.With("component", "fanout"), Registerer: a.metrics,
	})
	if err != nil {
		return fmt.Errorf("NATS: %w", err)
	}
	return nil
}

// natsConfig is the relay's connection to NATS, with the same credentials
// for an external server and the embedded one. The embedded server is
// reached in process: no socket, so no TLS client settings, whatever it
// listens on.
func (a *app) natsConfig() fanout.NATSConfig {
	c := a.cfg
	nc := fanout.NATSConfig{URL: a.natsURL, CredsFile: c.NATSCredsFile, User: c.NATSUser, Password: c.NATSPassword,
		Token: c.NATSToken, NKeySeedFile: c.NATSNKeySeedFile, CAFile: c.NATSTLSCA, CertFile: c.NATSTLSCert, KeyFile: c.NATSTLSKey}
	if a.nats != nil {
		nc.InProcess = a.nats
	}
	return nc
}

// orUnlimited maps the documented 0 = unlimited to the fanout's negative.
func orUnlimited(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func (a *app) newClient(context.Context) error {
	var err error
	a.client, err = chatwoot.New(chatwoot.Options{
		BaseURL: a.cfg.ChatwootURL, Timeout: a.cfg.ChatwootTimeout, UserAgent: "relay",
		Limiter: chatwoot.NewLimiter(a.cfg.ChatwootRatePerMinute), SharedLimiter: waiter(a.chatwootRate), Logger: a.log.With("component", "chatwoot"),
		Registerer: a.metrics,
	})
	if err != nil {
		return fmt.Errorf("chatwoot client: %w", err)
	}
	a.registry = registry.New(a.store, a.log.With("component", "registry"))
	if err := a.registry.SetLimit(a.cfg.MaxSubscriptions, a.metrics); err != nil {
		return err
	}
	a.echoes = api.NewEchoTracker(api.DefaultMaxEchoWaiters)
	a.fanout.AddObserver(a.echoes)
	return nil
}

func (a *app) newCatchup(context.Context) error {
	var err error
	a.catchup, err = catchup.New(catchup.Options{
		Source: a.client, Cursors: a.store, Sink: a.fanout, Concurrency: a.cfg.CatchupConcurrency,
		OnGone: a.registry.Gone, Logger: a.log.With("component", "catchup"), Registerer: a.metrics,
	})
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	a.registry.Wire(a.fanout, a.catchup, a.client)
	a.catchup.Start()
	return nil
}

func (a *app) newPool(context.Context) error {
	c := a.cfg
	url, err := cable.CableURL(c.ChatwootURL)
	if err != nil {
		return err
	}
	tlsConfig, err := tlsWithCA("cable", c.CableTLSCA)
	if err != nil {
		return err
	}
	a.pool, err = cable.New(cable.Config[*fanout.Sub]{
		URL: url, Origin: c.CableOrigin, NoOrigin: c.CableOrigin == "-", TLSConfig: tlsConfig,
		PerConn: c.CablePerConn, SubscribeRate: c.CableSubscribeRate, SubscribeBurst: c.CableSubscribeBurst, SharedPace: waiter(a.subscribeRate),
		StaleAfter: c.CableStaleAfter, BackoffMin: c.CableBackoffMin, BackoffMax: c.CableBackoffMax,
		ConfirmTimeout: c.CableConfirmTimeout, VerifyAfter: c.CableVerifyAfter,
		ParkAfter: c.CableParkAfter, ParkInterval: c.CableParkInterval,
		PresenceInterval: c.CablePresenceInterval, ReadLimit: c.CableReadLimit,
		Handler: a.fanout.Deliver, Fields: fanout.Fields, Direct: true, OnState: fanout.OnState, Verifier: fanout.Verifier,
		Logger: a.log.With("component", "cable"), Registerer: a.metrics,
	})
	if err != nil {
		return err
	}
	a.registry.Attach(a.pool)
	return nil
}

// tlsWithCA returns a TLS configuration trusting the system roots and the
// CAs in file; nil when file is empty. what names the connection in errors.
func tlsWithCA(what, file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s CA: %w", what, err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s CA %s: no certificate found", what, file)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

func (a *app) serveHTTP(context.Context) error {
	var metrics http.Handler
	if a.cfg.MetricsAddr == "" {
		metrics = a.metricsHandler()
	}
	srv, err := api.New(api.Options{
		Registry: a.registry, Feeds: a.feeds, Chatwoot: a.client, Store: a.store, APITokens: a.cfg.APITokens, Tokens: a.tokens,
		InboxHMACTokens: a.cfg.InboxHMACTokens, MaxMultipartBytes: a.cfg.MultipartLimit, Echoes: a.echoes,
		Ready: a.ready, Metrics: metrics, Logger: a.log.With("component", "api"), Registerer: a.metrics,
		MaxConcurrent: a.cfg.HTTPMaxConcurrent, BodyReadTimeout: a.cfg.HTTPBodyTimeout,
		UploadReadTimeout: a.cfg.HTTPUploadTimeout, Webhooks: a.apiWebhooks(), Cluster: a.clusterAPI(),
	})
	if err != nil {
		return fmt.Errorf("HTTP API: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listener: %w", err)
	}
	a.httpAddr = ln.Addr()
	if len(a.cfg.APITokens) == 0 && len(a.tokens) == 0 {
		// The relay cannot see a reverse proxy on this host that forwards
		// without X-Forwarded-For or Via: such a proxy would make every
		// request look local. Say so where an operator looks.
		a.log.Warn("HTTP API without tokens: every request made on this host straight to the relay is trusted with full access; "+
			"a reverse proxy on this host that adds no X-Forwarded-For or Via header would open it to its clients: set RELAY_API_TOKENS before putting one in front",
			"addr", a.httpAddr.String())
	}
	// ReadTimeout is the upload bound: the API shortens it per request for
	// bodies that are not uploads.
	a.http = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       a.cfg.HTTPUploadTimeout,
		// Above the longest request (a multipart upload: its read bound plus
		// the request timeout) plus the echo wait.
		WriteTimeout: a.cfg.HTTPUploadTimeout + 2*time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("HTTP server stopped", "err", err)
		}
	}()
	return nil
}

func (a *app) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{Registry: a.metrics})
}

// serveMetrics serves /metrics on RELAY_METRICS_ADDR, apart from the API,
// when it is set.
func (a *app) serveMetrics(context.Context) error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metricsHandler())
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	a.metricsAddr = ln.Addr()
	a.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	go func() {
		if err := a.metricsHTTP.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server stopped", "err", err)
		}
	}()
	a.log.Info("metrics served", "addr", a.metricsAddr.String())
	return nil
}

// servePprof serves Go's profiles on RELAY_PPROF_ADDR (loopback only), apart
// from the API so they are never exposed with it.
func (a *app) servePprof(context.Context) error {
	if a.cfg.PprofAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", a.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	a.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go a.pprof.Serve(ln)
	a.log.Info("profiles served", "addr", ln.Addr().String())
	return nil
}

// trimMemory returns the free heap memory a registration burst leaves to
// the OS and keeps a large heap's GC goal near its live size (package
// memtrim), unless the operator set GOGC.
func (a *app) trimMemory(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopTrim = cancel
	t := &memtrim.Trimmer{Logger: a.log}
	if os.Getenv("GOGC") != "" {
		t.Headroom = -1
	}
	go t.Run(ctx)
	return nil
}

// loadSubscriptions resubscribes everything in the store, then the static file.
func (a *app) loadSubscriptions(ctx context.Context) error {
	if a.cluster != nil {
		// Claimed buckets load their own subscriptions.
		if err := a.cluster.start(); err != nil {
			return err
		}
	} else {
		n, err := a.registry.Load(ctx)
		if err != nil {
			return fmt.Errorf("loading subscriptions: %w", err)
		}
		a.log.Info("stored subscriptions restored", "count", n)
	}
	if a.cfg.SubscriptionsFile == "" {
		return nil
	}
	a.static = &staticSubscriptions{path: a.cfg.SubscriptionsFile, registry: a.registry, log: a.log}
	return a.static.reload(ctx)
}

// watchReload reloads the static subscriptions file and the webhooks file
// on SIGHUP until ctx ends.
func (a *app) watchReload(ctx context.Context) {
	if a.static == nil && (a.webhooks == nil || a.cfg.WebhooksFile == "") {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if a.static != nil {
					if err := a.static.reload(ctx); err != nil {
						a.log.Error("subscriptions file not reloaded", "err", err)
					}
				}
				if a.webhooks != nil && a.cfg.WebhooksFile != "" {
					if err := a.reloadWebhooks(ctx); err != nil {
						a.log.Error("webhooks file not reloaded", "err", err)
					}
				}
			}
		}
	}()
}

// drained hears that the fan-out takes events again after an overflow:
// catch-ups waiting because their replays were refused run now.
func (a *app) drained() { a.catchup.Resume() }

// ready is /readyz: NATS takes events and the store answers. Chatwoot being
// down is not unreadiness (every replica would flap together).
func (a *app) ready() error {
	if !a.fanout.Ready() {
		return errors.New("NATS is not accepting events")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("state store: %w", err)
	}
	return nil
}

// shutdown stops in order: the HTTP API, the websockets, the NATS publisher
// (draining its buffer), catch-up (writing the cursors of what NATS
// acknowledged meanwhile), the embedded NATS, the store and the metrics
// listener. The whole is
// bounded by ShutdownTimeout: the HTTP API gets a third of it and is then
// closed hard, so slow proxied requests cannot starve the drain.
func (a *app) shutdown() error {
	start := time.Now()
	deadline := start.Add(a.cfg.ShutdownTimeout)
	var errs []error
	if a.http != nil {
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(a.cfg.ShutdownTimeout/3))
		if err := a.http.Shutdown(ctx); err != nil {
			a.log.Warn("HTTP requests cut off at shutdown", "err", err)
			a.http.Close()
		}
		cancel()
	}
	if a.pprof != nil {
		a.pprof.Close()
	}
	if a.stopTrim != nil {
		a.stopTrim()
	}
	a.stopFeedsAdding()
	if a.cluster != nil {
		a.cluster.stop() // hand the buckets over while the pool can unsubscribe
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.registry != nil {
		a.registry.Close()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	a.stopWebhooks(ctx)
	if a.fanout != nil {
		// Keep a moment for the cursors after the drain.
		drain, cancelDrain := context.WithDeadline(ctx, deadline.Add(-a.cfg.ShutdownTimeout/10))
		errs = append(errs, a.fanout.Close(drain))
		cancelDrain()
	}
	if a.catchup != nil {
		errs = append(errs, a.catchup.Close(ctx))
	}
	if a.feeds != nil {
		errs = append(errs, a.feeds.Close(ctx))
	}
	if a.nats != nil {
		a.nats.Shutdown()
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.metricsHTTP != nil {
		// Last, so that the drain above can be watched.
		if a.metricsHTTP.Shutdown(ctx) != nil {
			a.metricsHTTP.Close()
		}
	}
	err := errors.Join(errs...)
	a.log.Info("relay stopped", "clean", err == nil, "took", time.Since(start).String())
	return err
}

// httpURL is the base URL of the relay's HTTP API.
func (a *app) httpURL() string {
	host, port, _ := net.SplitHostPort(a.httpAddr.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	p, _ := strconv.Atoi(port)
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, strconv.Itoa(p)))
}
