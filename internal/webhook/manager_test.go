package webhook

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

func newManager(t *testing.T, js jetstream.JetStream, opts Options) *Manager {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewManager(st, startEngine(t, js, opts))
}

func TestManagerLifecycle(t *testing.T) {
	_, js := startJS(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusOK })
	m := newManager(t, js, fastOptions())
	ctx := context.Background()
	ep, err := m.Create(ctx, Endpoint{URL: rc.srv.URL, AllowHTTP: true, Subjects: []string{"chatwoot.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.ID, "wh_") || len(ep.Secrets) != 1 || !strings.HasPrefix(string(ep.Secrets[0]), SecretPrefix) {
		t.Fatalf("created %+v", ep)
	}
	if !m.Engine().Running(ep.ID) {
		t.Fatal("a created endpoint is not delivering")
	}
	if _, err := m.Create(ctx, ep); !errors.Is(err, ErrConflict) {
		t.Fatalf("create twice: %v", err)
	}
	rc.secret = ep.Secrets[0]
	a, err := m.Test(ctx, ep.ID)
	if err != nil || a.Status != 200 {
		t.Fatalf("test delivery %+v %v", a, err)
	}
	rotated, err := m.Update(ctx, ep.ID, Patch{RotateSecret: true})
	if err != nil || len(rotated.Secrets) != 2 || rotated.Secrets[1] != ep.Secrets[0] {
		t.Fatalf("rotate: %v", err)
	}
	// The receiver still on the old secret verifies deliveries.
	publishEvents(t, js, 1, 1, 0)
	rc.waitFor("a delivery during rotation", func(g []delivered) bool { return len(g) >= 2 })
	if rc.bad != 0 {
		t.Fatal("the previous secret does not verify during a rotation")
	}
	if err := m.Delete(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, "CHATWOOT", ConsumerName(ep.ID)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("consumer after delete: %v", err)
	}
	if _, err := m.Get(ctx, ep.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestManagerFileEndpointsAreReadOnly(t *testing.T) {
	_, js := startJS(t)
	m := newManager(t, js, fastOptions())
	ctx := context.Background()
	file := endpointFor("http://127.0.0.1:9/hook", NewSecret())
	if err := m.SetFile(ctx, []Endpoint{file}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(ctx, file.ID, Patch{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("update a file endpoint: %v", err)
	}
	if err := m.Delete(ctx, file.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete a file endpoint: %v", err)
	}
	if _, err := m.Create(ctx, file); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over a file endpoint: %v", err)
	}
	bad := file
	bad.URL = "ftp://x"
	if err := m.SetFile(ctx, []Endpoint{bad, file}); err == nil {
		t.Fatal("an invalid file accepted")
	}
	if got, _ := m.Get(ctx, file.ID); got.URL != file.URL {
		t.Fatal("a rejected file changed the endpoints")
	}
}

// A dead-lettered event is replayed by its event id or its dead letter's
// sequence; everything since a time by rewinding the consumer.
func TestManagerReplay(t *testing.T) {
	_, js := startJS(t)
	var fail = true
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	rc := newReceiver(t, func(int, *http.Request) int {
		<-mu
		defer func() { mu <- struct{}{} }()
		if fail {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	m := newManager(t, js, fastOptions())
	ctx := context.Background()
	ep, err := m.Create(ctx, endpointFor(rc.srv.URL, rc.secret))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	publishEvents(t, js, 1, 2, 0)
	dead := nextDead(t, js, ep.ID)
	waitSettled(t, js, ep.ID)
	<-mu
	fail = false
	mu <- struct{}{}
	res, err := m.Replay(ctx, ep.ID, Replay{EventID: "m:1:1-0:created"})
	if err != nil || res.Attempt == nil || res.Attempt.Status != 200 || res.Attempt.EventID != "m:1:1-0:created" {
		t.Fatalf("replay by event id: %+v %v", res, err)
	}
	md, _ := dead.Metadata()
	if res, err := m.Replay(ctx, ep.ID, Replay{Seq: md.Sequence.Stream}); err != nil || res.Attempt.Status != 200 {
		t.Fatalf("replay by dead letter sequence: %+v %v", res, err)
	}
	if _, err := m.Replay(ctx, ep.ID, Replay{}); !errors.Is(err, ErrReplay) {
		t.Fatalf("empty replay: %v", err)
	}
	long := before.Add(-time.Hour) // before the endpoint existed: from its creation
	res, err = m.Replay(ctx, ep.ID, Replay{Since: &long})
	if err != nil || res.FromSeq != 1 {
		t.Fatalf("replay since: %+v %v", res, err)
	}
	got := rc.waitFor("both events again", func(g []delivered) bool { return distinct(g) == 2 && len(g) >= 4 })
	checkOrder(t, got[2:], 1, 2)
}
