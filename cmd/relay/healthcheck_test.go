package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// healthServer answers like the relay: 200 on /healthz, the given status on
// /readyz, and 403 to a Host that is not loopback (the token-less mode).
func healthServer(t *testing.T, readyStatus int) (*httptest.Server, *[]string) {
	t.Helper()
	var hosts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		h, _, _ := net.SplitHostPort(r.Host)
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "host", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte(`{"status":"ok"}`))
		case "/readyz":
			w.WriteHeader(readyStatus)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hosts
}

func runProbe(args []string, environ ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"healthcheck"}, args...), environ, &out, &out)
	return out.String(), err
}

func TestHealthcheckSucceedsOn200(t *testing.T) {
	srv, hosts := healthServer(t, http.StatusOK)
	out, err := runProbe([]string{"-url", srv.URL})
	if err != nil {
		t.Fatalf("healthy relay: %v (%s)", err, out)
	}
	if want := "healthcheck: " + srv.URL + "/healthz: 200 OK\n"; out != want {
		t.Errorf("printed %q, want %q", out, want)
	}
	if out, err := runProbe([]string{"-ready", "-url", srv.URL + "/"}); err != nil {
		t.Errorf("ready relay: %v (%s)", err, out)
	}
	for _, h := range *hosts {
		if !strings.HasPrefix(h, "localhost:") {
			t.Errorf("Host %q, want localhost:port", h)
		}
	}
}

func TestHealthcheckFailsOtherwise(t *testing.T) {
	srv, _ := healthServer(t, http.StatusServiceUnavailable)
	if _, err := runProbe([]string{"-ready", "-url", srv.URL}); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("unready relay: err %v, want HTTP 503", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	_, err := runProbe(nil, "RELAY_HTTP_ADDR="+closed)
	if err == nil || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("nothing listening: err %q, want one line", err)
	}
	for _, args := range [][]string{{"-url", "ftp://x"}, {"-url", "127.0.0.1:1"}, {"extra"}} {
		if _, err := runProbe(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if _, err := runProbe(nil, "RELAY_HTTP_ADDR=nonsense"); err == nil || !strings.Contains(err.Error(), "RELAY_HTTP_ADDR") {
		t.Errorf("bad RELAY_HTTP_ADDR: %v", err)
	}
}

// A relay bound to every address is probed on loopback, with a loopback Host.
func TestHealthcheckWildcardBind(t *testing.T) {
	srv, hosts := healthServer(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, bind := range []string{"0.0.0.0:", ":"} {
		if out, err := runProbe(nil, "RELAY_HTTP_ADDR="+bind+port); err != nil {
			t.Errorf("RELAY_HTTP_ADDR=%s%s: %v (%s)", bind, port, err, out)
		}
	}
	if len(*hosts) != 2 {
		t.Errorf("%d probes reached the relay, want 2", len(*hosts))
	}
	if got, _ := healthcheckBase(map[string]string{"RELAY_HTTP_ADDR": "[::]:8080"}); got != "http://[::1]:8080" {
		t.Errorf("[::]:8080 probed at %q", got)
	}
	if got, _ := healthcheckBase(nil); got != "http://127.0.0.1:8080" {
		t.Errorf("default probed at %q", got)
	}
}
