package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/natsserver"
)

// The soak relay's subject prefix, its stream and the subjects its agent
// replies land on.
const (
	soakPrefix  = "soak"
	soakStream  = "SOAK"
	soakSubject = soakPrefix + ".*.*.*.*.message.created"
)

// soakNATS is the soak's own JetStream server, restartable on the same
// port with the same store directory.
type soakNATS struct {
	mu   sync.Mutex
	srv  *natsserver.Server
	port int
	dir  string
}

func startSoakNATS(dir string) (*soakNATS, error) {
	n := &soakNATS{dir: dir, port: natsserver.RandomPort}
	if err := n.listen(); err != nil {
		return nil, err
	}
	n.port = n.srv.Port()
	return n, nil
}

func (n *soakNATS) listen() error {
	srv, err := natsserver.Start(natsserver.Config{Port: n.port, JetStream: true, StoreDir: n.dir, ServerName: "soak"})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

func (n *soakNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// restart shuts the server down, waits down and starts it again, retrying
// for a few seconds while the port is not free yet. It returns when the
// server listened again.
func (n *soakNATS) restart(down time.Duration) (time.Time, error) {
	n.stop()
	time.Sleep(down)
	var err error
	for range 20 {
		if err = n.listen(); err == nil {
			return time.Now(), nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Time{}, err
}

func (n *soakNATS) stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
}

// streamCount is the number of agent replies and contact messages in the
// stream (message.created on the soak's subjects).
func (s *soakRun) streamCount(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	js, err := jetstream.New(s.mon)
	if err != nil {
		return 0, err
	}
	st, err := js.Stream(ctx, soakStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(soakSubject))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range info.State.Subjects {
		n += int64(c)
	}
	return n, nil
}

// verify reads the stream and compares it with the fake's records: every
// message a contact's feed carries must be there exactly once.
func (s *soakRun) verify(ctx context.Context) error {
	want := s.feedMessages()
	s.b.progress("soak: reading the stream for %d messages", len(want))
	start := time.Now()
	got, err := s.readStream(ctx, want)
	if err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	r := s.res
	r.VerifySeconds, r.Expected, r.InStream = round3(time.Since(start).Seconds()), len(want), len(got)
	for id := range want {
		switch got[id] {
		case 0:
			r.Lost++
		case 1:
		default:
			r.Duplicated++
		}
	}
	for id := range got {
		if !want[id] {
			r.Unknown++
		}
	}
	return nil
}

// readStream counts each message id on the soak's subjects. It reads until
// nothing of want is missing (bounded by verifyBound), then the rest.
func (s *soakRun) readStream(ctx context.Context, want map[int64]bool) (map[int64]int, error) {
	ctx, cancel := context.WithTimeout(ctx, verifyBound)
	defer cancel()
	js, err := jetstream.New(s.mon)
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, soakStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{soakSubject}})
	if err != nil {
		return nil, err
	}
	got, missing := make(map[int64]int, len(want)), len(want)
	fetch := func(wait time.Duration) (int, error) {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(wait))
		if err != nil {
			return 0, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			id := messageID(m.Data())
			if got[id]++; got[id] == 1 && want[id] {
				missing--
			}
		}
		return n, nil
	}
	for missing > 0 && ctx.Err() == nil {
		if _, err := fetch(2 * time.Second); err != nil && ctx.Err() == nil {
			return nil, err
		}
	}
	for ctx.Err() == nil {
		if n, err := fetch(time.Second); err != nil || n == 0 {
			break
		}
	}
	return got, nil
}

// messageID is the id of a published message.created (0 if unreadable).
func messageID(body []byte) int64 {
	var ev struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal(body, &ev)
	return ev.Data.ID
}
