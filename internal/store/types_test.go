package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

func TestSubscriptionRedaction(t *testing.T) {
	s := store.Subscription{ID: "sub-1", Token: "tok-SECRET", SourceID: "src-SECRET", ContactID: "42", Origin: store.OriginAPI}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("registered", "subscription", s)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("registered", "subscription", s)
	outputs := map[string]string{
		"slog": buf.String(),
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", s),
		"%#v":  fmt.Sprintf("%#v", s),
		"%s":   fmt.Sprintf("%s", s),
		"ptr":  fmt.Sprintf("%v", &s),
	}
	for name, out := range outputs {
		if strings.Contains(out, "SECRET") {
			t.Errorf("%s leaks a credential: %s", name, out)
		}
		if !strings.Contains(out, "sub-1") || !strings.Contains(out, "REDACTED") {
			t.Errorf("%s lacks the id or the redaction marker: %s", name, out)
		}
	}
	// Empty credentials are not reported as present.
	if out := fmt.Sprint(store.Subscription{ID: "x"}); strings.Contains(out, "REDACTED") {
		t.Errorf("empty token shown as redacted: %s", out)
	}
}

func TestSubscriptionValidate(t *testing.T) {
	if err := (store.Subscription{}).Validate(); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty id: %v", err)
	}
	if err := (store.Subscription{ID: "x"}).Validate(); err != nil {
		t.Errorf("valid: %v", err)
	}
}

func TestCursorValidate(t *testing.T) {
	ok := store.Cursor{SubscriptionID: "s", ConversationID: "1"}
	tests := []struct {
		name  string
		edit  func(*store.Cursor)
		valid bool
	}{
		{"minimal", func(*store.Cursor) {}, true},
		{"full", func(c *store.Cursor) { c.LastMessageID, c.Status, c.UpdatedAt = 5, "open", "1700000000.123456" }, true},
		{"integer time", func(c *store.Cursor) { c.UpdatedAt = "1700000000" }, true},
		{"exponent time", func(c *store.Cursor) { c.UpdatedAt = "1.7e9" }, true},
		{"max id", func(c *store.Cursor) { c.LastMessageID = store.MaxMessageID }, true},
		{"no subscription", func(c *store.Cursor) { c.SubscriptionID = "" }, false},
		{"no conversation", func(c *store.Cursor) { c.ConversationID = "" }, false},
		{"negative id", func(c *store.Cursor) { c.LastMessageID = -1 }, false},
		{"id too large", func(c *store.Cursor) { c.LastMessageID = store.MaxMessageID + 1 }, false},
		{"separator in status", func(c *store.Cursor) { c.Status = "a|b" }, false},
		{"iso time", func(c *store.Cursor) { c.UpdatedAt = "2024-01-01T00:00:00Z" }, false},
		{"hex time", func(c *store.Cursor) { c.UpdatedAt = "0x1p3" }, false},
		{"inf", func(c *store.Cursor) { c.UpdatedAt = "Inf" }, false},
		{"huge", func(c *store.Cursor) { c.UpdatedAt = "1e999" }, false},
		{"plus", func(c *store.Cursor) { c.UpdatedAt = "+5" }, false},
		{"underscore", func(c *store.Cursor) { c.UpdatedAt = "1_000" }, false},
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		err := c.Validate()
		if tt.valid && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.valid && !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestCursorAdvance(t *testing.T) {
	c := func(id int64, status, at string) store.Cursor {
		return store.Cursor{SubscriptionID: "s", ConversationID: "1", LastMessageID: id, Status: status, UpdatedAt: at}
	}
	tests := []struct {
		name        string
		stored, upd store.Cursor
		want        store.Cursor
	}{
		{"empty takes all", c(0, "", ""), c(5, "open", "10"), c(5, "open", "10")},
		{"id only grows", c(9, "open", "10"), c(5, "", ""), c(9, "open", "10")},
		{"id grows", c(9, "open", "10"), c(12, "", ""), c(12, "open", "10")},
		{"older status ignored", c(9, "resolved", "10"), c(9, "open", "9.5"), c(9, "resolved", "10")},
		{"equal time applies", c(9, "resolved", "10"), c(9, "open", "10.0"), c(9, "open", "10.0")},
		{"newer time applies", c(9, "resolved", "10"), c(9, "open", "10.001"), c(9, "open", "10.001")},
		{"numeric compare", c(0, "open", "9"), c(0, "resolved", "10"), c(0, "resolved", "10")},
		{"newer time keeps status when empty", c(0, "open", "9"), c(0, "", "10"), c(0, "open", "10")},
		{"status without time, stored has time", c(0, "open", "9"), c(0, "resolved", ""), c(0, "open", "9")},
		{"status without time, stored has none", c(0, "open", ""), c(0, "resolved", ""), c(0, "resolved", "")},
		{"id and status independent", c(20, "open", "5"), c(3, "resolved", "6"), c(20, "resolved", "6")},
	}
	for _, tt := range tests {
		if got := tt.stored.Advance(tt.upd); got != tt.want {
			t.Errorf("%s: %+v.Advance(%+v) = %+v, want %+v", tt.name, tt.stored, tt.upd, got, tt.want)
		}
	}
}

func TestIdempotencyStateString(t *testing.T) {
	for st, want := range map[store.IdempotencyState]string{
		store.IdempotencyReserved: "reserved", store.IdempotencyInProgress: "in_progress",
		store.IdempotencyCompleted: "completed", 0: "unknown",
	} {
		if got := st.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", st, got, want)
		}
	}
}

func TestFeedRedactsCredentials(t *testing.T) {
	f := store.Feed{ID: "f1", AccessToken: "access-secret", PubsubToken: "pubsub-secret"}
	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("x", "feed", f)
	out := sb.String() + fmt.Sprintf("%v %+v %#v %s", f, f, f, f)
	for _, secret := range []string{"access-secret", "pubsub-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("%s leaked: %s", secret, out)
		}
	}
}
