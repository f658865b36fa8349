package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// envPrefix starts the environment variable of every flag.
const envPrefix = "CHATWOOT_FAKE_"

// Limits that keep a typo from exhausting the machine.
const (
	maxInboxes   = 1000
	maxContacts  = 100000
	maxAgentRate = 10000
)

// options are the fake's settings, from flags and CHATWOOT_FAKE_* variables.
type options struct {
	listen, publicURL string
	inboxes, contacts int
	hmac              bool
	hmacToken         string
	agentRate         float64
	seed              uint64
	pingInterval      time.Duration
	rateLimit         int
	requireOrigin     string
	control           bool
	subscriptionsFile string // the seeded contacts, for the relay's RELAY_SUBSCRIPTIONS_FILE
	healthcheck       bool   // probe a running fake instead of serving
}

func parseOptions(args, environ []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("chatwoot-fake", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:3000", "address to serve the fake Chatwoot (and its control API) on")
	fs.StringVar(&o.publicURL, "public-url", "", "URL the relay reaches the fake at, printed as RELAY_CHATWOOT_URL; empty = http://<listen address>")
	fs.IntVar(&o.inboxes, "inboxes", 1, "API-channel inboxes to create (account 1)")
	fs.BoolVar(&o.hmac, "hmac", false, "inboxes enforce identity validation (HMAC) on every contacts call")
	fs.StringVar(&o.hmacToken, "hmac-token", "", "HMAC token of every inbox; empty = one generated per inbox")
	fs.IntVar(&o.contacts, "contacts", 0, "contacts to seed per inbox, each with an open conversation and a first message")
	fs.Float64Var(&o.agentRate, "agent-rate", 0, "agent replies per second, round-robin over the open conversations (0 = none)")
	fs.Uint64Var(&o.seed, "seed", 0, "makes inbox identifiers, tokens and source_ids reproducible; 0 = random")
	fs.DurationVar(&o.pingInterval, "ping-interval", 3*time.Second, "ActionCable ping interval")
	fs.IntVar(&o.rateLimit, "rate-limit", 0, "REST requests per minute per client IP, like Rack::Attack (0 = unlimited)")
	fs.StringVar(&o.requireOrigin, "require-origin", "", "refuse websocket handshakes from another Origin (empty = any, like stock Chatwoot)")
	fs.BoolVar(&o.control, "control", true, "serve the control API under /fake/")
	fs.StringVar(&o.subscriptionsFile, "subscriptions-file", "", "write the seeded contacts there, in the relay's RELAY_SUBSCRIPTIONS_FILE format, before serving (mode 0600: it holds tokens)")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "probe /healthz of the fake serving on -listen and exit: 0 when it answers 200, 1 otherwise (for images without a shell)")
	if err := applyEnv(fs, environ); err != nil {
		return o, err
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, o.validate()
}

// applyEnv sets each flag from its CHATWOOT_FAKE_* variable, if present.
func applyEnv(fs *flag.FlagSet, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := env[name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func (o options) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		bad("-listen: %v", err)
	}
	if o.publicURL != "" {
		if u, err := url.Parse(o.publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("-public-url: want an http(s) URL such as http://chatwoot-fake:3000")
		}
	}
	if o.inboxes < 1 || o.inboxes > maxInboxes {
		bad("-inboxes: want 1 to %d", maxInboxes)
	}
	if o.hmac && !o.control && o.hmacToken == "" {
		bad("-hmac: without the control API give -hmac-token: a generated token could not be read")
	}
	if o.contacts < 0 || o.contacts > maxContacts {
		bad("-contacts: want 0 to %d", maxContacts)
	}
	if !(o.agentRate >= 0 && o.agentRate <= maxAgentRate) { // NaN fails too
		bad("-agent-rate: want 0 to %d replies per second", maxAgentRate)
	}
	if o.pingInterval <= 0 {
		bad("-ping-interval: must be positive")
	}
	if o.rateLimit < 0 {
		bad("-rate-limit: must not be negative (0 = unlimited)")
	}
	return errors.Join(errs...)
}
