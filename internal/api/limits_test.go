package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// blockingUpstream is a Chatwoot whose answers wait: each request reports
// its path on arrived, then its body is read and it is answered once
// release is closed or its context ends, as a real transport would.
type blockingUpstream struct {
	arrived chan string
	release chan struct{}
}

func newBlockingUpstream() *blockingUpstream {
	return &blockingUpstream{arrived: make(chan string, 16), release: make(chan struct{})}
}

func (u *blockingUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	u.arrived <- req.URL.Path
	if req.Body != nil {
		if _, err := io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	select {
	case <-u.release:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	rec := httptest.NewRecorder()
	respondJSON(http.StatusOK, `{"ok":true}`)(rec, req, nil)
	return rec.Result(), nil
}

const conversationPath = "/public/api/v1/inboxes/in/contacts/src/conversations/1"

// TestConcurrencyBound: past MaxConcurrent requests in flight, a request is
// refused at once with 503, Retry-After and the JSON error body, and
// counted; health, readiness and metrics still answer.
func TestConcurrencyBound(t *testing.T) {
	up := newBlockingUpstream()
	s, _ := newUpstreamServer(t, nil, func(o *Options) {
		o.Chatwoot = newClient(t, "http://chatwoot.test", &http.Client{Transport: up})
		o.MaxConcurrent = 2
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "# metrics\n") })
	})
	get := func() *http.Request {
		return request(http.MethodGet, conversationPath, "", "Authorization", "Bearer "+apiToken)
	}
	done := make(chan *httptest.ResponseRecorder, 4)
	for range 2 {
		go func() { done <- serve(s, get()) }()
	}
	<-up.arrived
	<-up.arrived

	go func() { done <- serve(s, get()) }()
	select {
	case rec := <-done:
		wantError(t, rec, http.StatusServiceUnavailable, CodeUnavailable)
		if rec.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	case <-up.arrived:
		t.Fatal("a request past the bound reached Chatwoot")
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if rec := serve(s, request(http.MethodGet, path, "")); rec.Code != http.StatusOK {
			t.Errorf("%s while saturated: %d", path, rec.Code)
		}
	}
	if n := testutil.ToFloat64(s.m.overloaded); n != 1 {
		t.Fatalf("refusals = %v, want 1", n)
	}
	if n := testutil.ToFloat64(s.m.inflight); n != 2 {
		t.Fatalf("in flight = %v, want 2", n)
	}

	close(up.release)
	for range 2 {
		if rec := <-done; rec.Code != http.StatusOK {
			t.Fatalf("admitted request: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := serve(s, get()); rec.Code != http.StatusOK {
		t.Fatalf("after the load: %d", rec.Code)
	}
	if n := testutil.ToFloat64(s.m.inflight); n != 0 {
		t.Fatalf("in flight after the load = %v", n)
	}
}

// TestBodyReadDeadline: a JSON body that stops arriving is cut off after
// BodyReadTimeout with 408, while a multipart upload on the proxied API
// that started earlier at the same pace is not, and a JSON request whose
// body arrived whole is not cancelled when its answer comes later than
// BodyReadTimeout. Ordering by events stands in for time: the trickled
// JSON request starts after the other two, so it is cut off after their
// short deadline would have passed.
func TestBodyReadDeadline(t *testing.T) {
	up := newBlockingUpstream()
	s, _ := newUpstreamServer(t, nil, func(o *Options) {
		o.Chatwoot = newClient(t, "http://chatwoot.test", &http.Client{Transport: up})
		o.BodyReadTimeout = 50 * time.Millisecond
		o.UploadReadTimeout = time.Hour
	})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// A: a whole JSON body; Chatwoot answers only after C was cut off.
	answerA := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+conversationPath+"/toggle_typing", strings.NewReader(`{"typing_status":"on"}`))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("A: %v", err)
		}
		answerA <- resp
	}()
	if p := <-up.arrived; !strings.HasSuffix(p, "/toggle_typing") {
		t.Fatalf("arrived %s", p)
	}

	// B: a multipart upload, half sent.
	multipart := "--XB\r\nContent-Disposition: form-data; name=\"submitted_values\"\r\n\r\nhello\r\n--XB--\r\n"
	b := dialRaw(t, ts, http.MethodPatch, conversationPath+"/messages/5", "multipart/form-data; boundary=XB", len(multipart))
	io.WriteString(b, multipart[:20])
	if p := <-up.arrived; !strings.HasSuffix(p, "/messages/5") {
		t.Fatalf("arrived %s", p)
	}

	// C: a JSON body that stops after 5 of its 100 bytes.
	c := dialRaw(t, ts, http.MethodPost, "/v1/subscriptions", "application/json", 100)
	io.WriteString(c, `{"pub`)
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // fails, rather than hangs, without a body deadline
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("trickled JSON body not cut off: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("trickled JSON body: %d, want 408", resp.StatusCode)
	}

	close(up.release)
	if resp := <-answerA; resp == nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("A, answered after the body deadline: %v", resp)
	}
	io.WriteString(b, multipart[20:])
	resp, err = http.ReadResponse(bufio.NewReader(b), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("multipart upload at the same pace: %v %v", resp, err)
	}
}

// dialRaw opens a connection to ts and sends a request head announcing a
// body of n bytes; the caller writes the body.
func dialRaw(t *testing.T, ts *httptest.Server, method, path, contentType string, n int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		method, path, apiToken, contentType, n)
	return conn
}
