//go:build linux

package agentbackend_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
)

// A command that drops the proxy's variables has no route: its names do
// not resolve, the host's loopback is not its loopback, and nothing else
// is routed.
func TestLocalNetworkAttackWithoutTheProxy(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "127.0.0.1:HTTP")
	served := f.origin.Conns()
	unset := "env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy -u ALL_PROXY -u all_proxy "
	targets := []string{f.url(false, "allowed.test", "/hello"), f.url(false, "127.0.0.1", "/hello"), "http://1.1.1.1/"}
	if own := ownAddr(); own != "" {
		targets = append(targets, f.url(false, own, "/hello"))
	}
	for _, u := range targets {
		out, errOut, code := run(t, f.b, unset+"curl -sS --max-time 20 --noproxy '*' "+u)
		assert.NotEqual(t, 0, code, u)
		assert.NotContains(t, out, "hello from", u)
		assert.Regexp(t, "Could not resolve|Couldn't connect|Failed to connect|unreachable", errOut, u)
	}
	assert.Equal(t, served, f.origin.Conns(), "the origin saw no connection")
}

// A command's proxy listens in its own sandbox alone: the host, another
// backend's sandbox and another scope's command each find nothing there
// (or a proxy of their own, deciding by their own rules), while a command
// holds its proxy open.
func TestLocalNetworkAttackAnotherSandboxsProxy(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "allowed.test:HTTP", "127.0.0.1:HTTP")
	hostHad := dialable(netproxy.SandboxAddr)
	p, err := f.b.Start(context.Background(), "curl -sS "+f.url(false, "allowed.test", "/hello")+" && read line", nil)
	require.NoError(t, err)
	defer p.Kill()
	require.Eventually(t, func() bool {
		out, _, _ := p.Output(0)
		return strings.Contains(string(out), "hello from allowed.test")
	}, time.Minute, 10*time.Millisecond, "the holder's proxy serves it")
	served := f.origin.Requests()

	if !hostHad {
		assert.False(t, dialable(netproxy.SandboxAddr), "the host's loopback has no proxy")
	}
	other := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap, AllowDangerous: true})
	_, errOut, code := run(t, other, "exec 3<>/dev/tcp/127.0.0.1/"+fmt.Sprint(netproxy.SandboxPort))
	assert.NotEqual(t, 0, code, "another backend's sandbox reached a proxy")
	assert.Contains(t, errOut, "Connection refused")
	out, errOut, code := run(t, other, "curl -sS --max-time 20 -x "+netproxy.SandboxAddr+" "+f.url(false, "allowed.test", "/hello"))
	assert.NotEqual(t, 0, code)
	assert.NotContains(t, out, "hello from")
	assert.Contains(t, errOut, "Failed to connect")

	// A scope that allows nothing gets a proxy of its own, with its rules.
	s, err := f.b.Scope("closed", &ab.ScopeConfig{Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Deny}}})
	require.NoError(t, err)
	defer s.Close()
	out, _, _ = run(t, s, "curl -sS -x "+netproxy.SandboxAddr+" "+f.url(false, "allowed.test", "/hello"))
	assert.Contains(t, out, "blocked by network policy: allowed.test")
	assert.Equal(t, served, f.origin.Requests(), "only the holder's request was served")

	_, err = p.Stdin().Write([]byte("done\n"))
	require.NoError(t, err)
	res, err := p.Wait(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 0, res.ExitCode)
}

// dialable reports whether something accepts TCP connections at addr on
// the host.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Spellings of the host's loopback and of a denied name, from a real
// client in the sandbox under a list that allows every name.
func TestLocalNetworkAttackSpellings(t *testing.T) {
	f := newNetFixture(t, ab.LocalConfig{}, "*:*")
	served := f.origin.Conns()
	for _, host := range []string{"2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:7f00:1]", "[::127.0.0.1]", "LOCALHOST.", "allowed.test."} {
		out, errOut, _ := run(t, f.b, fmt.Sprintf("curl -sS --max-time 20 --noproxy '' http://%s:%d/hello", host, f.http))
		assert.NotContains(t, out, "hello from", host)
		assert.Regexp(t, "blocked by network policy|Bad Request|malformed|invalid host", out+errOut, host)
	}
	assert.Equal(t, served, f.origin.Conns(), "the origin saw no connection")
}
