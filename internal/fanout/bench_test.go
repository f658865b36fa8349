package fanout

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/natsserver"
)

// BenchmarkRoute measures the hot path of Handle for a 1 KiB
// message.created: scan, route, subject, dedup key, headers.
func BenchmarkRoute(b *testing.B) {
	orig := fixtureMessage(b, "03_message.created.agent_reply.json")
	msg := make([]byte, len(orig))
	bld := builder{prefix: DefaultPrefix, instant: time.Second}
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	for b.Loop() {
		copy(msg, orig) // build blanks the contact's source_id in place
		ev := Event{SubID: "sub-1", Hints: Hints{ContactID: "7"}, Message: msg, ReceivedAt: testReceivedAt}
		if _, _, err := bld.build(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouteTyping covers the 2 KiB typing payload: redaction and the
// body hash of the instant dedup key.
func BenchmarkRouteTyping(b *testing.B) {
	orig := fixtureMessage(b, "05_conversation.typing_on.json")
	msg := make([]byte, len(orig))
	bld := builder{prefix: DefaultPrefix, instant: time.Second}
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	for b.Loop() {
		copy(msg, orig)
		ev := Event{SubID: "sub-1", Message: msg, ReceivedAt: testReceivedAt}
		if _, _, err := bld.build(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandleCore(b *testing.B)      { benchmarkHandle(b, true) }
func BenchmarkHandleJetStream(b *testing.B) { benchmarkHandle(b, false) }

// benchmarkHandle reports end-to-end events/s from Handle to NATS
// acceptance (JetStream: stored and acknowledged) against an in-process
// server, with a 1 KiB message.created per event.
func benchmarkHandle(b *testing.B, core bool) {
	cfg := natsserver.Config{Port: natsserver.RandomPort}
	if !core {
		cfg.JetStream, cfg.StoreDir = true, b.TempDir()
	}
	s, err := natsserver.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Shutdown()
	f, err := Open(Config{NATS: NATSConfig{URL: s.ClientURL()}, Core: core},
		Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	for changed := f.pub.Changed(); !f.Ready(); changed = f.pub.Changed() {
		<-changed
	}
	tmpl := fixtureMessage(b, "03_message.created.agent_reply.json")
	head, tail, _ := bytes.Cut(tmpl, []byte(`"id":2,`))
	start, n := time.Now(), 0
	for b.Loop() {
		n++
		msg := make([]byte, 0, len(tmpl)+8)
		msg = append(append(strconv.AppendInt(append(append(msg, head...), `"id":`...), int64(n), 10), ','), tail...)
		for _, held := f.q.held(); held > 20_000; _, held = f.q.held() {
			time.Sleep(50 * time.Microsecond) // backpressure: measure throughput, not drops
		}
		f.Handle(Event{SubID: "sub-1", Message: msg})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
	if d := dropped(f, dropBufferFull) + dropped(f, dropDuplicate); d != 0 {
		b.Fatalf("%d events dropped", d)
	}
}

// BenchmarkWindowAdmit measures the dedup window at its default size of
// 100,000 keys with presence-like keys: new keys that evict the oldest
// (steady state of a full window), and duplicates. As in Handle, where each
// event builds its own key string, a duplicate is a copy of the admitted
// key, not the same string.
func BenchmarkWindowAdmit(b *testing.B) {
	const size = 100_000
	const ttl = int64(time.Hour)
	keys := make([]string, 1<<18) // more than size: a key recurs only after eviction
	for i := range keys {
		keys[i] = "i:1:2:" + strconv.Itoa(100_000+i) + ":" + strconv.Itoa(7_000+i%977) +
			":presence.update:" + string(appendHex16(nil, uint64(i)*0x9e3779b97f4a7c15))
	}
	b.Run("new", func(b *testing.B) {
		w := newWindow(size)
		for i := range size {
			w.admit(keys[i], int64(i), ttl)
		}
		n := size
		b.ReportAllocs()
		for b.Loop() {
			if !w.admit(keys[n%len(keys)], int64(n), ttl) {
				b.Fatal("new key refused")
			}
			n++
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		w := newWindow(size)
		dups := make([]string, size)
		for i := range size {
			w.admit(keys[i], 0, ttl)
			dups[i] = strings.Clone(keys[i])
		}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			if w.admit(dups[n%size], 1, ttl) {
				b.Fatal("duplicate admitted")
			}
			n++
		}
	})
}

// BenchmarkFrameRoute follows a live 1 KiB message.created from the
// socket's bytes to a routed, redacted item, as the cable reader runs it
// with Direct: the frame's decode, which captures the routing fields, then
// build on the borrowed message.
func BenchmarkFrameRoute(b *testing.B) {
	orig := fixtures.Read(b, "cable/03_message.created.agent_reply.json")
	frame := make([]byte, len(orig))
	bld := builder{prefix: DefaultPrefix, instant: time.Second}
	var fr cable.Frame
	b.SetBytes(int64(len(orig)))
	b.ReportAllocs()
	for b.Loop() {
		copy(frame, orig) // build blanks the contact's source_id in place
		if err := cable.DecodeFields(frame, &fr, Fields); err != nil {
			b.Fatal(err)
		}
		ev := Event{SubID: "sub-1", Hints: Hints{ContactID: "7"}, Message: fr.Message, Fields: fr.Fields, Borrowed: true, ReceivedAt: testReceivedAt}
		if _, _, err := bld.build(&ev); err != nil {
			b.Fatal(err)
		}
	}
}
