package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func reserve(t *testing.T, s store.Store, key string, ttl time.Duration) (store.IdempotencyState, []byte) {
	t.Helper()
	st, resp, err := s.ReserveIdempotency(ctx(t), key, ttl)
	mustNoErr(t, err, "ReserveIdempotency "+key)
	return st, resp
}

func wantState(t *testing.T, s store.Store, key string, want store.IdempotencyState, wantResp []byte) {
	t.Helper()
	st, resp := reserve(t, s, key, longTTL)
	if st != want || !bytes.Equal(resp, wantResp) {
		t.Fatalf("Reserve(%s) = %v %q, want %v %q", key, st, resp, want, wantResp)
	}
}

func testIdempotencyLifecycle(t *testing.T, b *Backend) {
	s := b.Store
	wantState(t, s, "k", store.IdempotencyReserved, nil)
	wantState(t, s, "k", store.IdempotencyInProgress, nil)
	wantState(t, s, "other", store.IdempotencyReserved, nil) // keys are independent
	resp := []byte(`{"id":1,"content":"hi"}` + "\x00\xff|p") // any bytes, even ones like the markers
	mustNoErr(t, s.CompleteIdempotency(ctx(t), "k", resp, 0), "Complete")
	wantState(t, s, "k", store.IdempotencyCompleted, resp)
	wantState(t, s, "k", store.IdempotencyCompleted, resp) // stays completed
	mustNoErr(t, s.ReleaseIdempotency(ctx(t), "k"), "Release completed")
	wantState(t, s, "k", store.IdempotencyCompleted, resp) // release leaves a completed key alone
	// A completed empty response is still "completed", with no bytes.
	mustNoErr(t, s.CompleteIdempotency(ctx(t), "empty", nil, longTTL), "Complete empty")
	st, got := reserve(t, s, "empty", longTTL)
	if st != store.IdempotencyCompleted || len(got) != 0 {
		t.Fatalf("empty response: %v %q", st, got)
	}
	if b.Advance != nil {
		// The default TTL is 24 h: still there just before, gone after.
		b.Advance(store.DefaultIdempotencyTTL - time.Minute)
		wantState(t, s, "k", store.IdempotencyCompleted, resp)
		b.Advance(2 * time.Minute)
		wantState(t, s, "k", store.IdempotencyReserved, nil)
	}
}

func testIdempotencyRelease(t *testing.T, b *Backend) {
	s := b.Store
	wantState(t, s, "r", store.IdempotencyReserved, nil)
	mustNoErr(t, s.ReleaseIdempotency(ctx(t), "r"), "Release")
	wantState(t, s, "r", store.IdempotencyReserved, nil) // a retry can proceed
	wantState(t, s, "r", store.IdempotencyInProgress, nil)
	mustNoErr(t, s.ReleaseIdempotency(ctx(t), "never-reserved"), "Release unknown key")
	wantState(t, s, "never-reserved", store.IdempotencyReserved, nil)
}

// testIdempotencyConcurrent: of many concurrent senders with one key exactly
// one calls upstream; the others see it in progress or its response.
func testIdempotencyConcurrent(t *testing.T, b *Backend) {
	s := b.Store
	const callers = 16
	var mu sync.Mutex
	counts := map[store.IdempotencyState]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			st, _, err := s.ReserveIdempotency(ctx(t), "race", longTTL)
			if err != nil {
				t.Errorf("Reserve: %v", err)
				return
			}
			if st == store.IdempotencyReserved {
				if err := s.CompleteIdempotency(ctx(t), "race", []byte("sent"), longTTL); err != nil {
					t.Errorf("Complete: %v", err)
				}
			}
			mu.Lock()
			counts[st]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if counts[store.IdempotencyReserved] != 1 {
		t.Fatalf("states %v: want exactly one reserved", counts)
	}
	if counts[store.IdempotencyInProgress]+counts[store.IdempotencyCompleted] != callers-1 {
		t.Fatalf("states %v", counts)
	}
	wantState(t, s, "race", store.IdempotencyCompleted, []byte("sent"))
}

func testIdempotencyReservationExpiry(t *testing.T, b *Backend) {
	s := b.Store
	if st, _ := reserve(t, s, "crash", shortTTL); st != store.IdempotencyReserved {
		t.Fatalf("Reserve = %v", st)
	}
	if !b.realTime() {
		b.Advance(shortTTL / 2)
		wantState(t, s, "crash", store.IdempotencyInProgress, nil)
	}
	// The caller crashed: after the reservation TTL a retry may proceed.
	b.expire(t, shortTTL, "expired reservation is free", func() bool {
		st, _ := reserve(t, s, "crash", longTTL)
		return st == store.IdempotencyReserved
	})
	wantState(t, s, "crash", store.IdempotencyInProgress, nil)
}

func testIdempotencyResponseExpiry(t *testing.T, b *Backend) {
	s := b.Store
	reserve(t, s, "done", longTTL)
	mustNoErr(t, s.CompleteIdempotency(ctx(t), "done", []byte("r"), shortTTL), "Complete")
	if !b.realTime() {
		b.Advance(shortTTL / 2)
		wantState(t, s, "done", store.IdempotencyCompleted, []byte("r"))
	}
	// Complete replaced the long reservation TTL with its own.
	b.expire(t, shortTTL, "expired response is forgotten", func() bool {
		st, _ := reserve(t, s, "done", longTTL)
		return st == store.IdempotencyReserved
	})
}

func testIdempotencyInvalid(t *testing.T, b *Backend) {
	s := b.Store
	_, _, err := s.ReserveIdempotency(ctx(t), "", time.Minute)
	wantErr(t, err, store.ErrInvalid, "Reserve empty key")
	_, _, err = s.ReserveIdempotency(ctx(t), "k", -time.Second)
	wantErr(t, err, store.ErrInvalid, "Reserve negative ttl")
	wantErr(t, s.CompleteIdempotency(ctx(t), "", nil, 0), store.ErrInvalid, "Complete empty key")
	wantErr(t, s.ReleaseIdempotency(ctx(t), ""), store.ErrInvalid, "Release empty key")
	wantState(t, s, "k", store.IdempotencyReserved, nil) // the rejected call did not reserve
}
