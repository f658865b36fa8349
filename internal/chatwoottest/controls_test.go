package chatwoottest

import (
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
)

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// rawClient dials without a reader goroutine.
func rawClient(t *testing.T, ln *MemListener) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: ln.DialContext}
	ws, _, err := d.Dial("ws://chatwoot.test/cable", nil)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestStallSendsNothingAndHoldsCommands(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		fake.AddToken("tokA", 1)
		fake.AddToken("tokB", 1)
		idA, idB := identifier("tokA"), identifier("tokB")
		c := memClient(t, ln)
		defer c.close()
		c.send(subscribeFrame(idA))
		synctest.Wait()
		c.drain()

		fake.Stall(true)
		if n := fake.Broadcast("tokA", []byte(`{"event":"lost"}`)); n != 0 {
			t.Errorf("broadcast during stall reached %d", n)
		}
		c.send(subscribeFrame(idB))
		late := memClient(t, ln) // handshake succeeds, welcome is held
		defer late.close()
		time.Sleep(10 * time.Second) // three ping periods
		synctest.Wait()
		if got := append(c.drain(), late.drain()...); len(got) != 0 {
			t.Fatalf("stalled server sent %q", got)
		}

		fake.Stall(false)
		synctest.Wait() // held commands run first
		fake.Broadcast("tokA", []byte(`{"event":"after"}`))
		synctest.Wait()
		got := c.drain()
		want := []string{confirmOf(idB), presenceOf(idB), broadcastOf(idA, `{"event":"after"}`)}
		if !slices.Equal(got, want) {
			t.Errorf("after recovery got %q, want %q", got, want)
		}
		if got := late.drain(); !slices.Equal(got, []string{`{"type":"welcome"}`}) {
			t.Errorf("connection opened during the stall got %q, want welcome", got)
		}
		st := fake.Stats()
		if st.BroadcastsLost != 1 || st.Pings != 0 {
			t.Errorf("BroadcastsLost=%d Pings=%d, want 1 and 0", st.BroadcastsLost, st.Pings)
		}
		time.Sleep(2 * time.Second) // next beat at +12s
		synctest.Wait()
		if got := c.drain(); len(got) != 1 || got[0] != `{"type":"ping","message":`+itoa(time.Now().Unix())+`}` {
			t.Errorf("pings did not resume: %q", got)
		}
	})
}

func TestDropAllWithAndWithoutDisconnectFrame(t *testing.T) {
	for _, withFrame := range []bool{true, false} {
		bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
			fake.AddToken("tok", 1)
			c1, c2 := memClient(t, ln), memClient(t, ln)
			c1.send(subscribeFrame(identifier("tok")))
			synctest.Wait()
			c1.drain()
			c2.drain()
			if n := fake.DropAll(withFrame); n != 2 {
				t.Errorf("DropAll closed %d, want 2", n)
			}
			for _, c := range []*testClient{c1, c2} {
				var frames []string
				for f := range c.frames {
					frames = append(frames, f)
				}
				<-c.ended
				var want []string
				if withFrame {
					want = []string{`{"type":"disconnect","reason":"server_restart","reconnect":true}`}
				}
				if !slices.Equal(frames, want) {
					t.Errorf("withFrame=%v: frames before close %q, want %q", withFrame, frames, want)
				}
			}
			synctest.Wait()
			if st := fake.Stats(); st.ConnectionsOpen != 0 || st.ConnectionsAccepted != 2 {
				t.Errorf("open=%d accepted=%d", st.ConnectionsOpen, st.ConnectionsAccepted)
			}
			if n := fake.Broadcast("tok", []byte(`{}`)); n != 0 {
				t.Errorf("broadcast after drop reached %d", n)
			}
		})
	}
}

func TestDisconnectAndDropConn(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		c1, c2 := memClient(t, ln), memClient(t, ln)
		defer c2.close()
		synctest.Wait()
		c1.drain()
		c2.drain()
		ids := fake.Conns()
		if len(ids) != 2 {
			t.Fatalf("Conns() = %+v", ids)
		}
		if !fake.DropConn(ids[0].ID, true) {
			t.Fatal("DropConn reported the connection closed")
		}
		if f := c1.next(); f != `{"type":"disconnect","reason":"server_restart","reconnect":true}` {
			t.Errorf("got %q", f)
		}
		<-c1.ended
		synctest.Wait()
		if fake.DropConn(ids[0].ID, false) {
			t.Error("DropConn of a closed connection reported true")
		}
		if got := c2.drain(); len(got) != 0 {
			t.Errorf("other connection got %q", got)
		}
		if n := fake.Disconnect("remote", false); n != 1 {
			t.Errorf("Disconnect = %d", n)
		}
		if f := c2.next(); f != `{"type":"disconnect","reason":"remote","reconnect":false}` {
			t.Errorf("got %q", f)
		}
	})
}

func TestDisconnectFrameGivesUpOnStuckWriter(t *testing.T) {
	bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
		ws := rawClient(t, ln) // never reads: the writer is stuck on the welcome
		defer ws.Close()
		synctest.Wait()
		fake.DropAll(true)
		time.Sleep(DefaultCloseGrace - time.Millisecond)
		synctest.Wait()
		if n := fake.Stats().ConnectionsOpen; n != 1 {
			t.Fatalf("ConnectionsOpen = %d before the grace ended, want 1", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := fake.Stats().ConnectionsOpen; n != 0 {
			t.Fatalf("ConnectionsOpen = %d after the grace, want 0", n)
		}
	})
}

func TestCloseUnblocksBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := New(Options{QueueSize: 1})
		ln := fake.ServeMem()
		fake.AddToken("tok", 1)
		ws := rawClient(t, ln)
		defer ws.Close()
		ws.WriteMessage(websocket.TextMessage, []byte(subscribeFrame(identifier("tok"))))
		for { // read up to the confirm, then stop reading
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) == confirmOf(identifier("tok")) {
				break
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 10 {
				fake.Broadcast("tok", []byte(`{"event":"x"}`))
			}
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("broadcasts did not block")
		default:
		}
		fake.Close()
		<-done
	})
}

func TestSubscribeLogMeasuresRate(t *testing.T) {
	var log SubscribeLog
	bubble(t, Options{OnSubscribe: log.Record}, func(t *testing.T, fake *Server, ln *MemListener) {
		c := memClient(t, ln)
		defer c.close()
		start := time.Now()
		for i := range 30 {
			c.send(subscribeFrame(identifier("t" + itoa(int64(i)))))
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		times := log.Times()
		if len(times) != 30 || !times[0].Equal(start) || !times[29].Equal(start.Add(2900*time.Millisecond)) {
			t.Fatalf("times = %v", times)
		}
		if got := log.MaxInWindow(time.Second); got != 10 {
			t.Errorf("MaxInWindow(1s) = %d, want 10", got)
		}
		if got := log.MaxInWindow(time.Millisecond); got != 1 {
			t.Errorf("MaxInWindow(1ms) = %d, want 1", got)
		}
	})
}

// TestNoPingBeforeWelcome ends a stall exactly on a heartbeat, so the
// welcome and a ping are ready together; the welcome must go first. The race
// is scheduling dependent, hence the repetitions.
func TestNoPingBeforeWelcome(t *testing.T) {
	for range 50 {
		bubble(t, Options{}, func(t *testing.T, fake *Server, ln *MemListener) {
			first := memClient(t, ln) // arms the heartbeat at +0
			defer first.close()
			fake.Stall(true)
			late := memClient(t, ln)
			defer late.close()
			time.Sleep(3 * time.Second)
			fake.Stall(false)
			synctest.Wait()
			if got := late.drain(); len(got) == 0 || got[0] != `{"type":"welcome"}` {
				t.Fatalf("frames %q, want welcome first", got)
			}
		})
	}
}
