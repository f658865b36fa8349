package main

import (
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/cable"
)

// TestClusterConfig: the scale-out settings' defaults, and every bad one
// named at once.
func TestClusterConfig(t *testing.T) {
	c, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterBuckets != 1024 || c.ClusterLeaseTTL != 15*time.Second || c.ClusterRenew != 5*time.Second ||
		c.ClusterMember != "" || c.NATSStreamReplicas != 1 {
		t.Fatalf("defaults: buckets %d ttl %s renew %s member %q replicas %d",
			c.ClusterBuckets, c.ClusterLeaseTTL, c.ClusterRenew, c.ClusterMember, c.NATSStreamReplicas)
	}
	_, err = loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":           "https://chat.example.com",
		"RELAY_CLUSTER_BUCKETS":        "0",
		"RELAY_CLUSTER_LEASE_TTL":      "5s",
		"RELAY_CLUSTER_RENEW_INTERVAL": "5s",
		"RELAY_CLUSTER_MEMBER":         "relay one",
		"RELAY_NATS_STREAM_REPLICAS":   "3", // with the embedded NATS
	}, false)
	if err == nil {
		t.Fatal("bad scale-out settings accepted")
	}
	for _, name := range []string{"CLUSTER_BUCKETS", "CLUSTER_RENEW_INTERVAL", "CLUSTER_MEMBER", "NATS_STREAM_REPLICAS"} {
		if !strings.Contains(err.Error(), "RELAY_"+name) {
			t.Errorf("error does not mention RELAY_%s:\n%v", name, err)
		}
	}
	if !strings.Contains(err.Error(), "the embedded NATS is one server") {
		t.Errorf("stream replicas on the embedded NATS: %v", err)
	}
	if _, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com",
		"RELAY_CLUSTER_BUCKETS": "70000"}, false); err == nil {
		t.Error("a bucket count over the maximum accepted")
	}
}

// TestNoticeIgnoresWhatIsNotASubscriptionID: the notice channel is open
// to anyone with Redis access; only subscription ids are acted on.
func TestNoticeIgnoresWhatIsNotASubscriptionID(t *testing.T) {
	if !subscriptionIDShape(cable.SubscriptionID("a-token")) {
		t.Fatal("a real subscription id refused")
	}
	for _, bad := range []string{"", "0123456789abcdeg", strings.Repeat("a", 1<<20), "0123456789abcde\n", "a-pubsub-token-value"} {
		if subscriptionIDShape(bad) {
			t.Errorf("%.40q taken for a subscription id", bad)
		}
	}
}
