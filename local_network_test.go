//go:build linux

package agentbackend_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The promises of an allow-list Network, attacked from inside the sandbox
// with real clients (curl, GNU wget, busybox), against real HTTP and HTTPS
// servers on the host's 127.0.0.1 that answer as allowed.test, denied.test
// and other.test (names the proxy resolves to 127.0.0.1, see
// netproxy.SetTestHosts).

// needProxy skips (or fails, when AGENTBE_REQUIRE names "netproxy") unless
// allow-lists work here: bubblewrap, CAP_SYS_ADMIN, curl.
func needProxy(t *testing.T) {
	t.Helper()
	testenv.NeedBwrap(t)
	err := netproxy.CanListenIn()
	testenv.Need(t, "netproxy", err == nil, fmt.Sprint(err))
	testenv.NeedCommand(t, "netproxy", "curl")
}

// netFixture is a workspace under an allow-list in front of an Origin.
type netFixture struct {
	b      *ab.LocalBackend
	origin *nettest.Origin
	http   int // the origin's ports
	https  int
}

// newNetFixture makes a bwrap backend whose allow-list is entries, in
// which HTTP and HTTPS stand for the origin's ports. The origin's CA is in
// the workspace as ca.pem.
func newNetFixture(t *testing.T, cfg ab.LocalConfig, entries ...string) *netFixture {
	t.Helper()
	needProxy(t)
	f := &netFixture{origin: nettest.NewOrigin(t, "allowed.test", "denied.test", "other.test")}
	f.http, f.https = f.origin.Port(false), f.origin.Port(true)
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	t.Cleanup(netproxy.SetTestHosts(map[string][]netip.Addr{"allowed.test": lo, "denied.test": lo, "other.test": lo}))
	for i, e := range entries {
		e = strings.ReplaceAll(e, "HTTPS", fmt.Sprint(f.https))
		entries[i] = strings.ReplaceAll(e, "HTTP", fmt.Sprint(f.http))
	}
	cfg.Isolation, cfg.Network = ab.IsolationBwrap, ab.NetworkAllow(entries...)
	cfg.AllowDangerous = true // the attacks use /dev/tcp, which the guard-rail of dangerous commands would stop first
	f.b = newLocal(t, cfg)
	t.Cleanup(func() { f.b.Close() })
	require.NoError(t, os.WriteFile(filepath.Join(f.b.RootDir(), "ca.pem"), f.origin.CAPEM, 0o644))
	return f
}

// run runs a command in b (the backend or a scope) and returns its
// output and exit code.
func run(t *testing.T, b ab.FileBackend, command string) (stdout, stderr string, code int) {
	t.Helper()
	res, err := b.Exec(context.Background(), command, &ab.ExecOptions{Timeout: time.Minute})
	if res == nil {
		require.NoError(t, err, command)
	}
	return string(res.Stdout), string(res.Stderr), res.ExitCode
}

// url returns the origin's URL for host and path.
func (f *netFixture) url(https bool, host, path string) string {
	if https {
		return fmt.Sprintf("https://%s:%d%s", host, f.https, path)
	}
	return fmt.Sprintf("http://%s:%d%s", host, f.http, path)
}

func TestLocalNetworkAllowList(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "allowed.test:HTTPS", "127.0.0.1:HTTP", "127.0.0.1:HTTPS")
	for _, https := range []bool{false, true} {
		out, errOut, code := run(t, f.b, "curl -sS --cacert ca.pem "+f.url(https, "allowed.test", "/hello"))
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, fmt.Sprintf("hello from allowed.test:%d\n", map[bool]int{false: f.http, true: f.https}[https]), out)
	}
	out, errOut, code := run(t, f.b, "busybox wget -q -O - "+f.url(false, "allowed.test", "/hello"))
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "hello from allowed.test")

	served := f.origin.Requests()
	blocked := fmt.Sprintf("blocked by network policy: denied.test:%d (not in the allow-list)", f.http)
	out, _, _ = run(t, f.b, "curl -sS "+f.url(false, "denied.test", "/hello"))
	assert.Equal(t, blocked+"\n", out, "curl prints the refusal")
	_, errOut, code = run(t, f.b, "busybox wget -q -O - "+f.url(false, "denied.test", "/hello"))
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "403 "+blocked, "busybox wget prints the refusal")
	_, errOut, code = run(t, f.b, "curl -sS --cacert ca.pem "+f.url(true, "denied.test", "/hello"))
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "CONNECT tunnel failed, response 403")
	if testenv.NeedCommand(t, "netproxy", "wget") != "" {
		_, errOut, code = run(t, f.b, "wget -O - --ca-certificate=ca.pem "+f.url(true, "denied.test", "/hello"))
		assert.NotEqual(t, 0, code)
		assert.Contains(t, errOut, fmt.Sprintf("blocked by network policy: denied.test:%d", f.https), "GNU wget prints the refusal of a tunnel")
	}
	// A tunnel to the allowed name cannot carry TLS for another one served
	// at the same address: curl --connect-to asks the proxy for
	// allowed.test and greets the server as denied.test.
	_, errOut, code = run(t, f.b, fmt.Sprintf("curl -sS --cacert ca.pem --connect-to denied.test:%d:allowed.test:%d %s",
		f.https, f.https, f.url(true, "denied.test", "/hello")))
	assert.NotEqual(t, 0, code)
	assert.NotContains(t, errOut, "hello")
	// The allowed host's other ports, and the allowed port on other names.
	out, _, _ = run(t, f.b, "curl -sS http://allowed.test:9/hello")
	assert.Contains(t, out, "blocked by network policy: allowed.test:9 (port 9 is not allowed for it)")
	out, _, _ = run(t, f.b, "curl -sS "+f.url(false, "other.test", "/hello"))
	assert.Contains(t, out, "blocked by network policy: other.test")
	assert.Equal(t, served, f.origin.Requests(), "no refused request reached the origin")
}

// The proxy's variables win over the caller's, and every command gets its
// own proxy: a background process too, whose proxy ends with it.
func TestLocalNetworkEnvironment(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{Env: map[string]string{"HTTP_PROXY": "http://elsewhere:1", "no_proxy": "*"}},
		"allowed.test:HTTP", "127.0.0.1:HTTP")
	res, err := f.b.Exec(context.Background(), "env | grep -i _proxy= | sort", &ab.ExecOptions{Env: map[string]string{"https_proxy": "http://elsewhere:2"}})
	require.NoError(t, err)
	for _, name := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		assert.Contains(t, string(res.Stdout), name+"="+"http://"+netproxy.SandboxAddr+"\n")
	}
	assert.Contains(t, string(res.Stdout), "no_proxy=localhost,127.0.0.0/8,::1\n")
	assert.NotContains(t, string(res.Stdout), "elsewhere")
	assert.NotContains(t, string(res.Stdout), "=*")

	// The sandbox's own servers are reached directly, not through the proxy.
	if testenv.NeedCommand(t, "netproxy", "busybox") != "" {
		require.NoError(t, os.WriteFile(filepath.Join(f.b.RootDir(), "index.html"), []byte("in the sandbox\n"), 0o644))
		out, errOut, code := run(t, f.b, "busybox httpd -p 127.0.0.1:8000 -h . && curl -sS --retry 20 --retry-connrefused --retry-delay 0 http://127.0.0.1:8000/index.html")
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, "in the sandbox\n", out)
	}

	p, err := f.b.Start(context.Background(), "read line; curl -sS "+f.url(false, "allowed.test", "/hello"), nil)
	require.NoError(t, err)
	_, err = p.Stdin().Write([]byte("go\n"))
	require.NoError(t, err)
	res, err = p.Wait(context.Background())
	require.NoError(t, err)
	assert.Contains(t, string(res.Stdout), "hello from allowed.test")

	// On a terminal too.
	p, err = f.b.Start(context.Background(), "curl -sS "+f.url(false, "allowed.test", "/hello"), &ab.ExecOptions{Terminal: &ab.Terminal{}})
	require.NoError(t, err)
	res, err = p.Wait(context.Background())
	require.NoError(t, err)
	assert.Contains(t, string(res.Stdout), "hello from allowed.test")
}

// Nothing leaves the sandbox but through the proxy: no raw TCP to the
// host or beyond, no UDP, no resolver.
func TestLocalNetworkNoOtherWayOut(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "127.0.0.1:HTTP")
	udp, err := net.ListenPacket("udp", "0.0.0.0:0")
	require.NoError(t, err)
	defer udp.Close()
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	defer tcp.Close()
	tcpPort := tcp.Addr().(*net.TCPAddr).Port
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := tcp.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()

	targets := []string{"127.0.0.1", "1.1.1.1"}
	if own := ownAddr(); own != "" {
		targets = append(targets, own)
	}
	served := f.origin.Requests()
	for _, ip := range targets {
		for _, port := range []int{f.http, tcpPort, 53} {
			_, errOut, code := run(t, f.b, fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", ip, port))
			assert.NotEqual(t, 0, code, "raw TCP to %s:%d", ip, port)
			assert.Regexp(t, "Connection refused|Network is unreachable", errOut)
		}
		_, _, code := run(t, f.b, fmt.Sprintf("echo leak > /dev/udp/%s/%d && echo leak > /dev/udp/%s/53", ip, udpPort, ip))
		_ = code // sendto on the sandbox's loopback succeeds; nothing can arrive
		_, errOut, code := run(t, f.b, "busybox nslookup allowed.test "+ip)
		assert.NotEqual(t, 0, code, "a DNS query to %s", ip)
		assert.NotContains(t, errOut, "Address: ")
	}
	_, _, code := run(t, f.b, "cat /etc/resolv.conf")
	assert.NotEqual(t, 0, code, "the sandbox has no resolver configuration")
	_, _, code = run(t, f.b, "getent hosts allowed.test")
	assert.NotEqual(t, 0, code, "names do not resolve inside")

	_ = udp.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _, err = udp.ReadFrom(make([]byte, 100))
	assert.Error(t, err, "a UDP datagram left the sandbox")
	select {
	case <-accepted:
		t.Error("a raw TCP connection left the sandbox")
	default:
	}
	assert.Equal(t, served, f.origin.Requests())
}

// ownAddr returns a non-loopback address of this host, or "".
func ownAddr() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// The host's loopback, link-local and own addresses stay out of reach
// unless an entry names the address: "*" does not, nor does a name that
// resolves there, whatever way the command spells it.
func TestLocalNetworkHostServicesNeedAnAddressEntry(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "*:*")
	served := f.origin.Requests()
	urls := []string{
		f.url(false, "allowed.test", "/hello"),
		f.url(false, "127.0.0.1", "/hello"),
		f.url(false, "[::1]", "/hello"),
		f.url(false, "[::ffff:127.0.0.1]", "/hello"),
		f.url(false, "localhost", "/hello"),
		"http://169.254.169.254/latest/meta-data/",
		"http://[fe80::1]/",
		"http://0.0.0.0:" + fmt.Sprint(f.http) + "/hello",
	}
	if own := ownAddr(); own != "" {
		urls = append(urls, f.url(false, own, "/hello"))
	}
	for _, u := range urls {
		// --noproxy '': through the proxy even for the loopback, which
		// NO_PROXY keeps for the sandbox's own servers.
		out, _, _ := run(t, f.b, "curl -sS --max-time 20 --noproxy '' "+u)
		assert.Contains(t, out, "blocked by network policy: ", u)
		assert.Contains(t, out, "which no rule names", u)
	}
	_, errOut, _ := run(t, f.b, "curl -sS --cacert ca.pem "+f.url(true, "allowed.test", "/hello"))
	assert.Contains(t, errOut, "response 403")
	// Straight to the proxy, by hand.
	out, _, _ := run(t, f.b, fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n' >&3; head -1 <&3", f.http))
	assert.Contains(t, out, "403 blocked by network policy: 127.0.0.1:")
	assert.Equal(t, served, f.origin.Requests())
}

// A scope's network rules ask its approver; answers are remembered per
// host for the scope's life when the approver says always.
func TestLocalNetworkAsk(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "*.test:*", "127.0.0.1:*")
	var mu sync.Mutex
	asked := map[string]int{}
	var requests []ab.Request
	approver := ab.ApproverFunc(func(ctx context.Context, req ab.Request) (ab.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		asked[req.Host]++
		requests = append(requests, req)
		switch {
		case strings.HasPrefix(req.Host, "allowed.test:"):
			return ab.AllowAlways, nil
		case strings.HasPrefix(req.Host, "other.test:"):
			return ab.AllowOnce, nil
		}
		return ab.DenyOnce, nil
	})
	log := ab.NewArrayLogger(ab.LogStandard)
	s, err := f.b.Scope("agent", &ab.ScopeConfig{Logger: log, User: "alice", Permissions: &ab.Permissions{
		Network:  ab.Policy{Default: ab.Ask, Rules: []ab.Rule{{Pattern: "evil.test:*", Action: ab.Deny, Reason: "no"}}},
		Approver: approver,
	}})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Write(context.Background(), "ca.pem", f.origin.CAPEM))

	for range 2 {
		out, errOut, code := run(t, s, "curl -sS --cacert ca.pem "+f.url(true, "allowed.test", "/hello")+" "+f.url(false, "other.test", "/hello"))
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "hello from allowed.test")
		assert.Contains(t, out, "hello from other.test")
		out, _, _ = run(t, s, "curl -sS "+f.url(false, "denied.test", "/hello"))
		assert.Equal(t, fmt.Sprintf("blocked by network policy: denied.test:%d (the default network policy asks for approval, and the approver refused)\n", f.http), out)
	}
	out, _, _ := run(t, s, fmt.Sprintf("curl -sS http://evil.test:%d/", f.http))
	assert.Contains(t, out, `blocked by network policy: evil.test:`)
	assert.Contains(t, out, `rule "evil.test:*" denies network (no)`)
	mu.Lock()
	assert.Equal(t, map[string]int{
		fmt.Sprintf("allowed.test:%d", f.https): 1, // remembered
		fmt.Sprintf("other.test:%d", f.http):    2,
		fmt.Sprintf("denied.test:%d", f.http):   2,
	}, asked)
	req := requests[0]
	mu.Unlock()
	assert.Equal(t, ab.AccessNetwork, req.Access)
	assert.Equal(t, "connect", req.Op)
	assert.Equal(t, "alice", req.User)
	assert.Contains(t, req.Command, "curl -sS")
	assert.Contains(t, req.String(), "connect (network) ")

	// Every decision is in the scope's log, in standard mode.
	var allowed, refused int
	var remembered bool
	for _, e := range log.Entries() {
		if e.Operation != ab.OpNetwork {
			continue
		}
		assert.Equal(t, "alice", e.User)
		assert.Contains(t, e.Command, "curl")
		if e.Success {
			allowed++
		} else {
			refused++
			assert.Contains(t, e.Err.Error(), "blocked by network policy: ")
		}
		remembered = remembered || e.Permission.Remembered
	}
	assert.Equal(t, 4, allowed)
	assert.Equal(t, 3, refused)
	assert.True(t, remembered, "the second allowed.test connection used the remembered answer")

	// Without an approver an ask is a refusal.
	s2, err := f.b.Scope("quiet", &ab.ScopeConfig{Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Ask}}})
	require.NoError(t, err)
	defer s2.Close()
	out, _, _ = run(t, s2, "curl -sS "+f.url(false, "allowed.test", "/hello"))
	assert.Contains(t, out, "asks for approval, and no approver is configured")
}

// A scope cannot widen the backend's list: its Allow rules only choose
// among what the list lets through.
func TestLocalNetworkScopeOnlyNarrows(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "127.0.0.1:HTTP")
	s, err := f.b.Scope("wide", &ab.ScopeConfig{Permissions: &ab.Permissions{
		Network: ab.Policy{Rules: []ab.Rule{{Pattern: "allowed.test:*", Action: ab.Deny}, {Pattern: "*:*", Action: ab.Allow}}},
	}})
	require.NoError(t, err)
	defer s.Close()
	served := f.origin.Requests()
	out, _, _ := run(t, s, "curl -sS "+f.url(false, "denied.test", "/hello"))
	assert.Contains(t, out, "(not in the allow-list)")
	out, _, _ = run(t, s, "curl -sS "+f.url(false, "allowed.test", "/hello"))
	assert.Contains(t, out, "blocked by network policy: allowed.test")
	assert.Equal(t, served, f.origin.Requests())
}

// Close cuts the tunnels of running commands and stops their proxies.
func TestLocalNetworkClose(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "127.0.0.1:HTTP")
	ignore := goleak.IgnoreCurrent()
	p, err := f.b.Start(context.Background(), fmt.Sprintf(
		"exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT allowed.test:%d HTTP/1.1\\r\\n\\r\\n' >&3; head -1 <&3; cat <&3", f.http), nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		out, _, _ := p.Output(0)
		return strings.Contains(string(out), " 200 ")
	}, time.Minute, 10*time.Millisecond)
	require.NoError(t, f.b.Close())
	_, _ = p.Wait(context.Background()) // killed
	goleak.VerifyNone(t, ignore)
}

func TestLocalNetworkConfig(t *testing.T) {
	for _, bad := range []ab.Network{"allow:", "allow: , ", "allow:exa*mple.com", "allow:example.com:0", "bridge", "ALLOW:x.com", "allow:127.1"} {
		_, err := ab.NewLocal(ab.LocalConfig{RootDir: t.TempDir(), Isolation: ab.IsolationNone, Network: bad})
		require.Error(t, err, bad)
		assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err), bad)
		_, err = ab.ParseNetwork(string(bad))
		assert.Error(t, err, bad)
	}
	for _, iso := range []ab.Isolation{ab.IsolationSoftware, ab.IsolationNone} {
		_, err := ab.NewLocal(ab.LocalConfig{RootDir: t.TempDir(), Isolation: iso, Network: ab.NetworkAllow("github.com")})
		require.Error(t, err, iso)
		assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
		assert.Contains(t, err.Error(), "needs bwrap isolation")
	}
	for in, want := range map[string]ab.Network{
		"": ab.NetworkNone, "none": ab.NetworkNone, " host ": ab.NetworkHost,
		"allow: github.com , *.pypi.org:443,": "allow:github.com,*.pypi.org:443",
	} {
		got, err := ab.ParseNetwork(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	assert.Equal(t, []string{"a.com", "b.com:8080"}, ab.NetworkAllow("a.com", " b.com:8080").AllowList())
	assert.Nil(t, ab.NetworkHost.AllowList())
	assert.Contains(t, ab.NetworkAllow("a.com", "*.b.org").Describe(), "only these hosts: a.com, *.b.org")

	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationSoftware})
	assert.Equal(t, ab.NetworkHost, b.Network(), "software isolation runs commands on the host's network")
}

// An allow-list needs CAP_SYS_ADMIN: an unprivileged user gets
// MISSING_UTILITIES from NewLocal, never a sandbox that silently has no
// proxy or falls back to the host's network.
func TestLocalNetworkUnprivileged(t *testing.T) {
	if os.Getenv("AGENTBE_TEST_UNPRIVILEGED") == "" {
		if os.Getuid() != 0 {
			t.Skip("runs as root, then again as nobody")
		}
		testenv.NeedBwrap(t)
		setpriv := testenv.NeedCommand(t, "netproxy", "setpriv")
		dir, err := os.MkdirTemp("", "agentbe-unpriv-")
		require.NoError(t, err)
		defer os.RemoveAll(dir)
		require.NoError(t, os.Chmod(dir, 0o755))
		self, err := os.Executable()
		require.NoError(t, err)
		bin := filepath.Join(dir, "test")
		data, err := os.ReadFile(self)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(bin, data, 0o755))
		out, err := runAs(setpriv, bin)
		require.NoError(t, err, out)
		assert.Contains(t, out, "PASS")
		assert.NotContains(t, out, "SKIP")
		return
	}
	require.NotEqual(t, 0, os.Getuid())
	_, err := ab.NewLocal(ab.LocalConfig{RootDir: t.TempDir(), Network: ab.NetworkAllow("github.com")})
	require.Error(t, err)
	assert.Equal(t, ab.CodeMissingUtilities, ab.ErrorCode(err))
	assert.Contains(t, err.Error(), "CAP_SYS_ADMIN")
}

// runAs runs the test binary bin as nobody, for TestLocalNetworkUnprivileged.
func runAs(setpriv, bin string) (string, error) {
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^TestLocalNetworkUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), "AGENTBE_TEST_UNPRIVILEGED=1", "TMPDIR=/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), errors.Join(err, errors.New(string(out)))
	}
	return string(out), nil
}
