//go:build linux

package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// netOrigin skips unless allow-lists work here, and serves allowed.test
// and denied.test (resolving to 127.0.0.1) for the test.
func netOrigin(t *testing.T) *nettest.Origin {
	t.Helper()
	testenv.NeedBwrap(t)
	err := netproxy.CanListenIn()
	testenv.Need(t, "netproxy", err == nil, fmt.Sprint(err))
	testenv.NeedCommand(t, "netproxy", "curl")
	o := nettest.NewOrigin(t, "allowed.test", "denied.test")
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	t.Cleanup(netproxy.SetTestHosts(map[string][]netip.Addr{"allowed.test": lo, "denied.test": lo}))
	return o
}

// The daemon's SSH sessions get the allow-list's proxy, and its decisions
// are in the daemon's log.
func TestDaemonNetworkSSH(t *testing.T) {
	o := netOrigin(t)
	var logs nettest.LogBuffer
	port := o.Port(false)
	d, dport := startDaemon(t, daemon.Config{Isolation: ab.IsolationBwrap, Shell: ab.ShellBash,
		Network: ab.NetworkAllow(fmt.Sprintf("allowed.test:%d", port), fmt.Sprintf("127.0.0.1:%d", port)),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil))})
	c := sshClient(t, d, dport, "")
	exec := func(command string) string {
		sess, err := c.NewSession()
		require.NoError(t, err)
		defer sess.Close()
		out, _ := sess.CombinedOutput(command)
		return string(out)
	}
	assert.Equal(t, fmt.Sprintf("hello from allowed.test:%d\n", port), exec(fmt.Sprintf("curl -sS http://allowed.test:%d/hello", port)))
	served := o.Requests()
	assert.Equal(t, fmt.Sprintf("blocked by network policy: denied.test:%d (not in the allow-list)\n", port),
		exec(fmt.Sprintf("curl -sS http://denied.test:%d/hello", port)))
	assert.Contains(t, exec(fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d || echo refused", port)), "refused")
	assert.Equal(t, served, o.Requests())
	assert.Contains(t, logs.String(), "network request refused")
	assert.Contains(t, logs.String(), "host=denied.test:")
}

// POST /mcp's exec gets the proxy too, under the permission file's network
// policy; its tool description names the hosts.
func TestDaemonNetworkMCPPermissions(t *testing.T) {
	o := netOrigin(t)
	port := o.Port(false)
	perms, err := ab.PermissionsFromJSON([]byte(`{"network": {"default": "allow", "rules": [
		{"pattern": "denied.test:*", "action": "deny", "reason": "not for agents"},
		{"pattern": "ask.test:*", "action": "ask"}]}}`))
	require.NoError(t, err)
	_, dport := startDaemon(t, daemon.Config{Isolation: ab.IsolationBwrap, DisableSSHWS: true, Permissions: perms,
		Network: ab.NetworkAllow("*.test:*", fmt.Sprintf("127.0.0.1:%d", port))})
	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", dport), MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	require.NoError(t, err)
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	for _, tl := range tools.Tools {
		if tl.Name == "exec" {
			assert.Contains(t, tl.Description, "only these hosts: *.test:*, 127.0.0.1:")
		}
	}
	text, isErr := callText(t, cs, "exec", map[string]any{"command": fmt.Sprintf("curl -sS http://allowed.test:%d/hello", port)})
	assert.False(t, isErr, text)
	assert.Equal(t, fmt.Sprintf("hello from allowed.test:%d", port), text)
	served := o.Requests()
	text, _ = callText(t, cs, "exec", map[string]any{"command": fmt.Sprintf("curl -sS http://denied.test:%d/hello", port)})
	assert.Equal(t, fmt.Sprintf(`blocked by network policy: denied.test:%d (rule "denied.test:*" denies network (not for agents))`, port), text)
	text, _ = callText(t, cs, "exec", map[string]any{"command": fmt.Sprintf("curl -sS http://ask.test:%d/hello", port)})
	assert.Contains(t, text, "asks for approval, and no approver is configured")
	assert.Equal(t, served, o.Requests())
}
