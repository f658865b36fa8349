package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrAddress reports a receiver whose resolved address the relay refuses to
// connect to (link-local, cloud metadata, and unless allowed, loopback or
// private ranges). The check runs on the address actually dialled, after
// DNS resolution, so a name that re-resolves to a forbidden address (DNS
// rebinding) is refused as well.
var ErrAddress = errors.New("webhook: receiver address refused")

// AddressPolicy says which resolved addresses a delivery may connect to.
type AddressPolicy struct {
	// AllowLoopback permits 127.0.0.0/8 and ::1 (tests, sidecars).
	AllowLoopback bool
	// AllowPrivate permits RFC 1918, RFC 6598 (100.64/10) and fc00::/7
	// (receivers inside the same private network as the relay).
	AllowPrivate bool
}

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// Always refused: "this network" (0/8), Alibaba Cloud's metadata
	// address (inside 100.64/10), and the IPv6 forms that embed an IPv4
	// address a gateway may reach: NAT64 (64:ff9b::/96, 64:ff9b:1::/48),
	// 6to4 (2002::/16) and IPv4-compatible (::/96) addresses, and AWS's
	// IPv6 service network (fd00:ec2::/64: metadata ::254, DNS ::253,
	// time ::123), which AllowPrivate's fc00::/7 would otherwise admit.
	neverDialled = []netip.Prefix{
		netip.MustParsePrefix("fd00:ec2::/64"),
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("100.100.100.200/32"),
		netip.MustParsePrefix("64:ff9b::/96"),
		netip.MustParsePrefix("64:ff9b:1::/48"),
		netip.MustParsePrefix("2002::/16"),
		netip.MustParsePrefix("::/96"),
	}
)

func neverDial(addr netip.Addr) bool {
	if addr.IsLoopback() { // ::1 lies in ::/96
		return false
	}
	for _, p := range neverDialled {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// check returns nil when addr may be dialled.
func (p AddressPolicy) check(addr netip.Addr) error {
	addr = addr.Unmap()
	switch {
	case neverDial(addr),
		addr.IsLinkLocalUnicast(), addr.IsLinkLocalMulticast(),
		addr.IsUnspecified(), addr.IsMulticast(), addr.IsInterfaceLocalMulticast(),
		addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is link-local, metadata or not unicast", ErrAddress, addr)
	case addr.IsLoopback():
		if !p.AllowLoopback {
			return fmt.Errorf("%w: %s is loopback", ErrAddress, addr)
		}
	case addr.IsPrivate() || cgnat.Contains(addr):
		if !p.AllowPrivate {
			return fmt.Errorf("%w: %s is private", ErrAddress, addr)
		}
	}
	return nil
}

// control is a net.Dialer Control hook: it runs for every connection
// attempt with the resolved "ip:port".
func (p AddressPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAddress, err)
	}
	return p.check(ap.Addr())
}

// newClient returns the HTTP client of all deliveries: the address policy
// on every dial, no proxy (a proxy would dial on our behalf, unchecked), no
// redirects, no cookies, and keep-alive connections per receiver: one per
// worker delivering to it (up to maxConnsPerHost kept idle), and no bound
// across receivers, so a hundred busy endpoints do not close and dial
// connections all the time. Idle ones close after 90 s.
func newClient(p AddressPolicy, maxConnsPerHost int) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // no bound across receivers
		MaxIdleConnsPerHost:   maxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the attempt's context bounds the whole exchange
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// dialCheck reports whether err came from the address policy.
func dialCheck(err error) bool { return errors.Is(err, ErrAddress) }
