package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Now is the clock for timestamps and expiry. Default time.Now.
	Now func() time.Time
	// SweepInterval is how often expired records are deleted. Zero means one
	// minute; negative disables the sweep (reads still ignore expired records).
	SweepInterval time.Duration
	// LockTimeout bounds the wait for the file lock held by another process.
	// Zero means 5 seconds.
	LockTimeout time.Duration
	// Logger receives sweep failures. Default: discard.
	Logger *slog.Logger
}

const (
	defaultSweepInterval = time.Minute
	defaultLockTimeout   = 5 * time.Second
	schemaVersion        = "1"
)

var (
	bucketMeta          = []byte("meta")
	bucketSubscriptions = []byte("subscriptions")
	bucketCursors       = []byte("cursors")
	bucketIdempotency   = []byte("idempotency")
	bucketLeases        = []byte("leases")
	bucketMembers       = []byte("members")
	bucketWebhooks      = []byte("webhooks")
	bucketFeeds         = []byte("feeds")
	bucketFences        = []byte("lease_fences") // last fencing token per lease name
	allBuckets          = [][]byte{bucketMeta, bucketSubscriptions, bucketCursors, bucketIdempotency, bucketLeases, bucketMembers, bucketWebhooks, bucketFeeds, bucketFences}
	keyVersion          = []byte("version")
)

// ErrVersion means the file was written by an incompatible version.
var ErrVersion = errors.New("store/bolt: unsupported file version")

// Store is the bbolt backend of store.Store.
type Store struct {
	db     *bbolt.DB
	group  *groupCommit // writes that may share a commit
	now    func() time.Time
	log    *slog.Logger
	closed atomic.Bool

	stopSweep context.CancelFunc
	sweepDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the state file at path, creating its
// directory with mode 0700 and the file with mode 0600.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store/bolt: create data dir: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	if err := db.Update(initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	s := &Store{db: db, group: newGroupCommit(db), now: opts.Now, log: opts.Logger, sweepDone: make(chan struct{})}
	s.startSweep(opts.SweepInterval)
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = defaultSweepInterval
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = defaultLockTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func initSchema(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyVersion); {
	case v == nil:
		return meta.Put(keyVersion, []byte(schemaVersion))
	case string(v) != schemaVersion:
		return fmt.Errorf("%w: %q", ErrVersion, v)
	}
	return nil
}

// Ping reports whether the file is open and readable.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store/bolt: meta bucket missing")
		}
		return nil
	})
}

// Close stops the sweep and closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopSweep()
		<-s.sweepDone
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return closedErr(s.db.View(fn))
}

// update runs fn in a write transaction.
func (s *Store) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return closedErr(s.db.Update(fn))
}

// batch runs fn in a write transaction shared with the writes made while
// another commit is under way (groupCommit: one fsync for all of them).
// fn may run twice, so it must derive everything it sets from the
// transaction.
func (s *Store) batch(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return closedErr(s.group.do(fn))
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

func closedErr(err error) error {
	if errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}
