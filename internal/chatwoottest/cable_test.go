package chatwoottest

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
)

func TestWelcomeAndPingsAtSyntheticTimes(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		start := time.Now()
		c := memClient(t, ln)
		defer c.close()
		if p := c.ws.Subprotocol(); p != ProtocolV1 {
			t.Errorf("subprotocol = %q, want %q", p, ProtocolV1)
		}
		if f := c.next(); f != `{"type":"welcome"}` || !time.Now().Equal(start) {
			t.Fatalf("first frame %q at +%v, want welcome at +0", f, time.Since(start))
		}
		for i := 1; i <= 3; i++ {
			f := c.next()
			want := fmt.Sprintf(`{"type":"ping","message":%d}`, start.Unix()+int64(3*i))
			if f != want || time.Since(start) != time.Duration(3*i)*time.Second {
				t.Fatalf("frame %q at +%v, want %s at +%ds", f, time.Since(start), want, 3*i)
			}
		}
		synctest.Wait()
		if got := fake.Stats().Pings; got != 3 {
			t.Errorf("Stats().Pings = %d, want 3", got)
		}
	})
}

func TestCustomPingInterval(t *testing.T) {
	bubble(t, Options{PingInterval: 10 * time.Second}, func(t *testing.T, fake *Server, ln *MemListener) {
		start := time.Now()
		c := memClient(t, ln)
		defer c.close()
		c.next() // welcome
		c.next()
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("first ping after %v, want 10s", d)
		}
	})
}

func TestCommands(t *testing.T) {
	const good, other = "goodToken1", "goodToken2"
	id := identifier(good)
	idReordered := `{"pubsub_token":"` + good + `","channel":"RoomChannel"}`
	idUnknown := identifier("unknownToken")
	idRejected := identifier("rejectedToken")
	welcome := `{"type":"welcome"}`

	tests := []struct {
		name  string
		send  []string
		want  []string
		check func(t *testing.T, fake *Server)
	}{
		{
			name: "known token is confirmed then gets presence",
			send: []string{subscribeFrame(id)},
			want: []string{welcome, confirmOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 1, Confirms: 1, Broadcasts: 1, BroadcastFrames: 1})
			},
		},
		{
			name: "duplicate subscribe is ignored",
			send: []string{subscribeFrame(id), subscribeFrame(id)},
			want: []string{welcome, confirmOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 2, DuplicateSubscribes: 1, Confirms: 1, Broadcasts: 1, BroadcastFrames: 1})
			},
		},
		{
			name: "unknown token gets silence and sticks",
			send: []string{subscribeFrame(idUnknown), subscribeFrame(idUnknown)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 2, BrokenSubscribes: 1, DuplicateSubscribes: 1})
				subs := fake.Conns()[0].Subscriptions
				if len(subs) != 1 || subs[0].Confirmed || subs[0].Identifier != idUnknown {
					t.Errorf("subscriptions = %+v, want one broken", subs)
				}
			},
		},
		{
			name: "unsubscribe clears a broken subscription",
			send: []string{subscribeFrame(idUnknown), unsubscribeFrame(idUnknown), subscribeFrame(idUnknown)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 2, BrokenSubscribes: 2, Unsubscribes: 1})
			},
		},
		{
			name: "non-blank user_id is a user token",
			send: []string{subscribeFrame(`{"channel":"RoomChannel","pubsub_token":"` + good + `","user_id":5}`)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 1, BrokenSubscribes: 1})
			},
		},
		{
			name: "blank user_id is a contact token",
			send: []string{
				subscribeFrame(`{"channel":"RoomChannel","pubsub_token":"` + good + `","user_id":""}`),
				subscribeFrame(`{"channel":"RoomChannel","pubsub_token":"` + other + `","user_id":null}`),
			},
			want: []string{
				welcome,
				confirmOf(`{"channel":"RoomChannel","pubsub_token":"` + good + `","user_id":""}`),
				presenceOf(`{"channel":"RoomChannel","pubsub_token":"` + good + `","user_id":""}`),
				confirmOf(`{"channel":"RoomChannel","pubsub_token":"` + other + `","user_id":null}`),
				presenceOf(`{"channel":"RoomChannel","pubsub_token":"` + other + `","user_id":null}`),
			},
		},
		{
			name: "rejected token is rejected every time",
			send: []string{subscribeFrame(idRejected), subscribeFrame(idRejected)},
			want: []string{welcome, rejectOf(idRejected), rejectOf(idRejected)},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 2, Rejects: 2})
			},
		},
		{
			name: "unsubscribe then subscribe confirms again",
			send: []string{subscribeFrame(id), unsubscribeFrame(id), subscribeFrame(id)},
			want: []string{welcome, confirmOf(id), presenceOf(id), confirmOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				if got := fake.Conns()[0].Confirms[id]; got != 2 {
					t.Errorf("Confirms[id] = %d, want 2", got)
				}
			},
		},
		{
			name: "unsubscribe of an unknown identifier",
			send: []string{unsubscribeFrame(id)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{UnknownUnsubscribes: 1})
			},
		},
		{
			name: "update_presence echoes presence to the token",
			send: []string{subscribeFrame(id), presenceFrame(id)},
			want: []string{welcome, confirmOf(id), presenceOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				if got := fake.PresenceUpdates(good); got != 1 {
					t.Errorf("PresenceUpdates = %d, want 1", got)
				}
			},
		},
		{
			name: "update_presence on a broken subscription is a no-op",
			send: []string{subscribeFrame(idUnknown), presenceFrame(idUnknown)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 1, BrokenSubscribes: 1, IgnoredMessages: 1})
			},
		},
		{
			name: "message for an identifier not subscribed, unknown action",
			send: []string{
				presenceFrame(id), subscribeFrame(id),
				`{"command":"message","identifier":` + quote(id) + `,"data":"{\"action\":\"start_typing\"}"}`,
				`{"command":"message","identifier":` + quote(id) + `,"data":"{}"}`,
			},
			want: []string{welcome, confirmOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 1, Confirms: 1, IgnoredMessages: 3, Broadcasts: 1, BroadcastFrames: 1})
			},
		},
		{
			name: "identifiers are exact strings: two variants stream twice",
			send: []string{subscribeFrame(id), subscribeFrame(idReordered)},
			want: []string{
				welcome, confirmOf(id), presenceOf(id),
				confirmOf(idReordered), presenceOf(id), presenceOf(idReordered),
			},
		},
		{
			name: "unknown channel",
			send: []string{subscribeFrame(`{"channel":"NotificationChannel","pubsub_token":"` + good + `"}`)},
			want: []string{welcome},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 1, Malformed: 1})
			},
		},
		{
			name: "malformed frames are skipped and the connection stays usable",
			send: []string{
				`not json`,
				`[]`,
				`{"command":"subscribe","identifier":{"channel":"RoomChannel","pubsub_token":"` + good + `"}}`,
				`{"command":"subscribe"}`,
				`{"command":"bogus","identifier":"{}"}`,
				`{"Command":"subscribe","identifier":` + quote(id) + `}`,
				`{"command":"message","identifier":` + quote(id) + `,"data":{"action":"update_presence"}}`,
				`{"command":"message","identifier":` + quote(id) + `,"data":"not json"}`,
				subscribeFrame(`not json`),
				subscribeFrame(`"a string"`),
				subscribeFrame(id),
			},
			want: []string{welcome, confirmOf(id), presenceOf(id)},
			check: func(t *testing.T, fake *Server) {
				expectStats(t, fake.Stats(), Stats{Subscribes: 3, Malformed: 10, Confirms: 1, Broadcasts: 1, BroadcastFrames: 1})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
				fake.AddToken(good, 1)
				fake.AddToken(other, 1)
				fake.AddToken("rejectedToken", 1)
				fake.RejectToken("rejectedToken")
				c := memClient(t, ln)
				defer c.close()
				for _, f := range tt.send {
					c.send(f) // sent before the welcome is read: handled after it
				}
				synctest.Wait()
				if got := c.drain(); !slices.Equal(got, tt.want) {
					t.Errorf("frames:\n got %q\nwant %q", got, tt.want)
				}
				if tt.check != nil {
					tt.check(t, fake)
				}
			})
		})
	}
}

func TestBinaryFrameIsMalformed(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tok", 1)
		c := memClient(t, ln)
		defer c.close()
		c.ws.WriteMessage(websocket.BinaryMessage, []byte(subscribeFrame(identifier("tok"))))
		synctest.Wait()
		if got := fake.Stats().Malformed; got != 1 {
			t.Errorf("Malformed = %d, want 1", got)
		}
		if got := c.drain(); len(got) != 1 {
			t.Errorf("frames = %q, want only welcome", got)
		}
	})
}

// expectStats compares the cable counters of want with got (zero fields
// included, connection and frame counters excluded).
func expectStats(t *testing.T, got, want Stats) {
	t.Helper()
	got.ConnectionsOpen, got.ConnectionsAccepted, got.FramesSent, got.Requests = 0, 0, 0, nil
	want.Requests = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stats:\n got %+v\nwant %+v", got, want)
	}
}

func TestBroadcastFansOutToEveryConnection(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tokA", 1)
		fake.AddToken("tokB", 1)
		idA, idA2, idB := identifier("tokA"), `{"channel":"RoomChannel","pubsub_token":"tokA","n":2}`, identifier("tokB")
		c1, c2 := memClient(t, ln), memClient(t, ln)
		defer c1.close()
		defer c2.close()
		c1.send(subscribeFrame(idA))
		c1.send(subscribeFrame(idB))
		c2.send(subscribeFrame(idA2))
		synctest.Wait()
		c1.drain()
		c2.drain()

		msg := `{"event":"message.created","data":{"id":1}}`
		if n := fake.Broadcast("tokA", []byte(msg)); n != 2 {
			t.Errorf("Broadcast to tokA reached %d subscriptions, want 2", n)
		}
		if n := fake.Broadcast("nobody", []byte(msg)); n != 0 {
			t.Errorf("Broadcast to an unsubscribed token reached %d", n)
		}
		synctest.Wait()
		if got, want := c1.drain(), []string{broadcastOf(idA, msg)}; !slices.Equal(got, want) {
			t.Errorf("conn 1 got %q, want %q", got, want)
		}
		if got, want := c2.drain(), []string{broadcastOf(idA2, msg)}; !slices.Equal(got, want) {
			t.Errorf("conn 2 got %q, want %q", got, want)
		}
		conns := fake.Conns()
		if len(conns) != 2 || len(conns[0].Subscriptions) != 2 || len(conns[1].Subscriptions) != 1 {
			t.Errorf("Conns() = %+v", conns)
		}
	})
}

func TestBroadcastCopiesMessage(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tok", 1)
		c := memClient(t, ln)
		defer c.close()
		c.send(subscribeFrame(identifier("tok")))
		synctest.Wait()
		c.drain()
		buf := []byte(`{"event":"a"}`)
		fake.Broadcast("tok", buf)
		copy(buf, `{"event":"b"}`)
		synctest.Wait()
		if got := c.drain(); len(got) != 1 || got[0] != broadcastOf(identifier("tok"), `{"event":"a"}`) {
			t.Errorf("got %q", got)
		}
	})
}

func TestBackpressureKeepsEveryFrameInOrder(t *testing.T) {
	bubble(t, Options{QueueSize: 4}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tok", 1)
		id := identifier("tok")
		// A client that reads nothing yet: the writer blocks on the pipe,
		// the queue fills and Broadcast blocks instead of dropping.
		d := websocket.Dialer{NetDialContext: ln.DialContext}
		ws, _, err := d.Dial("ws://chatwoot.test/cable", nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.WriteMessage(websocket.TextMessage, []byte(subscribeFrame(id)))
		synctest.Wait()

		const n = 50
		frame := func(i int) string { return `{"event":"e","data":{"i":` + strconv.Itoa(i) + `}}` }
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range n {
				fake.Broadcast("tok", []byte(frame(i)))
			}
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Broadcast did not block on a full queue")
		default:
		}

		c := &testClient{t: t, ws: ws, frames: make(chan string, 1000), ended: make(chan error, 1)}
		go c.readLoop()
		<-done
		synctest.Wait()
		got := c.drain()
		want := []string{`{"type":"welcome"}`, confirmOf(id), presenceOf(id)}
		for i := range n {
			want = append(want, broadcastOf(id, frame(i)))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("frames:\n got %q\nwant %q", got, want)
		}
		if d := fake.Stats().FramesDropped; d != 0 {
			t.Errorf("FramesDropped = %d", d)
		}
		c.close()
	})
}
