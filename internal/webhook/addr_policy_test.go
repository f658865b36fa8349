package webhook

import (
	"net/netip"
	"testing"
)

// Addresses that reach cloud metadata / internal hosts but pass the policy.
func TestAddressPolicyRefusesHiddenInternalAddresses(t *testing.T) {
	cases := []struct {
		p    AddressPolicy
		addr string
		why  string
	}{
		{AddressPolicy{}, "64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"},
		{AddressPolicy{}, "64:ff9b::7f00:1", "NAT64 of 127.0.0.1"},
		{AddressPolicy{}, "64:ff9b::a00:1", "NAT64 of 10.0.0.1"},
		{AddressPolicy{}, "2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"},
		{AddressPolicy{}, "::a9fe:a9fe", "IPv4-compatible 169.254.169.254"},
		{AddressPolicy{}, "0.0.0.1", "0.0.0.0/8 (this host)"},
		{AddressPolicy{AllowPrivate: true}, "100.100.100.200", "Alibaba Cloud metadata (in 100.64/10)"},
		{AddressPolicy{AllowPrivate: true}, "fd00:ec2::253", "AWS IPv6 DNS resolver next to the metadata address"},
	}
	for _, c := range cases {
		if err := c.p.check(netip.MustParseAddr(c.addr)); err == nil {
			t.Errorf("%s (%s) allowed", c.addr, c.why)
		}
	}
}
