package main

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/testcert"
)

// TestRedisKeyPrefixAndCA: RELAY_REDIS_KEY_PREFIX starts every key the
// relay writes and RELAY_REDIS_TLS_CA lets it reach a rediss:// server
// whose certificate a private CA signed.
func TestRedisKeyPrefixAndCA(t *testing.T) {
	tc := testcert.New(t)
	caFile, cert := tc.CertFile, tc.TLS
	m := miniredis.NewMiniRedis()
	if err := m.StartTLS(&tls.Config{Certificates: []tls.Certificate{cert}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	cfg, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":     "https://chat.example.com",
		"RELAY_REDIS_URL":        "rediss://" + m.Addr() + "/0?max_retries=-1",
		"RELAY_REDIS_TLS_CA":     caFile,
		"RELAY_REDIS_KEY_PREFIX": "tenant-a:",
		"RELAY_DATA_DIR":         t.TempDir(),
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: cfg}
	if err := a.openStore(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer a.store.Close()
	if err := a.store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping through the private CA: %v", err)
	}
	if _, _, err := a.store.PutSubscription(t.Context(), store.Subscription{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if !m.Exists("tenant-a:sub:x") {
		t.Fatalf("keys %v, want them under tenant-a:", m.Keys())
	}
}

func TestRedisTLSCANeedsRediss(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":     "https://chat.example.com",
		"RELAY_REDIS_URL":        "redis://:pw-secret@localhost:6379",
		"RELAY_REDIS_TLS_CA":     "/etc/relay/ca.pem",
		"RELAY_REDIS_KEY_PREFIX": "two words",
	}, false)
	if err == nil || !strings.Contains(err.Error(), "RELAY_REDIS_TLS_CA") || !strings.Contains(err.Error(), "RELAY_REDIS_KEY_PREFIX") {
		t.Fatalf("error = %v", err)
	}
	if strings.Contains(err.Error(), "pw-secret") {
		t.Fatalf("error shows the Redis password: %v", err)
	}
}
