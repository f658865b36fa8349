// Command chatwoot-fake is a standalone fake Chatwoot for trying the relay
// and testing against it without a Chatwoot installation: the ActionCable
// endpoint /cable and the public client API of API-channel inboxes, as
// internal/chatwoottest implements them (Chatwoot's quirks included), with
// seeded inboxes and contacts and simulated agents replying at a rate.
//
// It prints what a relay needs to point at it (RELAY_CHATWOOT_URL and, with
// -hmac, RELAY_INBOX_HMAC_TOKENS) and serves a control API under /fake/ on
// the same listener: agent replies, typing and status changes, websocket
// drops and disconnects, stalls, REST faults, rate limits and load. See
// README.md next to this file for every call with curl examples, and
// `chatwoot-fake -h` for the flags. Every flag can also be set from the
// environment as CHATWOOT_FAKE_<FLAG> (-agent-rate: CHATWOOT_FAKE_AGENT_RATE);
// a flag on the command line wins.
//
// The fake keeps everything in memory and is meant for trials and tests
// only: its control API has no authentication.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chatwoot-fake:", err)
			os.Exit(1)
		}
	}
}

// run is the whole program: options, the seeded fake, the simulated agents
// and the HTTP server until ctx ends. Tests call it directly.
func run(ctx context.Context, args, environ []string, stdout io.Writer) error {
	opts, err := parseOptions(args, environ, stdout)
	if err != nil {
		return err
	}
	if opts.healthcheck {
		return runHealthcheck(ctx, opts.listen, stdout)
	}
	fake := chatwoottest.New(chatwoottest.Options{
		Seed: opts.seed, PingInterval: opts.pingInterval,
		RateLimitPerMinute: opts.rateLimit, RequireOrigin: opts.requireOrigin,
	})
	defer fake.Close()
	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	setup, err := seed(fake, opts, publicURL(opts.publicURL, ln.Addr()))
	if err != nil {
		return err
	}
	if opts.subscriptionsFile != "" {
		if err := writeSubscriptions(opts.subscriptionsFile, setup.Contacts); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ag := newAgents(fake, opts.agentRate)
	go ag.run(ctx)
	srv := &http.Server{Handler: handler(fake, &control{fake: fake, agents: ag, setup: setup}, opts.control), ReadHeaderTimeout: 10 * time.Second}
	printSetup(stdout, setup, opts.control)
	return serve(ctx, srv, ln, fake)
}

// handler serves the fake's health (/healthz), the control API under /fake/
// (when enabled) and the fake Chatwoot everywhere else.
func handler(fake *chatwoottest.Server, c *control, withControl bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	if withControl {
		mux.Handle("/fake/", c.routes())
	}
	mux.Handle("/", fake.Handler())
	return mux
}

// serve serves until ctx ends, then closes the fake (its websockets are
// hijacked, so the HTTP server does not track them) and the server.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, fake *chatwoottest.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fake.Close()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// publicURL is the base URL printed for the relay: the configured one, or
// the listener's address with a loopback host for a wildcard bind.
func publicURL(configured string, addr net.Addr) string {
	if configured != "" {
		return configured
	}
	return localURL(addr.String())
}

// localURL is the URL of a listen address as seen from its own host: a
// wildcard bind (or a name) is reached on 127.0.0.1.
func localURL(hostport string) string {
	host, port, _ := net.SplitHostPort(hostport)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
