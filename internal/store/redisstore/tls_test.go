package redisstore_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
	"github.com/relayhq/relay/internal/testcert"
)

// TestOpenTLSPrivateCA: a rediss:// server whose certificate a private CA
// signed is reached with Options.TLSConfig holding that CA, and refused
// without it.
func TestOpenTLSPrivateCA(t *testing.T) {
	ca := testcert.New(t)
	m := miniredis.NewMiniRedis()
	if err := m.StartTLS(&tls.Config{Certificates: []tls.Certificate{ca.TLS}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	url := "rediss://" + m.Addr() + "/0?max_retries=-1"

	s, err := redisstore.Open(url, redisstore.Options{TLSConfig: &tls.Config{RootCAs: ca.Pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping with the CA: %v", err)
	}
	if _, _, err := s.PutSubscription(t.Context(), store.Subscription{ID: "over-tls"}); err != nil {
		t.Fatal(err)
	}

	plain := openURL(t, url, "", nil)
	defer plain.Close()
	if err := plain.Ping(t.Context()); err == nil {
		t.Fatal("Ping without the private CA succeeded")
	}
}

// TestOpenTLSNeedsRediss: TLS options with a plain redis:// URL would be
// silently unused, so Open refuses them.
func TestOpenTLSNeedsRediss(t *testing.T) {
	_, err := redisstore.Open("redis://127.0.0.1:6379", redisstore.Options{TLSConfig: &tls.Config{}})
	if err == nil {
		t.Fatal("TLS options accepted with redis://")
	}
}

// TestPrefixIsolatesEveryKey: two stores with different prefixes on one
// server see none of each other's subscriptions, cursors, idempotency keys,
// leases or members, and write no key outside their prefix.
func TestPrefixIsolatesEveryKey(t *testing.T) {
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr()
	a, b := openURL(t, url, "tenant-a:", nil), openURL(t, url, "tenant-b:", nil)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	for _, s := range []*redisstore.Store{a, b} {
		if _, _, err := s.PutSubscription(ctx, store.Subscription{ID: "same"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutCursor(ctx, store.Cursor{SubscriptionID: "same", ConversationID: "1", LastMessageID: 5}); err != nil {
			t.Fatal(err)
		}
		if st, _, err := s.ReserveIdempotency(ctx, "k", time.Minute); err != nil || st != store.IdempotencyReserved {
			t.Fatalf("reserve: %v %v (the other prefix's key is visible)", st, err)
		}
		if ok, err := s.AcquireLease(ctx, "leader", "h", time.Minute); err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		if err := s.Heartbeat(ctx, "m", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.DeleteSubscription(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetSubscription(ctx, "same"); err != nil {
		t.Fatalf("deleting under one prefix removed the other's: %v", err)
	}
	if cs, err := b.ListCursors(ctx, "same"); err != nil || len(cs) != 1 {
		t.Fatalf("cursors under the other prefix: %v %v", cs, err)
	}
	if n, _ := a.CountSubscriptions(ctx); n != 0 {
		t.Fatalf("count after delete = %d", n)
	}
	for _, k := range m.Keys() {
		if !strings.HasPrefix(k, "tenant-a:") && !strings.HasPrefix(k, "tenant-b:") {
			t.Errorf("key %q outside both prefixes", k)
		}
	}
}
