package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/webhook"
)

// RELAY_WEBHOOKS_FILE holds webhook endpoints, one JSON object a line
// (webhook.Endpoint's fields), reloaded on SIGHUP:
//
//	{"id":"crm","url":"https://crm.example/hook","subjects":["chatwoot.*.*.*.*.message.created"],"secrets":["whsec_..."]}
//
// Blank lines and lines starting with # are skipped. Endpoints of the file
// are read-only through the API.

// webhookSync is how often every replica re-reads the stored endpoints,
// so that a change made through another replica's API reaches it.
const webhookSync = 30 * time.Second

// startWebhooks starts webhook delivery (JetStream mode only) on its own
// NATS connection, loads the webhooks file and keeps the engine in line
// with the store.
func (a *app) startWebhooks(ctx context.Context) error {
	if !a.cfg.NATSJetStream {
		a.warnStoredWebhooks(ctx)
		return nil
	}
	security, err := a.natsConfig().ClientOptions()
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	a.webhookNATS, err = nats.Connect(a.natsURL, append(security, nats.Name("relay-webhooks"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("webhooks: NATS: %w", err)
	}
	js, err := jetstream.New(a.webhookNATS)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	eng, err := webhook.New(js, a.webhookOptions())
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	a.webhooks = webhook.NewManager(a.store, eng)
	a.awaitStream(ctx)
	if err := a.reloadWebhooks(ctx); err != nil {
		return err
	}
	syncCtx, cancel := context.WithCancel(context.Background())
	a.stopWebhookSync = cancel
	go a.webhooks.Run(syncCtx, webhookSync)
	return nil
}

// streamWait bounds how long the start waits for the fan-out's stream.
const streamWait = 15 * time.Second

// awaitStream waits, up to streamWait, for the fan-out to have created the
// stream in the background: the endpoints' consumers need it, and a start
// with NATS up must not race its creation ("stream not found"). With NATS
// away the start goes on, as it did.
func (a *app) awaitStream(ctx context.Context) {
	deadline := time.Now().Add(streamWait)
	for !a.fanout.Ready() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *app) webhookOptions() webhook.Options {
	c := a.cfg
	return webhook.Options{
		Stream: c.NATSStream, Prefix: c.NATSSubjectPrefix, Schedule: c.WebhooksSchedule,
		Timeout: c.WebhooksTimeout, Concurrency: c.WebhooksConcurrency, AckWait: c.WebhooksAckWait,
		PinnedTTL: c.WebhooksFailover,
		Addresses: webhook.AddressPolicy{AllowLoopback: c.WebhooksAllowLoopback, AllowPrivate: c.WebhooksAllowPrivate},
		OnGone: func(id string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.webhooks.Disable(ctx, id)
		},
		Logger: a.log.With("component", "webhook"), Registerer: a.metrics,
	}
}

// reloadWebhooks reads RELAY_WEBHOOKS_FILE (when set) and syncs delivery.
// A bad file changes nothing.
func (a *app) reloadWebhooks(ctx context.Context) error {
	if a.cfg.WebhooksFile == "" {
		return a.webhooks.Sync(ctx)
	}
	eps, err := readWebhooksFile(a.cfg.WebhooksFile)
	if err == nil {
		err = a.webhooks.SetFile(ctx, eps)
	}
	if err != nil {
		return fmt.Errorf("%sWEBHOOKS_FILE %s:\n%w", envPrefix, a.cfg.WebhooksFile, err)
	}
	a.log.Info("webhooks file loaded", "endpoints", len(eps))
	return nil
}

// warnStoredWebhooks says loudly, in core NATS mode, that endpoints stored
// through the API are not delivered.
func (a *app) warnStoredWebhooks(ctx context.Context) {
	if stored, err := a.store.ListWebhooks(ctx); err == nil && len(stored) > 0 {
		a.log.Error("webhook endpoints are stored but webhook delivery needs JetStream (RELAY_NATS_JETSTREAM=true): they receive nothing",
			"endpoints", len(stored))
	}
}

// readWebhooksFile parses the file, reporting every bad line by number,
// never quoting a line (it holds secrets).
func readWebhooksFile(path string) ([]webhook.Endpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var eps []webhook.Endpoint
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var ep webhook.Endpoint
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ep); err != nil || dec.More() {
			errs = append(errs, fmt.Errorf(`line %d: not a JSON object {"id","url","subjects":[...],"secrets":["whsec_..."]}`, n))
			continue
		}
		eps = append(eps, ep)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return eps, errors.Join(errs...)
}

// stopWebhooks stops delivery: every endpoint's unacknowledged events
// stay in JetStream for the next replica or start.
func (a *app) stopWebhooks(ctx context.Context) {
	if a.stopWebhookSync != nil {
		a.stopWebhookSync()
	}
	if a.webhooks != nil {
		a.webhooks.Engine().Close(ctx)
	}
	if a.webhookNATS != nil {
		a.webhookNATS.Close()
	}
}

// apiWebhooks is the API's view of webhook management; nil (routes answer
// 404) in core NATS mode. A nil *Manager must not become a non-nil interface.
func (a *app) apiWebhooks() api.Webhooks {
	if a.webhooks == nil {
		return nil
	}
	return a.webhooks
}

var _ api.Webhooks = (*webhook.Manager)(nil)
