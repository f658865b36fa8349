package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheckTimeout bounds one probe: connection, request and answer.
const healthcheckTimeout = 2 * time.Second

// healthz answers 200 once the fake serves: its inboxes and contacts are
// seeded and the subscriptions file, if asked for, is written. It is not a
// Chatwoot route, so faults and rate limits set through /fake/ leave it
// alone.
func healthz(w http.ResponseWriter, _ *http.Request) {
	reply(w, done{OK: true}, nil)
}

// runHealthcheck is `chatwoot-fake -healthcheck`: it probes /healthz of the
// fake serving on listen (a wildcard bind is reached on loopback) and
// succeeds only on 200. The image has no shell or wget, so its container
// health check runs this. It prints one line on success; the error is the
// line otherwise.
func runHealthcheck(ctx context.Context, listen string, stdout io.Writer) error {
	target := localURL(listen) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s: HTTP %s", target, resp.Status)
	}
	fmt.Fprintf(stdout, "healthcheck: %s: 200 OK\n", target)
	return nil
}
