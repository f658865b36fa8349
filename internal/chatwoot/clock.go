package chatwoot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// errAttemptTimeout is the cause of an attempt's context ended by the
// per-attempt timeout.
var errAttemptTimeout = fmt.Errorf("chatwoot: per-attempt timeout: %w", context.DeadlineExceeded)

// attemptClock is the per-attempt timeout of one attempt and the context
// it bounds. For a request without a body or with a replayable one, the
// timeout runs from the start of the attempt. A one-shot body is streamed
// as it arrives (a client's upload relayed to Chatwoot): its timeout starts
// only when the transport has read it to its end, failed reading it or
// closed it, or a response came, whichever is first. The upload's own time
// is then bounded by the caller's context, and the timeout bounds only
// Chatwoot's answer. Either way the timeout keeps running until end.
type attemptClock struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timeout  time.Duration
	streamed bool // the timeout starts at the end of the body

	mu      sync.Mutex
	started bool
	timer   *time.Timer
}

func (c *Client) newClock(ctx context.Context, r *request) *attemptClock {
	actx, cancel := context.WithCancelCause(ctx)
	k := &attemptClock{ctx: actx, cancel: cancel, timeout: c.timeout,
		streamed: r.body != nil && !r.body.replayable}
	if !k.streamed {
		k.start()
	}
	return k
}

// watch makes the end of req's body start the timeout.
func (k *attemptClock) watch(req *http.Request) {
	if !k.streamed {
		return
	}
	if req.Body == nil || req.Body == http.NoBody {
		k.start()
		return
	}
	req.Body = &watchedBody{ReadCloser: req.Body, end: k.start}
}

// start starts the timeout, once; it is a no-op after end.
func (k *attemptClock) start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.started {
		return
	}
	k.started = true
	k.timer = time.AfterFunc(k.timeout, func() { k.cancel(errAttemptTimeout) })
}

// end stops the timeout and ends the attempt's context.
func (k *attemptClock) end() {
	k.mu.Lock()
	k.started = true
	if k.timer != nil {
		k.timer.Stop()
	}
	k.mu.Unlock()
	k.cancel(context.Canceled)
}

// cause returns err, or context.DeadlineExceeded when the attempt's timeout
// ended it: the transport reports the end of a cancelled context as
// context.Canceled.
func (k *attemptClock) cause(err error) error {
	if context.Cause(k.ctx) == errAttemptTimeout {
		return context.DeadlineExceeded
	}
	return err
}

// watchedBody calls end when the transport is done with a request body: at
// its end, on a read error, or when it closes it.
type watchedBody struct {
	io.ReadCloser
	end func()
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}
