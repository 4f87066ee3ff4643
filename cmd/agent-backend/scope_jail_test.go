package main

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/jailtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// TestScopeJailLocalOnly: `agent-backend daemon --local-only --scopePath`
// serves MCP over stdio in a scope that links planted in it cannot leave.
func TestScopeJailLocalOnly(t *testing.T) {
	for _, iso := range []ab.Isolation{ab.IsolationSoftware, ab.IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			if iso == ab.IsolationBwrap {
				testenv.NeedBwrap(t)
			}
			w := jailtest.NewWorkspace(t, t.TempDir())
			cmd := cli("daemon", "--rootDir", w.Root, "--scopePath", "users/alice", "--isolation", string(iso), "--local-only")
			client := mcp.NewClient(&mcp.Implementation{Name: "test"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
			cs, err := client.Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
			require.NoError(t, err)
			jailtest.AttackMCP(t, cs, w, iso == ab.IsolationBwrap)
			if err := cs.Close(); err != nil && !errors.Is(err, io.EOF) {
				t.Logf("close: %v", err)
			}
		})
	}
}
