package netproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// dial resolves t's host once, checks every address, and connects to the
// first checked address that answers.
func (s *Server) dial(ctx context.Context, t Target) (net.Conn, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(t.Host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, dialTimeout)
		addrs, err = resolve(rctx, t.Host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", t.Host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("cannot resolve %s: no address", t.Host)
		}
	}
	var own map[netip.Addr]bool
	for i, a := range addrs {
		a = a.Unmap()
		addrs[i] = a
		kind := ""
		if !Public(a) {
			kind = describe(a)
		} else {
			if own == nil {
				own = OwnAddrs()
			}
			if own[a] {
				kind = "an address of this host"
			}
		}
		if kind != "" && !s.Rules.Names(a, t.Port) {
			reason := fmt.Sprintf("%s is %s, which no rule names", a, kind)
			if a.String() != t.Host {
				reason = fmt.Sprintf("it resolves to %s, %s, which no rule names", a, kind)
			}
			return nil, &Blocked{Target: t, Reason: reason}
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	var first error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(t.Port)).String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// describe names the kind of a non-public address.
func describe(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsPrivate():
		return "a private address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	}
	return "not a public address"
}

// dialAddr is the transport's dialer for forwarded requests: the address
// is the request URL's host and port, decided already; the resolution and
// the check of the addresses happen here, at each new connection.
func (s *Server) dialAddr(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	t, err := target(host, port)
	if err != nil {
		return nil, err
	}
	return s.dial(ctx, t)
}
