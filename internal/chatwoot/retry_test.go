package chatwoot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

func TestBackoffBounds(t *testing.T) {
	p := retryPolicy{base: time.Second, max: 8 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 9: 8 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter", n)
		}
	}
}

var (
	dialErr  = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	resetErr = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
)

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name     string
		call     func(*Client) error
		script   []func(*http.Request) (*http.Response, error)
		attempts int
		want     error // nil: success
		reason   Kind  // retries counted under this reason
	}{
		{"GET 503 then ok", getInbox, steps(reply(503, ""), reply(503, ""), reply(200, inboxJSON)), 3, nil, KindUpstream},
		{"GET 502/504 until attempts run out", getInbox, steps(reply(502, ""), reply(504, "")), 4, ErrUpstream, KindUpstream},
		{"GET 500 not retried", getInbox, steps(reply(500, "")), 1, ErrUpstream, ""},
		{"GET 404 not retried", getInbox, steps(reply(404, "")), 1, ErrNotFound, ""},
		{"GET 422 not retried", getInbox, steps(reply(422, "")), 1, ErrInvalid, ""},
		{"GET 429 then ok", getInbox, steps(reply(429, "Retry later\n"), reply(200, inboxJSON)), 2, nil, KindRateLimited},
		{"GET connection reset retried", getInbox, steps(fail(resetErr), reply(200, inboxJSON)), 2, nil, KindUnreachable},
		{"GET timeout not retried", getInbox, steps(hang), 1, ErrTimeout, ""},
		{"POST 503 not retried", createMessage, steps(reply(503, "")), 1, ErrUpstream, ""},
		{"POST 500 not retried", createMessage, steps(reply(500, "")), 1, ErrUpstream, ""},
		{"POST timeout not retried", createMessage, steps(hang), 1, ErrTimeout, ""},
		{"POST connection reset not retried", createMessage, steps(fail(resetErr)), 1, ErrUnreachable, ""},
		{"POST dial error retried", createMessage, steps(fail(dialErr), reply(200, messageJSON)), 2, nil, KindUnreachable},
		{"POST 429 retried", createMessage, steps(reply(429, ""), reply(429, ""), reply(200, messageJSON)), 3, nil, KindRateLimited},
		{"PATCH 429 until attempts run out", updateContact, steps(reply(429, "")), 4, ErrRateLimited, KindRateLimited},
		{"POST no-body 429 retried", toggleStatus, steps(reply(429, ""), reply(200, conversationJSON)), 2, nil, KindRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, ft, _ := newFakeClient(t, Options{MaxAttempts: 4}, tt.script...)
				err := tt.call(c)
				if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				calls := ft.attempts()
				if len(calls) != tt.attempts {
					t.Fatalf("%d attempts, want %d", len(calls), tt.attempts)
				}
				for i := 1; i < len(calls); i++ {
					if !bytes.Equal(calls[i].body, calls[0].body) {
						t.Errorf("attempt %d sent %q, first sent %q", i+1, calls[i].body, calls[0].body)
					}
					gap, max := calls[i].at.Sub(calls[i-1].at), time.Second<<(i-1)
					if gap < max/2 || gap > max {
						t.Errorf("gap before attempt %d = %v, want backoff within [%v, %v]", i+1, gap, max/2, max)
					}
				}
				retries := 0.0
				if tt.reason != "" {
					retries = counter(t, c.m.retries.WithLabelValues(string(tt.reason)))
				}
				if retries != float64(tt.attempts-1) {
					t.Errorf("retries{%s} = %v, want %d", tt.reason, retries, tt.attempts-1)
				}
			})
		})
	}
}

const (
	inboxJSON        = `{"identifier":"i","name":"n"}`
	messageJSON      = `{"id":1,"content":"hi","message_type":0}`
	conversationJSON = `{"id":1,"status":"resolved"}`
)

func steps(s ...func(*http.Request) (*http.Response, error)) []func(*http.Request) (*http.Response, error) {
	return s
}

func getInbox(c *Client) error { _, err := c.GetInbox(bg, "i"); return err }
func createMessage(c *Client) error {
	_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Content: "hi", EchoID: "e"})
	return err
}
func updateContact(c *Client) error {
	_, err := c.UpdateContact(bg, testCI, ContactParams{Name: "x"})
	return err
}
func toggleStatus(c *Client) error { _, err := c.ToggleStatus(bg, testCI, 1); return err }

func TestRetryStopsAtCallerDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 4}, reply(503, ""))
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		defer cancel()
		_, err := c.GetInbox(ctx, "i")
		// The backoff (at least 500ms) does not fit: the 503 is returned as is
		// rather than sleeping into a timeout.
		if !errors.Is(err, ErrUpstream) || len(ft.attempts()) != 1 {
			t.Fatalf("err = %v after %d attempts", err, len(ft.attempts()))
		}
	})
}

func TestRetryCanceledDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 4}, reply(503, ""))
		ctx, cancel := context.WithCancel(bg)
		go func() {
			time.Sleep(100 * time.Millisecond)
			cancel()
		}()
		_, err := c.GetInbox(ctx, "i")
		if !errors.Is(err, context.Canceled) || len(ft.attempts()) != 1 {
			t.Fatalf("err = %v after %d attempts", err, len(ft.attempts()))
		}
	})
}

func TestMultipartReplayedOn429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 3}, reply(429, ""), reply(200, messageJSON))
		file := strings.NewReader("0123456789")
		file.Seek(2, io.SeekStart) // the attachment starts where the reader is
		_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Content: "c", Attachments: []Attachment{
			{Filename: "f.bin", Body: file},
			{Filename: "g.txt", Body: bytes.NewReader([]byte("second"))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		calls := ft.attempts()
		if len(calls) != 2 || !bytes.Equal(calls[0].body, calls[1].body) {
			t.Fatalf("%d attempts; bodies differ:\n%s\n---\n%s", len(calls), calls[0].body, calls[len(calls)-1].body)
		}
		if !bytes.Contains(calls[1].body, []byte("\r\n\r\n23456789\r\n")) || !bytes.Contains(calls[1].body, []byte("second")) {
			t.Errorf("replayed body lacks the attachments:\n%s", calls[1].body)
		}
	})
}

// A server may answer 429 before reading the body; the retry must stop the
// first writer before rewinding the attachments and writing them again.
func TestMultipartReplayAfterUnreadBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 3}, reply(429, ""), reply(200, messageJSON))
		ft.unread = map[int]bool{1: true}
		_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Attachments: []Attachment{
			{Filename: "f.bin", Body: strings.NewReader(strings.Repeat("0123456789", 1000))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		calls := ft.attempts()
		if len(calls) != 2 || !bytes.Contains(calls[1].body, []byte(strings.Repeat("0123456789", 1000)+"\r\n--")) {
			t.Fatalf("%d attempts; second body %d bytes", len(calls), len(calls[len(calls)-1].body))
		}
	})
}

func TestMultipartFromStreamNotReplayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, ft, _ := newFakeClient(t, Options{MaxAttempts: 3}, reply(429, ""), reply(200, messageJSON))
		_, err := c.CreateMessage(bg, testCI, 1, MessageParams{Attachments: []Attachment{
			{Filename: "f", Body: io.MultiReader(strings.NewReader("stream"))},
		}})
		if !errors.Is(err, ErrRateLimited) || len(ft.attempts()) != 1 {
			t.Fatalf("err = %v after %d attempts", err, len(ft.attempts()))
		}
	})
}

func TestRealDialErrorRetriedForPOST(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, _ := newTestClient(t, Options{BaseURL: url, MaxAttempts: 3, RetryBaseDelay: time.Millisecond, RetryMaxDelay: time.Millisecond})
	err := createMessage(c)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v", err)
	}
	if got := counter(t, c.m.retries.WithLabelValues("unreachable")); got != 2 {
		t.Errorf("retries = %v, want 2 (a refused dial sent nothing)", got)
	}
}

func TestLimiterSharedAcrossClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := rate.NewLimiter(rate.Every(time.Second), 1)
		a, _, _ := newFakeClient(t, Options{Limiter: shared}, reply(200, inboxJSON))
		b, _, _ := newFakeClient(t, Options{Limiter: shared}, reply(200, inboxJSON))
		if a.Limiter() != shared || b.Limiter() != shared {
			t.Fatal("limiter not used as given")
		}
		start := time.Now()
		for _, c := range []*Client{a, b, a, b} {
			if err := getInbox(c); err != nil {
				t.Fatal(err)
			}
		}
		// One token per second shared by both: four calls need three refills.
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("four calls took %v of fake time, want 3s", got)
		}
		if s := waitSum(t, a) + waitSum(t, b); s != 3 {
			t.Errorf("limiter wait recorded %vs, want 3s", s)
		}
	})
}

func TestLimiterWaitBoundedByDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(rate.Every(time.Minute), 1)
		c, ft, _ := newFakeClient(t, Options{Limiter: lim}, reply(200, inboxJSON))
		if err := getInbox(c); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		_, err := c.GetInbox(ctx, "i")
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrNotSent) || len(ft.attempts()) != 1 {
			t.Fatalf("err = %v after %d attempts", err, len(ft.attempts()))
		}
	})
}

func waitSum(t *testing.T, c *Client) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.m.limiterWait.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleSum()
}

func TestNewLimiterDefaults(t *testing.T) {
	lim := NewLimiter(0)
	if lim.Limit() != 45 || lim.Burst() != 5 {
		t.Errorf("default limiter = %v/s burst %d, want 45/s burst 5", lim.Limit(), lim.Burst())
	}
	if l := NewLimiter(600); l.Limit() != 9 || l.Burst() != 1 {
		t.Errorf("600/min limiter = %v/s burst %d", l.Limit(), l.Burst())
	}
}
