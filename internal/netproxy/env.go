package netproxy

// SandboxAddr is where a command finds its proxy in a sandbox with a
// network namespace of its own: the sandbox's own loopback, where every
// port is free.
const SandboxAddr = "127.0.0.1:3128"

// Env returns the variables that point HTTP clients (curl, wget, pip, git,
// Go, npm) at the proxy listening at addr: HTTP_PROXY, HTTPS_PROXY and
// ALL_PROXY, and their lower-case forms, which some clients read instead.
func Env(addr string) []string {
	url := "http://" + addr
	return []string{
		"HTTP_PROXY=" + url, "HTTPS_PROXY=" + url, "ALL_PROXY=" + url,
		"http_proxy=" + url, "https_proxy=" + url, "all_proxy=" + url,
	}
}
