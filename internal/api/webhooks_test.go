package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/webhook"
)

// fakeWebhooks is an in-memory Webhooks with the manager's rules that the
// API relies on: generated id and secret, validation, file endpoints
// read-only.
type fakeWebhooks struct {
	mu   sync.Mutex
	eps  map[string]webhook.Endpoint
	file map[string]bool
}

func newFakeWebhooks() *fakeWebhooks {
	return &fakeWebhooks{eps: map[string]webhook.Endpoint{}, file: map[string]bool{}}
}

func (f *fakeWebhooks) List(context.Context) ([]webhook.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []webhook.Endpoint
	for _, ep := range f.eps {
		out = append(out, ep)
	}
	return out, nil
}

func (f *fakeWebhooks) Get(_ context.Context, id string) (webhook.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ep, ok := f.eps[id]
	if !ok {
		return ep, fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
	}
	return ep, nil
}

func (f *fakeWebhooks) Source(id string) string {
	if f.file[id] {
		return webhook.SourceFile
	}
	return webhook.SourceAPI
}

func (f *fakeWebhooks) Create(_ context.Context, ep webhook.Endpoint) (webhook.Endpoint, error) {
	if ep.ID == "" {
		ep.ID = fmt.Sprintf("wh_%d", len(f.eps)+1)
	}
	if len(ep.Secrets) == 0 {
		ep.Secrets = []webhook.Secret{webhook.NewSecret()}
	}
	if err := ep.Validate("chatwoot"); err != nil {
		return ep, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.eps[ep.ID]; ok {
		return ep, webhook.ErrConflict
	}
	f.eps[ep.ID] = ep
	return ep, nil
}

func (f *fakeWebhooks) Update(ctx context.Context, id string, p webhook.Patch) (webhook.Endpoint, error) {
	if f.file[id] {
		return webhook.Endpoint{}, fmt.Errorf("%w: file", webhook.ErrConflict)
	}
	ep, err := f.Get(ctx, id)
	if err != nil {
		return ep, err
	}
	if p.RotateSecret {
		ep.Secrets = []webhook.Secret{webhook.NewSecret(), ep.Secrets[0]}
	}
	if p.URL != nil {
		ep.URL = *p.URL
	}
	if err := ep.Validate("chatwoot"); err != nil {
		return ep, err
	}
	f.mu.Lock()
	f.eps[id] = ep
	f.mu.Unlock()
	return ep, nil
}

func (f *fakeWebhooks) Delete(ctx context.Context, id string) error {
	if _, err := f.Get(ctx, id); err != nil {
		return err
	}
	f.mu.Lock()
	delete(f.eps, id)
	f.mu.Unlock()
	return nil
}

func (f *fakeWebhooks) Test(ctx context.Context, id string) (webhook.Attempt, error) {
	_, err := f.Get(ctx, id)
	return webhook.Attempt{EventID: "test:1", Status: 204, Attempt: 1, Outcome: "success"}, err
}

func (f *fakeWebhooks) Replay(ctx context.Context, id string, r webhook.Replay) (webhook.ReplayResult, error) {
	if _, err := f.Get(ctx, id); err != nil {
		return webhook.ReplayResult{}, err
	}
	if r.Seq == 0 && r.EventID == "" && r.Since == nil {
		return webhook.ReplayResult{}, webhook.ErrReplay
	}
	return webhook.ReplayResult{FromSeq: 1}, nil
}

func (f *fakeWebhooks) Deliveries(string) []webhook.Attempt { return nil }

const webhookBody = `{"url":"https://crm.example/hook","subjects":["chatwoot.*.*.*.*.message.created"]}`

// The generated secret is answered once, by the create call; reads never
// show a secret.
func TestWebhookSecretShownOnce(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}, Webhooks: newFakeWebhooks()})
	rec := serve(s, request("POST", "/v1/webhooks", webhookBody))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	v := decode[WebhookView](t, rec)
	if !strings.HasPrefix(v.Secret, webhook.SecretPrefix) || v.ID == "" || rec.Header().Get("Location") != "/v1/webhooks/"+v.ID {
		t.Fatalf("created %+v", v)
	}
	for _, target := range []string{"/v1/webhooks/" + v.ID, "/v1/webhooks"} {
		rec := serve(s, request("GET", target, ""))
		if rec.Code != 200 || strings.Contains(rec.Body.String(), v.Secret) || strings.Contains(rec.Body.String(), `"secret"`) {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
	}
	rec = serve(s, request("PATCH", "/v1/webhooks/"+v.ID, `{"rotate_secret":true}`))
	rotated := decode[WebhookView](t, rec)
	if rec.Code != 200 || rotated.Secret == "" || rotated.Secret == v.Secret || rotated.Secrets != 2 {
		t.Fatalf("rotate: %d %s", rec.Code, rec.Body)
	}
	// A secret the client chose is not echoed back.
	rec = serve(s, request("POST", "/v1/webhooks", `{"id":"own","secret":"`+string(webhook.NewSecret())+`","url":"https://crm.example/","subjects":["chatwoot.>"]}`))
	if rec.Code != http.StatusCreated || strings.Contains(rec.Body.String(), "whsec_") {
		t.Fatalf("create with a secret: %d %s", rec.Code, rec.Body)
	}
}

func TestWebhookInvalidInput(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}, Webhooks: newFakeWebhooks()})
	const secret = "whsec_c2hvcnQ="
	for _, body := range []string{
		`{"url":"http://crm.example/hook","subjects":["chatwoot.>"]}`,
		`{"url":"https://crm.example/hook","subjects":["other.>"]}`,
		`{"url":"https://crm.example/hook","subjects":["chatwoot.>"],"secret":"` + secret + `"}`,
		`{"url":"https://crm.example/hook","subjects":["chatwoot.>"],"extra":1}`,
		`{"url":"https://u:p@crm.example/hook","subjects":["chatwoot.>"]}`,
		`not json`,
	} {
		rec := serve(s, request("POST", "/v1/webhooks", body))
		wantError(t, rec, http.StatusBadRequest, CodeInvalid, secret, "u:p")
	}
	wantError(t, serve(s, request("GET", "/v1/webhooks/nope", "")), http.StatusNotFound, CodeNotFound)
	serve(s, request("POST", "/v1/webhooks", `{"id":"crm","url":"https://crm.example/","subjects":["chatwoot.>"]}`))
	wantError(t, serve(s, request("POST", "/v1/webhooks", `{"id":"crm","url":"https://crm.example/","subjects":["chatwoot.>"]}`)), http.StatusConflict, CodeConflict)
	wantError(t, serve(s, request("POST", "/v1/webhooks/crm/replay", `{}`)), http.StatusBadRequest, CodeInvalid)
	if rec := serve(s, request("POST", "/v1/webhooks/crm/replay", `{"since":"2026-01-01T00:00:00Z"}`)); rec.Code != 200 {
		t.Fatalf("replay since: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(s, request("POST", "/v1/webhooks/crm/test", "")); rec.Code != 200 {
		t.Fatalf("test: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(s, request("GET", "/v1/webhooks/crm/deliveries", "")); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"deliveries":[]`) {
		t.Fatalf("deliveries: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(s, request("DELETE", "/v1/webhooks/crm", "")); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", rec.Code)
	}
}

// Webhook management is an admin operation: a proxy-only token is refused.
func TestWebhookRoutesNeedAdmin(t *testing.T) {
	proxy := Token{Value: "proxy-only", Scopes: []Scope{ScopeProxy}}
	s := newServer(t, Options{APITokens: []string{apiToken}, Tokens: []Token{proxy}, Webhooks: newFakeWebhooks()})
	req := request("POST", "/v1/webhooks", webhookBody)
	req.Header.Set("Authorization", "Bearer proxy-only")
	wantError(t, serve(s, req), http.StatusForbidden, CodeForbidden)
}

func TestWebhookRoutesWithoutDelivery(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	wantError(t, serve(s, request("GET", "/v1/webhooks", "")), http.StatusNotFound, CodeNotFound)
}
