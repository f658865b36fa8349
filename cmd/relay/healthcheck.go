package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"time"
)

// healthcheckTimeout bounds one probe: connection, request and answer.
const healthcheckTimeout = 2 * time.Second

// runHealthcheck is `relay healthcheck`: it probes the relay's /healthz (or
// /readyz with -ready) and succeeds only on 200. Container images without a
// shell or curl (distroless) use it as their HEALTHCHECK and Kubernetes as an
// exec probe. It prints one line either way; the error is that line.
func runHealthcheck(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "", "base URL of the relay; empty = from RELAY_HTTP_ADDR, with a loopback host when it binds every address")
	ready := fs.Bool("ready", false, "probe /readyz (NATS and the state store answer) instead of /healthz (the process serves)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	base := *rawURL
	if base == "" {
		var err error
		if base, err = healthcheckBase(env); err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	target, err := probeURL(base, path)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	if err := probe(ctx, target); err != nil {
		return fmt.Errorf("healthcheck: %s: %w", target.Redacted(), err)
	}
	fmt.Fprintf(stdout, "healthcheck: %s: 200 OK\n", target.Redacted())
	return nil
}

// healthcheckBase is the relay's URL as seen from its own host, derived from
// RELAY_HTTP_ADDR (or its default): a wildcard bind (0.0.0.0, [::] or no
// host) is reached on loopback.
func healthcheckBase(env map[string]string) (string, error) {
	addr, ok := env[envPrefix+"HTTP_ADDR"]
	if !ok {
		f, _ := reflect.TypeFor[Config]().FieldByName("HTTPAddr")
		addr = f.Tag.Get("envDefault")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%sHTTP_ADDR: %w", envPrefix, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.Equal(net.IPv4zero)):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// probeURL joins base and path; base must be an http(s) URL without a path
// of its own beyond "/".
func probeURL(base, path string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("-url: want an http(s) URL such as http://127.0.0.1:8080")
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = path, "", "", ""
	return u, nil
}

// probe GETs target within healthcheckTimeout. The Host header is loopback
// whenever the URL names an address: without API tokens the relay serves
// only loopback Host names, and an address has no virtual host to keep.
func probe(ctx context.Context, target *url.URL) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return err
	}
	if net.ParseIP(target.Hostname()) != nil {
		req.Host = "localhost"
		if p := target.Port(); p != "" {
			req.Host = net.JoinHostPort("localhost", p)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer within %s", healthcheckTimeout)
		}
		return ue.Err
	}
	return err
}
