package redisstore

import (
	"testing"
	"time"
)

func TestMillis(t *testing.T) {
	for _, tt := range []struct {
		ttl  time.Duration
		want string
	}{
		{time.Nanosecond, "1"},
		{time.Millisecond, "1"},
		{time.Millisecond + time.Nanosecond, "2"},
		{1500 * time.Microsecond, "2"},
		{time.Second, "1000"},
		{24 * time.Hour, "86400000"},
	} {
		if got := millis(tt.ttl); got != tt.want {
			t.Errorf("millis(%v) = %s, want %s", tt.ttl, got, tt.want)
		}
	}
}

func TestDecodeCursorRejectsGarbage(t *testing.T) {
	for _, v := range []string{"", "12", "x|open|1", "1|open"} {
		if _, err := decodeCursor("s", "c", v); err == nil {
			t.Errorf("decodeCursor(%q) succeeded", v)
		}
	}
	c, err := decodeCursor("s", "c", "5||")
	if err != nil || c.LastMessageID != 5 || c.Status != "" || c.UpdatedAt != "" {
		t.Errorf("decodeCursor(5||) = %+v, %v", c, err)
	}
}
