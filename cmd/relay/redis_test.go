package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/store"
)

// TestRedisKeyPrefixAndCA: RELAY_REDIS_KEY_PREFIX starts every key the
// relay writes and RELAY_REDIS_TLS_CA lets it reach a rediss:// server
// whose certificate a private CA signed.
func TestRedisKeyPrefixAndCA(t *testing.T) {
	caFile, cert := privateCA(t)
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

// privateCA writes a new CA's certificate to a PEM file and returns it
// with a server certificate for 127.0.0.1 that the CA signed.
func privateCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relay test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
