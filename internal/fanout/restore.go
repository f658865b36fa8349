package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Restoring the dedup window after a restart (JetStream mode).
//
// Core subscribers on the stream's subjects receive every publish of the
// relay, including the copies the stream then rejects as duplicates of a
// Nats-Msg-Id it already holds: the server delivers a published message to
// core subscriptions and to the stream independently. After a crash,
// catch-up replays what the dead process had published but not yet recorded
// in its cursors (flushed every few seconds); the stream drops those
// replays, but core subscribers would get them twice, because a new process
// starts with an empty window.
//
// So Open loads the window from the stream before the relay handles any
// event: the Nats-Msg-Ids of the messages stored within DedupTTL, at most
// DedupSize of them (the newest), each expiring DedupTTL after it was
// stored, exactly as if this process had admitted it. A replay of one of
// them is then a duplicate, dropped before it is published. The reads are
// ordered consumers delivering headers only, newest part first, bounded by
// Config.RestoreTimeout.
//
// The age bound is DedupTTL, not the stream's duplicate window: the window
// gets back what it would have held had the process not stopped, and a
// replay it drops reaches neither the stream nor core subscribers.
//
// Other ways were weighed and not taken:
//   - the PubAck's Duplicate flag arrives after the server has already
//     delivered the copy to core subscribers;
//   - publishing to an internal subject that the stream takes in with a
//     subject transform and republishes (RePublish) onto <prefix>.> would
//     show core subscribers only stored messages, but it moves every
//     existing stream to new subjects, needs new publish permissions on
//     external servers, doubles the server's traffic, adds the stream's
//     headers to every core message, and leaves core subscribers with
//     nothing while the stream is unavailable.
//
// What the window cannot cover is unchanged: a key older than DedupTTL, a
// start while NATS is unreachable (the window then starts empty), and the
// brief double ownership of a hand-over between replicas.

// DefaultRestoreTimeout bounds rebuilding the dedup window at Open.
const DefaultRestoreTimeout = 5 * time.Second

// windowKey returns the in-process dedup key of a stored Nats-Msg-Id, or
// false for ids the window does not keep across a restart: message and
// conversation ids are their dedup key; typing and presence ids ("i:")
// carry a time bucket and live for an instant; lifecycle ids ("l:") are
// not deduplicated.
func windowKey(msgID string) (string, bool) {
	if strings.HasPrefix(msgID, "m:") || strings.HasPrefix(msgID, "c:") {
		return msgID, true
	}
	return "", false
}

// restoreRecent is how many of the newest messages are read first: those
// are what catch-up replays after a crash, so they must be in the window
// even when the bound cuts the restore short. (A variable for tests.)
var restoreRecent uint64 = 10_000

// restoreWindow loads the Nats-Msg-Ids the stream stored since now-ttl into
// w, at most w's size: first the restoreRecent newest, then the older ones.
// Each expires ttl after it was stored. It returns how many messages it
// read; a missing stream is not an error.
func restoreWindow(ctx context.Context, js jetstream.JetStream, stream string, w *window, ttl time.Duration, now time.Time) (int, error) {
	if w == nil {
		return 0, nil
	}
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	st := s.CachedInfo().State
	since := now.Add(-ttl)
	if st.Msgs == 0 || !st.LastTime.After(since) {
		return 0, nil // nothing stored recently
	}
	r := reader{js: js, stream: stream, w: w, ttl: ttl, now: now.UnixNano()}
	size := uint64(len(w.ring))
	recent := max(st.FirstSeq, st.LastSeq-min(st.LastSeq, restoreRecent, size)+1)
	if err := r.read(ctx, bySeq(recent), st.LastSeq); err != nil || recent == st.FirstSeq {
		return r.n, err
	}
	older, from := restoreStart(ctx, s, st, since, size)
	if from >= recent {
		return r.n, nil
	}
	return r.n, r.read(ctx, older, recent-1)
}

func bySeq(seq uint64) jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq}
}

// restoreStart returns where to start reading: the first message stored
// since the cutoff, or the size-th newest message (also returned as a
// sequence) when that one is later, so that no more messages are read than
// the window can hold.
func restoreStart(ctx context.Context, s jetstream.Stream, st jetstream.StreamState, since time.Time, size uint64) (jetstream.OrderedConsumerConfig, uint64) {
	byTime := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	if st.LastSeq < size || st.LastSeq-size+1 <= st.FirstSeq {
		return byTime, 0
	}
	seq := st.LastSeq - size + 1
	m, err := s.GetMsg(ctx, seq)
	if err != nil || !m.Time.After(since) {
		return byTime, 0 // deleted, or older than the cutoff: the time decides
	}
	return bySeq(seq), seq
}

// reader loads the ids of a stream's messages into a window.
type reader struct {
	js     jetstream.JetStream
	stream string
	w      *window
	ttl    time.Duration
	now    int64
	n      int // messages read
}

// read loads the ids of the messages from cfg's start up to sequence last,
// or until nothing is pending, delivering headers only.
func (r *reader) read(ctx context.Context, cfg jetstream.OrderedConsumerConfig, last uint64) error {
	cfg.HeadersOnly = true
	cons, err := r.js.OrderedConsumer(ctx, r.stream, cfg)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("after %d messages: %w", r.n, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		if meta.Sequence.Stream > last {
			return nil
		}
		r.n++
		if key, ok := windowKey(m.Headers().Get(HeaderMsgID)); ok {
			r.w.load(key, r.now, meta.Timestamp.Add(r.ttl).UnixNano())
		}
		if meta.Sequence.Stream == last || meta.NumPending == 0 {
			return nil
		}
	}
}

// restore rebuilds the dedup window from js's stream, bounded by timeout
// (0 means DefaultRestoreTimeout, negative skips it). Without a connection
// to NATS it returns at once and the window starts empty.
func (f *Fanout) restore(js *JetStream, timeout time.Duration) {
	if f.dedup == nil || timeout < 0 {
		return
	}
	if !js.nc.IsConnected() {
		f.log.Warn("fanout: NATS unreachable at start: the dedup window starts empty")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), orDefault(timeout, DefaultRestoreTimeout))
	defer cancel()
	start := time.Now()
	n, err := restoreWindow(ctx, js.js, js.cfg.Name, f.dedup, f.opts.DedupTTL, start)
	took := time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		f.log.Warn("fanout: dedup window only partly restored from the stream", "read", n, "keys", f.dedup.len(), "took", took, "err", err)
		return
	}
	f.log.Info("fanout: dedup window restored from the stream", "read", n, "keys", f.dedup.len(), "took", took)
}
