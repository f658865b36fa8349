// Command relay gives backends a realtime feed of Chatwoot conversations:
// it keeps pooled ActionCable subscriptions for contact pubsub tokens,
// publishes every event on NATS subjects per contact and conversation,
// catches up through the public API after every reconnect, and serves a
// small HTTP API that manages subscriptions and proxies the public client
// API. Run `relay -h` for its configuration and `relay healthcheck -h` for
// the probe container images use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
	}
}

// run is the whole program: flags, configuration, the relay until ctx ends,
// then the ordered shutdown; `relay healthcheck` probes a running relay
// instead (healthcheck.go). Tests call it directly.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return runHealthcheck(ctx, args[1:], environMap(environ), stdout, stderr)
	}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "run against a built-in fake Chatwoot with simulated agents")
	demoFor := fs.Duration("demo-duration", 0, "with -demo: stop after this long (0 = until interrupted)")
	fs.Usage = func() { printUsage(stderr) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	env := environMap(environ)
	if *demo {
		return runDemo(ctx, env, *demoFor, stdout, stderr)
	}
	cfg, err := loadConfig(env, false)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	a, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	a.watchReload(ctx)
	<-ctx.Done()
	return a.shutdown()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}
