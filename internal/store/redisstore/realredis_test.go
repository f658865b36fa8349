package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/redisserver"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/storetest"
)

// The contract suite also runs against a real Redis:
//
//   - RELAY_TEST_REDIS_URL: use that server (keys under a unique prefix, deleted afterwards);
//   - otherwise redis-server from PATH is started on a free loopback port, without persistence,
//     in a temp dir, and stopped at the end. When it is missing and the test runs as root with
//     apt-get and CI set (or RELAY_TEST_INSTALL_REDIS=1), .ci/redis.sh installs it first.
//
// Without a server the test is skipped with a SKIP line on stderr (shown by `go test -v` or
// when testing this package alone) unless RELAY_TEST_REQUIRE_REDIS=1 makes it fail.
var realRedis struct {
	url      string
	external bool
	reason   string // why there is no real server
}

var prefixSeq atomic.Int64

func TestMain(m *testing.M) {
	stop := setupRealRedis()
	code := m.Run()
	stop()
	os.Exit(code)
}

func setupRealRedis() (stop func()) {
	if url := os.Getenv("RELAY_TEST_REDIS_URL"); url != "" {
		realRedis.url, realRedis.external = url, true
		return func() {}
	}
	if _, err := findRedisServer(); err != nil {
		realRedis.reason = err.Error()
		fmt.Fprintf(os.Stderr, "SKIP: real Redis contract tests will not run: %s\n", err)
		return func() {}
	}
	srv, err := redisserver.Start(context.Background())
	if err != nil {
		realRedis.reason = err.Error()
		fmt.Fprintf(os.Stderr, "SKIP: real Redis contract tests will not run: %s\n", err)
		return func() {}
	}
	realRedis.url = srv.URL
	return srv.Stop
}

func findRedisServer() (string, error) {
	if bin, err := exec.LookPath("redis-server"); err == nil {
		return bin, nil
	}
	if !mayInstall() {
		return "", errors.New("redis-server not on PATH (run .ci/redis.sh, or set RELAY_TEST_INSTALL_REDIS=1 as root)")
	}
	script, err := filepath.Abs("../../../.ci/redis.sh")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("installing redis-server: %v: %s", err, out)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server still missing after .ci/redis.sh: %s", bytes.TrimSpace(out))
	}
	return bin, nil
}

func mayInstall() bool {
	if os.Getuid() != 0 {
		return false
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return false
	}
	return os.Getenv("CI") != "" || os.Getenv("RELAY_TEST_INSTALL_REDIS") == "1"
}

func requireRealRedis(t *testing.T) string {
	t.Helper()
	if realRedis.url != "" {
		return realRedis.url
	}
	if os.Getenv("RELAY_TEST_REQUIRE_REDIS") == "1" {
		t.Fatalf("real Redis unavailable and RELAY_TEST_REQUIRE_REDIS=1: %s", realRedis.reason)
	}
	t.Skipf("SKIP: real Redis unavailable, contract suite ran on miniredis only: %s", realRedis.reason)
	return ""
}

func TestContractRealRedis(t *testing.T) {
	url := requireRealRedis(t)
	if u, err := neturl.Parse(url); err == nil {
		t.Logf("real Redis at %s (external %v)", u.Redacted(), realRedis.external)
	}
	storetest.Run(t, func(t *testing.T) *storetest.Backend {
		prefix := fmt.Sprintf("relaytest:%d:%d:", os.Getpid(), prefixSeq.Add(1))
		t.Cleanup(func() { deletePrefix(t, url, prefix) })
		return &storetest.Backend{
			Store:  openURL(t, url, prefix, nil),
			Reopen: func(t *testing.T) store.Store { return openURL(t, url, prefix, nil) },
		}
	})
}

// deletePrefix removes a test's keys from a shared server.
func deletePrefix(t *testing.T, url, prefix string) {
	if !realRedis.external {
		return // the server is ours and thrown away
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}
