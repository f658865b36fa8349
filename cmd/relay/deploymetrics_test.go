package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// The dashboard and the alert rules shipped for operators; both must only
// name metrics a running relay exports.
var deployFiles = []string{
	"../../dashboards/relay.json",
	"../../deploy/prometheus/relay-rules.yml",
}

// metricRef is any relay_* identifier: in these files every one names a
// metric (or a histogram's _bucket, _sum or _count series).
var metricRef = regexp.MustCompile(`\brelay_[a-z0-9_]+\b`)

// TestDeployMetricsExist starts a relay, drives enough traffic that every
// labelled family has at least one series (a vector without children is not
// exposed), scrapes /metrics and checks each name the dashboard and the
// rules use.
func TestDeployMetricsExist(t *testing.T) {
	// With Redis (scale-out metrics) and a webhook receiver (delivery metrics).
	mr := miniredis.RunT(t)
	e := newE2E(t, map[string]string{"RELAY_CABLE_CONFIRM_TIMEOUT": "200ms", "RELAY_CABLE_VERIFY_AFTER": "1",
		"RELAY_REDIS_URL": "redis://" + mr.Addr(), "RELAY_WEBHOOKS_ALLOW_LOOPBACK": "true"})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(receiver.Close)
	if resp, body := e.do("POST", "/v1/webhooks", map[string]any{"url": receiver.URL, "subjects": []string{"chatwoot.>"}, "allow_http": true}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("webhook create: %d %s", resp.StatusCode, body)
	}
	driveEveryFamily(t, e)
	exposed := scrapeSeriesNames(t, e)
	for _, path := range deployFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		used := metricRef.FindAllString(string(data), -1)
		if len(used) == 0 {
			t.Fatalf("%s names no relay_* metric", path)
		}
		for _, name := range used {
			if !exposed[name] {
				t.Errorf("%s uses %s, which the relay does not export", path, name)
			}
		}
	}
	if t.Failed() {
		t.Logf("exported: %s", strings.Join(sortedKeys(exposed), " "))
	}
}

// driveEveryFamily makes the relay create the labelled series: an API
// request, a published event and a Chatwoot call (contact create through
// the proxy), a 429 retried, a Chatwoot call that fails, a verification (a
// wrong token of a real contact) and a cable reconnect.
func driveEveryFamily(t *testing.T, e *e2e) {
	base := "/public/api/v1/inboxes/" + e.inbox.Identifier
	e.fake.SetFault(chatwoottest.RouteContactCreate, chatwoottest.Fault{Status: http.StatusTooManyRequests, Count: 1})
	resp, body := e.do("POST", base+"/contacts", map[string]any{"name": "Jane"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("contact create: %d %s", resp.StatusCode, body)
	}
	sub := resp.Header.Get("Relay-Subscription")
	e.await("relay.subscription.confirmed", sub)
	ci, err := e.fake.CreateContact(e.inbox.Identifier, chatwoottest.ContactParams{Name: "Joe"})
	if err != nil {
		t.Fatal(err)
	}
	resp, body = e.do("POST", "/v1/subscriptions", map[string]any{
		"pubsub_token": "not-" + ci.PubsubToken, "inbox_identifier": e.inbox.Identifier, "contact_identifier": ci.SourceID}, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	e.await("relay.subscription.invalid", strings.TrimPrefix(resp.Header.Get("Location"), "/v1/subscriptions/"))
	e.fake.SetFault(chatwoottest.RouteInboxShow, chatwoottest.Fault{Status: http.StatusInternalServerError})
	e.do("GET", base, nil, nil)
	e.fake.ClearFaults()
	e.fake.DropAll(false)
	e.await("relay.subscription.confirmed", sub)
}

// scrapeSeriesNames reads /metrics until the reconnect and a webhook delivery
// have been counted and
// returns every series name in it.
func scrapeSeriesNames(t *testing.T, e *e2e) map[string]bool {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := e.do("GET", "/metrics", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		names := seriesNames(body)
		if names["relay_cable_reconnects_total"] && names["relay_webhook_attempts_total"] || time.Now().After(deadline) {
			return names
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seriesNames parses the text exposition format: the name of each sample
// line (histograms appear as _bucket, _sum and _count).
func seriesNames(exposition []byte) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSeriesNames pins the exposition parsing the check above relies on.
func TestSeriesNames(t *testing.T) {
	got := seriesNames([]byte("# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\nb_bucket{le=\"1\"} 2\nc 3\n"))
	if want := "a_total b_bucket c"; fmt.Sprint(strings.Join(sortedKeys(got), " ")) != want {
		t.Fatalf("got %v, want %s", sortedKeys(got), want)
	}
}
