package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// SoakResult is the soak: the relay in JetStream mode under steady agent
// replies for a long run, every websocket dropped and NATS restarted at
// fixed intervals. It reports how the relay's RSS, goroutines and open
// files grow (least-squares slopes after a warm-up), how long it took to
// recover from each NATS restart, and whether the stream holds every
// reply exactly once.
type SoakResult struct {
	Seconds    float64 `json:"load_seconds"`
	Contacts   int     `json:"contacts"`
	Rate       int     `json:"offered_replies_per_sec"`
	Achieved   float64 `json:"achieved_replies_per_sec"`
	Replies    int64   `json:"agent_replies"`
	Expected   int     `json:"messages_expected"` // every message a contact's feed carries
	InStream   int     `json:"distinct_messages_in_stream"`
	Lost       int     `json:"lost"`
	Duplicated int     `json:"duplicated"`
	Unknown    int     `json:"unknown"` // in the stream but never created: must be 0
	// VerifySeconds is the time from the end of the load until the stream
	// was read with nothing missing (or the bound ran out).
	VerifySeconds  float64       `json:"verify_seconds"`
	Drops          int           `json:"websocket_drops"`
	Restarts       []NATSRestart `json:"nats_restarts"`
	WarmUpSeconds  float64       `json:"warm_up_seconds"`
	SlopeSamples   int           `json:"samples_in_slopes"`
	RSSSlope       float64       `json:"rss_kib_per_min"`
	GoroutineSlope float64       `json:"goroutines_per_min"`
	FDSlope        float64       `json:"fds_per_min"`
	Samples        []SoakSample  `json:"samples"`
	Targets        []Target      `json:"targets"`
}

// SoakSample is the relay's footprint at one moment of the soak.
type SoakSample struct {
	Seconds    float64 `json:"t"`
	RSSKiB     int64   `json:"rss_kib"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	Replies    int64   `json:"replies"` // agent replies sent so far
}

// NATSRestart is one NATS restart and the relay's recovery, timed from the
// moment NATS listened again; -1 means not within recoveryBound.
type NATSRestart struct {
	At    float64 `json:"at_seconds"`
	Down  float64 `json:"down_seconds"`
	Ready float64 `json:"ready_after_seconds"` // the relay's /readyz answers 200 again
	// CaughtUp: the stream holds as many replies as the agents had sent
	// when NATS came back.
	CaughtUp float64 `json:"caught_up_after_seconds"`
}

// Bounds that keep the soak finite whatever the relay does.
const (
	recoveryBound = 2 * time.Minute // per NATS restart, for ready and caught up
	setUpBound    = 2 * time.Minute // the contacts' first messages reach the stream
	verifyBound   = 5 * time.Minute // reading the stream at the end
)

func (r *SoakResult) targets() []Target { return r.Targets }

func (r *SoakResult) summary() string {
	var ready, caught []string
	for _, x := range r.Restarts {
		ready, caught = append(ready, fmt.Sprintf("%.1fs", x.Ready)), append(caught, fmt.Sprintf("%.1fs", x.CaughtUp))
	}
	return fmt.Sprintf("%.0fs, %d contacts, %.0f replies/s (%d replies), %d websocket drops, %d NATS restarts "+
		"(ready after %s, caught up after %s), lost %d, duplicated %d, unknown %d of %d; after %.0fs: "+
		"RSS %+.1f KiB/min, goroutines %+.2f/min, fds %+.2f/min (%d samples)",
		r.Seconds, r.Contacts, r.Achieved, r.Replies, r.Drops, len(r.Restarts), strings.Join(ready, " "),
		strings.Join(caught, " "), r.Lost, r.Duplicated, r.Unknown, r.Expected, r.WarmUpSeconds,
		r.RSSSlope, r.GoroutineSlope, r.FDSlope, r.SlopeSamples)
}

// soakRun is one soak in progress.
type soakRun struct {
	b     *bench
	p     SoakParams
	rp    *relayProc
	nats  *soakNATS
	mon   *nats.Conn // reads the stream; reconnects across restarts
	inbox chatwoottest.Inbox
	convs []int64 // display id of each contact's conversation
	start time.Time
	base  int64 // message.created in the stream before the agents started

	replies atomic.Int64
	mu      sync.Mutex // res.Samples, res.Restarts, res.Drops, err
	res     *SoakResult
	err     error // first failure of a background step
}

func (b *bench) soak(ctx context.Context) (*SoakResult, error) {
	s, err := b.newSoakRun(ctx)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if err := s.setUp(ctx); err != nil {
		return nil, err
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if err := s.verify(ctx); err != nil {
		return nil, err
	}
	s.res.finish()
	return s.res, nil
}

// newSoakRun starts the soak's own NATS (restarted during the run, so the
// bench's server is left alone), an inbox on the fake and the relay.
func (b *bench) newSoakRun(ctx context.Context) (_ *soakRun, err error) {
	p := b.p.Soak
	s := &soakRun{b: b, p: p, res: &SoakResult{Contacts: p.Contacts, Rate: p.Rate, WarmUpSeconds: p.WarmUp.D().Seconds()}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.nats, err = startSoakNATS(filepath.Join(b.tmp, "soak-nats")); err != nil {
		return nil, err
	}
	if s.inbox, err = b.fake.AddInbox(chatwoottest.InboxConfig{}); err != nil {
		return nil, err
	}
	file := filepath.Join(b.tmp, "soak.tokens")
	if err := writeTokens(file, nil); err != nil {
		return nil, err
	}
	// The relay's default subscribe rate and burst: the drops are paced
	// as in production. The stream must hold the whole run.
	s.rp, err = b.startRelay(ctx, relayConfig{name: soakPrefix, jetStream: true, subsFile: file,
		subscribeRate: 50, burst: 5, natsURL: s.nats.url(),
		extra: map[string]string{"RELAY_NATS_STREAM_MAX_BYTES": "-1"}})
	if err != nil {
		return nil, err
	}
	s.mon, err = nats.Connect(s.nats.url(), nats.Name("relay-bench-soak"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	return s, err
}

// close stops the relay while NATS is still up, then NATS.
func (s *soakRun) close() {
	if s.rp != nil {
		s.rp.stop()
	}
	if s.mon != nil {
		s.mon.Close()
	}
	if s.nats != nil {
		s.nats.stop()
	}
}

// fail records the first failure of a background step.
func (s *soakRun) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// setUp creates the contacts through the relay's proxy (which subscribes
// them), each with a conversation and a first message, and waits until
// those messages are in the stream.
func (s *soakRun) setUp(ctx context.Context) error {
	s.b.progress("soak: creating %d contacts through the relay", s.p.Contacts)
	for i := range s.p.Contacts {
		if err := s.createContact(i); err != nil {
			return err
		}
	}
	if err := s.rp.waitConfirmed(ctx, s.p.Contacts, s.b.p.ConfirmTimeout.D()); err != nil {
		return err
	}
	want := int64(len(s.feedMessages()))
	err := waitFor(ctx, setUpBound, 100*time.Millisecond, func() (bool, error) {
		n, err := s.streamCount(ctx)
		s.base = n
		return err == nil && n >= want, nil
	})
	if err != nil {
		return fmt.Errorf("the contacts' first messages did not reach the stream (%d of %d): %w", s.base, want, err)
	}
	return nil
}

// createContact creates contact i, its conversation and its first
// message. Errors name the step and the status only: the URLs and bodies
// hold the contact's source_id and pubsub_token.
func (s *soakRun) createContact(i int) error {
	base := s.rp.base + "/public/api/v1/inboxes/" + s.inbox.Identifier
	var contact struct {
		SourceID string `json:"source_id"`
	}
	if err := s.post(base+"/contacts", fmt.Sprintf(`{"name":"Customer %d"}`, i), &contact); err != nil {
		return fmt.Errorf("contact %d: %w", i, err)
	}
	var conv struct {
		ID int64 `json:"id"`
	}
	convs := base + "/contacts/" + contact.SourceID + "/conversations"
	if err := s.post(convs, `{}`, &conv); err != nil {
		return fmt.Errorf("contact %d: conversation: %w", i, err)
	}
	if err := s.post(convs+"/"+strconv.FormatInt(conv.ID, 10)+"/messages", `{"content":"hello"}`, nil); err != nil {
		return fmt.Errorf("contact %d: first message: %w", i, err)
	}
	s.convs = append(s.convs, conv.ID)
	return nil
}

func (s *soakRun) post(url, body string, out any) error {
	resp, err := s.rp.client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return errors.New("request failed") // the error quotes the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// ready reports whether the relay's /readyz answers 200.
func (s *soakRun) ready() bool {
	resp, err := s.rp.client.Get(s.rp.base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// feedMessages is the ids of every message of the soak's inbox a
// contact's feed carries: all but private notes and activity messages.
func (s *soakRun) feedMessages() map[int64]bool {
	ids := map[int64]bool{}
	for _, m := range s.b.fake.AllMessages() {
		if m.InboxID == s.inbox.ID && !m.Private && m.MessageType != chatwoottest.MessageActivity {
			ids[m.ID] = true
		}
	}
	return ids
}

// slope is the least-squares slope of y over x (0 with fewer than two
// distinct x).
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy, sxx, sxy = sx+x[i], sy+y[i], sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	d := n*sxx - sx*sx
	if len(x) < 2 || math.Abs(d) < 1e-12 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// finish computes the slopes over the samples after the warm-up, per
// minute, and the targets.
func (r *SoakResult) finish() {
	var t, rss, gr, fds []float64
	for _, x := range r.Samples {
		if x.Seconds < r.WarmUpSeconds {
			continue
		}
		t, rss = append(t, x.Seconds/60), append(rss, float64(x.RSSKiB))
		gr, fds = append(gr, float64(x.Goroutines)), append(fds, float64(x.FDs))
	}
	r.SlopeSamples = len(t)
	r.RSSSlope, r.GoroutineSlope, r.FDSlope = round3(slope(t, rss)), round3(slope(t, gr)), round3(slope(t, fds))
	unrecovered := 0
	for _, x := range r.Restarts {
		if x.Ready < 0 || x.CaughtUp < 0 {
			unrecovered++
		}
	}
	r.Targets = []Target{
		atMost("replies lost", float64(r.Lost), 0, "%.0f"),
		atMost("replies duplicated", float64(r.Duplicated), 0, "%.0f"),
		atMost("unknown messages in the stream", float64(r.Unknown), 0, "%.0f"),
		atMost("NATS restarts not recovered", float64(unrecovered), 0, "%.0f"),
		// The agents run in the bench, next to the fake: when the fake is
		// too busy (it answers the relay's catch-ups) they fall behind.
		atLeast("agent replies/s achieved", r.Achieved, 0.95*float64(r.Rate), "%.0f"),
	}
}

// writeSoakTable writes the samples as a tab-separated table.
func writeSoakTable(path string, r *SoakResult) error {
	var b strings.Builder
	b.WriteString("t_s\trss_kib\theap_inuse_kib\tgoroutines\tfds\treplies\n")
	for _, x := range r.Samples {
		fmt.Fprintf(&b, "%.1f\t%d\t%.0f\t%d\t%d\t%d\n", x.Seconds, x.RSSKiB, x.HeapInuse/1024, x.Goroutines, x.FDs, x.Replies)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// soakFooter is the soak's lines under the plot.
func soakFooter(r *SoakResult) []string {
	first, last := SoakSample{}, SoakSample{}
	if n := len(r.Samples); n > 0 {
		first, last = r.Samples[0], r.Samples[n-1]
	}
	return []string{
		fmt.Sprintf("SOAK %.0fS, %d CONTACTS, %.0f REPLIES/S (OFFERED %d), %d DROPS, %d NATS RESTARTS",
			r.Seconds, r.Contacts, r.Achieved, r.Rate, r.Drops, len(r.Restarts)),
		fmt.Sprintf("SOAK STREAM: LOST %d, DUPLICATED %d, UNKNOWN %d OF %d MESSAGES", r.Lost, r.Duplicated, r.Unknown, r.Expected),
		fmt.Sprintf("SOAK SLOPES AFTER %.0fS: RSS %+.1f KIB/MIN, GOROUTINES %+.2f/MIN, FDS %+.2f/MIN",
			r.WarmUpSeconds, r.RSSSlope, r.GoroutineSlope, r.FDSlope),
		fmt.Sprintf("SOAK RSS %.1f -> %.1f MIB, GOROUTINES %d -> %d, FDS %d -> %d",
			float64(first.RSSKiB)/1024, float64(last.RSSKiB)/1024, first.Goroutines, last.Goroutines, first.FDs, last.FDs),
	}
}
