package chatwoottest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func startLoopback(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	fake := New(opts)
	addr, err := fake.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake, "ws://" + addr.String() + "/cable"
}

func TestLoopbackBroadcastOrder(t *testing.T) {
	fake, url := startLoopback(t, Options{})
	fake.AddToken("tok", 1)
	id := identifier("tok")
	c := dialClient(t, nil, url, nil)
	defer c.close()
	c.send(subscribeFrame(id))
	for _, want := range []string{`{"type":"welcome"}`, confirmOf(id), presenceOf(id)} {
		if got := c.next(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	const n = 10000
	go func() {
		for i := range n {
			fake.Broadcast("tok", []byte(`{"event":"e","data":{"id":`+strconv.Itoa(i)+`}}`))
		}
	}()
	for i := 0; i < n; {
		f := c.next()
		if strings.Contains(f, `"type":"ping"`) {
			continue
		}
		if want := broadcastOf(id, `{"event":"e","data":{"id":`+strconv.Itoa(i)+`}}`); f != want {
			t.Fatalf("frame %d = %q, want %q", i, f, want)
		}
		i++
	}
}

func TestCableHandshake(t *testing.T) {
	fake := New(Options{RequireOrigin: "https://chat.example.com"})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	defer fake.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/cable"

	t.Run("plain GET is 404 Page not found", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/cable")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || string(body) != "Page not found" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("got %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
	tests := []struct {
		name      string
		origin    string
		protocols []string
		wantErr   bool
		wantProto string
	}{
		{"wrong origin is refused", "https://evil.example.com", []string{ProtocolV1}, true, ""},
		{"missing origin is refused", "", []string{ProtocolV1}, true, ""},
		{"v1 selected", "https://chat.example.com", []string{ProtocolV1, ProtocolUnsupported}, false, ProtocolV1},
		{"client order wins", "https://chat.example.com", []string{ProtocolUnsupported, ProtocolV1}, false, ProtocolUnsupported},
		{"no protocol offered is accepted", "https://chat.example.com", nil, false, ""},
		{"unknown protocol is not refused", "https://chat.example.com", []string{"graphql-ws"}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{Subprotocols: tt.protocols}
			ws, resp, err := d.Dial(wsURL, hdr)
			if tt.wantErr {
				if err == nil || resp == nil || resp.StatusCode != 404 {
					t.Fatalf("err=%v resp=%v, want a 404 refusal", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if ws.Subprotocol() != tt.wantProto {
				t.Errorf("subprotocol %q, want %q", ws.Subprotocol(), tt.wantProto)
			}
			if _, b, err := ws.ReadMessage(); err != nil || string(b) != `{"type":"welcome"}` {
				t.Errorf("first frame %q, %v", b, err)
			}
		})
	}
}

// BenchmarkBroadcastLoopback measures broadcast throughput to one gorilla
// client over loopback TCP; payload is a 1 KiB message.created.
func BenchmarkBroadcastLoopback(b *testing.B) {
	for _, size := range []int{0, 1024} {
		b.Run("msg="+strconv.Itoa(size), func(b *testing.B) {
			benchBroadcast(b, size)
		})
	}
}

func benchBroadcast(b *testing.B, size int) {
	fake, url := startLoopback(b, Options{})
	fake.AddToken("tok", 1)
	d := websocket.Dialer{Subprotocols: []string{ProtocolV1}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(subscribeFrame(identifier("tok"))))
	for i := 0; i < 3; i++ { // welcome, confirm, presence
		ws.ReadMessage()
	}
	msg := []byte(`{"event":"message.created","data":{"id":1}}`)
	if size > 0 {
		if msg, err = MessageCreatedSized(fxReply("", 972), size); err != nil {
			b.Fatal(err)
		}
	}
	done := make(chan int)
	go func() { // reader counts broadcast frames (pings excluded)
		n := 0
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				done <- n
				return
			}
			var head [10]byte
			io.ReadFull(r, head[:])
			if string(head[:]) == `{"identifi` {
				n++
				if n == b.N {
					done <- n
					return
				}
			}
		}
	}()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for range b.N {
		fake.Broadcast("tok", msg)
	}
	if got := <-done; got != b.N {
		b.Fatalf("client got %d of %d frames", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
