package natsserver

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartCoreRoundTrip(t *testing.T) {
	s, err := Start(Config{Port: RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.Port() <= 0 || s.Port() == DefaultPort {
		t.Fatalf("Port() = %d, want a random port", s.Port())
	}
	if s.JetStreamEnabled() {
		t.Fatal("JetStream enabled without asking")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("a.b")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("a.b", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hi" {
		t.Fatalf("got %q", m.Data)
	}
	if mp := nc.MaxPayload(); mp != DefaultMaxPayload {
		t.Fatalf("MaxPayload = %d, want %d", mp, DefaultMaxPayload)
	}
}

func TestJetStreamNeedsStoreDir(t *testing.T) {
	_, err := Start(Config{Port: RandomPort, JetStream: true})
	if !errors.Is(err, ErrNoStoreDir) {
		t.Fatalf("err = %v, want ErrNoStoreDir", err)
	}
}

// TestRestartSamePortKeepsStream restarts the server on the same port and
// store directory, the way the fanout outage tests do.
func TestRestartSamePortKeepsStream(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(Config{Port: RandomPort, JetStream: true, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	port, url := s.Port(), s.ClientURL()
	publishOne(t, url, true)
	s.Shutdown()
	s.Shutdown() // idempotent

	s2, err := Start(Config{Port: port, JetStream: true, StoreDir: dir})
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	defer s2.Shutdown()
	if s2.ClientURL() != url {
		t.Fatalf("ClientURL after restart = %s, want %s", s2.ClientURL(), url)
	}
	if n := publishOne(t, url, false); n != 2 {
		t.Fatalf("stream has %d messages after restart, want 2", n)
	}
}

// publishOne publishes one message to stream S (created when create is set)
// and returns the stream's message count.
func publishOne(t *testing.T, url string, create bool) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if create {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "s.x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestPortInUseFails(t *testing.T) {
	s, err := Start(Config{Port: RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	_, err = Start(Config{Port: s.Port(), ReadyTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("second server on port %d: err = %v, want ErrNotReady", s.Port(), err)
	}
}

func TestLoggerRoutesToSlog(t *testing.T) {
	h := &recordingHandler{}
	s, err := Start(Config{Port: RandomPort, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	if h.count(slog.LevelDebug) == 0 {
		t.Fatal("no server notices reached the slog logger")
	}
	if n := h.count(slog.LevelInfo); n != 0 {
		t.Fatalf("%d Info records: notices must stay at Debug", n)
	}
}

func TestSplitListen(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    int
		wantErr bool
	}{
		{"127.0.0.1:4222", "127.0.0.1", 4222, false},
		{":4223", DefaultHost, 4223, false},
		{"0.0.0.0:-1", "0.0.0.0", -1, false},
		{"[::1]:4222", "::1", 4222, false},
		{"localhost", "", 0, true},
		{"h:70000", "", 0, true},
		{"h:-2", "", 0, true},
		{"h:x", "", 0, true},
	}
	for _, tt := range tests {
		host, port, err := SplitListen(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("SplitListen(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if host != tt.host || port != tt.port {
			t.Errorf("SplitListen(%q) = %q, %d; want %q, %d", tt.in, host, port, tt.host, tt.port)
		}
	}
}

type recordingHandler struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.levels = append(h.levels, r.Level)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, x := range h.levels {
		if x == l {
			n++
		}
	}
	return n
}

func TestClientURLWildcardHost(t *testing.T) {
	s, err := Start(Config{Host: "0.0.0.0", Port: RandomPort, Token: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	want := "nats://127.0.0.1:" + strconv.Itoa(s.Port())
	if got := s.ClientURL(); got != want {
		t.Fatalf("ClientURL() = %s, want %s", got, want)
	}
	nc, err := nats.Connect(s.ClientURL(), nats.Token("t0ken"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}
