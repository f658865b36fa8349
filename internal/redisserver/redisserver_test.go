package redisserver

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Start runs a server that answers; Stop ends it, twice without harm.
func TestStartStop(t *testing.T) {
	s, err := Start(context.Background())
	if errors.Is(err, ErrNotFound) {
		t.Skipf("SKIP: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := redis.ParseURL(s.URL)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop()
	if rdb.Ping(context.Background()).Err() == nil {
		t.Fatal("the server still answers after Stop")
	}
}
