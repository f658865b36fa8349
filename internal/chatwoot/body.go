package chatwoot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// errNotReplayable stops a retry whose body cannot be produced again; the
// retry logic checks body.replayable first, so it is only a safety net.
var errNotReplayable = errors.New("chatwoot: request body cannot be sent twice")

// errAbandoned is what a reader left behind by a newer attempt returns.
var errAbandoned = errors.New("chatwoot: request body superseded by a retry")

// body produces a request body once per attempt. open is called
// sequentially, one call per attempt; each call ends the previous instance
// before rewinding, so a transport still reading an old attempt's body never
// races with the new one. finish, if set, runs once after the last attempt.
type body struct {
	length     int64 // -1: unknown (chunked)
	replayable bool
	open       func() (io.ReadCloser, error)
	finish     func()
}

func (b *body) done() {
	if b != nil && b.finish != nil {
		b.finish()
	}
}

func bytesBody(b []byte) *body {
	return &body{
		length:     int64(len(b)),
		replayable: true,
		open:       func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
	}
}

// readerBody wraps a caller's body for Client.Do: in-memory and seekable
// readers can be replayed, anything else is sent once. Like http.Client, the
// call closes r if it is an io.Closer.
func readerBody(r io.Reader) (*body, error) {
	switch b := r.(type) {
	case nil:
		return nil, nil
	case *bytes.Buffer:
		return bytesBody(b.Bytes()), nil
	case io.ReadSeeker:
		return seekerBody(b)
	default:
		return oneShotBody(r), nil
	}
}

func seekerBody(s io.ReadSeeker) (*body, error) {
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return oneShotBody(s), nil
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("chatwoot: measure request body: %w", err)
	}
	if _, err := s.Seek(start, io.SeekStart); err != nil {
		return nil, fmt.Errorf("chatwoot: rewind request body: %w", err)
	}
	var prev *guardedReader
	open := func() (io.ReadCloser, error) {
		if prev != nil {
			prev.abandon()
			if _, err := s.Seek(start, io.SeekStart); err != nil {
				return nil, fmt.Errorf("chatwoot: rewind request body: %w", err)
			}
		}
		prev = &guardedReader{r: s}
		return prev, nil
	}
	finish := func() {
		if prev != nil {
			prev.abandon()
		}
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
	return &body{length: end - start, replayable: true, open: open, finish: finish}, nil
}

func oneShotBody(r io.Reader) *body {
	used := false
	open := func() (io.ReadCloser, error) {
		if used {
			return nil, errNotReplayable
		}
		used = true
		if rc, ok := r.(io.ReadCloser); ok {
			return rc, nil
		}
		return io.NopCloser(r), nil
	}
	finish := func() { // never sent: close it as the transport would have
		if c, ok := r.(io.Closer); ok && !used {
			c.Close()
		}
	}
	return &body{length: -1, open: open, finish: finish}
}

// guardedReader lets the client take a reader back from a transport that may
// still be reading it: after abandon returns, Read never touches r again.
// Close does not close r; the caller owns it.
type guardedReader struct {
	mu        sync.Mutex
	r         io.Reader
	abandoned bool
}

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abandoned {
		return 0, errAbandoned
	}
	return g.r.Read(p)
}

func (g *guardedReader) Close() error { return nil }

func (g *guardedReader) abandon() {
	g.mu.Lock()
	g.abandoned = true
	g.mu.Unlock()
}
