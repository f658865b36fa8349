package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// relayProc is one running relay binary.
type relayProc struct {
	name     string
	cmd      *exec.Cmd
	base     string // http://host:port of its HTTP API
	client   *http.Client
	tail     *logTail
	loads    atomic.Int64  // "subscriptions file loaded" log lines seen
	done     chan struct{} // closed when the process exited
	err      error         // exit status, valid after done
	exitedAt time.Time     // when it exited, valid after done
}

// relayConfig is what differs between the relays a scenario starts.
type relayConfig struct {
	name          string // also the subject prefix and data directory name
	bin           string // "" = the bench's relay binary
	jetStream     bool
	subsFile      string
	subscribeRate float64
	burst         int
	natsURL       string            // "" = the bench's nats-server
	extra         map[string]string // more RELAY_* settings (win over the above)
}

// env is the relay's environment: nothing RELAY_* is inherited.
func (b *bench) relayEnv(rc relayConfig) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RELAY_") {
			env = append(env, kv)
		}
	}
	natsURL := rc.natsURL
	if natsURL == "" {
		natsURL = b.nats.ClientURL()
	}
	set := map[string]string{
		"RELAY_CHATWOOT_URL":          "http://" + b.fakeHP,
		"RELAY_HTTP_ADDR":             "127.0.0.1:0",
		"RELAY_NATS_URL":              natsURL,
		"RELAY_NATS_JETSTREAM":        strconv.FormatBool(rc.jetStream),
		"RELAY_NATS_SUBJECT_PREFIX":   rc.name,
		"RELAY_NATS_STREAM":           strings.ToUpper(rc.name),
		"RELAY_DATA_DIR":              filepath.Join(b.tmp, "relay-"+rc.name),
		"RELAY_SUBSCRIPTIONS_FILE":    rc.subsFile,
		"RELAY_CABLE_PER_CONN":        strconv.Itoa(b.p.PerConn),
		"RELAY_CABLE_SUBSCRIBE_RATE":  strconv.FormatFloat(rc.subscribeRate, 'f', -1, 64),
		"RELAY_CABLE_SUBSCRIBE_BURST": strconv.Itoa(rc.burst),
	}
	maps.Copy(set, rc.extra)
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return append(env, b.o.relayEnv...) // later entries win in os/exec
}

// startRelay runs the relay binary and waits until its API answers /readyz.
func (b *bench) startRelay(ctx context.Context, rc relayConfig) (*relayProc, error) {
	bin := rc.bin
	if bin == "" {
		bin = b.relayBin
	}
	cmd := exec.Command(bin)
	cmd.Env = b.relayEnv(rc)
	dieWithParent(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	r := &relayProc{name: rc.name, cmd: cmd, tail: &logTail{}, done: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("relay %s: %w", rc.name, err)
	}
	started := make(chan string, 1)
	go r.readLog(stderr, started, b.o, b.stderr)
	go func() { r.err = cmd.Wait(); r.exitedAt = time.Now(); close(r.done) }()
	if err := r.awaitStart(ctx, started); err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// startTimeout bounds the relay's start: it restores its stored
// subscriptions before it serves (scenarios register big sets after start).
const startTimeout = 2 * time.Minute

func (r *relayProc) awaitStart(ctx context.Context, started <-chan string) error {
	select {
	case addr := <-started:
		r.base = "http://" + addr
	case <-r.done:
		return fmt.Errorf("relay %s exited: %v\n%s", r.name, r.err, r.tail.String())
	case <-time.After(startTimeout):
		return fmt.Errorf("relay %s did not start within %s\n%s", r.name, startTimeout, r.tail.String())
	case <-ctx.Done():
		return ctx.Err()
	}
	err := waitFor(ctx, time.Minute, 50*time.Millisecond, func() (bool, error) {
		resp, err := r.client.Get(r.base + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("relay %s not ready: %w\n%s", r.name, err, r.tail.String())
	}
	return nil
}

// readLog keeps the last lines of the relay's JSON log and reports the
// HTTP address from its "relay started" line.
func (r *relayProc) readLog(rd io.Reader, started chan<- string, o options, out io.Writer) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		r.tail.add(line)
		if strings.Contains(line, `"relay started"`) {
			var v struct {
				HTTP string `json:"http"`
			}
			if json.Unmarshal([]byte(line), &v) == nil && v.HTTP != "" {
				started <- v.HTTP
			}
		}
		if strings.Contains(line, `"subscriptions file loaded"`) {
			r.loads.Add(1)
		}
		if o.relayLog || o.verbose && (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) {
			fmt.Fprintf(out, "relay %s: %s\n", r.name, line)
		}
	}
}

// stop sends SIGTERM and waits for the ordered shutdown, killing the
// process if it takes more than 30 s.
func (r *relayProc) stop() error {
	if r.cmd.Process == nil {
		return nil
	}
	select {
	case <-r.done:
		return nil
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return nil
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		return errors.New("relay " + r.name + " killed after 30 s")
	}
}

// reload makes the relay re-read its subscriptions file; wait reports
// when it has finished doing so.
func (r *relayProc) reload() (wait func(ctx context.Context, timeout time.Duration) error, err error) {
	before := r.loads.Load()
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return nil, err
	}
	return func(ctx context.Context, timeout time.Duration) error {
		return waitFor(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
			return r.loads.Load() > before, nil
		})
	}, nil
}

func (r *relayProc) pid() int { return r.cmd.Process.Pid }

// metrics scrapes /metrics.
func (r *relayProc) metrics() (metricSet, error) {
	resp, err := r.client.Get(r.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("relay %s /metrics: HTTP %d", r.name, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

const confirmedSeries = `relay_cable_subscriptions{state="confirmed"}`

// confirmed returns the number of confirmed subscriptions.
func (r *relayProc) confirmed() (int, error) {
	m, err := r.metrics()
	if err != nil {
		return 0, err
	}
	return int(m[confirmedSeries]), nil
}

// waitConfirmed polls until exactly n subscriptions are confirmed.
func (r *relayProc) waitConfirmed(ctx context.Context, n int, timeout time.Duration) error {
	err := waitFor(ctx, timeout, 100*time.Millisecond, func() (bool, error) {
		select {
		case <-r.done:
			return false, fmt.Errorf("relay %s exited: %v\n%s", r.name, r.err, r.tail.String())
		default:
		}
		c, err := r.confirmed()
		return err == nil && c == n, nil
	})
	if errors.Is(err, errTimeout) {
		c, _ := r.confirmed()
		return fmt.Errorf("relay %s: %d of %d subscriptions confirmed after %s", r.name, c, n, timeout)
	}
	return err
}

// logTail keeps the last lines of a log.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 40

func (t *logTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == tailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:tailLines-1]
	}
	t.lines = append(t.lines, line)
}

func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
