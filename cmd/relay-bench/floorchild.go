package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// floorChildArg, as the first argument, makes relay-bench run one floor
// and nothing else: the cpu scenario re-executes itself this way so the
// floor's CPU time is its own process's, read from /proc like a relay's.
const floorChildArg = "-floor-child"

// floorReady is the line a floor child prints once every subscription is
// confirmed.
const floorReady = "floor ready"

// floorKinds names the floors a child can run.
var floorKinds = map[string]floorKind{"a": floorA, "b": floorB, "b-jetstream": floorBJS}

// childArgs returns the arguments after floorChildArg, or false when this
// process is not a floor child.
func childArgs(args []string) ([]string, bool) {
	if len(args) < 1 || args[0] != floorChildArg {
		return nil, false
	}
	return args[1:], true
}

// floorChild runs one floor until ctx ends (SIGTERM), then stops it,
// waiting for JetStream acks. It returns the process's exit code.
func floorChild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var s floorSetup
	var kind, prefix string
	var n int
	fs := flag.NewFlagSet("relay-bench "+floorChildArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&kind, "kind", "b", "a, b or b-jetstream")
	fs.StringVar(&prefix, "prefix", "", "subject prefix; also names the token set")
	fs.IntVar(&n, "subscriptions", 0, "tokens of the set")
	fs.IntVar(&s.perConn, "per-conn", 200, "subscriptions per websocket")
	fs.StringVar(&s.fake, "fake", "", "host:port of the fake Chatwoot")
	fs.StringVar(&s.natsURL, "nats", "", "NATS URL")
	fs.StringVar(&s.stream, "stream", floorStream, "stream of the b-jetstream floor")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	k, ok := floorKinds[kind]
	if !ok || prefix == "" || n <= 0 || s.perConn <= 0 || s.fake == "" || s.natsURL == "" {
		fmt.Fprintln(stderr, "floor child: need -kind a|b|b-jetstream, -prefix, -subscriptions > 0, -per-conn > 0, -fake and -nats")
		return 2
	}
	set, err := newTokenSet(prefix, n, 0)
	if err == nil {
		err = runFloorChild(ctx, s, k, set, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "floor child:", err)
		return 1
	}
	return 0
}

func runFloorChild(ctx context.Context, s floorSetup, kind floorKind, set *tokenSet, stdout io.Writer) error {
	f, err := startFloorAt(ctx, s, kind, set.name, set)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, floorReady)
	<-ctx.Done()
	f.stop()
	if n := f.errs.Load(); n > 0 {
		return fmt.Errorf("%d publish errors", n)
	}
	return nil
}

// floorProc is a floor child seen from the bench.
type floorProc struct {
	name  string
	cmd   *exec.Cmd
	tail  *logTail
	ready chan struct{} // closed when the child printed floorReady
	done  chan struct{} // closed when the child exited
	err   error         // exit status, valid after done
}

// startFloorProc re-executes this binary as a floor child and waits until
// it has confirmed every token of set.
func (b *bench) startFloorProc(ctx context.Context, name, kind, stream string, set *tokenSet) (*floorProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &floorProc{name: name, tail: &logTail{}, ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(exe, floorChildArg, "-kind", kind, "-prefix", set.name,
		"-subscriptions", strconv.Itoa(len(set.tokens)), "-per-conn", strconv.Itoa(b.p.PerConn),
		"-fake", b.fakeHP, "-nats", b.nats.ClientURL(), "-stream", stream)
	p.cmd.Stdout = &lineWatch{line: []byte(floorReady), seen: p.ready}
	p.cmd.Stderr = tailWriter{p.tail}
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	select {
	case <-p.ready:
		return p, nil
	case <-p.done:
		err = fmt.Errorf("%s exited: %v\n%s", name, p.err, p.tail.String())
	case <-time.After(startTimeout):
		err = fmt.Errorf("%s not ready within %s\n%s", name, startTimeout, p.tail.String())
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.stop()
	return nil, err
}

func (p *floorProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits, killing the child after 30 s. A child that
// counted publish errors exits non-zero: that is an error here.
func (p *floorProc) stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New(p.name + " killed after 30 s")
	}
}

func (p *floorProc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %v\n%s", p.name, p.err, p.tail.String())
	}
	return nil
}

// lineWatch closes seen the first time line appears in what is written
// (line fits in one write: the child prints it with one call).
type lineWatch struct {
	line []byte
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(b []byte) (int, error) {
	if bytes.Contains(b, w.line) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(b), nil
}

// tailWriter keeps the last lines written in a logTail.
type tailWriter struct{ t *logTail }

func (w tailWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		w.t.add(string(line))
	}
	return len(b), nil
}
