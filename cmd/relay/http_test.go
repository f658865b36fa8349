package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsOwnListener: with RELAY_METRICS_ADDR, /metrics is served there
// and no longer on the API, which applies RELAY_HTTP_BODY_TIMEOUT; the
// metrics listener is closed by the shutdown.
func TestMetricsOwnListener(t *testing.T) {
	metricsAddr := freePort(t)
	e := newE2E(t, map[string]string{"RELAY_METRICS_ADDR": metricsAddr, "RELAY_HTTP_BODY_TIMEOUT": "50ms"})

	if resp, _ := e.do(http.MethodGet, "/metrics", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the API listener: %d, want 404", resp.StatusCode)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "relay_api_overload_refusals_total") {
		t.Fatalf("/metrics on RELAY_METRICS_ADDR: %d\n%.300s", resp.StatusCode, body)
	}

	if status := trickle(t, e.app.httpAddr.String()); status != http.StatusRequestTimeout {
		t.Errorf("trickled JSON body: %d, want 408", status)
	}

	e.stop()
	if conn, err := net.Dial("tcp", metricsAddr); err == nil {
		conn.Close()
		t.Fatal("metrics listener still open after shutdown")
	}
}

// trickle sends 5 bytes of a 100-byte JSON body and returns the status
// answered; it fails when no answer comes within a generous bound.
func trickle(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/subscriptions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pub", addr)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("trickled body not cut off: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPLimitsConfig pins the defaults of the HTTP limits and checks
// their validation.
func TestHTTPLimitsConfig(t *testing.T) {
	c, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.MetricsAddr, "|", c.HTTPMaxConcurrent, " ", c.HTTPBodyTimeout, " ", c.HTTPUploadTimeout, " ", c.RedisKeyPrefix); got != "|1024 15s 5m0s relay:" {
		t.Errorf("defaults %q", got)
	}
	_, err = loadConfig(map[string]string{
		"RELAY_CHATWOOT_URL":        "https://chat.example.com",
		"RELAY_METRICS_ADDR":        "nohost",
		"RELAY_HTTP_MAX_CONCURRENT": "0",
		"RELAY_HTTP_BODY_TIMEOUT":   "10m",
	}, false)
	for _, name := range []string{"METRICS_ADDR", "HTTP_MAX_CONCURRENT", "HTTP_BODY_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), "RELAY_"+name) {
			t.Errorf("error does not mention RELAY_%s: %v", name, err)
		}
	}
}
