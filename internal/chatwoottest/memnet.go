package chatwoottest

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// MemListener is an in-memory net.Listener: every Dial creates a net.Pipe
// whose server end Accept returns. net.Pipe honours deadlines and blocks on
// channels only, so servers and clients over a MemListener run inside a
// testing/synctest bubble.
type MemListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// NewMemListener returns an open MemListener.
func NewMemListener() *MemListener {
	return &MemListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next Dial.
func (l *MemListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial. Connections already made stay open.
func (l *MemListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr returns a placeholder address.
func (l *MemListener) Addr() net.Addr { return memAddr{} }

// Dial connects to the listener; it waits until Accept takes the connection.
func (l *MemListener) Dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
	case <-l.done:
	}
	client.Close()
	server.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, &net.OpError{Op: "dial", Net: "mem", Err: ErrClosed}
}

// DialContext is Dial with net.Dialer's signature (network and address are
// ignored), for websocket.Dialer.NetDialContext and http.Transport.DialContext.
func (l *MemListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	return l.Dial(ctx)
}

// HTTPClient returns a client whose connections go through the listener,
// whatever the URL's host. Call CloseIdleConnections on its transport
// before a synctest bubble ends.
func (l *MemListener) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: l.DialContext}}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }
