package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
)

// DefaultPrefix starts every key when Options.Prefix is empty.
const DefaultPrefix = "relay:"

// Options configure Open and New. The zero value is ready to use.
type Options struct {
	// Prefix starts every key, so several relays can share one Redis
	// database. Default DefaultPrefix.
	Prefix string
	// TLSConfig is used for rediss:// URLs instead of go-redis' default
	// (system roots), e.g. with RootCAs holding a private CA. The server
	// name comes from the URL unless set. Open refuses it with any other
	// scheme, where it would go unused. Nil: the default.
	TLSConfig *tls.Config
	// Now is the clock for subscription timestamps. Default time.Now. Expiry
	// uses Redis' own clock.
	Now func() time.Time
}

// Store is the Redis backend of store.Store.
type Store struct {
	rdb  redis.UniversalClient
	keys keys
	now  func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis at rawURL (redis://, rediss:// or unix://, as
// go-redis ParseURL reads it). It does not dial: use Ping to check the
// server. Errors never contain the URL (it may hold a password).
func Open(rawURL string, opts Options) (*Store, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("store/redisstore: invalid redis URL: %w", err)
	}
	if opts.TLSConfig != nil {
		if o.TLSConfig == nil {
			return nil, errors.New("store/redisstore: TLS options need a rediss:// URL")
		}
		c := opts.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = o.TLSConfig.ServerName
		}
		o.TLSConfig = c
	}
	return New(redis.NewClient(o), opts), nil
}

// New returns a store on an existing client (Sentinel, custom TLS, ...). The
// store owns the client: Close closes it.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, keys: keys(opts.Prefix), now: opts.Now}
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return wrap("ping", s.rdb.Ping(ctx).Err())
}

// Close closes the client. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.rdb.Close() })
	return s.closeErr
}

// keys builds the key layout described in the package doc.
type keys string

func (k keys) sub(id string) string       { return string(k) + "sub:" + id }
func (k keys) subs() string               { return string(k) + "subs" }
func (k keys) cursors(id string) string   { return string(k) + "cur:" + id }
func (k keys) idem(key string) string     { return string(k) + "idem:" + key }
func (k keys) lease(name string) string   { return string(k) + "lease:" + name }
func (k keys) member(name string) string  { return string(k) + "member:" + name }
func (k keys) members() string            { return string(k) + "members" }
func (k keys) fences() string             { return string(k) + "lease-fences" }
func (k keys) leaseSince() string         { return string(k) + "lease-since" }
func (k keys) setting(name string) string { return string(k) + "setting:" + name }
func (k keys) webhooks() string           { return string(k) + "webhooks" }

// wrap adds the package prefix and the operation, and maps a closed client to
// store.ErrClosed.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.ErrClosed):
		err = store.ErrClosed
	}
	return fmt.Errorf("store/redisstore: %s: %w", op, err)
}

// millis converts a TTL for PX, rounding up so a positive TTL never becomes 0.
func millis(ttl time.Duration) string {
	ms := (ttl + time.Millisecond - 1) / time.Millisecond
	return strconv.FormatInt(int64(max(ms, 1)), 10)
}

// Client returns the store's Redis client, for what shares its connection
// settings (pub/sub between replicas, shared rate limits). The store keeps
// owning it.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Key returns name under the store's key prefix, for keys and channels
// used outside the store.
func (s *Store) Key(name string) string { return string(s.keys) + name }
