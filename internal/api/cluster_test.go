package api

import (
	"context"
	"errors"
	"strings"
	"testing"
)

type fakeCluster struct {
	owner string
	err   error
}

func (f *fakeCluster) OwnerOf(context.Context, string) (string, error) { return f.owner, f.err }

func (f *fakeCluster) Status(context.Context) (any, error) {
	return map[string]any{"member": "relay-1", "buckets": 1024}, f.err
}

func TestClusterStatusAndOwner(t *testing.T) {
	c := &fakeCluster{owner: "relay-2"}
	s := newServer(t, Options{APITokens: []string{apiToken}, Cluster: c})
	id := decode[Subscription](t, serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"`+token+`"}`))).ID
	if got := decode[Subscription](t, serve(s, request("GET", "/v1/subscriptions/"+id, ""))).Owner; got != "relay-2" {
		t.Fatalf("owner = %q, want relay-2", got)
	}
	rec := serve(s, request("GET", "/v1/cluster", ""))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"member":"relay-1"`) {
		t.Fatalf("GET /v1/cluster: %d %s", rec.Code, rec.Body)
	}
	// Redis away: the status is 503, the subscription is still answered.
	c.err = errors.New("dial tcp 10.0.0.7:6379: connection refused")
	wantError(t, serve(s, request("GET", "/v1/cluster", "")), 503, CodeUnavailable, "10.0.0.7")
	if rec := serve(s, request("GET", "/v1/subscriptions/"+id, "")); rec.Code != 200 || strings.Contains(rec.Body.String(), "owner") {
		t.Fatalf("get without Redis: %d %s", rec.Code, rec.Body)
	}
	wantError(t, serve(s, request("GET", "/v1/cluster", "", "Authorization", "Bearer wrong")), 401, CodeUnauthorized)
}

func TestClusterAbsentWithOneReplica(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	wantError(t, serve(s, request("GET", "/v1/cluster", "")), 404, CodeNotFound)
	id := decode[Subscription](t, serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"`+token+`"}`))).ID
	if rec := serve(s, request("GET", "/v1/subscriptions/"+id, "")); strings.Contains(rec.Body.String(), "owner") {
		t.Fatalf("a single replica names an owner: %s", rec.Body)
	}
}
