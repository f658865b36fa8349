package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
)

// TestBatchThroughRegistry registers a batch through the relay's registry
// on a bbolt file: results in order, a repeated token registered once then
// updated, a token past the subscription limit and a bad one refused alone,
// every other one stored with its facts.
func TestBatchThroughRegistry(t *testing.T) {
	st := openBenchStore(t, "bolt")
	reg := newRegistry(t, st)
	if err := reg.SetLimit(3, prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	url := serveRegistry(t, reg)
	body := `{"subscriptions":[
		{"pubsub_token":"tok-1"},
		{"pubsub_token":"tok-2"},
		{"pubsub_token":"tok-1","inbox_identifier":"inbox-1","contact_identifier":"src-1"},
		{"pubsub_token":"tok 3"},
		{"pubsub_token":"tok-4"},
		{"pubsub_token":"tok-5"}]}`
	got := postBatch(t, url, body)
	want := []string{"created", "created", "updated", "failed", "created", "failed"}
	for i, w := range want {
		if got[i].Outcome != w {
			t.Errorf("item %d: %+v, want %s", i, got[i], w)
		}
	}
	if got[5].Error == nil || got[5].Error.Code != "limit" || got[3].Error == nil || got[3].Error.Code != "invalid" {
		t.Errorf("errors: %+v, %+v", got[3].Error, got[5].Error)
	}
	ctx := context.Background()
	rec, err := st.GetSubscription(ctx, cable.SubscriptionID("tok-1"))
	if err != nil || rec.InboxIdentifier != "inbox-1" || rec.SourceID != "src-1" || got[0].ID != rec.ID {
		t.Errorf("tok-1 stored as %v (%v), answered id %q", rec, err, got[0].ID)
	}
	if n, _ := st.CountSubscriptions(ctx); n != 3 {
		t.Errorf("%d subscriptions stored, want 3", n)
	}
	again := postBatch(t, url, `{"subscriptions":[{"pubsub_token":"tok-2"},{"pubsub_token":"tok-5"}]}`)
	if again[0].Outcome != "unchanged" || again[1].Outcome != "failed" {
		t.Errorf("second batch: %+v", again)
	}
}

type batchItem struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func postBatch(t *testing.T, url, body string) []batchItem {
	t.Helper()
	resp, err := http.Post(url+"/v1/subscriptions/batch", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Results []batchItem }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("batch: %d %v", resp.StatusCode, err)
	}
	return out.Results
}

// TestSingleThroughRegistry: POST /v1/subscriptions, grouped into the
// registry's batches, answers as the registry's Register does: 201 with the
// subscription, then 200.
func TestSingleThroughRegistry(t *testing.T) {
	url := benchRelay(t, openBenchStore(t, "bolt"))
	body := `{"pubsub_token":"tok-1","inbox_identifier":"inbox-1","contact_identifier":"src-1"}`
	for _, want := range []int{http.StatusCreated, http.StatusOK} {
		resp, err := http.Post(url+"/v1/subscriptions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var sub api.Subscription
		err = json.NewDecoder(resp.Body).Decode(&sub)
		resp.Body.Close()
		if err != nil || resp.StatusCode != want || sub.ID != cable.SubscriptionID("tok-1") || !sub.CatchUp ||
			sub.Origin != api.OriginAPI || sub.State != api.StatePending || sub.CreatedAt.IsZero() {
			t.Errorf("register: %d %+v (%v), want %d", resp.StatusCode, sub, err, want)
		}
	}
}
