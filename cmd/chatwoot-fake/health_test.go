package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostPort is the host:port of a URL such as http://127.0.0.1:1234.
func hostPort(t *testing.T, base string) string {
	t.Helper()
	hp, ok := strings.CutPrefix(base, "http://")
	if !ok {
		t.Fatalf("%q is not an http URL", base)
	}
	return hp
}

// -healthcheck succeeds against a serving fake, with or without its control
// API, also when -listen is a wildcard bind (probed on loopback).
func TestHealthcheckProbesTheServingFake(t *testing.T) {
	for _, args := range [][]string{nil, {"-control=false"}} {
		hp := hostPort(t, startRun(t, args...))
		_, port, _ := net.SplitHostPort(hp)
		for _, listen := range []string{hp, "0.0.0.0:" + port, ":" + port} {
			var out bytes.Buffer
			if err := run(t.Context(), []string{"-healthcheck"}, []string{"CHATWOOT_FAKE_LISTEN=" + listen}, &out); err != nil {
				t.Errorf("%q, listen %s: %v", args, listen, err)
			}
			if !strings.Contains(out.String(), "200 OK") {
				t.Errorf("%q, listen %s: printed %q", args, listen, out.String())
			}
		}
	}
}

// -healthcheck fails when nothing serves and when /healthz answers other
// than 200.
func TestHealthcheckFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()
	// The deadline only bounds a fake that would serve instead of probing.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, listen := range []string{closed, hostPort(t, unhealthy.URL)} {
		if err := run(ctx, []string{"-healthcheck"}, []string{"CHATWOOT_FAKE_LISTEN=" + listen}, &bytes.Buffer{}); err == nil {
			t.Errorf("listen %s: healthy", listen)
		}
	}
}

// /healthz is not a Chatwoot route: a fault on every route leaves it alone.
func TestHealthzIgnoresFaults(t *testing.T) {
	base, _ := newControl(t, options{inboxes: 1})
	call(t, "POST", base+"/fake/faults", `{"route":"*","status":500}`, nil)
	if code := call(t, "GET", base+"/healthz", "", nil); code != 200 {
		t.Errorf("/healthz: %d, want 200", code)
	}
}

// -subscriptions-file writes every seeded contact in the relay's format,
// readable by its owner only, before the fake serves.
func TestSubscriptionsFileHoldsTheSeededContacts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "subscriptions.jsonl")
	base := startRun(t, "-inboxes", "2", "-contacts", "2", "-subscriptions-file", path)
	var s setup
	if code := call(t, "GET", base+"/fake/setup", "", &s); code != 200 || len(s.Contacts) != 4 {
		t.Fatalf("setup: %d, %d contacts", code, len(s.Contacts))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 (the file holds tokens)", fi.Mode().Perm())
	}
	var want []subscriptionLine
	for _, c := range s.Contacts {
		want = append(want, subscriptionLine{c.PubsubToken, c.InboxIdentifier, c.SourceID})
	}
	if got := readSubscriptionLines(t, path); !slices.Equal(got, want) {
		t.Errorf("file holds %+v, want %+v", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the subscriptions file only", len(entries))
	}
}

// readSubscriptionLines decodes the file the way the relay does: comment
// lines skipped, JSON objects with exactly the relay's three fields.
func readSubscriptionLines(t *testing.T, path string) []subscriptionLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []subscriptionLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		var l subscriptionLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

// A subscriptions file that cannot be written stops the fake before it
// serves, with an error naming the path. (The context is done already: a
// fake that went on would stop at once and return nil.)
func TestSubscriptionsFileUnwritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "subscriptions.jsonl")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := run(ctx, []string{"-contacts", "1", "-subscriptions-file", path}, []string{"CHATWOOT_FAKE_LISTEN=127.0.0.1:0"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}
