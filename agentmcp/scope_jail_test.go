package agentmcp_test

import (
	"testing"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/jailtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestScopeJailMCP: the MCP server over a scope of a LocalBackend refuses
// every path-taking tool through links planted in the scope (and "..");
// under bubblewrap its exec tool sees only the scope.
func TestScopeJailMCP(t *testing.T) {
	for _, iso := range []ab.Isolation{ab.IsolationNone, ab.IsolationBwrap} {
		t.Run(string(iso), func(t *testing.T) {
			if iso == ab.IsolationBwrap {
				testenv.NeedBwrap(t)
			}
			b := newLocal(t, ab.LocalConfig{Isolation: iso})
			w := jailtest.NewWorkspace(t, b.RootDir())
			alice, err := b.Scope("users/alice", nil)
			require.NoError(t, err)
			defer alice.Close()
			jailtest.AttackMCP(t, connect(t, alice), w, iso == ab.IsolationBwrap)
		})
	}
}
