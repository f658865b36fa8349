package redisstore_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// TestKeyLayout pins the key layout documented in doc.go: other tools (and
// older replicas during a rolling deploy) read it.
func TestKeyLayout(t *testing.T) {
	m := miniredis.RunT(t)
	s := openURL(t, "redis://"+m.Addr(), "p:", nil)
	ctx := t.Context()
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	sub := store.Subscription{ID: "sid", Token: "tok", CreatedAt: created, LastActivityAt: created.Add(time.Second)}
	if _, _, err := s.PutSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCursor(ctx, store.Cursor{SubscriptionID: "sid", ConversationID: "12", LastMessageID: 77, Status: "open", UpdatedAt: "1700000000.1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReserveIdempotency(ctx, "pending", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteIdempotency(ctx, "done", []byte(`{"id":1}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "bucket-3", "r1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Heartbeat(ctx, "r1", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	wantKeys := []string{"p:cur:sid", "p:idem:done", "p:idem:pending", "p:lease-fences", "p:lease-since", "p:lease:bucket-3", "p:member:r1", "p:members", "p:sub:sid", "p:subs"}
	if got := m.Keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("keys = %v, want %v", got, wantKeys)
	}
	checks := []struct {
		name, got, want string
	}{
		{"sub created", m.HGet("p:sub:sid", "c"), "1735787045000006"},
		{"sub activity", m.HGet("p:sub:sid", "a"), "1735787046000006"},
		{"cursor", m.HGet("p:cur:sid", "12"), "77|open|1700000000.1"},
		{"idem pending", mustGet(t, m, "p:idem:pending"), "p"},
		{"idem done", mustGet(t, m, "p:idem:done"), `d{"id":1}`},
		{"lease", mustGet(t, m, "p:lease:bucket-3"), "r1"},
		{"member", mustGet(t, m, "p:member:r1"), "1"},
		{"lease fencing token", m.HGet("p:lease-fences", "bucket-3"), "1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if d := m.HGet("p:sub:sid", "d"); !strings.Contains(d, `"id":"sid"`) || !strings.Contains(d, `"token":"tok"`) {
		t.Errorf("sub data = %s", d)
	}
	if ids, _ := m.ZMembers("p:subs"); !slices.Equal(ids, []string{"sid"}) {
		t.Errorf("index = %v", ids)
	}
	if ms, _ := m.SMembers("p:members"); !slices.Equal(ms, []string{"r1"}) {
		t.Errorf("members = %v", ms)
	}
	ttls := map[string]time.Duration{"p:idem:pending": time.Minute, "p:idem:done": time.Hour, "p:lease:bucket-3": 30 * time.Second, "p:member:r1": 10 * time.Second}
	for k, want := range ttls {
		if got := m.TTL(k); got != want {
			t.Errorf("TTL(%s) = %v, want %v", k, got, want)
		}
	}
	for _, k := range []string{"p:sub:sid", "p:subs", "p:cur:sid", "p:members", "p:lease-fences"} {
		if got := m.TTL(k); got != 0 {
			t.Errorf("TTL(%s) = %v, want none", k, got)
		}
	}
}

func mustGet(t *testing.T, m *miniredis.Miniredis, key string) string {
	t.Helper()
	v, err := m.Get(key)
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

func TestDefaultPrefixAndIsolation(t *testing.T) {
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr()
	a, b := openURL(t, url, "", nil), openURL(t, url, "other:", nil)
	ctx := t.Context()
	if _, _, err := a.PutSubscription(ctx, store.Subscription{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if !m.Exists("relay:sub:x") {
		t.Fatalf("default prefix not used: keys %v", m.Keys())
	}
	if _, err := b.GetSubscription(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other prefix sees the subscription: %v", err)
	}
	if n, _ := b.CountSubscriptions(ctx); n != 0 {
		t.Fatalf("other prefix counts %d", n)
	}
	if ok, _ := b.AcquireLease(ctx, "l", "h2", time.Minute); !ok {
		t.Fatal("lease not isolated")
	}
	if ok, _ := a.AcquireLease(ctx, "l", "h1", time.Minute); !ok {
		t.Fatal("lease not isolated")
	}
}

func TestOpenURL(t *testing.T) {
	m := miniredis.RunT(t)
	m.RequireAuth("s3cret-pass")
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{"password and db", "redis://:s3cret-pass@" + m.Addr() + "/2", false},
		{"bad scheme", "http://:s3cret-pass@" + m.Addr(), true},
		{"bad port", "redis://:s3cret-pass@localhost:notaport/0", true},
		{"bad db", "redis://:s3cret-pass@" + m.Addr() + "/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := redisstore.Open(tt.url, redisstore.Options{})
			if tt.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if _, _, err := s.PutSubscription(t.Context(), store.Subscription{ID: "in-db-2"}); err != nil {
				t.Fatal(err)
			}
			m.Select(2)
			if !m.Exists("relay:sub:in-db-2") {
				t.Fatal("database number not used")
			}
		})
	}
}

func TestPingUnreachable(t *testing.T) {
	m := miniredis.RunT(t)
	s := openURL(t, "redis://"+m.Addr()+"/0?max_retries=-1", "", nil)
	defer s.Close()
	m.Close()
	if err := s.Ping(t.Context()); err == nil || errors.Is(err, store.ErrClosed) {
		t.Fatalf("Ping of a stopped server = %v, want a connection error", err)
	}
}

func TestNewTakesClient(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	s := redisstore.New(rdb, redisstore.Options{Prefix: "n:"})
	if err := s.Heartbeat(t.Context(), "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !m.Exists("n:member:a") {
		t.Fatalf("keys %v", m.Keys())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(t.Context()).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("client not closed by Close: %v", err)
	}
}

// TestBatchKeyLayout: PutSubscriptions writes exactly the keys and fields
// PutSubscription writes.
func TestBatchKeyLayout(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	opts := redisstore.Options{Now: func() time.Time { return now }}
	single := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr()}), withPrefix(opts, "one:"))
	batch := redisstore.New(redis.NewClient(&redis.Options{Addr: m.Addr()}), withPrefix(opts, "many:"))
	defer single.Close()
	defer batch.Close()
	sub := store.Subscription{ID: "sid", Token: "tok", ContactID: "5", LastActivityAt: now.Add(-time.Second)}
	if _, _, err := single.PutSubscription(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.PutSubscriptions(t.Context(), []store.Subscription{sub}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"d", "c", "a"} {
		if one, many := m.HGet("one:sub:sid", f), m.HGet("many:sub:sid", f); one != many || one == "" {
			t.Errorf("field %s: single %q, batch %q", f, one, many)
		}
	}
	if ids, _ := m.ZMembers("many:subs"); !slices.Equal(ids, []string{"sid"}) {
		t.Errorf("index = %v", ids)
	}
}

func withPrefix(o redisstore.Options, p string) redisstore.Options {
	o.Prefix = p
	return o
}
