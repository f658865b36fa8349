package chatwoot

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

// countingLimiter admits while open, counting waits.
type countingLimiter struct {
	waits  atomic.Int64
	closed atomic.Bool
}

func (l *countingLimiter) Wait(context.Context) error {
	l.waits.Add(1)
	if l.closed.Load() {
		return errors.New("budget spent")
	}
	return nil
}

// TestSharedLimiterPacesEveryAttempt: the deployment-wide budget is waited
// for before every request, and a refusal stops the request before it
// reaches Chatwoot.
func TestSharedLimiterPacesEveryAttempt(t *testing.T) {
	shared := &countingLimiter{}
	c, rec, _ := newServerClient(t, Options{SharedLimiter: shared}, ok([]byte(`{}`)), ok([]byte(`{}`)))
	for range 2 {
		resp, err := c.Do(bg, "POST", "/inboxes/"+testInboxEsc+"/contacts", strings.NewReader(`{}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if shared.waits.Load() != 2 || len(rec.requests()) != 2 {
		t.Fatalf("waits %d for %d requests, want one each", shared.waits.Load(), len(rec.requests()))
	}
	shared.closed.Store(true)
	if _, err := c.Do(bg, "POST", "/inboxes/"+testInboxEsc+"/contacts", strings.NewReader(`{}`), nil); err == nil {
		t.Fatal("a request went out past a refused shared budget")
	}
	if len(rec.requests()) != 2 {
		t.Fatalf("%d requests reached Chatwoot, want 2", len(rec.requests()))
	}
}
