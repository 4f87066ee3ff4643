//go:build linux

package agentbackend_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
)

// A scope's network rules either apply to its commands or the scope is
// refused: on every backend and isolation mode a hostile command through a
// scope that denies the network is refused up front, or cannot reach the
// denied host (a real origin on the host's 127.0.0.1, which must see
// nothing).

// closedNet is the narrowing every case attacks: no host at all.
func closedNet() *ab.Permissions { return &ab.Permissions{Network: ab.Policy{Default: ab.Deny}} }

// hostileNet is what a command that wants out tries, against the origin's
// plain HTTP port: curl through the proxy and around it, and a raw
// connection. (busybox wget crashes on an address where nothing resolves.)
func hostileNet(port int) string {
	u := fmt.Sprintf("http://127.0.0.1:%d/hello", port)
	return fmt.Sprintf(`curl -sS --max-time 10 --noproxy '' %[1]s; curl -sS --max-time 10 --noproxy '*' %[1]s; `+
		`(exec 3<>/dev/tcp/127.0.0.1/%[2]d && printf 'GET /hello HTTP/1.0\r\n\r\n' >&3 && cat <&3); true`, u, port)
}

// ncGet is a raw HTTP request with busybox nc, the container's client.
func ncGet(port int) string {
	return fmt.Sprintf(`printf 'GET /hello HTTP/1.0\r\n\r\n' | nc -w 5 127.0.0.1 %d; true`, port)
}

// wantNetRefused asserts that making a scope with p on b fails with
// INVALID_CONFIGURATION naming the field and why.
func wantNetRefused(t *testing.T, b ab.FileBackend, p *ab.Permissions, why string) {
	t.Helper()
	s, err := ab.NewScope(b, ".", &ab.ScopeConfig{Permissions: p})
	if !assert.Error(t, err, "a scope whose network rules nothing applies was made") {
		s.Close()
		return
	}
	assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
	assert.Contains(t, err.Error(), "Permissions.Network: the scope's network rules cannot apply to its commands")
	assert.Contains(t, err.Error(), why)
}

// Where commands share the host's network, the attack works without a
// scope (the origin answers), and a scope that denies the network is
// refused rather than made; scopes without network rules, that allow
// every host, or that run no command are made.
func TestNetworkScopeAttackHostNetworkRefused(t *testing.T) {
	o := nettest.NewOrigin(t, "origin.test")
	port := o.Port(false)
	for _, c := range []struct {
		name string
		cfg  ab.LocalConfig
		why  string
	}{
		{"none", ab.LocalConfig{Isolation: ab.IsolationNone}, "under none isolation"},
		{"software", ab.LocalConfig{Isolation: ab.IsolationSoftware}, "under software isolation"},
		{"bwrap-host", ab.LocalConfig{Isolation: ab.IsolationBwrap, Network: ab.NetworkHost}, "the backend's Network is host"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Isolation == ab.IsolationBwrap {
				needProxy(t) // curl, bwrap
			}
			c.cfg.AllowDangerous = true
			b := newLocal(t, c.cfg)
			before := o.Requests()
			res, err := b.Exec(context.Background(), fmt.Sprintf("curl -sS --max-time 10 http://127.0.0.1:%d/hello", port), nil)
			require.NoError(t, err)
			require.Contains(t, string(res.Stdout), "hello from", "the unscoped command reaches the origin: the attack is real")
			require.Greater(t, o.Requests(), before)

			wantNetRefused(t, b, closedNet(), c.why)
			wantNetRefused(t, b, &ab.Permissions{Network: ab.Policy{Rules: []ab.Rule{{Pattern: "127.0.0.1:*", Action: ab.Deny}}}}, c.why)
			wantNetRefused(t, b, ab.StrictPermissions(), c.why)
			// Below a scope without network rules, too.
			parent, err := b.Scope("team", &ab.ScopeConfig{Permissions: ab.DefaultPermissions()})
			require.NoError(t, err)
			defer parent.Close()
			wantNetRefused(t, parent, closedNet(), c.why)

			// Made: no network rules, every host allowed, no command run.
			strict := ab.StrictPermissions()
			strict.Network = ab.Policy{}
			for _, p := range []*ab.Permissions{ab.DefaultPermissions(), ab.ReadOnlyPermissions(), strict,
				{Network: ab.Policy{Default: ab.Deny}, Exec: ab.Policy{Default: ab.Deny}}} {
				s, err := b.Scope("agent", &ab.ScopeConfig{Permissions: p})
				require.NoError(t, err)
				if p.Exec.Default == ab.Deny {
					_, err = s.Exec(context.Background(), hostileNet(port), nil)
					assert.Equal(t, ab.CodePermissionDenied, ab.ErrorCode(err))
				}
				s.Close()
			}
		})
	}
}

// Under NetworkNone a denial is kept without a proxy: the sandbox has no
// route, so the scope is made and its hostile command reaches nothing.
func TestNetworkScopeAttackNoNetworkKept(t *testing.T) {
	needProxy(t)
	o := nettest.NewOrigin(t, "origin.test")
	b := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap, AllowDangerous: true})
	s, err := b.Scope("agent", &ab.ScopeConfig{Permissions: ab.StrictPermissions()})
	require.NoError(t, err, "StrictPermissions on the default network")
	s.Close()
	s, err = b.Scope("agent", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err)
	defer s.Close()
	res, err := s.Exec(context.Background(), hostileNet(o.Port(false)), &ab.ExecOptions{Timeout: time.Minute})
	require.NoError(t, err)
	assert.NotContains(t, string(res.Stdout), "hello from")
	assert.Zero(t, o.Conns(), "the origin saw no connection")
}

// Under an allow-list the scope's proxy applies its rules, whatever the
// command tries.
func TestNetworkScopeAttackAllowListKept(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "127.0.0.1:HTTP", "allowed.test:HTTP")
	s, err := f.b.Scope("agent", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err)
	defer s.Close()
	out, errOut, _ := run(t, s, hostileNet(f.http)+"; curl -sS "+f.url(false, "allowed.test", "/hello"))
	out += errOut
	assert.NotContains(t, out, "hello from")
	assert.Contains(t, out, "blocked by network policy: 127.0.0.1:")
	assert.Contains(t, out, "blocked by network policy: allowed.test:")
	assert.Zero(t, f.origin.Conns(), "the origin saw no connection")
}

// A composite's scope is made only when every backend its commands can
// go to applies the rules; a scope inside a route that does is made.
func TestNetworkScopeAttackComposite(t *testing.T) {
	needProxy(t)
	closed := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	open := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	c, err := ab.NewComposite(closed, map[string]ab.FileBackend{"host": open, "mem": newMemory(t)})
	require.NoError(t, err)
	defer c.Close()
	wantNetRefused(t, c, closedNet(), "under none isolation")
	s, err := c.Scope("work", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err, "inside the sandboxed default backend")
	s.Close()
	m, err := newMemory(t).Scope("x", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err, "memory runs nothing")
	m.Close()
	r, err := ab.NewRemote(ab.RemoteConfig{Host: "127.0.0.1", Port: 1, RootDir: "/ws", InsecureIgnoreHostKey: true})
	require.NoError(t, err)
	defer r.Close()
	wantNetRefused(t, r, closedNet(), "remote daemon")
}

// A container's network is shared by every command in it: a scope's
// rules are kept only where the container has none.
func TestNetworkScopeAttackDocker(t *testing.T) {
	needDocker(t)
	o := nettest.NewOrigin(t, "origin.test")
	port := o.Port(false)

	closed := newDockerBackend(t, ab.DockerConfig{AllowDangerous: true})
	s, err := closed.Scope("agent", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err)
	defer s.Close()
	res, err := s.Exec(dockerCtx(t), ncGet(port), nil)
	require.NoError(t, err, "%+v", res)
	assert.NotContains(t, string(res.Stdout), "hello from")
	strict, err := closed.Scope("strict", &ab.ScopeConfig{Permissions: ab.StrictPermissions()})
	require.NoError(t, err, "StrictPermissions on the default (no) network")
	strict.Close()
	attached := newDockerBackend(t, ab.DockerConfig{ContainerID: closed.ContainerID()})
	s2, err := attached.Scope("agent", &ab.ScopeConfig{Permissions: closedNet()})
	require.NoError(t, err, "an attached container without a network")
	s2.Close()
	assert.Zero(t, o.Conns(), "the origin saw no connection")

	host := newDockerBackend(t, ab.DockerConfig{Network: "host", AllowDangerous: true})
	res, err = host.Exec(dockerCtx(t), ncGet(port), nil)
	require.NoError(t, err)
	require.Contains(t, string(res.Stdout), "hello from", "an unscoped command of a host-network container reaches the origin: the attack is real")
	wantNetRefused(t, host, closedNet(), `the container's network (host)`)
	wantNetRefused(t, newDockerBackend(t, ab.DockerConfig{ContainerID: host.ContainerID()}), closedNet(), `the container's network (host)`)
}

// A command that opens connections to many names at once makes at most
// maxHostQuestions questions wait for the approver; connections to one
// name share one question; the rest are refused without asking.
func TestNetworkScopeAttackApprovalStorm(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "*.test:*", "127.0.0.1:*")
	const names = 40
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	hosts := map[string][]netip.Addr{"allowed.test": lo}
	for i := range names {
		hosts[fmt.Sprintf("h%d.test", i)] = lo
	}
	t.Cleanup(netproxy.SetTestHosts(hosts))
	var mu sync.Mutex
	asked := map[string]int{}
	pending, maxPending := 0, 0
	release := make(chan struct{})
	approver := ab.ApproverFunc(func(ctx context.Context, req ab.Request) (ab.Decision, error) {
		mu.Lock()
		asked[req.Host]++
		pending++
		maxPending = max(maxPending, pending)
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		mu.Lock()
		pending--
		mu.Unlock()
		return ab.DenyOnce, nil
	})
	s, err := f.b.Scope("agent", &ab.ScopeConfig{Logger: ab.NewArrayLogger(ab.LogStandard),
		Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Ask}, Approver: approver}})
	require.NoError(t, err)
	defer s.Close()
	served := f.origin.Conns()
	command := fmt.Sprintf("for i in $(seq 0 %d); do curl -sS http://h$i.test:%d/hello & done; "+
		"for i in $(seq 20); do curl -sS %s & done; wait", names-1, f.http, f.url(false, "allowed.test", "/hello"))
	p, err := s.Start(context.Background(), command, nil)
	require.NoError(t, err)
	defer p.Kill()

	// Every name past the bound is refused while the bound's questions
	// wait: at least names+1-8 distinct names.
	refusedRe := regexp.MustCompile(`blocked by network policy: ([a-z0-9.]+):\d+ \(the default network policy asks for approval, and it was refused without asking: 8 questions`)
	require.Eventually(t, func() bool {
		out, _, _ := p.Output(0)
		refused := map[string]bool{}
		for _, m := range refusedRe.FindAllStringSubmatch(string(out), -1) {
			refused[m[1]] = true
		}
		mu.Lock()
		defer mu.Unlock()
		return len(asked) == 8 && len(refused) == names+1-8
	}, time.Minute, 10*time.Millisecond, "8 questions wait and the other names are refused")
	mu.Lock()
	assert.Equal(t, 8, maxPending, "questions waiting at once")
	for host, n := range asked {
		assert.Equal(t, 1, n, "%s asked more than once while its question waited", host)
	}
	mu.Unlock()
	close(release)
	res, err := p.Wait(context.Background())
	require.NoError(t, err)
	assert.NotContains(t, string(res.Stdout), "hello from")
	mu.Lock()
	assert.LessOrEqual(t, maxPending, 8)
	mu.Unlock()
	assert.Equal(t, served, f.origin.Conns(), "the origin saw no connection")
}
