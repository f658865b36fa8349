//go:build !nodemo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/webhook"
)

// demoHook is the demo's webhook receiver: a local HTTP endpoint that the
// demo registers through the relay's API and that verifies every
// delivery's Standard Webhooks signature, as a receiver should.
type demoHook struct {
	d        *demo
	srv      *http.Server
	secret   webhook.Secret
	verified atomic.Int64
	rejected atomic.Int64
}

// startHook listens on loopback and registers the endpoint for every
// message.created. Without webhook delivery (core NATS) it does nothing.
func (d *demo) startHook(ctx context.Context) (*demoHook, error) {
	if d.app.webhooks == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &demoHook{d: d}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go h.srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/hook"
	body := map[string]any{"id": "demo", "url": url, "allow_http": true,
		"subjects": []string{d.app.cfg.NATSSubjectPrefix + ".*.*.*.*.message.created"}}
	var created struct {
		Secret string `json:"secret"`
	}
	if err := d.postStatus(ctx, d.app.httpURL()+"/v1/webhooks", body, &created, http.StatusCreated); err != nil {
		h.srv.Close()
		return nil, fmt.Errorf("registering the demo webhook: %w", err)
	}
	h.secret = webhook.Secret(created.Secret)
	fmt.Fprintf(d.out, "             webhook receiver at %s gets every message.created, signed (POST /v1/webhooks)\n\n", url)
	return h, nil
}

// ServeHTTP verifies and prints one delivery.
func (h *demoHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := webhook.Verify(h.secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		h.rejected.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	h.verified.Add(1)
	fmt.Fprintf(h.d.out, "%s  webhook POST /hook  webhook-id=%s  signature verified\n",
		time.Now().Format("15:04:05.000"), r.Header.Get(webhook.HeaderID))
	w.WriteHeader(http.StatusNoContent)
}

func (h *demoHook) close() {
	if h != nil {
		h.srv.Close()
	}
}

func (h *demoHook) summary() {
	if h != nil {
		fmt.Fprintf(h.d.out, "webhook deliveries: verified=%d rejected=%d\n", h.verified.Load(), h.rejected.Load())
	}
}

// postStatus posts JSON and expects status.
func (d *demo) postStatus(ctx context.Context, url string, body, out any, status int) error {
	got, data, err := d.postJSON(ctx, url, body)
	if err != nil {
		return err
	}
	if got != status {
		return errors.New(string(bytes.TrimSpace(data)))
	}
	return json.Unmarshal(data, out)
}
