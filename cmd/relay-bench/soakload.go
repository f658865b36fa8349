package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load runs the agents for the soak's duration while the fault loop drops
// the websockets, restarts NATS and samples the relay.
func (s *soakRun) load(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, s.p.Duration.D())
	defer cancel()
	s.start = time.Now()
	s.b.progress("soak: %d replies/s over %d conversations for %s; drop every %s, NATS restart every %s (down %s)",
		s.p.Rate, len(s.convs), s.p.Duration.D(), s.p.DropEvery.D(), s.p.NATSEvery.D(), s.p.NATSDown.D())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.agents(lctx); err != nil {
			s.fail(err)
			cancel()
		}
		s.res.Seconds = round3(time.Since(s.start).Seconds())
	})
	s.faults(ctx, lctx)
	wg.Wait()
	s.res.Replies = s.replies.Load()
	s.res.Achieved = round3(float64(s.res.Replies) / s.res.Seconds)
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// agents replies at the soak's rate, round-robin over the conversations,
// until ctx ends. It keeps to a schedule: a late tick sends what is due.
func (s *soakRun) agents(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int(time.Since(begin).Seconds() * float64(s.p.Rate))
		for ; n < due && ctx.Err() == nil; n++ {
			conv := s.convs[n%len(s.convs)]
			if _, err := s.b.fake.AgentReply(s.inbox.AccountID, conv, "reply "+strconv.Itoa(n)); err != nil {
				return fmt.Errorf("agent reply: %w", err)
			}
			s.replies.Add(1)
		}
	}
}

// faults samples the relay, drops every websocket and restarts NATS on
// their intervals until lctx ends, then waits for a restart in progress
// (its recovery is timed under ctx) and takes a last sample.
func (s *soakRun) faults(ctx, lctx context.Context) {
	sample, drop, restart := time.NewTicker(s.p.SampleEvery.D()), time.NewTicker(s.p.DropEvery.D()), time.NewTicker(s.p.NATSEvery.D())
	defer sample.Stop()
	defer drop.Stop()
	defer restart.Stop()
	var restarts sync.WaitGroup
	var busy atomic.Bool // one restart at a time
	s.sample()
	for {
		select {
		case <-lctx.Done():
			restarts.Wait()
			s.sample()
			return
		case <-sample.C:
			s.sample()
		case <-drop.C:
			if lctx.Err() == nil {
				s.drop()
			}
		case <-restart.C:
			if lctx.Err() == nil && busy.CompareAndSwap(false, true) {
				restarts.Go(func() {
					defer busy.Store(false)
					s.restartNATS(ctx)
				})
			}
		}
	}
}

// sample reads the relay's RSS and open files from /proc and its
// goroutines and heap from /metrics.
func (s *soakRun) sample() {
	st, err := readProc(s.rp.pid())
	if err != nil {
		s.b.progress("soak: reading /proc: %v", err)
		return
	}
	m, err := s.rp.metrics()
	if err != nil {
		s.b.progress("soak: reading /metrics: %v", err)
		return
	}
	x := SoakSample{Seconds: round3(time.Since(s.start).Seconds()), RSSKiB: st.RSS >> 10,
		HeapInuse: m["go_memstats_heap_inuse_bytes"], Goroutines: int(m["go_goroutines"]), FDs: st.FDs,
		Replies: s.replies.Load()}
	s.mu.Lock()
	s.res.Samples = append(s.res.Samples, x)
	s.mu.Unlock()
	s.b.progress("soak %6.0fs: RSS %6.1f MiB, heap %6.1f MiB, %4d goroutines, %3d fds, %d replies",
		x.Seconds, float64(x.RSSKiB)/1024, x.HeapInuse/(1<<20), x.Goroutines, x.FDs, x.Replies)
}

// drop closes every websocket of the fake, with and without a disconnect
// frame in turn.
func (s *soakRun) drop() {
	s.mu.Lock()
	frame := s.res.Drops%2 == 1
	s.res.Drops++
	s.mu.Unlock()
	n := s.b.fake.DropAll(frame)
	s.b.progress("soak: dropped %d websockets (disconnect frame: %v)", n, frame)
}

// restartNATS stops NATS for NATSDown, starts it again on the same port
// with the same store, and times the relay's recovery.
func (s *soakRun) restartNATS(ctx context.Context) {
	r := NATSRestart{At: round3(time.Since(s.start).Seconds())}
	s.b.progress("soak: NATS down for %s", s.p.NATSDown.D())
	stopped := time.Now()
	back, err := s.nats.restart(s.p.NATSDown.D())
	if err != nil {
		s.fail(fmt.Errorf("restarting NATS: %w", err))
		return
	}
	r.Down = round3(back.Sub(stopped).Seconds())
	sent := s.replies.Load()
	r.Ready = waitSince(ctx, back, s.ready)
	r.CaughtUp = waitSince(ctx, back, func() bool {
		n, err := s.streamCount(ctx)
		return err == nil && n >= s.base+sent
	})
	s.mu.Lock()
	s.res.Restarts = append(s.res.Restarts, r)
	s.mu.Unlock()
	s.b.progress("soak: NATS back after %.1fs; relay ready after %.2fs, stream caught up after %.2fs", r.Down, r.Ready, r.CaughtUp)
}

// waitSince polls cond until it holds and returns the seconds since from,
// or -1 when it did not hold within recoveryBound.
func waitSince(ctx context.Context, from time.Time, cond func() bool) float64 {
	err := waitFor(ctx, recoveryBound, 20*time.Millisecond, func() (bool, error) { return cond(), nil })
	if err != nil {
		return -1
	}
	return round3(time.Since(from).Seconds())
}
