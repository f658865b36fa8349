package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// TestTokenlessModeWarns: a relay serving its API without tokens says at
// start what it trusts, since a same-host reverse proxy that forwards
// without X-Forwarded-For is invisible to it; with a token it does not.
func TestTokenlessModeWarns(t *testing.T) {
	fake := chatwoottest.New(chatwoottest.Options{})
	t.Cleanup(func() { fake.Close() })
	addr, err := fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tokens := range []string{"", "tok-secret-1"} {
		cfg, err := loadConfig(map[string]string{
			"RELAY_CHATWOOT_URL": "http://" + addr.String(), "RELAY_HTTP_ADDR": "127.0.0.1:0",
			"RELAY_NATS_LISTEN": "127.0.0.1:-1", "RELAY_DATA_DIR": t.TempDir(), "RELAY_API_TOKENS": tokens,
		}, false)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		a, err := start(context.Background(), cfg, slog.New(slog.NewJSONHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		a.shutdown()
		warned := strings.Contains(buf.String(), "HTTP API without tokens")
		if warned != (tokens == "") {
			t.Errorf("RELAY_API_TOKENS=%q: warned %v\n%s", tokens, warned, buf.String())
		}
		if strings.Contains(buf.String(), "tok-secret-1") {
			t.Error("the log shows the API token")
		}
	}
}
