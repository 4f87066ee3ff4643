//go:build linux

package agentbackend_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// A container under an allow-list reaches the allowed names through the
// proxy bound in its namespace, and nothing else: attacked with busybox
// (wget, nc, nslookup), the only tools of the test image.
func TestDockerNetworkAllowList(t *testing.T) {
	needDocker(t)
	err := netproxy.CanListenIn()
	testenv.Need(t, "netproxy", err == nil, fmt.Sprint(err))
	o := nettest.NewOrigin(t, "allowed.test", "denied.test")
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	t.Cleanup(netproxy.SetTestHosts(map[string][]netip.Addr{"allowed.test": lo, "denied.test": lo}))
	port := o.Port(false)
	var logs nettest.LogBuffer
	b := newDockerBackend(t, ab.DockerConfig{AllowDangerous: true, // nc is on the dangerous list
		Env:     map[string]string{"HTTP_PROXY": "http://elsewhere:1"},
		Network: string(ab.NetworkAllow(fmt.Sprintf("allowed.test:%d", port), fmt.Sprintf("127.0.0.1:%d", port))),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil))})
	assertLockedDown(t, b.ContainerID())
	run := func(command string) (string, int) {
		res, err := b.Exec(dockerCtx(t), command, nil)
		if res == nil {
			require.NoError(t, err)
		}
		return string(res.Stdout) + string(res.Stderr), res.ExitCode
	}
	out, code := run("env | grep -i _proxy= | sort")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "HTTP_PROXY=http://127.0.0.1:3128\n")
	assert.NotContains(t, out, "elsewhere")

	out, code = run(fmt.Sprintf("wget -q -O - http://allowed.test:%d/hello", port))
	require.Equal(t, 0, code, out)
	assert.Equal(t, fmt.Sprintf("hello from allowed.test:%d\n", port), out)
	// A tunnel, by hand.
	out, _ = run(fmt.Sprintf(`printf 'CONNECT allowed.test:%d HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n' | nc 127.0.0.1 3128`, port))
	assert.Contains(t, out, "200 Connection established")
	assert.Contains(t, out, "hello from allowed.test")

	served := o.Requests()
	out, code = run(fmt.Sprintf("wget -q -O - http://denied.test:%d/hello", port))
	assert.NotEqual(t, 0, code)
	assert.Contains(t, out, fmt.Sprintf("blocked by network policy: denied.test:%d (not in the allow-list)", port))
	out, _ = run(fmt.Sprintf(`printf 'CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n' | nc 127.0.0.1 3128`, o.Port(true)))
	assert.Contains(t, out, "403 blocked by network policy: 127.0.0.1:")
	for _, target := range []string{fmt.Sprintf("127.0.0.1 %d", port), "1.1.1.1 80", "172.17.0.1 80"} {
		out, code = run("echo x | nc -w 5 " + target)
		assert.NotEqual(t, 0, code, "raw TCP to %s: %s", target, out)
	}
	out, code = run("nslookup allowed.test 1.1.1.1")
	assert.NotEqual(t, 0, code, out)
	// Without the proxy's variables there is no route at all.
	out, code = run(fmt.Sprintf("env -u HTTP_PROXY -u http_proxy wget -q -T 10 -O - http://allowed.test:%d/hello", port))
	assert.NotEqual(t, 0, code, out)
	assert.NotContains(t, out, "hello from")
	// A scope that allows everything does not widen the list.
	wide, err := b.Scope("wide", &ab.ScopeConfig{Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Allow, Rules: []ab.Rule{{Pattern: "*:*", Action: ab.Allow}}}}})
	require.NoError(t, err)
	defer wide.Close()
	res, err := wide.Exec(dockerCtx(t), fmt.Sprintf("wget -q -O - http://denied.test:%d/hello", port), nil)
	require.NotNil(t, res, "%v", err)
	assert.Contains(t, string(res.Stderr), "blocked by network policy: denied.test")
	assert.Equal(t, served, o.Requests(), "no refused request reached the server")
	assert.Contains(t, logs.String(), "network request refused")

	// A scope's network rules cannot apply: every command shares the
	// proxy, so such a scope is refused.
	_, err = b.Scope("sub", &ab.ScopeConfig{Permissions: &ab.Permissions{Network: ab.Policy{Default: ab.Deny}}})
	require.Error(t, err)
	assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
	assert.Contains(t, err.Error(), "shares its allow-list's proxy")
}

func TestDockerNetworkConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  ab.DockerConfig
		want string
	}{
		{ab.DockerConfig{Image: "x", Network: "allow:"}, "allows no host"},
		{ab.DockerConfig{Image: "x", Network: "allow:exa*mple.com"}, "wildcard"},
		{ab.DockerConfig{ContainerID: "x", Network: "allow:github.com"}, "not to ContainerID"},
		{ab.DockerConfig{Image: "x", OCIRuntime: "runsc", Network: "allow:github.com"}, "gVisor"},
	} {
		_, err := ab.NewDocker(dockerCtx(t), c.cfg)
		require.Error(t, err, c.cfg.Network)
		assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
		assert.Contains(t, err.Error(), c.want)
	}
}
