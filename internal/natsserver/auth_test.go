package natsserver

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/relayhq/relay/internal/testcert"
)

// TestNonLoopbackNeedsAuth: a server reachable from the network is refused
// unless clients must authenticate.
func TestNonLoopbackNeedsAuth(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "::", "192.0.2.1"} {
		s, err := Start(Config{Host: host, Port: RandomPort})
		if err == nil {
			s.Shutdown()
		}
		if !errors.Is(err, ErrNoAuth) {
			t.Errorf("host %s without auth: err = %v, want ErrNoAuth", host, err)
		}
	}
}

// TestAuthRefusesAnonymousClients: with user/password, token or nkey, a
// client without them is refused, and one with them publishes, on the
// socket and in process.
func TestAuthRefusesAnonymousClients(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "relay.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := NKeyFromSeedFile(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := kp.PublicKey(); pub != want {
		t.Fatalf("NKeyFromSeedFile = %s, want %s", pub, want)
	}
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cfg   Config
		creds nats.Option
		wrong nats.Option
	}{
		{"user/password", Config{User: "relay", Password: "pw-1"}, nats.UserInfo("relay", "pw-1"), nats.UserInfo("relay", "pw-2")},
		{"token", Config{Token: "tok-1"}, nats.Token("tok-1"), nats.Token("tok-2")},
		{"nkey", Config{NKey: pub}, nkeyOpt, nats.Token("tok-2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Host, tt.cfg.Port = "0.0.0.0", RandomPort
			s, err := Start(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown()
			for _, opts := range [][]nats.Option{nil, {tt.wrong}} {
				if nc, err := nats.Connect(s.ClientURL(), opts...); err == nil {
					nc.Close()
					t.Errorf("client without the right credentials connected (%d options)", len(opts))
				} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
					t.Errorf("refusal is not an authorization error: %v", err)
				}
			}
			for _, opts := range [][]nats.Option{{tt.creds}, {tt.creds, nats.InProcessServer(s)}} {
				roundTrip(t, s.ClientURL(), opts...)
			}
		})
	}
}

func roundTrip(t *testing.T, url string, opts ...nats.Option) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("a.b")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("a.b", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestTLS: with a certificate the client port requires TLS; with a client
// CA, a client certificate too. The in-process connection needs neither.
func TestTLS(t *testing.T) {
	tc := testcert.New(t)
	cert, key := tc.CertFile, tc.KeyFile
	s, err := Start(Config{Port: RandomPort, Token: "tok", TLSCert: cert, TLSKey: key, TLSClientCA: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if nc, err := nats.Connect(s.ClientURL(), nats.Token("tok")); err == nil {
		nc.Close()
		t.Error("plain-text client connected")
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.Token("tok"), nats.RootCAs(cert)); err == nil {
		nc.Close()
		t.Error("client without a certificate connected")
	}
	roundTrip(t, s.ClientURL(), nats.Token("tok"), nats.RootCAs(cert), nats.ClientCert(cert, key))
	roundTrip(t, s.ClientURL(), nats.Token("tok"), nats.InProcessServer(s))
}

func TestAuthConfigErrors(t *testing.T) {
	tc := testcert.New(t)
	cert, key := tc.CertFile, tc.KeyFile
	for name, cfg := range map[string]Config{
		"two methods":       {User: "u", Password: "p", Token: "t"},
		"user alone":        {User: "u"},
		"password alone":    {Password: "p"},
		"not a public nkey": {NKey: "SUAFAKESEED"},
		"cert without key":  {Token: "t", TLSCert: cert},
		"client CA alone":   {Token: "t", TLSClientCA: cert},
		"unreadable key":    {Token: "t", TLSCert: cert, TLSKey: key + ".missing"},
	} {
		cfg.Port = RandomPort
		if s, err := Start(cfg); !errors.Is(err, ErrAuthConfig) {
			if err == nil {
				s.Shutdown()
			}
			t.Errorf("%s: err = %v, want ErrAuthConfig", name, err)
		} else if strings.Contains(err.Error(), "SUAFAKESEED") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
	if _, err := NKeyFromSeedFile(cert); err == nil || strings.Contains(err.Error(), "BEGIN") {
		t.Errorf("a certificate read as nkey seed: %v", err)
	}
}

// TestOnlyClientPortOpen guards the embedded server's surface: no
// monitoring, profiling, cluster, gateway, leaf node, websocket or MQTT
// listener, whatever else is configured.
func TestOnlyClientPortOpen(t *testing.T) {
	s, err := Start(Config{Host: "0.0.0.0", Port: RandomPort, Token: "tok", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for name, addr := range map[string]*net.TCPAddr{
		"monitoring": s.ns.MonitorAddr(), "cluster": s.ns.ClusterAddr(), "profiling": s.ns.ProfilerAddr(),
		"gateway": s.ns.GatewayAddr(),
	} {
		if addr != nil {
			t.Errorf("%s listener open on %v", name, addr)
		}
	}
	opts, err := Config{Host: "0.0.0.0", Token: "tok"}.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.HTTPPort != 0 || opts.HTTPSPort != 0 || opts.ProfPort != 0 || opts.Cluster.Port != 0 || opts.Gateway.Port != 0 ||
		opts.LeafNode.Port != 0 || opts.Websocket.Port != 0 || opts.MQTT.Port != 0 {
		t.Errorf("a port besides the client port is configured: %+v", opts)
	}
}
