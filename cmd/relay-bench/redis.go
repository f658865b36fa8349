package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/redisstore"
)

// redisProc is a redis-server child process for the cluster scenario.
type redisProc struct {
	cmd *exec.Cmd
	url string
}

// startRedis runs redis-server from PATH on a free loopback port, without
// persistence, and waits until it accepts connections.
func (b *bench) startRedis(ctx context.Context) (*redisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not on PATH: the cluster scenario needs a real Redis")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", b.tmp, "--daemonize", "no", "--logfile", filepath.Join(b.tmp, "redis.log"))
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	r := &redisProc{cmd: cmd, url: "redis://127.0.0.1:" + port + "/0"}
	err = waitFor(ctx, 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		r.stop()
		return nil, fmt.Errorf("redis-server not listening: %w", err)
	}
	return r, nil
}

func (r *redisProc) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

func (r *redisProc) pid() int { return r.cmd.Process.Pid }

// freePort returns a loopback port nothing listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// seedBatch is how many records one PutSubscriptions writes (one script,
// one round trip).
const seedBatch = 1000

// seedStore writes one by-token subscription per token into the Redis
// store under prefix, as the HTTP API would register them, through the
// store's own batch write.
func seedStore(ctx context.Context, url, prefix string, tokens []string) error {
	st, err := redisstore.Open(url, redisstore.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer st.Close()
	batch := make([]store.Subscription, 0, seedBatch)
	for i, tok := range tokens {
		batch = append(batch, store.Subscription{ID: cable.SubscriptionID(tok), Token: tok, Origin: store.OriginAPI})
		if len(batch) < seedBatch && i < len(tokens)-1 {
			continue
		}
		if _, err := st.PutSubscriptions(ctx, batch); err != nil {
			return fmt.Errorf("seeding the store: %w", err)
		}
		batch = batch[:0]
	}
	return nil
}
