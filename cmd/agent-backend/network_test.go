//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/nettest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The daemon as a process, on stdio: --network allow:... gives exec a
// proxy that serves the list, the permission file's network rules narrow
// it, and the exec tool says what commands reach. The origin is the
// host's 127.0.0.1, which the list names by address.
func TestLocalOnlyNetworkFlagAndPermissionsFile(t *testing.T) {
	testenv.NeedBwrap(t)
	err := netproxy.CanListenIn()
	testenv.Need(t, "netproxy", err == nil, fmt.Sprint(err))
	testenv.NeedCommand(t, "netproxy", "curl")
	o := nettest.NewOrigin(t, "allowed.test")
	httpPort, httpsPort := o.Port(false), o.Port(true)
	policy := filepath.Join(t.TempDir(), "policy.json")
	require.NoError(t, os.WriteFile(policy, fmt.Appendf(nil,
		`{"network": {"rules": [{"pattern": "127.0.0.1:%d", "action": "deny", "reason": "not this one"}]}}`, httpsPort), 0o644))

	cmd := cli("daemon", "--rootDir", t.TempDir(), "--isolation", "bwrap", "--network", "allow:127.0.0.1:*",
		"--permissions", policy, "--local-only")
	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(t, err)
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var described bool
	for _, tl := range tools.Tools {
		if tl.Name == "exec" {
			described = true
			assert.Contains(t, tl.Description, "only these hosts: 127.0.0.1:*")
		}
	}
	assert.True(t, described, "exec is offered")
	exec := func(command string) string {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{"command": command}})
		require.NoError(t, err)
		return res.Content[0].(*mcp.TextContent).Text
	}
	// --noproxy '': NO_PROXY keeps the loopback for the sandbox's own
	// servers; the host's is behind the proxy.
	assert.Contains(t, exec(fmt.Sprintf("curl -sS --noproxy '' http://127.0.0.1:%d/hello", httpPort)), fmt.Sprintf("hello from 127.0.0.1:%d", httpPort))
	served := o.Conns()
	out := exec(fmt.Sprintf("curl -sSk --noproxy '' https://127.0.0.1:%d/hello", httpsPort))
	assert.Contains(t, out, "CONNECT tunnel failed, response 403")
	assert.NotContains(t, out, "hello from")
	out = exec(fmt.Sprintf("curl -sS --noproxy '*' http://127.0.0.1:%d/hello", httpPort))
	assert.NotContains(t, out, "hello from", "without the proxy there is no route")
	assert.Equal(t, served, o.Conns())
}
