package chatwoottest

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFaults(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		tests := []struct {
			name       string
			route      string
			fault      Fault
			path       string
			wantStatus int
			wantCT     string
			wantBody   string
		}{
			{"429 like Rack::Attack", RouteInboxShow, Fault{Status: 429, Count: 1}, inboxPath, 429, "text/plain", "Retry later\n"},
			{"500 JSON", RouteInboxShow, Fault{Status: 500, Count: 1}, inboxPath, 500, "application/json; charset=utf-8", `{"status":500,"error":"Internal Server Error"}`},
			{"502 text", AllRoutes, Fault{Status: 502, Count: 1}, inboxPath, 502, "text/plain; charset=utf-8", "Bad Gateway\n"},
			{"garbage", RouteInboxShow, Fault{Garbage: true, Count: 1}, inboxPath, 200, "application/json; charset=utf-8", GarbageBody},
			{"other route unaffected", RouteContactShow, Fault{Status: 500, Count: 1}, inboxPath, 200, "application/json; charset=utf-8", ""},
		}
		for _, tt := range tests {
			e.fake.ClearFaults()
			e.fake.SetFault(tt.route, tt.fault)
			r := e.get(tt.path)
			if r.status != tt.wantStatus || r.header.Get("Content-Type") != tt.wantCT || (tt.wantBody != "" && string(r.body) != tt.wantBody) {
				t.Errorf("%s: got %d %q %q", tt.name, r.status, r.header.Get("Content-Type"), r.body)
			}
		}
		e.fake.ClearFaults()
		e.fake.SetFault(RouteInboxShow, Fault{Status: 503, Count: 2})
		for i, want := range []int{503, 503, 200} {
			if r := e.get(inboxPath); r.status != want {
				t.Errorf("request %d with Count 2: %d, want %d", i, r.status, want)
			}
		}
	})
}

func TestFaultDelay(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		e.fake.SetFault(AllRoutes, Fault{Delay: 7 * time.Second})
		start := time.Now()
		if r := e.get(inboxPath); r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		if d := time.Since(start); d != 7*time.Second {
			t.Errorf("delayed by %v, want 7s", d)
		}
	})
}

func TestFaultOnCable(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.SetFault(RouteCable, Fault{Status: 503, Count: 1})
		d := websocket.Dialer{NetDialContext: e.ln.DialContext}
		if _, resp, err := d.Dial("ws://chatwoot.test/cable", nil); err == nil || resp == nil || resp.StatusCode != 503 {
			t.Fatalf("faulted handshake: err=%v resp=%v", err, resp)
		}
		ws, _, err := d.Dial("ws://chatwoot.test/cable", nil)
		if err != nil {
			t.Fatalf("second handshake: %v", err)
		}
		ws.Close()
	})
}

func TestRateLimit(t *testing.T) {
	restBubble(t, Options{RateLimitPerMinute: 3}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute))) // window start
		for i, want := range []int{200, 200, 404, 429, 429} {
			path := inboxPath
			if i == 2 {
				path = "/nowhere" // every request counts
			}
			r := e.get(path)
			if r.status != want {
				t.Errorf("request %d: %d, want %d", i, r.status, want)
			}
			if want == 429 && (string(r.body) != "Retry later\n" || r.header.Get("Retry-After") != "") {
				t.Errorf("throttled answer %q retry-after=%q", r.body, r.header.Get("Retry-After"))
			}
		}
		time.Sleep(time.Minute)
		if r := e.get(inboxPath); r.status != 200 {
			t.Errorf("next window: %d", r.status)
		}
		e.fake.SetRateLimit(0)
		for range 5 {
			if r := e.get(inboxPath); r.status != 200 {
				t.Fatalf("limit disabled: %d", r.status)
			}
		}
		st := e.fake.Stats().Requests
		if st[RouteInboxShow] != 10 || st[RouteNotFound] != 1 {
			t.Errorf("Requests = %v", st)
		}
	})
}

func TestCORSPreflight(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		req, _ := http.NewRequest(http.MethodOptions, "http://chatwoot.test"+inboxPath+"/contacts", nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("preflight %d %v", resp.StatusCode, resp.Header)
		}
	})
}
