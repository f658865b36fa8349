package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	bin, err := findRedisServer()
	if err != nil {
		realRedis.reason = err.Error()
		fmt.Fprintf(os.Stderr, "SKIP: real Redis contract tests will not run: %s\n", err)
		return func() {}
	}
	url, stop, err := startRedisServer(bin)
	if err != nil {
		realRedis.reason = err.Error()
		fmt.Fprintf(os.Stderr, "SKIP: real Redis contract tests will not run: %s\n", err)
		return func() {}
	}
	realRedis.url = url
	return stop
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

// startRedisServer runs bin on a free loopback port, retrying if another
// process takes the port first.
func startRedisServer(bin string) (url string, stop func(), err error) {
	for range 3 {
		url, stop, err = startRedisOnce(bin)
		if err == nil {
			return url, stop, nil
		}
	}
	return "", nil, err
}

func startRedisOnce(bin string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "relay-redis-")
	if err != nil {
		return "", nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = &out, &out
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	if err := awaitRedis(url, exited); err != nil {
		stop()
		return "", nil, fmt.Errorf("%w; redis-server output: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return url, stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// awaitRedis polls PING until the server answers, exits, or 10 s pass.
func awaitRedis(url string, exited <-chan struct{}) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not answering: %w", err)
		}
	}
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
