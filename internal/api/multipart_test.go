package api

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// stallingChatwoot is a Chatwoot that stops reading a POST body: it reads
// read bytes of it, then fails with err, or, when err is nil, waits until
// the attempt's timeout ends it. With until set, it reads up to the end of
// the first occurrence of until instead. Once heal is called it reads
// bodies whole and answers 200 (a message).
type stallingChatwoot struct {
	read  int64
	until string
	err   error

	mu     sync.Mutex
	healed bool
	posts  int
	lists  int
}

func (c *stallingChatwoot) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	healed := c.healed
	if req.Method == http.MethodPost {
		c.posts++
	} else {
		c.lists++
	}
	c.mu.Unlock()
	if healed || req.Method != http.MethodPost {
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
		}
		return jsonResponse(req, 200, `{"id":7,"content":"hi","message_type":0,"created_at":1}`), nil
	}
	io.CopyN(io.Discard, req.Body, c.read)
	readUntil(req.Body, c.until)
	if c.err != nil {
		return nil, c.err
	}
	<-req.Context().Done()
	return nil, req.Context().Err()
}

func (c *stallingChatwoot) heal() {
	c.mu.Lock()
	c.healed = true
	c.mu.Unlock()
}

func (c *stallingChatwoot) counts() (posts, lists int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.posts, c.lists
}

// readUntil reads r up to the end of the first occurrence of s.
func readUntil(r io.Reader, s string) {
	var seen []byte
	for b := make([]byte, 1); s != "" && !strings.HasSuffix(string(seen), s); {
		if _, err := r.Read(b); err != nil {
			return
		}
		seen = append(seen, b[0])
	}
}

// jsonResponse is a Chatwoot answer built in process.
func jsonResponse(req *http.Request, status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: req, ContentLength: int64(len(body))}
}

// TestMultipartUpstreamGone: a multipart message or contact create whose
// Chatwoot call ends before reading the whole body (connection refused,
// reset mid-body, attempt timeout during a slow upload) is answered, and
// its slot freed, instead of waiting for ever on the body it streams. In
// the synctest bubble, a handler blocked for ever is a deadlock: the test
// fails at once.
func TestMultipartUpstreamGone(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	chatwoots := []struct {
		name   string
		cw     *stallingChatwoot
		status int
	}{
		{"connection refused", &stallingChatwoot{err: refused}, 502},
		{"reset mid-body", &stallingChatwoot{read: 100, err: reset}, 502},
		{"attempt timeout mid-body", &stallingChatwoot{read: 100}, 504},
	}
	body, ct := multipartBody(t, map[string]string{"content": "hi", "identifier": "u1"},
		map[string]string{"a.bin": strings.Repeat("x", 64<<10)})
	for _, tt := range chatwoots {
		for _, target := range []string{messagesPath("inboxA", "src1", 1), "/public/api/v1/inboxes/inboxA/contacts"} {
			t.Run(tt.name+" "+target, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: tt.cw}),
						APITokens: []string{apiToken}, InboxHMACTokens: map[string]string{"inboxA": "hmac"}})
					rec := serve(s, request("POST", target, string(body), "Content-Type", ct))
					wantError(t, rec, tt.status, CodeUpstream, "src1", "inboxA")
					if n := len(s.inflight); n != 0 {
						t.Errorf("%d requests still hold a slot", n)
					}
				})
			})
		}
	}
}

// TestMultipartKeyedSendCutOff: a keyed multipart send whose upload the
// Chatwoot call cut off (its timeout, before the closing boundary) cannot
// have created the message: the retry posts again at once, without a
// lookup or a 503. Cut off in the client's parts or in the fields the relay
// appends (after the attempt was recorded), it is the same.
func TestMultipartKeyedSendCutOff(t *testing.T) {
	for _, cw := range []*stallingChatwoot{{read: 100}, {until: `name="echo_id"`}} {
		t.Run(cw.until, func(t *testing.T) { testMultipartKeyedSendCutOff(t, cw) })
	}
}

func testMultipartKeyedSendCutOff(t *testing.T, cw *stallingChatwoot) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: cw}),
			APITokens: []string{apiToken}, Store: openStore(t)})
		body, ct := multipartBody(t, map[string]string{"content": "hi"}, map[string]string{"a.bin": strings.Repeat("x", 4<<10)})
		send := func() int {
			return serve(s, request("POST", messagesPath("inboxA", "src1", 1), string(body),
				"Content-Type", ct, headerIdempotencyKey, "k")).Code
		}
		if code := send(); code != 504 {
			t.Fatalf("cut-off upload answered %d, want 504", code)
		}
		cw.heal()
		if code := send(); code != 200 {
			t.Errorf("retry answered %d, want 200 (posted again)", code)
		}
		if posts, lists := cw.counts(); posts != 2 || lists != 0 {
			t.Errorf("%d posts and %d lookups, want 2 posts and no lookup", posts, lists)
		}
	})
}

// deadlineConn stands for the connection under a request: the handler's
// read deadlines (through http.ResponseController) end a body read that
// stalls, as net/http's do.
type deadlineConn struct {
	*httptest.ResponseRecorder
	mu       sync.Mutex
	deadline time.Time
}

func (c *deadlineConn) SetReadDeadline(d time.Time) error {
	c.mu.Lock()
	c.deadline = d
	c.mu.Unlock()
	return nil
}

func (c *deadlineConn) readDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline
}

// stallingBody sends head, then nothing until the read deadline passes.
type stallingBody struct {
	head io.Reader
	conn *deadlineConn
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if n, err := b.head.Read(p); err != io.EOF {
		return n, err
	}
	for {
		d := b.conn.readDeadline()
		if !d.IsZero() && !time.Now().Before(d) {
			return 0, os.ErrDeadlineExceeded
		}
		time.Sleep(time.Second)
	}
}

// TestMultipartKeyedReadBound: reading a keyed multipart body under the
// key's lock (here to fingerprint a retry whose message the lookup found)
// ends with the upload deadline, which IdempotencyLockTTL covers; a body
// that stalls is 408 and frees the key.
func TestMultipartKeyedReadBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		body, ct := multipartBody(t, map[string]string{"content": "hi"}, map[string]string{"a.txt": "data"})
		send := func(rd io.Reader, conn *deadlineConn) {
			req := request("POST", path, "", "Content-Type", ct, headerIdempotencyKey, "k")
			req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
			e.srv.Handler().ServeHTTP(conn, req)
		}
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1, AfterHandling: true})
		send(bytes.NewReader(body), &deadlineConn{ResponseRecorder: httptest.NewRecorder()})
		conn := &deadlineConn{ResponseRecorder: httptest.NewRecorder()}
		start := time.Now()
		send(&stallingBody{head: bytes.NewReader(body[:bytes.Index(body, []byte("data"))+2]), conn: conn}, conn)
		wantError(t, conn.ResponseRecorder, 408, CodeInvalid)
		if end := start.Add(e.srv.opts.UploadReadTimeout); conn.readDeadline().After(end) {
			t.Errorf("body read deadline %v after the upload deadline %v", conn.readDeadline().Sub(start), e.srv.opts.UploadReadTimeout)
		}
		if e.srv.opts.IdempotencyLockTTL <= e.srv.opts.UploadReadTimeout+e.srv.opts.RequestTimeout+settleTimeout {
			t.Errorf("lock TTL %v does not cover a keyed upload", e.srv.opts.IdempotencyLockTTL)
		}
		rec := httptest.NewRecorder()
		send(bytes.NewReader(body), &deadlineConn{ResponseRecorder: rec})
		if rec.Code != 200 || rec.Header().Get(headerReplay) != "true" {
			t.Errorf("retry: %d %s, want the message found", rec.Code, rec.Body)
		}
	})
}

// tricklingBody sends data chunk bytes a second.
type tricklingBody struct {
	data  []byte
	chunk int
}

func (b *tricklingBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(time.Second)
	n := copy(p[:min(len(p), b.chunk)], b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestMultipartUploadBound: a streamed upload is bounded by
// UploadReadTimeout, not by the Chatwoot client's per-attempt timeout
// (15 s) nor by RequestTimeout: a 21 s keyed upload creates one message.
// An upload slower than UploadReadTimeout is cut off with 408 and nothing
// is created.
func TestMultipartUploadBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var posts, whole atomic.Int64
		tr := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			posts.Add(1)
			read := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, req.Body); read <- err }()
			select {
			case err := <-read:
				if err != nil {
					return nil, err
				}
				whole.Add(1)
				return jsonResponse(req, 200, `{"id":1,"content":"hi","message_type":0}`), nil
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		})
		s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: tr}),
			APITokens: []string{apiToken}, Store: openStore(t)})
		body, ct := multipartBody(t, map[string]string{"content": "hi"}, map[string]string{"a.bin": strings.Repeat("x", 20<<10)})
		send := func(rd io.Reader) *httptest.ResponseRecorder {
			req := request("POST", messagesPath("inboxA", "src1", 1), "", "Content-Type", ct, headerIdempotencyKey, "k")
			req.Body, req.ContentLength = io.NopCloser(rd), int64(len(body))
			return serve(s, req)
		}
		// 21 s of upload against the client's 15 s timeout.
		if rec := send(&tricklingBody{data: body, chunk: 1 << 10}); rec.Code != 200 || posts.Load() != 1 || whole.Load() != 1 {
			t.Errorf("21 s upload: %d %s, %d posts, %d whole; want 200 after 1 post, 1 whole", rec.Code, rec.Body, posts.Load(), whole.Load())
		}
		if rec := send(bytes.NewReader(body)); rec.Code != 200 || rec.Header().Get(headerReplay) != "true" || posts.Load() != 1 {
			t.Errorf("retry: %d, %d posts; want the replay of the first", rec.Code, posts.Load())
		}
	})
}

// TestMultipartUploadTooSlow: an upload slower than UploadReadTimeout is
// cut off with 408 at its read deadline and nothing is created.
func TestMultipartUploadTooSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var whole atomic.Int64
		tr := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			read := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, req.Body); read <- err }()
			select {
			case err := <-read:
				if err != nil {
					return nil, err
				}
				whole.Add(1)
				return jsonResponse(req, 200, `{"id":1,"content":"hi","message_type":0}`), nil
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		})
		s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: tr}),
			APITokens: []string{apiToken}, UploadReadTimeout: time.Minute})
		body, ct := multipartBody(t, map[string]string{"content": "hi"}, map[string]string{"a.bin": strings.Repeat("x", 100<<10)})
		conn := &deadlineConn{ResponseRecorder: httptest.NewRecorder()}
		req := request("POST", messagesPath("inboxA", "src1", 1), "", "Content-Type", ct)
		req.Body = io.NopCloser(&stallingBody{head: &tricklingBody{data: body[:len(body)/2], chunk: 1 << 10}, conn: conn})
		req.ContentLength = int64(len(body))
		s.Handler().ServeHTTP(conn, req)
		wantError(t, conn.ResponseRecorder, 408, CodeInvalid)
		if whole.Load() != 0 {
			t.Errorf("%d messages created by a cut-off upload", whole.Load())
		}
	})
}
