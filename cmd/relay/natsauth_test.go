package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/relayhq/relay/internal/testcert"
)

// TestEmbeddedNATSAuthentication: with credentials configured, the embedded
// NATS refuses a client without them, and the relay's own publisher (with
// them) still creates the stream and publishes.
func TestEmbeddedNATSAuthentication(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "relay.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	tc := testcert.New(t)
	cert, key := tc.CertFile, tc.KeyFile
	for name, env := range map[string]map[string]string{
		"token":         {"RELAY_NATS_TOKEN": "nats-tok-secret"},
		"user/password": {"RELAY_NATS_USER": "relay", "RELAY_NATS_PASSWORD": "nats-pw-secret"},
		"nkey":          {"RELAY_NATS_NKEY_SEED_FILE": seedFile},
		"token and mutual TLS": {"RELAY_NATS_TOKEN": "nats-tok-secret", "RELAY_NATS_LISTEN_TLS_CERT": cert,
			"RELAY_NATS_LISTEN_TLS_KEY": key, "RELAY_NATS_LISTEN_TLS_CLIENT_CA": cert},
	} {
		t.Run(name, func(t *testing.T) {
			e := newE2E(t, env)
			var tlsOpts []nats.Option
			if env["RELAY_NATS_LISTEN_TLS_CERT"] != "" {
				tlsOpts = []nats.Option{nats.RootCAs(cert), nats.ClientCert(cert, key)}
			}
			for _, opts := range [][]nats.Option{nil, {nats.Token("wrong")}, {nats.UserInfo("relay", "wrong")}} {
				if nc, err := nats.Connect(e.app.natsURL, append(opts, tlsOpts...)...); err == nil {
					nc.Close()
					t.Fatalf("a client without the credentials connected (%d options)", len(opts))
				} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
					t.Fatalf("refused with %v, want an authorization error", err)
				}
			}
			if tlsOpts != nil {
				if nc, err := nats.Connect(e.app.natsURL, nats.Token(env["RELAY_NATS_TOKEN"])); err == nil {
					nc.Close()
					t.Fatal("a plain-text client connected")
				}
			}
			resp, body := e.do("POST", "/public/api/v1/inboxes/"+e.inbox.Identifier+"/contacts", map[string]any{"name": "Jane"}, nil)
			subID := resp.Header.Get("Relay-Subscription")
			if resp.StatusCode != 200 || subID == "" {
				t.Fatalf("contact create: %d %s", resp.StatusCode, body)
			}
			e.await("relay.subscription.confirmed", subID) // read from the stream the relay created
		})
	}
}

// TestConfigEmbeddedNATSNeedsAuth: the embedded NATS listens beyond
// loopback only with credentials every client must present.
func TestConfigEmbeddedNATSNeedsAuth(t *testing.T) {
	base := map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	refused := map[string]map[string]string{
		"0.0.0.0":             with("RELAY_NATS_LISTEN", "0.0.0.0:4222"),
		"::":                  with("RELAY_NATS_LISTEN", "[::]:4222"),
		"an interface":        with("RELAY_NATS_LISTEN", "10.1.2.3:4222"),
		"a host name":         with("RELAY_NATS_LISTEN", "nats.internal:4222"),
		"creds file only":     with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_NATS_CREDS_FILE", "/etc/relay.creds"),
		"user alone":          with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_NATS_USER", "relay"),
		"two methods":         with("RELAY_NATS_TOKEN", "t", "RELAY_NATS_NKEY_SEED_FILE", "/etc/relay.nk"),
		"client TLS":          with("RELAY_NATS_TOKEN", "t", "RELAY_NATS_TLS_CA", "/etc/ca.pem"),
		"listen key alone":    with("RELAY_NATS_TOKEN", "t", "RELAY_NATS_LISTEN_TLS_KEY", "/etc/key.pem"),
		"listen TLS external": with("RELAY_NATS_URL", "nats://nats:4222", "RELAY_NATS_LISTEN_TLS_CERT", "/c", "RELAY_NATS_LISTEN_TLS_KEY", "/k"),
	}
	for name, env := range refused {
		if _, err := loadConfig(env, false); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "RELAY_NATS_") {
			t.Errorf("%s: error does not name the variable: %v", name, err)
		}
	}
	_, err := loadConfig(with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_NATS_TOKEN", "tok-secret-1"), false)
	if err != nil {
		t.Errorf("0.0.0.0 with a token: %v", err)
	}
	_, err = loadConfig(with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_HTTP_ADDR", "0.0.0.0:8080", "RELAY_NATS_PASSWORD", "pw-secret-2"), false)
	if err == nil || !strings.Contains(err.Error(), "RELAY_NATS_LISTEN") || !strings.Contains(err.Error(), "RELAY_API_TOKENS") {
		t.Errorf("problems not reported together: %v", err)
	}
	if strings.Contains(err.Error(), "pw-secret-2") {
		t.Errorf("error shows the password: %v", err)
	}
	for _, env := range []map[string]string{
		with("RELAY_NATS_LISTEN", "[::]:4222", "RELAY_NATS_USER", "relay", "RELAY_NATS_PASSWORD", "pw",
			"RELAY_NATS_LISTEN_TLS_CERT", "/c", "RELAY_NATS_LISTEN_TLS_KEY", "/k", "RELAY_NATS_LISTEN_TLS_CLIENT_CA", "/ca"),
		with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_NATS_NKEY_SEED_FILE", "/etc/relay.nk"),
		with("RELAY_NATS_LISTEN", "0.0.0.0:4222", "RELAY_NATS_URL", "nats://nats:4222"), // not started
		with("RELAY_NATS_LISTEN", ":4222"),                                              // empty host: 127.0.0.1
		with("RELAY_NATS_LISTEN", "localhost:4222"),
	} {
		if _, err := loadConfig(env, false); err != nil {
			t.Errorf("%v refused: %v", env, err)
		}
	}
}
