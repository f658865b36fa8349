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
	full := NewSubscription(store.Subscription{ID: "0123456789abcdef", Token: strings.Repeat("T", 24),
		InboxIdentifier: "inbox-identifier", SourceID: "3f0c6e3a-9d1b-4f3e-8a52-6f1f3d2b9c11", ContactID: "12345",
		InboxID: "7", AccountID: "1", Origin: "proxy", LastActivityAt: now.Add(time.Hour)}, now.Add(time.Minute))
	for _, in := range []store.Subscription{in, full, {}} {
		b, err := EncodeSubscription(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeSubscription(b)
		if err != nil || out != in {
			t.Fatalf("round trip = %#v, %v; want %#v", out, err, in)
		}
	}
	// The size is the point of the format: a token-only record.
	tokenOnly := NewSubscription(store.Subscription{ID: "0123456789abcdef", Token: strings.Repeat("T", 24), Origin: "file"}, now)
	if b, _ := EncodeSubscription(tokenOnly); len(b) > 80 {
		t.Errorf("token-only record takes %d bytes, want at most 80", len(b))
	}
}

// The JSON form (the Redis store's, and bbolt's before format 1) is read
// with the same normalized times, and its field names are pinned.
func TestJSONSubscription(t *testing.T) {
	legacy := `{"id":"a","token":"t","inbox_identifier":"i","source_id":"s","contact_id":"9","inbox_id":"3",` +
		`"account_id":"1","origin":"file","created_at":"2025-01-01T00:00:00.1234567Z",` +
		`"updated_at":"2025-01-02T00:00:00Z","last_activity_at":"0001-01-01T00:00:00Z"}`
	got, err := DecodeSubscription([]byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	want := store.Subscription{ID: "a", Token: "t", InboxIdentifier: "i", SourceID: "s", ContactID: "9", InboxID: "3",
		AccountID: "1", Origin: "file", CreatedAt: Time(time.Date(2025, 1, 1, 0, 0, 0, 123456700, time.UTC)),
		UpdatedAt: Time(time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC))}
	if got != want {
		t.Fatalf("legacy record = %#v, want %#v", got, want)
	}
	b, err := EncodeSubscriptionJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"id":"a"`, `"token":"t"`, `"source_id":"s"`, `"inbox_id":"3"`, `"origin":"file"`, `"created_at":`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("encoding %s lacks %s", b, field)
		}
	}
	if back, err := DecodeSubscription(b); err != nil || back != want {
		t.Fatalf("JSON round trip = %#v, %v", back, err)
	}
}

func TestCorruptSubscription(t *testing.T) {
	good, _ := EncodeSubscription(store.Subscription{ID: "a", Token: "leak-me", SourceID: "secret-source"})
	cases := map[string][]byte{
		"empty":          nil,
		"unknown format": append([]byte{9}, good[1:]...),
		"truncated":      good[:len(good)-2],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"length too big": {formatV1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"broken json":    []byte(`{"token":"leak-me"`),
	}
	for name, b := range cases {
		_, err := DecodeSubscription(b)
		if err == nil {
			t.Errorf("%s: decoded", name)
			continue
		}
		if strings.Contains(err.Error(), "leak-me") || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error quotes the record: %v", name, err)
		}
	}
}

func FuzzDecodeSubscription(f *testing.F) {
	good, _ := EncodeSubscription(store.Subscription{ID: "a", Token: "t", CreatedAt: time.Unix(1, 0)})
	f.Add(good)
	f.Add([]byte(`{"id":"a"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSubscription(b)
		if err != nil || b[0] == '{' {
			return
		}
		// What was decoded survives a round trip (the bytes may differ:
		// varints have longer spellings, and times are normalized).
		again, err := EncodeSubscription(s)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodeSubscription(again); err != nil || back != s {
			t.Fatalf("%x decoded to %#v, which round-trips to %#v, %v", b, s, back, err)
		}
	})
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
