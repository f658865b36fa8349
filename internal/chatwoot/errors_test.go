package chatwoot

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/fixtures"
)

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		name        string
		respond     resp
		want        error
		wantKind    Kind
		wantStatus  int
		wantMessage string
	}{
		{"404", resp{404, fixtures.Read(t, "api/notfound.json"), nil}, ErrNotFound, KindNotFound, 404, "Not Found"},
		{"422", status(422, `{"message":"Email is invalid, Phone number should be in e164 format","attributes":["email","phone_number"]}`),
			ErrInvalid, KindInvalid, 422, "Email is invalid, Phone number should be in e164 format"},
		{"422 error key", status(422, `{"error":"You cannot update the CSAT survey after 14 days"}`),
			ErrInvalid, KindInvalid, 422, "You cannot update the CSAT survey after 14 days"},
		{"422 echoing a path value", status(422, `{"message":"Source s/1?x=y#z is taken in AbC/12 x"}`),
			ErrInvalid, KindInvalid, 422, "Source *** is taken in ***"},
		{"429", resp{429, []byte("Retry later\n"), http.Header{"Content-Type": {"text/plain"}}}, ErrRateLimited, KindRateLimited, 429, ""},
		{"500", status(500, `{"status":500,"error":"Internal Server Error"}`), ErrUpstream, KindUpstream, 500, "Internal Server Error"},
		{"503 html", status(503, `<html>down</html>`), ErrUpstream, KindUpstream, 503, ""},
		{"403", status(403, ``), ErrStatus, KindStatus, 403, ""},
		{"garbage 200", status(200, `<!DOCTYPE html><html>login</html>`), ErrDecode, KindDecode, 200, ""},
		{"null 200", status(200, `null`), ErrDecode, KindDecode, 200, ""},
		{"empty 200", status(200, ``), ErrDecode, KindDecode, 200, ""},
		{"truncated 200", status(200, `{"id": 1, "pubsub_token": "abc`), ErrDecode, KindDecode, 200, ""},
		{"array for object", status(200, `[]`), ErrDecode, KindDecode, 200, ""},
		{"wrong field type", status(200, `{"id":"seven"}`), ErrDecode, KindDecode, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newServerClient(t, Options{}, tt.respond)
			_, err := c.GetContact(bg, testCI, Identity{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err %T is not *APIError", err)
			}
			if ae.Kind != tt.wantKind || ae.Status != tt.wantStatus || ae.Message != tt.wantMessage {
				t.Errorf("APIError = kind %s status %d message %q", ae.Kind, ae.Status, ae.Message)
			}
			if !strings.Contains(err.Error(), "GET /inboxes/{inbox}/contacts/{source_id}") {
				t.Errorf("error does not name the route template: %v", err)
			}
			mustNotLeak(t, "error", err.Error())
			if len(ae.Body) > MaxErrorBody {
				t.Errorf("body not bounded: %d", len(ae.Body))
			}
			if c.m.errors.WithLabelValues(string(tt.wantKind)) == nil || counter(t, c.m.errors.WithLabelValues(string(tt.wantKind))) != 1 {
				t.Errorf("errors_total{kind=%s} not counted once", tt.wantKind)
			}
		})
	}
}

func TestErrorBodyBounded(t *testing.T) {
	c, _, _ := newServerClient(t, Options{}, status(500, strings.Repeat("x", 3*MaxErrorBody)))
	_, err := c.GetInbox(bg, "i")
	var ae *APIError
	if !errors.As(err, &ae) || len(ae.Body) != MaxErrorBody {
		t.Fatalf("err = %v, body %d bytes", err, len(ae.Body))
	}
}

func TestMessageBounded(t *testing.T) {
	long := strings.Repeat("é", maxMessageLen)
	c, _, _ := newServerClient(t, Options{}, status(422, `{"message":"`+long+`"}`))
	_, err := c.GetInbox(bg, "i")
	var ae *APIError
	if !errors.As(err, &ae) || len(ae.Message) > maxMessageLen+3 || !strings.HasSuffix(ae.Message, "...") {
		t.Fatalf("message %d bytes: %v", len(ae.Message), err)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := newTestClient(t, Options{BaseURL: url})
	_, err := c.GetContact(bg, testCI, Identity{})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	mustNotLeak(t, "error", err.Error())
	if strings.Contains(err.Error(), "/public/api/v1") || strings.Contains(err.Error(), "http://") {
		t.Errorf("error quotes the URL: %v", err)
	}
	if !strings.Contains(err.Error(), "{source_id}") {
		t.Errorf("error does not name the route: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{Timeout: 5 * time.Second}, hang)
		start := time.Now()
		_, err := c.GetContact(bg, testCI, Identity{})
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("gave up after %v of fake time, want the 5s timeout", got)
		}
		if n := len(ft.attempts()); n != 1 {
			t.Errorf("%d attempts", n)
		}
		mustNotLeak(t, "error", err.Error())
	})
}

func TestTimeoutCoversSlowBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slowBody := func(r *http.Request) (*http.Response, error) {
			resp, _ := reply(200, "")(r)
			resp.Body = ctxBody{r.Context()}
			return resp, nil
		}
		c, _, _ := newFakeClient(t, Options{Timeout: time.Second}, slowBody)
		_, err := c.GetInbox(bg, "i")
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
	})
}

// ctxBody is a response body that delivers nothing until its request ends.
type ctxBody struct{ ctx context.Context }

func (b ctxBody) Read([]byte) (int, error) { <-b.ctx.Done(); return 0, b.ctx.Err() }
func (b ctxBody) Close() error             { return nil }

func TestCallerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := newFakeClient(t, Options{}, hang)
		ctx, cancel := context.WithCancel(bg)
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		_, err := c.GetInbox(ctx, "i")
		var ae *APIError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || ae.Kind != KindCanceled {
			t.Fatalf("err = %v, want canceled", err)
		}
	})
}

func TestRedirects(t *testing.T) {
	other := &recorder{resps: []resp{ok(fixtures.Read(t, "api/inbox_show.json"))}}
	otherURL := newHTTPServer(t, other)

	mux := http.NewServeMux()
	mux.HandleFunc("/public/api/v1/inboxes/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+r.URL.Path, http.StatusFound)
	})
	mux.HandleFunc("/public/api/v1/inboxes/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/public/api/v1/inboxes/here", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/public/api/v1/inboxes/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	})
	mux.HandleFunc("/public/api/v1/inboxes/here", func(w http.ResponseWriter, r *http.Request) {
		w.Write(fixtures.Read(t, "api/inbox_show.json"))
	})
	c, _ := newTestClient(t, Options{BaseURL: newHTTPServer(t, mux)})

	if _, err := c.GetInbox(bg, "away"); !errors.Is(err, ErrRedirect) {
		t.Errorf("redirect to another host: err = %v, want ErrRedirect", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Errorf("other host received %d requests", n)
	}
	if _, err := c.GetInbox(bg, "loop"); !errors.Is(err, ErrRedirect) {
		t.Errorf("redirect loop: err = %v, want ErrRedirect", err)
	}
	if in, err := c.GetInbox(bg, "moved"); err != nil || in.Name != "Support API" {
		t.Errorf("same-host redirect: %+v, %v", in, err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no base URL", Options{}},
		{"ftp", Options{BaseURL: "ftp://chat.example.com"}},
		{"no host", Options{BaseURL: "https:///x"}},
		{"credentials", Options{BaseURL: "https://user:hunter2@chat.example.com"}},
		{"query", Options{BaseURL: "https://chat.example.com/?token=hunter2"}},
		{"negative timeout", Options{BaseURL: "https://chat.example.com", Timeout: -1}},
		{"max below base", Options{BaseURL: "https://chat.example.com", RetryBaseDelay: time.Minute}},
	}
	for _, tt := range tests {
		_, err := New(tt.opts)
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error echoes the URL: %v", tt.name, err)
		}
	}
	_, err := New(Options{BaseURL: "ftp://x", Timeout: -1})
	if err == nil || !strings.Contains(err.Error(), "scheme") || !strings.Contains(err.Error(), "negative") {
		t.Errorf("not every problem reported: %v", err)
	}
}

func TestClientsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Options{BaseURL: "https://a.test", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{BaseURL: "https://b.test", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if a.m.requests != b.m.requests {
		t.Error("second client did not adopt the registered collectors")
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := newFakeClient(t, Options{Logger: log, MaxAttempts: 2}, reply(503, ""), fail(resetErr), reply(404, ""))
		c.GetContact(bg, testCI, Identity{IdentifierHash: "hash-secret"})
		c.GetContact(bg, testCI, Identity{IdentifierHash: "hash-secret"})
	})
	out := buf.String()
	if !strings.Contains(out, "GET /inboxes/{inbox}/contacts/{source_id}") || !strings.Contains(out, "retry") {
		t.Errorf("logs lack the route or the retry:\n%s", out)
	}
	mustNotLeak(t, "log", out)
	if strings.Contains(out, "hash-secret") {
		t.Errorf("log leaks the identifier hash:\n%s", out)
	}
}
