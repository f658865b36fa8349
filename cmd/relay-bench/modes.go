package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/nats-io/nats.go/jetstream"
)

// Mode names, in the order every round runs them.
const (
	modeRelayCore = "relay-core"
	modeRelayJS   = "relay-jetstream"
	modeFloorA    = "floor-a"
	modeFloorB    = "floor-b"
	modeFloorBJS  = "floor-b-jetstream"
)

// mode is one thing measured: a relay binary or a floor client, each with
// its own tokens on the same fake, publishing to the same nats-server.
type mode struct {
	name    string
	stream  string // JetStream stream it fills, purged between runs
	set     *tokenSet
	counter *counter
	relay   *relayProc // relays
	floor   *floor     // floors
}

func (m *mode) stop() {
	if m.relay != nil {
		m.relay.stop()
	}
	if m.floor != nil {
		m.floor.stop()
	}
	if m.counter != nil {
		m.counter.sub.Unsubscribe()
	}
}

// modeSet is every mode, all running at once; a round pushes to one at a
// time while the others sit idle.
type modeSet struct {
	list []*mode
}

func (ms *modeSet) get(name string) *mode {
	for _, m := range ms.list {
		if m.name == name {
			return m
		}
	}
	return nil
}

// getModes starts the relays and floors on first use.
func (b *bench) getModes(ctx context.Context) (*modeSet, error) {
	if b.modes != nil {
		return b.modes, nil
	}
	ms := &modeSet{}
	b.modes = ms
	specs := []struct {
		name, prefix, subject, stream string
		start                         func(context.Context, *mode, string) error
	}{
		{modeRelayCore, "core", "core.*.*.*.*.message.created", "", b.relayStarter(false)},
		{modeRelayJS, "jets", "jets.*.*.*.*.message.created", "JETS", b.relayStarter(true)},
		{modeFloorA, "flra", "flra", "", b.floorStarter(floorA)},
		{modeFloorB, "flrb", "flrb.*.*.*.*.message.created", "", b.floorStarter(floorB)},
		{modeFloorBJS, "fbjs", "fbjs.*.*.*.*.message.created", floorStream, b.floorStarter(floorBJS)},
	}
	for _, s := range specs {
		b.progress("starting %s (%d subscriptions)", s.name, b.p.Subscriptions)
		m, err := b.newMode(s.name, s.prefix, s.subject)
		if err != nil {
			return nil, err
		}
		m.stream = s.stream
		ms.list = append(ms.list, m)
		if err := s.start(ctx, m, s.prefix); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return ms, b.warmUp(ctx, ms)
}

func (b *bench) newMode(name, prefix, subject string) (*mode, error) {
	set, err := newTokenSet(prefix, b.p.Subscriptions, b.p.MessageBytes)
	if err != nil {
		return nil, err
	}
	b.addTokens(set)
	k, err := b.cons.count(subject)
	if err != nil {
		return nil, err
	}
	return &mode{name: name, set: set, counter: k}, nil
}

func (b *bench) relayStarter(jetStream bool) func(context.Context, *mode, string) error {
	return b.relayStarterBin("", jetStream)
}

// relayStarterBin starts the relay binary bin ("" = the bench's).
func (b *bench) relayStarterBin(bin string, jetStream bool) func(context.Context, *mode, string) error {
	return func(ctx context.Context, m *mode, prefix string) error {
		file := filepath.Join(b.tmp, prefix+".tokens")
		if err := writeTokens(file, m.set.tokens); err != nil {
			return err
		}
		var err error
		m.relay, err = b.startRelay(ctx, relayConfig{name: prefix, bin: bin, jetStream: jetStream, subsFile: file,
			subscribeRate: float64(b.p.FastSubscribe), burst: 1000})
		if err != nil {
			return err
		}
		return m.relay.waitConfirmed(ctx, len(m.set.tokens), b.p.ConfirmTimeout.D())
	}
}

func (b *bench) floorStarter(kind floorKind) func(context.Context, *mode, string) error {
	return func(ctx context.Context, m *mode, prefix string) error {
		var err error
		m.floor, err = b.startFloor(ctx, kind, prefix, m.set)
		return err
	}
}

// between runs: purge the stream the last run filled (so the store stays
// small and its background work does not spill into the next run), collect
// this process's garbage, and let the machine settle.
func (b *bench) between(ctx context.Context, m *mode) {
	if m.stream != "" {
		if err := b.purge(ctx, m.stream); err != nil {
			b.progress("purging %s: %v", m.stream, err)
		}
	}
	runtime.GC()
	sleepCtx(ctx, b.p.Pause.D())
}

func (b *bench) purge(ctx context.Context, stream string) error {
	js, err := jetstream.New(b.cons.nc)
	if err != nil {
		return err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	return s.Purge(ctx)
}

// warmUp sends a few events per token through every mode, so first-event
// work (the relay learning ids, buffers growing) is not measured.
func (b *bench) warmUp(ctx context.Context, ms *modeSet) error {
	for _, m := range ms.list {
		n := 5 * len(m.set.tokens)
		m.counter.reset(false, 0)
		b.pushAll(ctx, m.set, n)
		if got := m.counter.settle(ctx, int64(n), b.p.SettleQuiet.D()); got != int64(n) {
			return fmt.Errorf("%s: warm-up: %d of %d events arrived", m.name, got, n)
		}
		b.between(ctx, m)
	}
	return nil
}

// releaseModes stops the relays and floors of the throughput and latency
// scenarios, so scale and storm run on a quiet machine.
func (b *bench) releaseModes() {
	if b.modes == nil {
		return
	}
	for _, m := range b.modes.list {
		m.stop()
	}
	b.modes = nil
}
