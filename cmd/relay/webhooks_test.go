package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/webhook"
)

func TestWebhookConfigDefaults(t *testing.T) {
	c, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.WebhooksSchedule, webhook.DefaultSchedule) || c.WebhooksTimeout != 15*time.Second ||
		c.WebhooksConcurrency != 16 || c.WebhooksAllowLoopback || c.WebhooksAllowPrivate {
		t.Fatalf("webhook defaults %+v", c)
	}
}

// Webhooks configured in core NATS mode stop the start with a clear error.
func TestWebhooksFileNeedsJetStream(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_NATS_JETSTREAM": "false",
		"RELAY_WEBHOOKS_FILE": "/etc/relay/webhooks.jsonl",
	}, false)
	if err == nil || !strings.Contains(err.Error(), "RELAY_WEBHOOKS_FILE: webhook delivery needs JetStream") {
		t.Fatalf("err = %v", err)
	}
	_, err = loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL": "https://chat.example.com", "RELAY_WEBHOOKS_SCHEDULE": "5s,-1s",
		"RELAY_WEBHOOKS_TIMEOUT": "1m", "RELAY_WEBHOOKS_CONCURRENCY": "0",
	}, false)
	for _, want := range []string{"WEBHOOKS_SCHEDULE", "WEBHOOKS_ACK_WAIT", "WEBHOOKS_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

// A bad webhooks file names its lines, never their content (secrets).
func TestReadWebhooksFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhooks.jsonl")
	secret := string(webhook.NewSecret())
	content := "# endpoints\n" +
		`{"id":"crm","url":"https://crm.example/hook","subjects":["chatwoot.>"],"secrets":["` + secret + `"]}` + "\n\n" +
		`{"id":"bad","secrets":["` + secret + `"],"unknown":1}` + "\n" +
		`not json ` + secret + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	eps, err := readWebhooksFile(path)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "line 5") || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v", err)
	}
	if len(eps) != 1 || eps[0].ID != "crm" || string(eps[0].Secrets[0]) != secret {
		t.Fatalf("endpoints %+v", eps)
	}
}
