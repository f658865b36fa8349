package main

import (
	"context"
	"errors"
	"time"

	"github.com/relayhq/relay/internal/feeds"
)

// feedSyncInterval is how often each replica reads the stored feeds again
// (feeds added or deleted through another replica).
const feedSyncInterval = 30 * time.Second

// newFeeds creates the account feed manager on the pool, the store and the
// Chatwoot client (whose limiter is the shared Chatwoot budget).
func (a *app) newFeeds(context.Context) error {
	a.feeds = feeds.New(feeds.Options{
		Store: a.store, Source: a.client, Pool: a.pool, Sink: a.fanout, Events: a.fanout, SyncInterval: feedSyncInterval,
		Logger: a.log.With("component", "feeds"), Registerer: a.metrics,
	})
	a.fanout.AddObserver(a.feeds) // learns conversation routes for the feeds
	return nil
}

// loadFeeds subscribes the stored feeds, then adds RELAY_ACCOUNT_FEEDS in
// the background: each needs the user's profile, and Chatwoot may be down.
func (a *app) loadFeeds(ctx context.Context) error {
	n, err := a.feeds.Load(ctx)
	if err != nil {
		return err
	}
	a.log.Info("stored account feeds restored", "count", n)
	if len(a.cfg.AccountFeeds) > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		a.stopFeeds = cancel
		a.feedsDone = make(chan struct{})
		go a.addConfiguredFeeds(ctx)
	}
	return nil
}

// addConfiguredFeeds adds every RELAY_ACCOUNT_FEEDS token, retrying those
// Chatwoot could not answer for (a refused token is logged and left).
func (a *app) addConfiguredFeeds(ctx context.Context) {
	defer close(a.feedsDone)
	pending := a.cfg.AccountFeeds
	for delay := time.Second; len(pending) > 0; delay = min(2*delay, time.Minute) {
		var retry []string
		for i, token := range pending {
			f, _, err := a.feeds.Add(ctx, token)
			switch {
			case err == nil:
				a.log.Info("account feed added", "feed", f.ID, "accounts", len(f.Accounts))
			case ctx.Err() != nil:
				return
			default:
				a.log.Warn("account feed not added", "position", i+1, "feed", feeds.ID(token), "err", err)
				if !errors.Is(err, feeds.ErrRefused) && !errors.Is(err, feeds.ErrNoAccount) {
					retry = append(retry, token)
				}
			}
		}
		pending = retry
		if len(pending) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// stopFeedsAdding ends addConfiguredFeeds (shutdown).
func (a *app) stopFeedsAdding() {
	if a.stopFeeds != nil {
		a.stopFeeds()
		<-a.feedsDone
	}
}
