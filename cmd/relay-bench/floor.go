package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
)

// A floor is the least work that does the relay's job, run against the same
// fake so the relay's numbers can be read as a fraction of what the machine
// can do. The throughput and latency scenarios run floors in this process;
// the cpu scenario runs each in a process of its own (floorchild.go), so its
// CPU time is read from /proc like the relay's:
//
//	floorA: read frames, publish each unchanged on one subject (no decoding);
//	floorB: find the identifier, publish the message object on the relay's
//	        subject with the relay's headers, both looked up per identifier
//	        in a precomputed table instead of decoded;
//	floorBJS: floorB publishing asynchronously into a JetStream stream with
//	        a unique Nats-Msg-Id per event, as the relay does.
type floorKind uint8

const (
	floorA floorKind = iota
	floorB
	floorBJS
)

// floorStream is the stream the in-process floorBJS publishes into.
const floorStream = "FLOORBJS"

// floor is one running floor client.
type floor struct {
	kind   floorKind
	prefix string // subject prefix (floorA: the whole subject)
	stream string // the stream floorBJS fills
	nc     *nats.Conn
	js     jetstream.JetStream
	conns  []*websocket.Conn
	routes map[string]*floorRoute // by identifier as on the wire
	wg     sync.WaitGroup
	errs   atomic.Int64 // publish errors
	seq    atomic.Int64 // Nats-Msg-Id counter (floorBJS)
}

// floorRoute is the precomputed output of one identifier.
type floorRoute struct {
	subject string
	header  nats.Header
	msgID   []string // floorBJS: the header's Nats-Msg-Id value, rewritten per event
	idHead  string
}

// receivedAtLayout is the relay's Relay-Received-At format.
const receivedAtLayout = "2006-01-02T15:04:05.000000000Z07:00"

// frame layout of the fake: {"identifier":"<id>","message":<message>}
var (
	frameHead = []byte(`{"identifier":"`)
	frameMid  = []byte(`","message":`)
)

// floorSetup is where a floor connects and how.
type floorSetup struct {
	fake    string // host:port of the fake Chatwoot
	natsURL string
	stream  string // the stream floorBJS creates and fills
	perConn int    // subscriptions per websocket
}

// startFloor starts a floor in this process.
func (b *bench) startFloor(ctx context.Context, kind floorKind, prefix string, set *tokenSet) (*floor, error) {
	return startFloorAt(ctx, floorSetup{fake: b.fakeHP, natsURL: b.nats.ClientURL(), stream: floorStream, perConn: b.p.PerConn},
		kind, prefix, set)
}

// startFloorAt connects, subscribes the set's tokens over perConn-sized
// websockets, waits for every confirm and starts reading.
func startFloorAt(ctx context.Context, s floorSetup, kind floorKind, prefix string, set *tokenSet) (*floor, error) {
	f := &floor{kind: kind, prefix: prefix, stream: s.stream, routes: make(map[string]*floorRoute, len(set.tokens))}
	if err := f.connectNATS(ctx, s.natsURL); err != nil {
		return nil, err
	}
	for i, tok := range set.tokens {
		id := cable.NewIdentifier(tok)
		f.routes[id.Key] = f.route(prefix, i, tok)
	}
	for lo := 0; lo < len(set.tokens); lo += s.perConn {
		ws, err := floorConn(ctx, s.fake, set.tokens[lo:min(lo+s.perConn, len(set.tokens))])
		if err != nil {
			f.stop()
			return nil, err
		}
		f.conns = append(f.conns, ws)
	}
	for _, ws := range f.conns {
		f.wg.Add(1)
		go f.read(ws)
	}
	return f, nil
}

func (f *floor) connectNATS(ctx context.Context, url string) error {
	var err error
	if f.nc, err = nats.Connect(url, nats.Name("relay-bench-floor")); err != nil {
		return err
	}
	if f.kind != floorBJS {
		return nil
	}
	if f.js, err = jetstream.New(f.nc, jetstream.WithPublishAsyncMaxPending(fanout.DefaultInFlight)); err != nil {
		return err
	}
	_, err = f.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: f.stream, Subjects: []string{f.prefix + ".>"}, Storage: jetstream.FileStorage,
		MaxAge: fanout.DefaultStreamMaxAge, MaxBytes: fanout.DefaultStreamMaxBytes, Duplicates: fanout.DefaultDuplicates,
		Discard: jetstream.DiscardOld,
	})
	return err
}

// route precomputes what the relay would publish for token i: subject
// <prefix>.1.1._.<conversation>.message.created and its headers.
func (f *floor) route(prefix string, i int, tok string) *floorRoute {
	conv := strconv.Itoa(convBase + i)
	r := &floorRoute{subject: prefix + ".1.1._." + conv + ".message.created", idHead: "m:1:"}
	r.msgID = []string{"m:1:" + strconv.Itoa(idBase) + ":created"}
	r.header = nats.Header{
		fanout.HeaderMsgID:        r.msgID,
		fanout.HeaderEvent:        {"message.created"},
		fanout.HeaderAccount:      {"1"},
		fanout.HeaderInbox:        {"1"},
		fanout.HeaderContact:      {fanout.Unknown},
		fanout.HeaderConversation: {conv},
		fanout.HeaderSubscription: {cable.SubscriptionID(tok)},
		fanout.HeaderReceivedAt:   {templateTime.Format(receivedAtLayout)},
	}
	return r
}

// floorConn opens one websocket to the fake and confirms tokens on it.
func floorConn(ctx context.Context, fake string, tokens []string) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{cable.Protocol}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.DialContext(ctx, "ws://"+fake+"/cable", nil)
	if err != nil {
		return nil, fmt.Errorf("floor dial: %w", err)
	}
	for _, tok := range tokens {
		if err := ws.WriteMessage(websocket.TextMessage, cable.NewIdentifier(tok).Subscribe()); err != nil {
			ws.Close()
			return nil, err
		}
	}
	if err := awaitConfirms(ws, len(tokens)); err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

func awaitConfirms(ws *websocket.Conn, n int) error {
	ws.SetReadDeadline(time.Now().Add(time.Minute))
	defer ws.SetReadDeadline(time.Time{})
	for got := 0; got < n; {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("floor: %d of %d confirms: %w", got, n, err)
		}
		if bytes.Contains(data, []byte(`"type":"confirm_subscription"`)) {
			got++
		}
	}
	return nil
}

// read is the floor's whole pipeline for one socket.
func (f *floor) read(ws *websocket.Conn) {
	defer f.wg.Done()
	var buf bytes.Buffer
	msg := &nats.Msg{}
	for {
		_, r, err := ws.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		frame := buf.Bytes()
		if !bytes.HasPrefix(frame, frameHead) {
			continue // ping, welcome
		}
		if err := f.publish(frame, msg); err != nil {
			f.errs.Add(1)
		}
	}
}

func (f *floor) publish(frame []byte, msg *nats.Msg) error {
	if f.kind == floorA {
		return f.nc.Publish(f.prefix, frame)
	}
	i := bytes.Index(frame, frameMid)
	if i < 0 || frame[len(frame)-1] != '}' {
		return errors.New("floor: unexpected frame")
	}
	r := f.routes[string(frame[len(frameHead):i])]
	if r == nil {
		return nil // a confirm
	}
	body := frame[i+len(frameMid) : len(frame)-1]
	if f.kind == floorB {
		*msg = nats.Msg{Subject: r.subject, Header: r.header, Data: body}
		return f.nc.PublishMsg(msg)
	}
	r.msgID[0] = r.idHead + strconv.FormatInt(f.seq.Add(1), 10) + ":created"
	_, err := f.js.PublishMsgAsync(&nats.Msg{Subject: r.subject, Header: r.header, Data: body},
		jetstream.WithStallWait(30*time.Second))
	return err
}

// stop closes the sockets and the NATS connection.
func (f *floor) stop() {
	for _, ws := range f.conns {
		ws.Close()
	}
	f.wg.Wait()
	if f.js != nil {
		select {
		case <-f.js.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
		}
	}
	if f.nc != nil {
		f.nc.Close()
	}
}
