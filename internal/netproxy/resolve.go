package netproxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// testHosts are names that resolve to fixed addresses, for tests that
// serve "allowed.test" from their own loopback server (SetTestHosts).
var testHosts struct {
	sync.RWMutex
	m map[string][]netip.Addr
}

// SetTestHosts makes every Server resolve the given names (canonical: lower
// case, no trailing dot) to the given addresses instead of asking DNS,
// until the returned function is called. For tests only: the proxy's
// checks of the addresses apply to them as to any.
func SetTestHosts(hosts map[string][]netip.Addr) (restore func()) {
	testHosts.Lock()
	old := testHosts.m
	testHosts.m = hosts
	testHosts.Unlock()
	return func() {
		testHosts.Lock()
		testHosts.m = old
		testHosts.Unlock()
	}
}

// resolve returns the addresses of a host name, once.
func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	testHosts.RLock()
	addrs, ok := testHosts.m[strings.ToLower(host)]
	testHosts.RUnlock()
	if ok {
		return append([]netip.Addr(nil), addrs...), nil
	}
	return lookup(ctx, "ip", host)
}

// lookup asks DNS; a variable so that a test can answer differently at
// each question (DNS rebinding).
var lookup = net.DefaultResolver.LookupNetIP
