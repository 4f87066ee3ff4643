package agentmcp_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// The tools that run commands say what the commands reach, through scopes,
// in the plain tool definitions and over MCP.
func TestExecDescriptionSaysWhatIsReachable(t *testing.T) {
	noLeaks(t)
	descriptions := func(b ab.FileBackend) map[string]string {
		out := map[string]string{}
		for _, tool := range agentmcp.Tools(b, nil) {
			out[tool.Name] = tool.Description
		}
		cs := connect(t, b)
		defer cs.Close()
		res, err := cs.ListTools(context.Background(), nil)
		require.NoError(t, err)
		for _, tool := range res.Tools {
			assert.Equal(t, out[tool.Name], tool.Description, tool.Name)
		}
		return out
	}
	host := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationNone})
	d := descriptions(host)
	assert.Contains(t, d["exec"], "Commands have this host's network.")
	assert.Contains(t, d["run_in_background"], "Commands have this host's network.")
	assert.NotContains(t, d["read_text_file"], "network")

	testenv.NeedBwrap(t)
	closed := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap})
	s, err := closed.Scope("sub", nil)
	require.NoError(t, err)
	defer s.Close()
	assert.Contains(t, descriptions(s)["exec"], "Commands have no network access")

	if netproxy.CanListenIn() != nil {
		return
	}
	allow := newLocal(t, ab.LocalConfig{Isolation: ab.IsolationBwrap, Network: ab.NetworkAllow("github.com", "*.pypi.org")})
	assert.Contains(t, descriptions(allow)["exec"], "only these hosts: github.com, *.pypi.org.")
}
