package cable

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// TestHandshakeRefusalLogged: a refused websocket upgrade is logged as what
// it is. Chatwoot down or deploying (503) is not an Origin problem; only
// Rails' 404 "Page not found" (its answer to a refused Origin) and a 403
// suggest RELAY_CABLE_ORIGIN.
func TestHandshakeRefusalLogged(t *testing.T) {
	for _, tt := range []struct {
		name       string
		status     int
		body       string
		want, deny []string
	}{
		{"unavailable", http.StatusServiceUnavailable, "deploying", []string{"Chatwoot unavailable", "503"}, []string{"Origin", "ORIGIN"}},
		{"bad gateway", http.StatusBadGateway, "", []string{"Chatwoot unavailable", "502"}, []string{"ORIGIN"}},
		{"rails origin refusal", http.StatusNotFound, "Page not found", []string{"404", "RELAY_CABLE_ORIGIN"}, nil},
		{"forbidden", http.StatusForbidden, "", []string{"403", "RELAY_CABLE_ORIGIN"}, nil},
		{"other 404", http.StatusNotFound, `{"error":"Not Found"}`, []string{"404"}, []string{"ORIGIN", "unavailable"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				msg := dialFailure(t, tt.status, tt.body)
				for _, s := range tt.want {
					if !strings.Contains(msg, s) {
						t.Errorf("log %q lacks %q", msg, s)
					}
				}
				for _, s := range tt.deny {
					if strings.Contains(msg, s) {
						t.Errorf("log %q mentions %q", msg, s)
					}
				}
			})
		})
	}
}

// dialFailure runs a pool against a server answering every request with
// status and body, and returns the error of the first "cable dial failed".
func dialFailure(t *testing.T, status int, body string) string {
	ln := chatwoottest.NewMemListener()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		w.Write([]byte(body))
	})}
	go srv.Serve(ln)
	logs := &recordHandler{records: make(chan slog.Record, 100)}
	p, err := New[any](Config[any]{URL: "ws://chatwoot.test/cable", NetDialContext: ln.DialContext, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		srv.Close()
		ln.Close()
	}()
	if _, err := p.Add(token(1), nil); err != nil {
		t.Fatal(err)
	}
	for r := range logs.records {
		if r.Message != "cable dial failed" {
			continue
		}
		var out string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				out = a.Value.String()
			}
			return true
		})
		return out
	}
	return ""
}

// recordHandler hands log records to a channel, dropping them when full.
type recordHandler struct{ records chan slog.Record }

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r.Clone():
	default:
	}
	return nil
}
