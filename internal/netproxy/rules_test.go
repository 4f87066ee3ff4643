package netproxy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRule(t *testing.T) {
	type probe struct {
		host string
		port int
		want bool
	}
	cases := []struct {
		rule   string
		probes []probe
	}{
		{"example.com", []probe{{"example.com", 443, true}, {"example.com", 80, true}, {"example.com", 8080, false},
			{"www.example.com", 443, false}, {"example.co", 443, false}, {"xexample.com", 443, false}}},
		{"EXAMPLE.com.", []probe{{"example.com", 443, true}}},
		{"*.pypi.org", []probe{{"files.pypi.org", 443, true}, {"a.b.pypi.org", 443, true}, {"pypi.org", 443, false},
			{"evilpypi.org", 443, false}, {"pypi.org.evil.com", 443, false}}},
		{"github.com:22", []probe{{"github.com", 22, true}, {"github.com", 443, false}}},
		{"github.com:*", []probe{{"github.com", 22, true}, {"github.com", 65535, true}}},
		{"*", []probe{{"anything.example", 443, true}, {"1.2.3.4", 80, true}, {"1.2.3.4", 22, false}}},
		{"*:*", []probe{{"anything.example", 5, true}}},
		{"127.0.0.1:8443", []probe{{"127.0.0.1", 8443, true}, {"127.0.0.1", 443, false}, {"localhost", 8443, false}}},
		{"10.0.0.0/8", []probe{{"10.1.2.3", 443, true}, {"11.0.0.1", 443, false}}},
		{"[::1]:8080", []probe{{"::1", 8080, true}, {"::1", 80, false}}},
		{"::1", []probe{{"::1", 80, true}}},
		{"[fd00::/8]:*", []probe{{"fd12::1", 9, true}, {"fe80::1", 9, false}}},
	}
	for _, c := range cases {
		r, err := ParseRule(c.rule)
		require.NoError(t, err, c.rule)
		assert.Equal(t, c.rule, r.String())
		for _, p := range c.probes {
			assert.Equal(t, p.want, r.Match(p.host, p.port), "%s matching %s:%d", c.rule, p.host, p.port)
		}
	}
}

func TestParseRuleRefuses(t *testing.T) {
	for _, bad := range []string{
		"", " ", "exa*mple.com", "*example.com", "foo.*.com", "example.com:0", "example.com:65536", "example.com:",
		"example.com:http", "example.com:+80", "example.com:080", "[::1", "[::1]x", "[nothost]:80", "127.1",
		"2130706433", "0x7f.1", "ex ample.com", "exämple.com", "a..b", "fe80::1%eth0", "-",
	} {
		_, err := ParseRule(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestRuleNames(t *testing.T) {
	rules, err := ParseRules([]string{"example.com", "*", "127.0.0.1:8443", "192.168.0.0/16"})
	require.NoError(t, err)
	lo := netip.MustParseAddr("127.0.0.1")
	assert.True(t, rules.Names(lo, 8443))
	assert.True(t, rules.Names(netip.MustParseAddr("::ffff:127.0.0.1"), 8443), "an IPv4-mapped spelling is the same address")
	assert.False(t, rules.Names(lo, 443), "another port is not named")
	assert.False(t, rules.Names(netip.MustParseAddr("127.0.0.2"), 8443))
	assert.True(t, rules.Names(netip.MustParseAddr("192.168.1.1"), 443))
	assert.False(t, rules.Names(netip.MustParseAddr("192.168.1.1"), 22))
}

func TestPublic(t *testing.T) {
	for _, a := range []string{"8.8.8.8", "1.1.1.1", "2606:4700::1111", "151.101.0.223"} {
		assert.True(t, Public(netip.MustParseAddr(a)), a)
	}
	for _, a := range []string{
		"127.0.0.1", "127.255.0.1", "::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fe80::1",
		"fd00::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "100.64.0.1", "255.255.255.255", "::ffff:127.0.0.1",
		"::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "192.0.2.1", "fec0::1", "0.1.2.3",
	} {
		assert.False(t, Public(netip.MustParseAddr(a)), a)
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM.": "example.com", "::ffff:127.0.0.1": "127.0.0.1", "127.0.0.1": "127.0.0.1",
		"2001:DB8::1": "2001:db8::1", "xn--bcher-kva.example": "xn--bcher-kva.example", "_dmarc.example.com": "_dmarc.example.com",
	} {
		got, err := CanonicalHost(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", ".", "127.1", "1.2.3.4.5", "a b", "évil.com", "fe80::1%25eth0", "fe80::1%eth0", "a/b", "a:b"} {
		_, err := CanonicalHost(bad)
		assert.Error(t, err, "%q", bad)
	}
}
