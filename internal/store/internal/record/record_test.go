package record

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func TestCompareConversationIDs(t *testing.T) {
	ids := []string{"100", "9", "10", "1", "abc", "99"}
	slices.SortFunc(ids, CompareConversationIDs)
	if want := []string{"1", "9", "10", "99", "100", "abc"}; !slices.Equal(ids, want) {
		t.Fatalf("sorted = %v, want %v", ids, want)
	}
}

func TestTimeNormalization(t *testing.T) {
	in := time.Date(2024, 2, 3, 4, 5, 6, 123456789, time.FixedZone("CET", 3600))
	got := Time(in)
	if got.Location() != time.UTC || got.Nanosecond() != 123456000 || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Fatalf("Time(%v) = %v", in, got)
	}
	if !Time(time.Time{}).IsZero() || Micros(time.Time{}) != 0 || !FromMicros(0).IsZero() {
		t.Fatal("zero time does not round-trip as zero")
	}
	if back := FromMicros(Micros(got)); !back.Equal(got) {
		t.Fatalf("micros round trip %v -> %v", got, back)
	}
}

func TestSubscriptionRoundTrip(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	in := NewSubscription(store.Subscription{ID: "a", Token: "t", SourceID: "s", InboxID: "3", Origin: "file"}, now)
	if !in.CreatedAt.Equal(now) || !in.UpdatedAt.Equal(now) {
		t.Fatalf("NewSubscription times: %v %v", in.CreatedAt, in.UpdatedAt)
	}
	b, err := EncodeSubscription(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeSubscription(b)
	if err != nil || out != in {
		t.Fatalf("round trip = %#v, %v", out, err)
	}
	// The on-disk field names are a format: pin them.
	for _, field := range []string{`"id":"a"`, `"token":"t"`, `"source_id":"s"`, `"inbox_id":"3"`, `"origin":"file"`, `"created_at":`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("encoding %s lacks %s", b, field)
		}
	}
	if _, err := DecodeSubscription([]byte(`{"token":"leak-me"`)); err == nil || strings.Contains(err.Error(), "leak-me") {
		t.Fatalf("corrupt decode error = %v", err)
	}
}

func TestLimitsAndTTLs(t *testing.T) {
	for in, want := range map[int]int{-1: store.DefaultListLimit, 0: store.DefaultListLimit, 7: 7, store.MaxListLimit + 1: store.MaxListLimit} {
		if got := Limit(in); got != want {
			t.Errorf("Limit(%d) = %d, want %d", in, got, want)
		}
	}
	if ttl, err := IdempotencyTTL(0); err != nil || ttl != store.DefaultIdempotencyTTL {
		t.Errorf("IdempotencyTTL(0) = %v, %v", ttl, err)
	}
	if _, err := IdempotencyTTL(-1); err == nil {
		t.Error("IdempotencyTTL(-1) accepted")
	}
	if TTL(0) == nil || TTL(time.Second) != nil {
		t.Error("TTL check wrong")
	}
}
