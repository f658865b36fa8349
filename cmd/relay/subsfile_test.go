package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/registry"
	"github.com/relayhq/relay/internal/registry/registrytest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

// syncBuffer is a log destination safe for the registry's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// take returns what was logged since the last call.
func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

type subsFileFixture struct {
	static *staticSubscriptions
	store  store.Store
	pool   *registrytest.Pool
	logs   *syncBuffer
	path   string
}

func newSubsFileFixture(t *testing.T) *subsFileFixture {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "relay.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	reg := registry.New(st, log)
	t.Cleanup(reg.Close)
	pool := registrytest.NewPool()
	reg.Attach(pool)
	path := filepath.Join(dir, "subscriptions")
	return &subsFileFixture{static: &staticSubscriptions{path: path, registry: reg, log: log},
		store: st, pool: pool, logs: logs, path: path}
}

func (f *subsFileFixture) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(f.path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *subsFileFixture) count(t *testing.T) int {
	t.Helper()
	n, err := f.store.CountSubscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSubscriptionsFileReloadBatch: a reload registers in batches, logs one
// summary line instead of one per subscription, writes nothing for an
// unchanged file, and reports rejected tokens by line without removing
// anything or losing the valid lines.
func TestSubscriptionsFileReloadBatch(t *testing.T) {
	f := newSubsFileFixture(t)
	ctx := context.Background()
	const n = 2500 // more than one registry batch
	var file strings.Builder
	file.WriteString("# static\n")
	for i := range n {
		fmt.Fprintf(&file, "file-token-%05d\n", i)
	}
	f.write(t, file.String())
	if err := f.static.reload(ctx); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.take()
	if strings.Contains(logs, "subscription registered") || strings.Count(logs, "\n") != 1 ||
		!strings.Contains(logs, fmt.Sprintf("subscriptions=%d new=%d updated=0 unchanged=0 removed=0", n, n)) {
		t.Fatalf("first load logged:\n%s", logs)
	}
	if c := f.count(t); c != n || f.pool.Len() != n {
		t.Fatalf("stored %d, pool %d; want %d", c, f.pool.Len(), n)
	}
	id0 := cable.SubscriptionID("file-token-00000")
	before, err := f.store.GetSubscription(ctx, id0)
	if err != nil {
		t.Fatal(err)
	}

	// The same file again (a restart or SIGHUP): nothing written.
	if err := f.static.reload(ctx); err != nil {
		t.Fatal(err)
	}
	if logs := f.logs.take(); !strings.Contains(logs, fmt.Sprintf("new=0 updated=0 unchanged=%d removed=0", n)) {
		t.Fatalf("unchanged reload logged:\n%s", logs)
	}
	if after, _ := f.store.GetSubscription(ctx, id0); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("unchanged reload rewrote the record: UpdatedAt %v -> %v", before.UpdatedAt, after.UpdatedAt)
	}

	// A rejected token: the valid lines (a new one included) are
	// registered, the error names the line and not the token, and the
	// lines that left the file are not removed.
	const secret = "secret-\x01-token"
	f.write(t, "file-token-00000\n"+`{"pubsub_token":"file-token-00001","inbox_identifier":"inbox","contact_identifier":"src"}`+
		"\nfile-token-new\n# comment\n"+secret+"\n")
	err = f.static.reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "1 line(s) not registered") ||
		!strings.Contains(err.Error(), "1 new, 1 updated, 1 unchanged") {
		t.Fatalf("reload with a bad token: %v", err)
	}
	t.Logf("reload error: %v", err)
	if strings.Contains(err.Error(), "secret") || strings.Contains(f.logs.take(), "secret") {
		t.Fatalf("the token was shown: %v", err)
	}
	if c := f.count(t); c != n+1 {
		t.Fatalf("stored %d, want %d (nothing removed, the new line added)", c, n+1)
	}
	if rec, err := f.store.GetSubscription(ctx, cable.SubscriptionID("file-token-00001")); err != nil || rec.SourceID != "src" {
		t.Fatalf("updated line: %v, %v", rec, err)
	}

	// Fixed file: the subscriptions that left it are removed.
	f.write(t, "file-token-00000\nfile-token-new\n")
	if err := f.static.reload(ctx); err != nil {
		t.Fatal(err)
	}
	if logs := f.logs.take(); !strings.Contains(logs, fmt.Sprintf("subscriptions=2 new=0 updated=0 unchanged=2 removed=%d", n-1)) {
		t.Fatalf("shrinking reload logged:\n%s", logs)
	}
	if c := f.count(t); c != 2 || f.pool.Len() != 2 {
		t.Fatalf("stored %d, pool %d; want 2", c, f.pool.Len())
	}
}

// TestSubscriptionsFileReloadStoreDown: a store failure stops the reload
// before anything is removed.
func TestSubscriptionsFileReloadStoreDown(t *testing.T) {
	f := newSubsFileFixture(t)
	ctx := context.Background()
	f.write(t, "tok-a\ntok-b\n")
	if err := f.static.reload(ctx); err != nil {
		t.Fatal(err)
	}
	f.write(t, "tok-a\ntok-c\n")
	f.store.Close()
	err := f.static.reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "nothing removed") {
		t.Fatalf("reload with the store closed: %v", err)
	}
	t.Logf("reload error: %v", err)
	if f.pool.Len() != 2 {
		t.Fatalf("pool %d, want 2 (nothing removed)", f.pool.Len())
	}
}
