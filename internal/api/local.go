package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// forwardingHeaders are set by reverse proxies and load balancers; any
// header starting with X-Forwarded- counts too. A request carrying one did
// not come from this host even when its connection did.
var forwardingHeaders = []string{
	"Forwarded", "Via", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip",
	"Fastly-Client-Ip", "X-Cluster-Client-Ip", "X-Original-Forwarded-For",
}

// local returns nil when a request may use the API without a token: it
// comes from a loopback address, straight (no proxy in between), for a
// loopback host name (no DNS rebinding), and not from another site's page
// (no cross-site request forgery by a browser on this host).
func local(r *http.Request) error {
	if !isLoopback(r.RemoteAddr) {
		return fmt.Errorf("%w: no API tokens are configured, so only loopback clients are served", ErrUnauthorized)
	}
	if h := forwardingHeader(r.Header); h != "" {
		return fmt.Errorf("%w: no API tokens are configured and the request carries %s: a proxied client is not on loopback; configure API tokens to serve it",
			ErrForbidden, h)
	}
	if !loopbackHost(r.Host) {
		return fmt.Errorf("%w: no API tokens are configured, so the Host header must be localhost, a 127.0.0.0/8 address or [::1]",
			ErrForbidden)
	}
	if crossSite(r.Header) {
		return fmt.Errorf("%w: no API tokens are configured, so requests from web pages of other sites are refused", ErrForbidden)
	}
	return nil
}

// forwardingHeader names the first forwarding header r carries, "" if none.
func forwardingHeader(h http.Header) string {
	for _, name := range forwardingHeaders {
		if _, ok := h[name]; ok {
			return name
		}
	}
	for name := range h {
		if strings.HasPrefix(name, "X-Forwarded-") {
			return name
		}
	}
	return ""
}

// crossSite reports a browser request made by a page that is not on a
// loopback origin: an Origin other than a loopback one (including "null"),
// or Sec-Fetch-Site: cross-site.
func crossSite(h http.Header) bool {
	if strings.EqualFold(strings.TrimSpace(h.Get("Sec-Fetch-Site")), "cross-site") {
		return true
	}
	origins := h.Values("Origin")
	for _, o := range origins {
		u, err := url.Parse(strings.TrimSpace(o))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !loopbackHost(u.Host) {
			return true
		}
	}
	return false
}

// loopbackHost reports whether a Host header (or URL host) names this
// host: localhost, an address in 127.0.0.0/8 or ::1, with or without port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// isLoopback reports whether a RemoteAddr is a loopback address.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
