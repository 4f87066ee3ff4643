package agentbackend_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
)

func TestNetworkPermissionsConfig(t *testing.T) {
	p, err := ab.PermissionsFromJSON([]byte(`{"network": {"default": "ask", "rules": [
		{"pattern": "*.pypi.org", "action": "allow"}, {"pattern": "evil.example:*", "action": "deny", "reason": "no"}]}}`))
	require.NoError(t, err)
	assert.Equal(t, ab.Ask, p.Network.Default)
	assert.Equal(t, "*.pypi.org", p.Network.Rules[0].Pattern)
	assert.Same(t, &p.Network, p.Policy(ab.AccessNetwork))
	assert.Contains(t, ab.Accesses(), ab.AccessNetwork)
	assert.Equal(t, ab.Ask, ab.StrictPermissions().Network.Default)

	for _, bad := range []string{"exa*mple.com", "", "example.com:0", "127.1"} {
		_, err := ab.PermissionsFromJSON([]byte(`{"network": {"rules": [{"pattern": "` + bad + `", "action": "deny"}]}}`))
		require.Error(t, err, bad)
		assert.Equal(t, ab.CodeInvalidConfiguration, ab.ErrorCode(err))
		assert.Contains(t, err.Error(), "network.rules[0].pattern", bad)
	}

	req := ab.Request{Access: ab.AccessNetwork, Op: "connect", Host: "pypi.org:443", Command: "pip install x", Scope: "/ws", User: "alice",
		Rule: ab.Rule{Action: ab.Ask}}
	assert.Equal(t, `connect (network) pypi.org:443 for "pip install x" by alice in /ws (the default network policy)`, req.String())
}
