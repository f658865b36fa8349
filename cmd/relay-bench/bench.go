package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/natsserver"
)

// bench is what every scenario shares: the relay binary, the fake Chatwoot
// (real loopback websockets), a nats-server and a counting consumer, all in
// this process except the relay.
type bench struct {
	p        Params
	o        options
	stderr   io.Writer
	tmp      string
	relayBin string
	base     time.Time // send timestamps are nanoseconds since base (monotonic)

	fake   *chatwoottest.Server
	fakeHP string // host:port of the fake
	subLog atomic.Pointer[chatwoottest.SubscribeLog]

	nats *natsserver.Server
	cons *consumer

	msgID  atomic.Int64 // last message id handed out (unique across the whole run)
	modes  *modeSet     // relays and floors for throughput and latency; nil until needed
	closed bool
}

// newBench builds the relay and starts the fake, NATS and the consumer.
func newBench(ctx context.Context, p Params, o options, stderr io.Writer) (_ *bench, err error) {
	tmp, err := os.MkdirTemp("", "relay-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{p: p, o: o, stderr: &syncWriter{w: stderr}, tmp: tmp, base: time.Now(), relayBin: o.relayBin}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	for _, step := range []func(context.Context) error{b.buildRelay, b.startFake, b.startNATS, b.startConsumer} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// buildRelay compiles cmd/relay unless a binary was given.
func (b *bench) buildRelay(ctx context.Context) error {
	if b.relayBin != "" {
		return nil
	}
	b.relayBin = filepath.Join(b.tmp, "relay")
	b.progress("building the relay")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.relayBin, "github.com/relayhq/relay/cmd/relay")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/relay (run the bench inside the relay module, or pass -relay): %w\n%s", err, out)
	}
	return nil
}

func (b *bench) startFake(context.Context) error {
	b.fake = chatwoottest.New(chatwoottest.Options{OnSubscribe: b.recordSubscribe, Seed: 1})
	addr, err := b.fake.Listen("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("fake Chatwoot: %w", err)
	}
	b.fakeHP = addr.String()
	return nil
}

// recordSubscribe feeds the subscribe log of a running storm, if any.
func (b *bench) recordSubscribe(identifier string, at time.Time) {
	if l := b.subLog.Load(); l != nil {
		l.Record(identifier, at)
	}
}

func (b *bench) startNATS(context.Context) error {
	var err error
	b.nats, err = natsserver.Start(natsserver.Config{
		Port: natsserver.RandomPort, JetStream: true, StoreDir: filepath.Join(b.tmp, "nats"), ServerName: "bench",
	})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	return nil
}

func (b *bench) startConsumer(context.Context) error {
	var err error
	b.cons, err = newConsumer(b.nats.ClientURL(), b.base)
	return err
}

// close stops everything the bench started and removes its files.
func (b *bench) close() {
	if b.closed {
		return
	}
	b.closed = true
	b.releaseModes()
	if b.cons != nil {
		b.cons.close()
	}
	if b.nats != nil {
		b.nats.Shutdown()
	}
	if b.fake != nil {
		b.fake.Close()
	}
	os.RemoveAll(b.tmp)
}

// since is the send/receive clock: nanoseconds since the bench started.
func (b *bench) since() int64 { return int64(time.Since(b.base)) }

// nextID hands out a message id no other event of this run has.
func (b *bench) nextID() int64 { return idBase + b.msgID.Add(1) }

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.stderr, "relay-bench %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// addTokens makes a token set known to the fake.
func (b *bench) addTokens(set *tokenSet) {
	for _, t := range set.tokens {
		b.fake.AddToken(t, accountID)
	}
}

// waitFor polls cond every interval until it holds, ctx ends or timeout.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		if !sleepCtx(ctx, interval) {
			return ctx.Err()
		}
	}
}

var errTimeout = errors.New("timed out")

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// syncWriter serializes writes: progress lines and relay log lines come
// from several goroutines (the soak's faults, the relays' log readers).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
