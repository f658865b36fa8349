package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// Backend is one freshly opened, empty store under test.
type Backend struct {
	// Store is the store under test. The suite closes it.
	Store store.Store
	// Advance makes d pass for the store's expiry clock (a manual clock,
	// miniredis FastForward). Nil when the store runs on real time: the suite
	// then waits for expiry by polling with a bound.
	Advance func(d time.Duration)
	// Reopen opens the same data again after the suite closed Store (same
	// file, same Redis server and prefix). Nil skips the persistence test.
	Reopen func(t *testing.T) store.Store
}

// Bounds of the real-time expiry checks.
const (
	shortTTL     = 40 * time.Millisecond // expires within a test
	longTTL      = time.Hour             // never expires within a test
	expiryBound  = 10 * time.Second      // how long to wait for a short TTL to be observed
	pollInterval = 5 * time.Millisecond
)

// Run runs the contract suite. open must return a fresh, empty store each call.
func Run(t *testing.T, open func(t *testing.T) *Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *Backend)
	}{
		{"SubscriptionUpsert", testSubscriptionUpsert},
		{"SubscriptionRoundTrip", testSubscriptionRoundTrip},
		{"SubscriptionNotFound", testSubscriptionNotFound},
		{"SubscriptionActivity", testSubscriptionActivity},
		{"SubscriptionInvalid", testSubscriptionInvalid},
		{"SubscriptionBatchPut", testSubscriptionBatchPut},
		{"SubscriptionBatchMatchesSingle", testSubscriptionBatchMatchesSingle},
		{"SubscriptionBatchInvalid", testSubscriptionBatchInvalid},
		{"SubscriptionBatchLarge", testSubscriptionBatchLarge},
		{"SubscriptionGetMany", testSubscriptionGetMany},
		{"ListPagination", testListPagination},
		{"ListStableUnderConcurrentWrites", testListConcurrent},
		{"CursorAdvanceOnly", testCursorAdvanceOnly},
		{"CursorConversationStatus", testCursorConversationStatus},
		{"CursorNeedsSubscription", testCursorNeedsSubscription},
		{"CursorConcurrentAdvance", testCursorConcurrent},
		{"CursorListAndDelete", testCursorListAndDelete},
		{"DeleteRemovesCursors", testDeleteRemovesCursors},
		{"CursorInvalid", testCursorInvalid},
		{"IdempotencyLifecycle", testIdempotencyLifecycle},
		{"IdempotencyRelease", testIdempotencyRelease},
		{"IdempotencyConcurrentReserve", testIdempotencyConcurrent},
		{"IdempotencyReservationExpiry", testIdempotencyReservationExpiry},
		{"IdempotencyResponseExpiry", testIdempotencyResponseExpiry},
		{"IdempotencyInvalid", testIdempotencyInvalid},
		{"LeaseAcquireRelease", testLeaseAcquireRelease},
		{"LeaseRenew", testLeaseRenew},
		{"LeaseExpirySteal", testLeaseExpirySteal},
		{"LeaseConcurrentAcquire", testLeaseConcurrent},
		{"LeaseInvalid", testLeaseInvalid},
		{"LeaseFencing", testLeaseFencing},
		{"LeaseFencingExpiry", testLeaseFencingExpiry},
		{"LeaseClaimConcurrent", testLeaseClaimConcurrent},
		{"PinSetting", testPinSetting},
		{"Membership", testMembership},
		{"MembershipExpiry", testMembershipExpiry},
		{"Webhooks", testWebhooks},
		{"WebhookInvalid", testWebhookInvalid},
		{"FeedLifecycle", testFeedLifecycle},
		{"Persistence", testPersistence},
		{"PingAndClose", testPingAndClose},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t)
			t.Cleanup(func() { b.Store.Close() })
			tt.fn(t, b)
		})
	}
}

// realTime reports whether expiry must be observed by waiting.
func (b *Backend) realTime() bool { return b.Advance == nil }

// expire makes ttl pass and then requires cond: at once on a manual clock,
// within expiryBound on real time.
func (b *Backend) expire(t *testing.T, ttl time.Duration, what string, cond func() bool) {
	t.Helper()
	if !b.realTime() {
		b.Advance(ttl + time.Millisecond)
		if !cond() {
			t.Fatalf("%s: not observed after %v passed", what, ttl)
		}
		return
	}
	deadline := time.Now().Add(ttl + expiryBound)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not observed within %v after a %v TTL", what, expiryBound, ttl)
		}
		<-tick.C
	}
}

func mustNoErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }
