package chatwoot

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// trickle is a one-shot body that sends one byte a second for n seconds,
// then stalls until release is closed when stall is set.
type trickle struct {
	n       int
	stall   bool
	release chan struct{}
}

func (b *trickle) Read(p []byte) (int, error) {
	if b.n == 0 {
		if b.stall {
			<-b.release
			return 0, errors.New("released")
		}
		return 0, io.EOF
	}
	time.Sleep(time.Second)
	b.n--
	p[0] = 'x'
	return 1, nil
}

// afterBody reads the whole request body while the request lives, then
// answers with next, like a server that answers once the upload is in.
func afterBody(next func(*http.Request) (*http.Response, error)) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) {
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, r.Body)
			r.Body.Close()
			read <- err
		}()
		select {
		case err := <-read:
			if err != nil {
				return nil, err
			}
			return next(r)
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
}

// newStreamClient is a client with a 5 s per-attempt timeout whose
// transport reads the body itself (afterBody).
func newStreamClient(t *testing.T, step func(*http.Request) (*http.Response, error)) *Client {
	t.Helper()
	c, ft, _ := newFakeClient(t, Options{Timeout: 5 * time.Second}, afterBody(step))
	ft.unread = map[int]bool{1: true}
	return c
}

const streamPath = "/inboxes/i/contacts/s/conversations/1/messages"

// A streamed upload longer than the per-attempt timeout is bounded by the
// caller, not by the timeout: the timeout starts at the end of the body.
func TestStreamedBodyOutlastsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStreamClient(t, reply(200, messageJSON))
		resp, err := c.Do(bg, "POST", streamPath, &trickle{n: 20}, nil)
		if err != nil {
			t.Fatalf("20 s upload with a 5 s timeout: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
}

// Chatwoot not answering within the timeout after the body ended still
// times out, the timeout counted from the end of the body.
func TestStreamedBodyTimeoutAfterEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStreamClient(t, hang)
		start := time.Now()
		_, err := c.Do(bg, "POST", streamPath, &trickle{n: 10}, nil)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if got := time.Since(start); got != 15*time.Second {
			t.Errorf("gave up after %v of fake time, want 10 s of body + the 5 s timeout", got)
		}
	})
}

// The timeout keeps running while the response body is read.
func TestStreamedBodyTimeoutCoversResponse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slowBody := func(r *http.Request) (*http.Response, error) {
			resp, _ := reply(200, "")(r)
			resp.Body = ctxBody{r.Context()}
			return resp, nil
		}
		c := newStreamClient(t, slowBody)
		resp, err := c.Do(bg, "POST", streamPath, &trickle{n: 10}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reading the response: %v, want the attempt's timeout", err)
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("response read cut after %v, want 5 s", got)
		}
	})
}

// A body that stalls for ever is ended by the caller's context.
func TestStreamedBodyStallEndsWithCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newStreamClient(t, reply(200, messageJSON))
		body := &trickle{n: 2, stall: true, release: make(chan struct{})}
		defer close(body.release)
		ctx, cancel := context.WithTimeout(bg, time.Minute)
		defer cancel()
		start := time.Now()
		_, err := c.Do(ctx, "POST", streamPath, body, nil)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("gave up after %v of fake time, want the caller's minute", got)
		}
	})
}
