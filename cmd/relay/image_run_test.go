//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// The relay runs as the image's user with only
// RELAY_DATA_DIR writable: the working directory, TMPDIR and the binary's own
// directory are root's and read-only, HOME is unset (a read-only root file
// system). It starts against a fake Chatwoot, subscribes a contact (state is
// written), answers `relay healthcheck`, and writes nowhere else.
func TestImageBinaryRunsUnprivilegedWithOnlyDataDirWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the relay as UID 65532 (CI runs tests as root)")
	}
	root := readOnlyTree(t)
	bin := relayBinary(t, filepath.Join(root, "bin"))
	data := filepath.Join(root, "data")
	must(t, os.Mkdir(data, 0o700))
	must(t, os.Chown(data, nonrootUID, nonrootUID))

	fake := chatwoottest.New(chatwoottest.Options{})
	t.Cleanup(func() { fake.Close() })
	fakeAddr, err := fake.Listen("127.0.0.1:0")
	must(t, err)
	inbox, err := fake.AddInbox(chatwoottest.InboxConfig{})
	must(t, err)

	httpAddr := freeAddr(t)
	env := []string{
		mainChildEnv + "=1", "PATH=/usr/bin:/bin", "TMPDIR=" + filepath.Join(root, "cwd"),
		"RELAY_CHATWOOT_URL=http://" + fakeAddr.String(), "RELAY_DATA_DIR=" + data,
		"RELAY_HTTP_ADDR=" + httpAddr, "RELAY_NATS_LISTEN=127.0.0.1:-1",
	}
	relay := unprivileged(exec.Command(bin), root, env)
	stderr, err := relay.StderrPipe()
	must(t, err)
	must(t, relay.Start())
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = relay.Wait(); close(exited) }()
	t.Cleanup(func() { relay.Process.Kill(); <-exited })
	awaitLog(t, stderr, "relay started")

	if out, err := unprivileged(exec.Command(bin, "--", "healthcheck"), root, env).CombinedOutput(); err != nil {
		t.Fatalf("relay healthcheck on a healthy relay: %v: %s", err, out)
	}
	subscribeContact(t, httpAddr, inbox.Identifier)

	must(t, relay.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("relay exited with %v", exitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not stop on SIGTERM")
	}
	hc := unprivileged(exec.Command(bin, "--", "healthcheck"), root, env)
	if out, err := hc.CombinedOutput(); hc.ProcessState == nil || hc.ProcessState.ExitCode() != 1 {
		t.Errorf("relay healthcheck with no relay: %v, want exit status 1: %s", err, out)
	}
	assertWritesOnlyUnder(t, root, data)
}

// readOnlyTree makes a root-owned directory the unprivileged user can read
// and enter but not write: cwd (the working directory and TMPDIR) and bin.
func readOnlyTree(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("", "relay-image-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(root) })
	must(t, os.Mkdir(filepath.Join(root, "cwd"), 0o555))
	must(t, os.Mkdir(filepath.Join(root, "bin"), 0o755))
	must(t, os.Chmod(root, 0o755))
	return root
}

// relayBinary copies this test binary, which runs the relay's main when
// mainChildEnv is set (see TestMain), into dir as "relay", then makes dir
// read-only. The Dockerfile's build flags are checked where it is read
// (TestDockerfileBuildsStatically); building them again here would compile
// every dependency a second time, minutes on a fresh CI machine, and the
// flags change nothing of what this test checks: which user the relay runs
// as and where it writes.
func relayBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	must(t, err)
	b, err := os.ReadFile(self)
	must(t, err)
	bin := filepath.Join(dir, "relay")
	must(t, os.WriteFile(bin, b, 0o755))
	must(t, os.Chmod(dir, 0o555))
	return bin
}

// unprivileged runs cmd as the image's user in root/cwd with only env.
func unprivileged(cmd *exec.Cmd, root string, env []string) *exec.Cmd {
	cmd.Dir = filepath.Join(root, "cwd")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nonrootUID, Gid: nonrootUID}}
	return cmd
}

// awaitLog reads the relay's JSON log until a record with msg, failing on an
// error record or the end of the log. The rest of the log is drained.
func awaitLog(t *testing.T, r io.Reader, msg string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	var other []string
	for sc.Scan() {
		var rec struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			other = append(other, sc.Text())
		}
		if rec.Level == "ERROR" {
			t.Fatalf("relay logged an error: %s", sc.Bytes())
		}
		if rec.Msg == msg {
			go io.Copy(io.Discard, r)
			return
		}
	}
	t.Fatalf("relay log ended before %q: %q", msg, other)
}

// subscribeContact creates a contact through the relay's proxy, which
// subscribes it and stores the subscription.
func subscribeContact(t *testing.T, httpAddr, inbox string) {
	t.Helper()
	url := "http://" + httpAddr + "/public/api/v1/inboxes/" + inbox + "/contacts"
	resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(`{"name":"Jane"}`)))
	must(t, err)
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || resp.Header.Get("Relay-Subscription") == "" {
		t.Fatalf("contact create through the relay: %d %s", resp.StatusCode, body)
	}
}

// assertWritesOnlyUnder checks that everything the image's user owns below
// root, and in /tmp, is under data, and that data holds the relay's state.
func assertWritesOnlyUnder(t *testing.T, root, data string) {
	t.Helper()
	var stored int
	check := func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		owner := info.Sys().(*syscall.Stat_t).Uid
		switch inData := path == data || strings.HasPrefix(path, data+"/"); {
		case owner == nonrootUID && !inData:
			t.Errorf("the relay wrote %s outside RELAY_DATA_DIR", path)
		case inData && !d.IsDir():
			stored++
		}
		return nil
	}
	must(t, filepath.WalkDir(root, check))
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Sys().(*syscall.Stat_t).Uid == nonrootUID {
			t.Errorf("the relay wrote %s", filepath.Join(os.TempDir(), e.Name()))
		}
	}
	if stored == 0 {
		t.Error("nothing stored under RELAY_DATA_DIR")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().String()
}
