package registry

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

// countingStore counts subscription writes and can fail batch writes.
type countingStore struct {
	store.Store
	mu           sync.Mutex
	puts         int // PutSubscription calls
	batches      int // PutSubscriptions calls
	batchRecords int // records written by PutSubscriptions
	failBatchAt  int // when > 0, the failBatchAt-th PutSubscriptions call fails
}

var errStoreDown = errors.New("store down")

func (c *countingStore) PutSubscription(ctx context.Context, s store.Subscription) (store.Subscription, bool, error) {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Store.PutSubscription(ctx, s)
}

func (c *countingStore) PutSubscriptions(ctx context.Context, subs []store.Subscription) ([]store.PutResult, error) {
	c.mu.Lock()
	c.batches++
	fail := c.batches == c.failBatchAt
	if !fail {
		c.batchRecords += len(subs)
	}
	c.mu.Unlock()
	if fail {
		return nil, errStoreDown
	}
	return c.Store.PutSubscriptions(ctx, subs)
}

// writes returns PutSubscription calls, PutSubscriptions calls and records
// written by them.
func (c *countingStore) writes() (puts, batches, records int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts, c.batches, c.batchRecords
}

func newCountingRegistry(t *testing.T) (*Registry, *fakePool, *countingStore) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	t.Cleanup(func() { st.Close() })
	r := New(cs, nil)
	p := newFakePool()
	r.Attach(p)
	t.Cleanup(r.Close)
	return r, p, cs
}

// TestRegisterUnchangedDoesNotWrite: registering what the record already
// holds writes nothing (UpdatedAt stays) but subscribes again.
func TestRegisterUnchangedDoesNotWrite(t *testing.T) {
	r, p, cs := newCountingRegistry(t)
	ctx := context.Background()
	full := api.Registration{Token: "tok-u", InboxIdentifier: "inbox", SourceID: "src", ContactID: "7", Origin: api.OriginAPI}
	first, created, err := r.Register(ctx, full)
	if err != nil || !created {
		t.Fatalf("first register: %v %v", created, err)
	}
	before, err := cs.GetSubscription(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	p.Remove(first.ID) // a restart: the pool is empty, the store is not
	for _, reg := range []api.Registration{
		full,
		{Token: "tok-u", Origin: api.OriginProxy},         // fewer facts: the stored ones are kept
		{Token: "tok-u", InboxIdentifier: "inbox"},        // a subset
		{Token: "tok-u", SourceID: "src", ContactID: "7"}, // the same values again
	} {
		sub, created, err := r.Register(ctx, reg)
		if err != nil || created || sub.ID != first.ID || !sub.CatchUp || sub.Origin != api.OriginAPI {
			t.Fatalf("re-register: %+v %v %v", sub, created, err)
		}
	}
	if puts, _, _ := cs.writes(); puts != 1 {
		t.Fatalf("%d PutSubscription calls, want 1 (the first registration)", puts)
	}
	after, err := cs.GetSubscription(ctx, first.ID)
	if err != nil || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("record rewritten: UpdatedAt %v -> %v (%v)", before.UpdatedAt, after.UpdatedAt, err)
	}
	if m := MetaOf(p.Record(first.ID)); m == nil || m.SourceID != "src" {
		t.Fatalf("not resubscribed with the stored facts: %+v", m)
	}
	// A new fact is written.
	if sub, _, err := r.Register(ctx, api.Registration{Token: "tok-u", ContactID: "8"}); err != nil || sub.ContactID != "8" {
		t.Fatalf("register with a new contact: %+v %v", sub, err)
	}
	if puts, _, _ := cs.writes(); puts != 2 {
		t.Fatalf("%d PutSubscription calls, want 2", puts)
	}
}

func batchOf(prefix string, n int) []api.Registration {
	regs := make([]api.Registration, n)
	for i := range regs {
		regs[i] = api.Registration{Token: fmt.Sprintf("%s-%05d", prefix, i), Origin: store.OriginFile}
	}
	return regs
}

func outcomes(results []BatchResult) []Outcome {
	out := make([]Outcome, len(results))
	for i, r := range results {
		out[i] = r.Outcome
	}
	return out
}

func TestRegisterBatch(t *testing.T) {
	r, p, cs := newCountingRegistry(t)
	ctx := context.Background()
	const secret = "secret-bad\x01token"
	regs := []api.Registration{
		{Token: "tok-b0", Origin: store.OriginFile},
		{Token: "tok-b1", InboxIdentifier: "inbox", SourceID: "src-1", Origin: store.OriginFile},
		{Token: secret, Origin: store.OriginFile},
		{Token: "", Origin: store.OriginFile},
		{Token: "tok-b0", SourceID: "src-0", InboxIdentifier: "inbox", Origin: store.OriginFile}, // repeated: adds facts
		{Token: "tok-b1", Origin: store.OriginFile},                                              // repeated: nothing new
	}
	results, err := r.RegisterBatch(ctx, regs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{Created, Created, NotRegistered, NotRegistered, Updated, Unchanged}
	if got := outcomes(results); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes = %v, want %v", got, want)
	}
	for _, i := range []int{2, 3} {
		err := results[i].Err
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("registration %d", i)) {
			t.Errorf("result %d: err = %v, want ErrInvalid naming registration %d", i, err, i)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the token: %v", err)
		}
		if results[i].ID != "" {
			t.Errorf("result %d: id %q for an invalid token", i, results[i].ID)
		}
	}
	if s := Summarize(results); s != (BatchSummary{Created: 2, Updated: 1, Unchanged: 1, Failed: 2}) {
		t.Fatalf("summary = %+v", s)
	}
	if puts, batches, records := cs.writes(); puts != 0 || batches != 1 || records != 2 {
		t.Fatalf("writes: %d puts, %d batches of %d records; want 0, 1, 2", puts, batches, records)
	}
	id0, id1 := cable.SubscriptionID("tok-b0"), cable.SubscriptionID("tok-b1")
	if results[0].ID != id0 || results[4].ID != id0 || results[1].ID != id1 {
		t.Fatalf("ids = %v", results)
	}
	rec, err := cs.GetSubscription(ctx, id0)
	if err != nil || rec.SourceID != "src-0" || rec.InboxIdentifier != "inbox" || rec.Origin != store.OriginFile {
		t.Fatalf("stored %v, %v", rec, err)
	}
	if m := MetaOf(p.Record(id0)); m == nil || !m.CatchUp() || p.Len() != 2 {
		t.Fatalf("pool: %d subscriptions, meta %+v", p.Len(), m)
	}
	before := rec.UpdatedAt

	// The same batch again (a restart): nothing written, all subscribed.
	p.Remove(id0)
	p.Remove(id1)
	results, err = r.RegisterBatch(ctx, regs)
	if err != nil {
		t.Fatal(err)
	}
	want = []Outcome{Unchanged, Unchanged, NotRegistered, NotRegistered, Unchanged, Unchanged}
	if got := outcomes(results); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("second batch: outcomes = %v, want %v", got, want)
	}
	if _, batches, _ := cs.writes(); batches != 1 {
		t.Fatalf("second batch wrote: %d PutSubscriptions calls, want still 1", batches)
	}
	if rec, _ := cs.GetSubscription(ctx, id0); !rec.UpdatedAt.Equal(before) {
		t.Fatalf("record rewritten: UpdatedAt %v -> %v", before, rec.UpdatedAt)
	}
	if !p.Has(id0) || !p.Has(id1) {
		t.Fatal("unchanged subscriptions not resubscribed")
	}

	// One changed registration: one record written.
	results, err = r.RegisterBatch(ctx, []api.Registration{regs[0], {Token: "tok-b1", ContactID: "9"}})
	if err != nil || results[0].Outcome != Unchanged || results[1].Outcome != Updated {
		t.Fatalf("third batch: %v, %v", outcomes(results), err)
	}
	if _, batches, records := cs.writes(); batches != 2 || records != 3 {
		t.Fatalf("third batch: %d batches of %d records in all, want 2, 3", batches, records)
	}
}

// TestRegisterBatchChunks: writes go in chunks of BatchChunk, one store
// transaction each.
func TestRegisterBatchChunks(t *testing.T) {
	r, p, cs := newCountingRegistry(t)
	ctx := context.Background()
	n := 2*BatchChunk + 500
	results, err := r.RegisterBatch(ctx, batchOf("chunk", n))
	if err != nil {
		t.Fatal(err)
	}
	if s := Summarize(results); s.Created != n {
		t.Fatalf("summary = %+v", s)
	}
	if puts, batches, records := cs.writes(); puts != 0 || batches != 3 || records != n {
		t.Fatalf("writes: %d puts, %d batches of %d records; want 0, 3, %d", puts, batches, records, n)
	}
	if c, _ := cs.CountSubscriptions(ctx); c != n || p.Len() != n {
		t.Fatalf("stored %d, pool %d; want %d", c, p.Len(), n)
	}
}

// TestRegisterBatchStoreFailure: a failed write stops the batch; earlier
// chunks stay registered, nothing of the failed chunk reaches the pool.
func TestRegisterBatchStoreFailure(t *testing.T) {
	r, p, cs := newCountingRegistry(t)
	cs.failBatchAt = 2
	ctx := context.Background()
	n := 2*BatchChunk + 10
	results, err := r.RegisterBatch(ctx, batchOf("fail", n))
	if !errors.Is(err, errStoreDown) {
		t.Fatalf("err = %v, want the store error", err)
	}
	s := Summarize(results)
	if s.Created != BatchChunk || s.Failed != n-BatchChunk {
		t.Fatalf("summary = %+v", s)
	}
	for i, res := range results {
		if want := i < BatchChunk; (res.Outcome == Created) != want || res.Err != nil {
			t.Fatalf("result %d = %+v", i, res)
		}
	}
	if c, _ := cs.CountSubscriptions(ctx); c != BatchChunk || p.Len() != BatchChunk {
		t.Fatalf("stored %d, pool %d; want %d", c, p.Len(), BatchChunk)
	}
}

// TestRegisterBatchKeepsLearnedIDs: ids learned from events fill the record
// like Register does.
func TestRegisterBatchKeepsLearnedIDs(t *testing.T) {
	r, _, cs := newCountingRegistry(t)
	ctx := context.Background()
	sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-l"})
	rt := fanout.Route{Kind: fanout.KindPresence, AccountID: "3", InboxID: fanout.Unknown, ContactID: fanout.Unknown}
	r.Entry(sub.ID).Sub().Observe(&rt, time.Time{}) // learned, not written yet
	results, err := r.RegisterBatch(ctx, []api.Registration{{Token: "tok-l"}})
	if err != nil || results[0].Outcome != Updated {
		t.Fatalf("batch: %v, %v", outcomes(results), err)
	}
	if rec, _ := cs.GetSubscription(ctx, sub.ID); rec.AccountID != "3" {
		t.Fatalf("stored %v", rec)
	}
}
