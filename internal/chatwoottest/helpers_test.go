package chatwoottest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"testing/synctest"

	"github.com/gorilla/websocket"
)

// testClient is a gorilla websocket client whose frames are collected by a
// reader goroutine.
type testClient struct {
	t      *testing.T
	ws     *websocket.Conn
	resp   *http.Response
	frames chan string
	ended  chan error
}

func dialClient(t *testing.T, dial func(context.Context, string, string) (net.Conn, error), url string, hdr http.Header) *testClient {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{ProtocolV1}}
	if dial != nil {
		d.NetDialContext = dial
	}
	ws, resp, err := d.Dial(url, hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &testClient{t: t, ws: ws, resp: resp, frames: make(chan string, 1<<16), ended: make(chan error, 1)}
	go c.readLoop()
	return c
}

func (c *testClient) readLoop() {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.ended <- err
			close(c.frames)
			return
		}
		c.frames <- string(b)
	}
}

func (c *testClient) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// drain returns the frames received so far; inside a bubble call it after
// synctest.Wait.
func (c *testClient) drain() []string {
	var out []string
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		default:
			return out
		}
	}
}

// next blocks for the next frame ("" when the connection ended).
func (c *testClient) next() string {
	return <-c.frames
}

func (c *testClient) close() {
	c.ws.Close()
	<-c.ended
}

// memClient dials the fake through ln inside a bubble.
func memClient(t *testing.T, ln *MemListener) *testClient {
	return dialClient(t, ln.DialContext, "ws://chatwoot.test/cable", nil)
}

// bubble runs f in a synctest bubble with a fake serving on a MemListener.
func bubble(t *testing.T, opts Options, f func(t *testing.T, fake *Server, ln *MemListener)) {
	synctest.Test(t, func(t *testing.T) {
		fake := New(opts)
		defer fake.Close() // also when f fails: no goroutine outlives the bubble
		ln := fake.ServeMem()
		f(t, fake, ln)
	})
}

func identifier(token string) string {
	return `{"channel":"RoomChannel","pubsub_token":"` + token + `"}`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func subscribeFrame(id string) string {
	return `{"command":"subscribe","identifier":` + quote(id) + `}`
}

func unsubscribeFrame(id string) string {
	return `{"command":"unsubscribe","identifier":` + quote(id) + `}`
}

func presenceFrame(id string) string {
	return `{"command":"message","identifier":` + quote(id) + `,"data":"{\"action\":\"update_presence\"}"}`
}

func confirmOf(id string) string {
	return `{"identifier":` + quote(id) + `,"type":"confirm_subscription"}`
}

func rejectOf(id string) string {
	return `{"identifier":` + quote(id) + `,"type":"reject_subscription"}`
}

func broadcastOf(id, message string) string {
	return `{"identifier":` + quote(id) + `,"message":` + message + `}`
}

const presenceMsg = `{"event":"presence.update","data":{"account_id":1,"users":{"1":"online"}}}`

func presenceOf(id string) string { return broadcastOf(id, presenceMsg) }
