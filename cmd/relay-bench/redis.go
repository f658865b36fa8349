package main

import (
	"context"
	"fmt"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/redisserver"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// startRedis runs redis-server from PATH for the cluster scenario.
func (b *bench) startRedis(ctx context.Context) (*redisserver.Server, error) {
	s, err := redisserver.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("the cluster scenario needs a real Redis: %w", err)
	}
	return s, nil
}

// seedBatch is how many records one PutSubscriptions writes (one script,
// one round trip).
const seedBatch = 1000

// seedStore writes one by-token subscription per token into the Redis
// store under prefix, as the HTTP API would register them, through the
// store's own batch write.
func seedStore(ctx context.Context, url, prefix string, tokens []string) error {
	st, err := redisstore.Open(url, redisstore.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer st.Close()
	batch := make([]store.Subscription, 0, seedBatch)
	for i, tok := range tokens {
		batch = append(batch, store.Subscription{ID: cable.SubscriptionID(tok), Token: tok, Origin: store.OriginAPI})
		if len(batch) < seedBatch && i < len(tokens)-1 {
			continue
		}
		if _, err := st.PutSubscriptions(ctx, batch); err != nil {
			return fmt.Errorf("seeding the store: %w", err)
		}
		batch = batch[:0]
	}
	return nil
}
