package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/relayhq/relay/internal/webhook"
)

// Webhooks manages webhook endpoints (webhook.Manager). Secrets it
// returns are shown once, on creation or rotation.
type Webhooks interface {
	List(ctx context.Context) ([]webhook.Endpoint, error)
	Get(ctx context.Context, id string) (webhook.Endpoint, error)
	Source(id string) string
	Create(ctx context.Context, ep webhook.Endpoint) (webhook.Endpoint, error)
	Update(ctx context.Context, id string, p webhook.Patch) (webhook.Endpoint, error)
	Delete(ctx context.Context, id string) error
	Test(ctx context.Context, id string) (webhook.Attempt, error)
	Replay(ctx context.Context, id string, r webhook.Replay) (webhook.ReplayResult, error)
	Deliveries(id string) []webhook.Attempt
}

// errNoWebhooks: the relay runs without webhook delivery (core NATS mode).
var errNoWebhooks = fmt.Errorf("%w: webhook delivery is not enabled (it needs JetStream)", ErrNotFound)

// webhookRequest is the body of POST /v1/webhooks.
type webhookRequest struct {
	ID                string   `json:"id"`
	URL               string   `json:"url"`
	Subjects          []string `json:"subjects"`
	Secret            string   `json:"secret"`
	ChatwootSignature bool     `json:"chatwoot_signature"`
	AllowHTTP         bool     `json:"allow_http"`
	Concurrency       int      `json:"concurrency"`
	RateLimit         float64  `json:"rate_limit"`
	Disabled          bool     `json:"disabled"`
}

// WebhookView is an endpoint as the API shows it: the secret only right
// after it was generated or rotated, never again.
type WebhookView struct {
	ID                string   `json:"id"`
	URL               string   `json:"url"`
	Subjects          []string `json:"subjects"`
	ChatwootSignature bool     `json:"chatwoot_signature"`
	AllowHTTP         bool     `json:"allow_http"`
	Concurrency       int      `json:"concurrency"`
	RateLimit         float64  `json:"rate_limit"`
	Disabled          bool     `json:"disabled"`
	Source            string   `json:"source"`
	Secrets           int      `json:"secrets"`
	Secret            string   `json:"secret,omitempty"`
}

func (s *Server) webhookView(ep webhook.Endpoint, withSecret bool) WebhookView {
	v := WebhookView{ID: ep.ID, URL: ep.URL, Subjects: ep.Subjects, ChatwootSignature: ep.ChatwootSignature,
		AllowHTTP: ep.AllowHTTP, Concurrency: ep.Concurrency, RateLimit: ep.RateLimit, Disabled: ep.Disabled,
		Source: s.opts.Webhooks.Source(ep.ID), Secrets: len(ep.Secrets)}
	if withSecret && len(ep.Secrets) > 0 {
		v.Secret = string(ep.Secrets[0])
	}
	return v
}

// webhookError maps the webhook package's errors to the API's kinds.
func webhookError(err error) error {
	switch {
	case errors.Is(err, webhook.ErrEndpoint), errors.Is(err, webhook.ErrReplay), errors.Is(err, webhook.ErrSecret):
		return fmt.Errorf("%w: %s", ErrInvalid, err)
	case errors.Is(err, webhook.ErrConflict):
		return fmt.Errorf("%w: %s", ErrConflict, err)
	case errors.Is(err, webhook.ErrNotFound):
		return fmt.Errorf("%w: %s", ErrNotFound, err)
	}
	return err
}

// webhooksOn fails the request when webhook delivery is off.
func (s *Server) webhooksOn(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Webhooks == nil {
		s.fail(w, r, errNoWebhooks)
		return false
	}
	return true
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var q webhookRequest
	if !s.webhooksOn(w, r) || !s.decode(w, r, &q) {
		return
	}
	ep := webhook.Endpoint{ID: q.ID, URL: q.URL, Subjects: q.Subjects, ChatwootSignature: q.ChatwootSignature,
		AllowHTTP: q.AllowHTTP, Concurrency: q.Concurrency, RateLimit: q.RateLimit, Disabled: q.Disabled}
	if q.Secret != "" {
		ep.Secrets = []webhook.Secret{webhook.Secret(q.Secret)}
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	ep, err := s.opts.Webhooks.Create(ctx, ep)
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	w.Header().Set("Location", "/v1/webhooks/"+ep.ID)
	writeJSON(w, http.StatusCreated, s.webhookView(ep, q.Secret == ""))
}

// webhookList is the body of GET /v1/webhooks.
type webhookList struct {
	Webhooks []WebhookView `json:"webhooks"`
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	eps, err := s.opts.Webhooks.List(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := webhookList{Webhooks: make([]WebhookView, len(eps))}
	for i, ep := range eps {
		out.Webhooks[i] = s.webhookView(ep, false)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	ep, err := s.opts.Webhooks.Get(ctx, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, s.webhookView(ep, false))
}

func (s *Server) patchWebhook(w http.ResponseWriter, r *http.Request) {
	var p webhook.Patch
	if !s.webhooksOn(w, r) || !s.decode(w, r, &p) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	ep, err := s.opts.Webhooks.Update(ctx, r.PathValue("id"), p)
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, s.webhookView(ep, p.RotateSecret))
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	if err := s.opts.Webhooks.Delete(ctx, r.PathValue("id")); err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	a, err := s.opts.Webhooks.Test(ctx, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// replayRequest is the body of POST /v1/webhooks/{id}/replay.
type replayRequest struct {
	StreamSeq uint64     `json:"stream_seq"`
	EventID   string     `json:"event_id"`
	Since     *time.Time `json:"since"`
}

func (s *Server) replayWebhook(w http.ResponseWriter, r *http.Request) {
	var q replayRequest
	if !s.webhooksOn(w, r) || !s.decode(w, r, &q) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	res, err := s.opts.Webhooks.Replay(ctx, r.PathValue("id"), webhook.Replay{Seq: q.StreamSeq, EventID: q.EventID, Since: q.Since})
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// deliveryList is the body of GET /v1/webhooks/{id}/deliveries.
type deliveryList struct {
	Deliveries []webhook.Attempt `json:"deliveries"`
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) {
	if !s.webhooksOn(w, r) {
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	id := r.PathValue("id")
	if _, err := s.opts.Webhooks.Get(ctx, id); err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	out := deliveryList{Deliveries: s.opts.Webhooks.Deliveries(id)}
	if out.Deliveries == nil {
		out.Deliveries = []webhook.Attempt{}
	}
	writeJSON(w, http.StatusOK, out)
}

// decode reads a JSON body into v, answering the error itself.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := s.decodeJSON(w, r, v); err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}
