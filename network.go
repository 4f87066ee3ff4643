package agentbackend

import (
	"strings"

	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// Network selects what a backend's commands reach over the network:
// LocalConfig.Network for commands in bubblewrap, the daemon's --network.
// It is one of:
//
//   - NetworkNone (the zero value): a network namespace of the sandbox's
//     own with only a loopback interface. Nothing outside is reachable,
//     not even the host's loopback services.
//   - NetworkHost: the host's network, its loopback services (databases,
//     this process's own servers) and cloud metadata endpoints included.
//   - an allow-list, "allow:" and comma-separated entries (NetworkAllow
//     builds one, ParseNetwork checks one): the sandbox is as closed as
//     under NetworkNone, and its only way out is a filtering proxy the
//     backend runs for each command, on the sandbox's own loopback at
//     127.0.0.1:3128, to which HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (and
//     their lower-case forms) point. curl, wget, pip, git, go and npm use
//     it as they are.
//
// # Allow-lists
//
// Each entry is a host, optionally with ":port" or ":*" (without one, 80
// and 443): "github.com", "*.pypi.org" (any name below pypi.org, not
// pypi.org itself), "*" (any host), "proxy.golang.org:443",
// "registry.local:*", an address "203.0.113.7" or "[2001:db8::1]:8443", or
// a prefix "10.0.0.0/8".
//
// The proxy forwards http:// requests (GET http://host/path) and opens
// CONNECT tunnels for anything else (https, other TLS), and decides each
// by the host name the command asked for, never by an address the command
// could pick:
//
//   - an entry must match the host and port;
//   - the permissions of the scope the command runs through (the Network
//     policy of Permissions) must allow it, asking the scope's Approver
//     when a rule says Ask;
//   - the proxy resolves the name itself, once, and refuses it when any
//     address is not public (loopback, private, link-local with the cloud
//     metadata address 169.254.169.254, carrier-grade NAT, ...) or is one
//     of this host's, unless an address entry names that address
//     ("127.0.0.1:8080", "10.0.0.0/8"); it then connects to the very
//     address it checked, so a name that resolves elsewhere a moment later
//     (DNS rebinding) gains nothing;
//   - in a tunnel, a TLS ClientHello must name the host asked for (no
//     other name served at the same address).
//
// Anything else is refused with status 403, "blocked by network policy:
// example.com (why)" as status text and body, which clients print (wget,
// pip and Go show the status, curl -v and git the body or the code). Each
// decision is logged: by the OperationsLogger of the scope the command
// runs through (OpNetwork, whatever the logger's mode), else by the
// backend's Logger (refusals at Info, the rest at Debug).
//
// Names are resolved only by the proxy: the sandbox has no resolver and
// no route to one (no UDP or TCP to port 53 anywhere), so a command cannot
// leak data through DNS queries, and tools that resolve names themselves
// (nslookup, ssh, a raw socket) fail. Only clients that speak HTTP or use
// an HTTP proxy's CONNECT get out. Decisions are by name: a command can
// reach whatever an allowed name serves, including, at a CDN that routes
// by the Host header inside TLS, other sites (domain fronting).
//
// An allow-list needs bubblewrap isolation and CAP_SYS_ADMIN (running as
// root) to bind the proxy's listener inside the sandbox's network
// namespace; NewLocal fails with MISSING_UTILITIES otherwise. The
// sandbox then also gets the host's CA certificates (/etc/ssl/certs,
// read-only), since most traffic is TLS.
type Network string

// The network modes without a list.
const (
	// NetworkNone (the zero value; "" means the same) gives the sandbox a
	// network of its own with only a loopback interface: nothing outside,
	// not even the host's loopback services, is reachable.
	NetworkNone Network = "none"
	// NetworkHost shares the host's network: the command reaches whatever
	// the host reaches, its loopback services (databases, this process's
	// own servers, cloud metadata endpoints) included.
	NetworkHost Network = "host"
)

// networkAllowPrefix starts an allow-list.
const networkAllowPrefix = "allow:"

// NetworkAllow returns the allow-list network of the given entries (see
// Network): "allow:" and the entries joined by commas. NewLocal checks the
// entries.
func NetworkAllow(hosts ...string) Network {
	return Network(networkAllowPrefix + strings.Join(hosts, ","))
}

// ParseNetwork reads a network as a command line or a file spells it:
// "none", "host" or "allow:" and comma-separated entries (spaces around
// entries are ignored). The result is canonical ("" becomes none). A bad
// mode or entry is INVALID_CONFIGURATION naming it.
func ParseNetwork(s string) (Network, error) {
	n := Network(strings.TrimSpace(s))
	if n == "" {
		return NetworkNone, nil
	}
	if _, err := n.rules("network"); err != nil {
		return "", err
	}
	if list := n.AllowList(); list != nil {
		return NetworkAllow(list...), nil
	}
	return n, nil
}

// AllowList returns the entries of an allow-list network, trimmed, and nil
// for any other.
func (n Network) AllowList() []string {
	list, ok := strings.CutPrefix(string(n), networkAllowPrefix)
	if !ok {
		return nil
	}
	entries := []string{}
	for e := range strings.SplitSeq(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	return entries
}

// rules checks n and returns the rules of an allow-list (nil for none and
// host). field names the setting in errors.
func (n Network) rules(field string) (netproxy.Rules, error) {
	switch n {
	case "", NetworkNone, NetworkHost:
		return nil, nil
	}
	list := n.AllowList()
	if list == nil {
		return nil, errConfig("%s %q is not one of none, host, allow:<hosts>", field, n)
	}
	if len(list) == 0 {
		return nil, errConfig("%s %q allows no host: give entries (allow:github.com,*.pypi.org) or use none", field, n)
	}
	rules, err := netproxy.ParseRules(list)
	if err != nil {
		return nil, errConfig("%s: %v", field, err)
	}
	return rules, nil
}

// Describe says in a sentence what commands under n reach, for the
// description of an agent's command tool.
func (n Network) Describe() string {
	switch n {
	case "", NetworkNone:
		return "Commands have no network access (not even to this host's services)."
	case NetworkHost:
		return "Commands have this host's network."
	}
	return "Commands reach the network only through an HTTP proxy (HTTP_PROXY and HTTPS_PROXY are set; names are resolved by the proxy) and only these hosts: " +
		strings.Join(n.AllowList(), ", ") + ". Anything else fails with \"blocked by network policy: <host>\"."
}
