package netproxy

// SandboxPort is the port of the proxy in a sandbox with a network
// namespace of its own, where every port is free; commands find it at
// SandboxAddr, on the sandbox's own loopback.
const (
	SandboxPort = 3128
	SandboxAddr = "127.0.0.1:3128"
)

// Env returns the variables that point HTTP clients (curl, wget, pip, git,
// Go, npm) at the proxy listening at addr: HTTP_PROXY, HTTPS_PROXY and
// ALL_PROXY, and their lower-case forms, which some clients read instead;
// and NO_PROXY (no_proxy) naming the loopback, which is the sandbox's own:
// a command talks to the servers it runs itself directly (through the
// proxy, 127.0.0.1 would be the host's, and refused).
func Env(addr string) []string {
	url := "http://" + addr
	const local = "localhost,127.0.0.0/8,::1"
	return []string{
		"HTTP_PROXY=" + url, "HTTPS_PROXY=" + url, "ALL_PROXY=" + url, "NO_PROXY=" + local,
		"http_proxy=" + url, "https_proxy=" + url, "all_proxy=" + url, "no_proxy=" + local,
	}
}
