// Package redisserver runs a throwaway redis-server from PATH for tests and
// benchmarks: loopback only, a free port, no persistence, its own temporary
// directory, and killed with the process that started it (Linux).
package redisserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound: no redis-server on PATH.
var ErrNotFound = errors.New("redis-server not on PATH (.ci/redis.sh installs it on Debian)")

// Server is a running redis-server.
type Server struct {
	URL    string // redis://127.0.0.1:<port>/0
	cmd    *exec.Cmd
	dir    string
	exited chan struct{}
	once   sync.Once
}

// Start runs redis-server and waits until it answers PING. A port taken
// between choosing and binding it is retried on another.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotFound
	}
	for range 3 {
		var s *Server
		if s, err = start(ctx, bin); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func start(ctx context.Context, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "relay-redis-")
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
	cmd.Stdout, cmd.Stderr = &out, &out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), cmd: cmd, dir: dir, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.await(ctx); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w; redis-server output: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return s, nil
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop ends the server (SIGINT, then SIGKILL after 5 s) and removes its
// directory. It may be called more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		os.RemoveAll(s.dir)
	})
}

// await polls PING until the server answers, exits, or 10 s pass.
func (s *Server) await(ctx context.Context) error {
	opts, err := redis.ParseURL(s.URL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := rdb.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return errors.New("redis-server exited")
		case <-ctx.Done():
			return fmt.Errorf("redis-server not answering: %w", err)
		case <-tick.C:
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
