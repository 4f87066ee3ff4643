// Package netproxy is the network a sandboxed command gets under an
// allow-list: a filtering HTTP proxy (forward proxy for http:// URLs,
// CONNECT tunnels for everything else) that decides by the host name the
// command asks for, never by an address the command could pick, and a way
// to bind its listener inside a sandbox that has no route out (ListenIn).
//
// It knows nothing of the SDK's permissions or logs: the caller gives a
// Server its rules and a Check for anything more (asking a person), and
// gets an Event for every decision.
package netproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one entry of an allow-list: which hosts, on which ports.
//
// Its text is a host, optionally followed by ":port" or ":*":
//
//	example.com       that name (case-insensitive, a trailing dot ignored)
//	*.example.com     any name below example.com (not example.com itself)
//	*                 any host
//	203.0.113.7       that address, as a literal in a URL or CONNECT
//	[2001:db8::1]     an IPv6 address (brackets needed with a port)
//	10.0.0.0/8        any address in the prefix
//
// Without a port a rule covers 80 and 443, the ports of http and https;
// "host:8443" covers that port and "host:*" every port. An address rule
// also "names" the addresses it covers: only such a rule lets a name
// resolve to an address that is not public (see Public).
type Rule struct {
	text   string
	any    bool         // "*"
	name   string       // an exact host name, lower case, no trailing dot
	suffix string       // "*.example.com": ".example.com"
	prefix netip.Prefix // an address or a prefix (a single address is a /32 or /128)
	port   int          // 0: 80 and 443; -1: any port
}

// errEmptyRule is the error of an empty entry.
var errEmptyRule = errors.New("empty host pattern")

// ParseRule parses one allow-list entry; see Rule.
func ParseRule(text string) (Rule, error) {
	r := Rule{text: text}
	s := strings.TrimSpace(text)
	if s == "" {
		return r, errEmptyRule
	}
	host, port, err := splitRule(s)
	if err != nil {
		return r, fmt.Errorf("%q: %v", text, err)
	}
	switch port {
	case "":
	case "*":
		r.port = -1
	default:
		if r.port, err = parsePort(port); err != nil {
			return r, fmt.Errorf("%q: %v", text, err)
		}
	}
	switch {
	case host == "*":
		r.any = true
	case strings.HasPrefix(host, "*."):
		name, err := CanonicalName(host[2:])
		if err != nil {
			return r, fmt.Errorf("%q: %v", text, err)
		}
		r.suffix = "." + name
	case strings.Contains(host, "*"):
		return r, fmt.Errorf("%q: a wildcard is only allowed as the whole host (*) or as its first label (*.example.com)", text)
	default:
		if p, err := netip.ParsePrefix(host); err == nil {
			r.prefix = p.Masked()
			if p.Addr().Is4In6() {
				r.prefix = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)).Masked()
			}
			break
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Zone() != "" {
				return r, fmt.Errorf("%q: an address with a zone cannot be allowed", text)
			}
			a = a.Unmap()
			r.prefix = netip.PrefixFrom(a, a.BitLen())
			break
		}
		if r.name, err = CanonicalName(host); err != nil {
			return r, fmt.Errorf("%q: %v", text, err)
		}
	}
	return r, nil
}

// splitRule separates a rule's host and port ("" when it has none).
func splitRule(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("unclosed [")
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
		case strings.HasPrefix(rest, ":") && len(rest) > 1:
			port = rest[1:]
		default:
			return "", "", errors.New("want [address] or [address]:port")
		}
		if _, err := netip.ParseAddr(host); err != nil {
			if _, err := netip.ParsePrefix(host); err != nil {
				return "", "", fmt.Errorf("%q is not an IPv6 address", host)
			}
		}
		return host, port, nil
	}
	if strings.Count(s, ":") > 1 { // a bare IPv6 address or prefix, no port
		return s, "", nil
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		if i == len(s)-1 {
			return "", "", errors.New("empty port")
		}
		return s[:i], s[i+1:], nil
	}
	return s, "", nil
}

// parsePort parses a port number, 1 to 65535.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

// String returns the rule as written.
func (r Rule) String() string { return r.text }

// portOK reports whether the rule covers port.
func (r Rule) portOK(port int) bool {
	switch r.port {
	case -1:
		return true
	case 0:
		return port == 80 || port == 443
	}
	return r.port == port
}

// Match reports whether the rule covers a request for host (canonical: see
// CanonicalHost) on port.
func (r Rule) Match(host string, port int) bool {
	if !r.portOK(port) {
		return false
	}
	switch {
	case r.any:
		return true
	case r.name != "":
		return host == r.name
	case r.suffix != "":
		return len(host) > len(r.suffix) && strings.HasSuffix(host, r.suffix)
	}
	a, err := netip.ParseAddr(host)
	return err == nil && r.prefix.Contains(a.Unmap())
}

// Names reports whether the rule is an address rule covering addr on port:
// what lets a name resolve to a non-public address.
func (r Rule) Names(addr netip.Addr, port int) bool {
	return r.prefix.IsValid() && r.portOK(port) && r.prefix.Contains(addr.Unmap())
}

// Rules is an allow-list.
type Rules []Rule

// ParseRules parses allow-list entries; the error names the first bad one.
func ParseRules(entries []string) (Rules, error) {
	rules := make(Rules, 0, len(entries))
	for _, e := range entries {
		r, err := ParseRule(e)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Match reports whether some rule covers host on port.
func (rs Rules) Match(host string, port int) bool {
	for _, r := range rs {
		if r.Match(host, port) {
			return true
		}
	}
	return false
}

// Names reports whether some address rule covers addr on port.
func (rs Rules) Names(addr netip.Addr, port int) bool {
	for _, r := range rs {
		if r.Names(addr, port) {
			return true
		}
	}
	return false
}

// CanonicalName checks a host name and returns it in lower case without a
// trailing dot. Names are ASCII (an internationalised name is given in its
// xn-- form), of labels of letters, digits, '-' (not first or last) and
// '_', at most 253
// characters; a name whose last label is numeric ("127.1", "2130706433",
// "0x7f.1") is refused, since resolvers may read it as an address.
func CanonicalName(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return "", fmt.Errorf("invalid host name %q", name)
	}
	name = strings.ToLower(name)
	last := ""
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("invalid host name %q", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid host name %q", name)
			}
		}
		last = label
	}
	if numeric(last) {
		return "", fmt.Errorf("invalid host name %q: it ends in a number, and resolvers may read it as an address", name)
	}
	return name, nil
}

// numeric reports whether a label could be read as a number (decimal,
// octal or hexadecimal) by inet_aton.
func numeric(label string) bool {
	s := label
	if strings.HasPrefix(s, "0x") {
		s = s[2:]
		if s == "" {
			return true
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CanonicalHost checks the host of a request (a name, an IPv4 address or
// an IPv6 address without brackets) and returns its canonical form: a
// name as CanonicalName gives it, an address as netip prints it (IPv4 for
// an IPv4-mapped IPv6 address).
func CanonicalHost(host string) (string, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("invalid host %q: addresses with a zone are refused", host)
		}
		return a.Unmap().String(), nil
	}
	return CanonicalName(host)
}
